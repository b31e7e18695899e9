"""Django admin for the operator: every registered model's pages load for staff; ledger, audit and
compute rows are read-only; API tokens show no secret; members of organisations are kept out."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client

from audit.models import AuditEntry
from marketplace.models import ApiToken, LedgerAccount, LedgerEntry, LedgerTransaction, Organisation

pytestmark = pytest.mark.django_db

READ_ONLY = ["marketplace.ledgeraccount", "marketplace.ledgertransaction", "marketplace.ledgerentry",
             "audit.auditentry", "audit.auditbatch", "compute.node", "compute.job", "compute.storedtable",
             "marketplace.order", "marketplace.quote", "marketplace.apitoken"]


@pytest.fixture
def operator_client() -> Client:
    user = get_user_model().objects.create_superuser(username="operator", password="pw-12345-long")
    client = Client()
    client.force_login(user)
    return client


def admin_url(label: str, view: str, *args: object) -> str:
    app, model = label.split(".")
    suffix = "".join(f"{arg}/" for arg in args)
    return f"/admin/{app}/{model}/{suffix}{view}/" if view else f"/admin/{app}/{model}/"


def test_it_loads_every_admin_list_and_detail_page_for_staff(make_party, operator_client):
    make_party("admin-party", provider=True, balance=5_000)
    assert operator_client.get("/admin/").status_code == 200
    for model in admin.site._registry:
        label = model._meta.label_lower
        changelist = operator_client.get(admin_url(label, ""))
        assert changelist.status_code == 200, label
        first = model._default_manager.first()
        if first is not None:
            assert operator_client.get(admin_url(label, "change", first.pk)).status_code == 200, label


@pytest.mark.parametrize("label", READ_ONLY)
def test_it_refuses_to_add_change_or_delete_read_only_rows(make_party, operator_client, label):
    make_party("admin-ro", provider=False, balance=5_000)
    model = next(m for m in admin.site._registry if m._meta.label_lower == label)
    assert operator_client.get(admin_url(label, "add")).status_code == 403
    row = model._default_manager.first()
    if row is None:
        return
    before = {field.name: getattr(row, field.attname) for field in model._meta.concrete_fields}
    assert operator_client.post(admin_url(label, "change", row.pk), {}).status_code == 403
    assert operator_client.post(admin_url(label, "delete", row.pk), {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert {field.name: getattr(row, field.attname) for field in model._meta.concrete_fields} == before


def test_it_keeps_the_ledger_and_audit_log_intact_through_the_admin(make_party, operator_client):
    party = make_party("admin-ledger", provider=False, balance=5_000)
    account = LedgerAccount.objects.get(organisation=party.organisation, kind="balance")
    response = operator_client.post(admin_url("marketplace.ledgeraccount", "change", account.pk),
                                    {"organisation": party.organisation.pk, "kind": "balance", "balance": 10**9})
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.balance == 5_000
    counts = (LedgerTransaction.objects.count(), LedgerEntry.objects.count(), AuditEntry.objects.count())
    changelist = operator_client.post(admin_url("marketplace.ledgerentry", ""), {
        "action": "delete_selected", "_selected_action": list(LedgerEntry.objects.values_list("pk", flat=True)),
        "post": "yes"})
    assert changelist.status_code in (200, 302, 403)
    assert (LedgerTransaction.objects.count(), LedgerEntry.objects.count(), AuditEntry.objects.count()) == counts


def test_it_shows_tokens_without_secret_or_digest_and_revokes_them(make_party, operator_client):
    party = make_party("admin-token", provider=False)
    token = ApiToken.objects.get(member__user=party.user)
    page = operator_client.get(admin_url("marketplace.apitoken", "change", token.pk)).content.decode()
    assert token.prefix in page
    assert party.token not in page and token.digest not in page
    listed = operator_client.get(admin_url("marketplace.apitoken", "")).content.decode()
    assert party.token not in listed and token.digest not in listed
    response = operator_client.post(admin_url("marketplace.apitoken", ""), {
        "action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_it_lets_the_operator_change_an_organisations_roles(make_party, operator_client):
    party = make_party("admin-roles", provider=False)
    organisation = party.organisation
    response = operator_client.post(admin_url("marketplace.organisation", "change", organisation.pk), {
        "name": "Renamed", "is_provider": "on", "is_consumer": "on", "is_auditor": "",
        "members-TOTAL_FORMS": "1", "members-INITIAL_FORMS": "1", "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000", "members-0-id": party.user.member.pk,
        "members-0-organisation": organisation.pk, "members-0-role": "owner",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    organisation = Organisation.objects.get(pk=organisation.pk)
    assert (organisation.name, organisation.is_provider, organisation.slug) == ("Renamed", True, "admin-roles")


def test_it_keeps_organisation_members_out_of_the_admin(make_party):
    party = make_party("admin-outsider", provider=True)
    client = Client()
    client.force_login(party.user)
    response = client.get("/admin/marketplace/ledgeraccount/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
