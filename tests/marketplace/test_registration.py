"""Registration in the UI: an organisation, its node registered (awaiting enrolment: the organisation runs
it and it generates its own keys) and its first member as owner, signed in, with a first API token shown
once, and how to start the node. Every refusal is a form error and writes nothing."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.chain.rpc import rpc_request
from audit.models import AuditEntry, ChainAccount
from compute.jobs.identity import marketplace_public_key
from compute.models import Node
from marketplace.models import ApiToken, LedgerAccount, Member, Organisation
from tests.conftest import node_runtime_start
from tests.marketplace.api_flow import client_for

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"name": "Delta Analytics", "slug": "delta-analytics", "kind": "both", "username": "dora",
        "password": "a-long-passphrase", "password_again": "a-long-passphrase"}


def counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (
        Organisation, Node, ChainAccount, get_user_model(), Member, ApiToken, LedgerAccount, AuditEntry))


def test_it_registers_an_organisation_with_its_node_and_signs_in_its_owner(ganache_url):
    client = Client()
    assert client.get("/register/").status_code == 200
    response = client.post("/register/", GOOD)
    assert response.status_code == 201, response.content.decode()[:2000]
    organisation = Organisation.objects.get(slug="delta-analytics")
    assert (organisation.name, organisation.is_provider, organisation.is_consumer) == ("Delta Analytics", True, True)
    assert not organisation.is_operator and not organisation.is_auditor
    member = Member.objects.get(user__username="dora")
    assert (member.organisation, member.role) == (organisation, Member.Role.OWNER)
    assert organisation.node.status == Node.Status.AWAITING and not organisation.node.sealing_public_key
    assert {a.kind for a in LedgerAccount.objects.filter(organisation=organisation)} == {"balance", "escrow"}
    page = response.content.decode()
    # The page says the node is offline and how to start it, with a one-time enrolment token.
    token = re.search(r"--enrol-token=([0-9a-f]{48})", page).group(1)
    assert "offline" in page and f"--slug delta-analytics --marketplace-key {marketplace_public_key().hex()}" in page
    runtime = node_runtime_start(organisation, enrol_token=token)  # the organisation starts its node
    organisation.node.refresh_from_db()
    assert organisation.node.status == Node.Status.ENROLLED
    assert organisation.node.chain_address == runtime.keys.chain_address
    assert int(rpc_request("eth_getBalance", [runtime.keys.chain_address, "latest"]), 16) > 0  # dev funding
    secret = re.search(r'id="token-secret">([0-9a-f]{40})<', page).group(1)
    assert client_for(secret).get("/api/me/").json()["organisation"] == "delta-analytics"
    assert client.get("/account/tokens/").status_code == 200  # signed in
    assert secret not in client.get("/account/tokens/").content.decode()  # shown once
    assert client.get("/register/").status_code == 302  # nothing to register while signed in


@pytest.mark.parametrize(("kind", "provider", "consumer"), [("provider", True, False), ("consumer", False, True)])
def test_it_sets_the_roles_of_the_chosen_kind(ganache_url, kind, provider, consumer):
    response = Client().post("/register/", GOOD | {"kind": kind})
    assert response.status_code == 201
    organisation = Organisation.objects.get(slug=GOOD["slug"])
    assert (organisation.is_provider, organisation.is_consumer) == (provider, consumer)


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"slug": "taken-org"}, "slug", "This slug is taken."),
    ({"username": "taken-user"}, "username", "This username is taken."),
    ({"username": "TAKEN-USER"}, "username", "This username is taken."),
    ({"password": "password", "password_again": "password"}, "password", "too common"),
    ({"password": "a-lo", "password_again": "a-lo"}, "password", "too short"),
    ({"password_again": "something-else"}, "password_again", "The two passwords differ."),
    ({"slug": "Not A Slug!"}, "slug", "Enter a valid"),
    ({"kind": "operator"}, "kind", "Select a valid choice"),
    ({"name": "   "}, "name", "This field is required."),
    ({"username": "bad name!"}, "username", "Enter a valid username"),
])
def test_it_shows_each_form_error_and_writes_nothing(ganache_url, change, field, message):
    client = Client()
    assert client.post("/register/", GOOD | {"slug": "taken-org", "username": "taken-user"}).status_code == 201
    client.logout()
    before = counts()
    response = client.post("/register/", GOOD | change)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    # The error sits on its own field: the field's block is marked invalid.
    assert re.search(r'class="field field-invalid">(?:(?!class="field).)*?id="id_' + field + '"', page, re.S), field
    assert counts() == before
    assert "_auth_user_id" not in client.session


def test_it_says_the_node_is_started_here_in_the_embedded_mode(ganache_url, settings):
    settings.EMBEDDED_NODES = True
    page = Client().post("/register/", GOOD).content.decode()
    assert "being started on this machine" in page and "--enrol-token" not in page


def test_it_rejects_a_registration_without_csrf_token(ganache_url):
    client = Client(enforce_csrf_checks=True)
    before = counts()
    assert client.post("/register/", GOOD).status_code == 403
    assert counts() == before


def test_it_manages_tokens_on_the_tokens_page(make_party):
    party = make_party("page-tokens", provider=False)
    client = Client()
    assert client.login(username=party.user.username, password="pw-12345-long")
    created = client.post("/account/tokens/", {"name": "laptop", "expires_in_days": 30})
    assert created.status_code == 201
    secret = re.search(r'id="token-secret">([0-9a-f]{40})<', created.content.decode()).group(1)
    assert client_for(secret).get("/api/me/").status_code == 200
    token = ApiToken.objects.get(name="laptop")
    page = client.get("/account/tokens/").content.decode()
    assert "laptop" in page and token.prefix in page and secret not in page
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    assert client_for(secret).get("/api/me/").status_code == 401
    refused = client.post("/account/tokens/", {"name": "", "expires_in_days": 400})
    assert refused.status_code == 400
    assert ApiToken.objects.filter(member__user=party.user).count() == 2
    other = make_party("page-tokens-other", provider=False)
    their_token = ApiToken.objects.get(member__user=other.user)
    assert client.post(f"/account/tokens/{their_token.pk}/revoke/").status_code == 404
    their_token.refresh_from_db()
    assert their_token.revoked_at is None
