"""Funds requests, the service: a member asks for funds, the operator approves (a top-up through the
payment-provider stand-in, paid once however often it is approved) or declines with a reason; every step is
audited and notified; bad input and the wrong people are refused with nothing written."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from audit.models import AuditEntry
from marketplace.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied
from marketplace.models import FundsRequest, LedgerAccount, LedgerTransaction, Notification, Organisation
from marketplace.services.funding import (
    funds_request_approve,
    funds_request_create,
    funds_request_decline,
    is_operator_user,
)
from marketplace.services.ledger import TOP_UP_MAX, TOP_UP_MEMO
from marketplace.services.organisations import member_create, organisation_create

PASSWORD = "pw-12345-long"


def organisation_with_member(slug: str, *, operator: bool = False, auditor: bool = False,
                             members: int = 1) -> tuple[Organisation, list[User], list[str]]:
    """An organisation with `members` members (the first its owner); returns it, the users and their tokens."""
    organisation = organisation_create(slug=slug, name=slug.replace("-", " ").title(), is_provider=False,
                                       is_consumer=not (operator or auditor), is_operator=operator, is_auditor=auditor)
    users, tokens = [], []
    for index in range(members):
        user, issued = member_create(organisation=organisation, username=f"{slug}-user{index or ''}",
                                     password=PASSWORD, role="owner" if index == 0 else "member")
        users.append(user)
        tokens.append(issued.secret)
    return organisation, users, tokens


def balance(organisation: Organisation) -> int:
    return LedgerAccount.objects.get(organisation=organisation, kind=LedgerAccount.Kind.BALANCE).balance


@pytest.fixture
def buyer() -> tuple[Organisation, list[User]]:
    organisation, users, _ = organisation_with_member("fund-buyer", members=2)
    return organisation, users


@pytest.fixture
def operator() -> User:
    return organisation_with_member("fund-operator", operator=True)[1][0]


@pytest.mark.django_db
def test_it_creates_a_pending_request_audits_it_and_notifies_the_operators(buyer, operator):
    organisation, (member, _) = buyer
    funds = funds_request_create(organisation=organisation, user=member, amount=150_000, note="  Wire sent  ")

    funds.refresh_from_db()
    assert (funds.status, funds.amount, funds.note, funds.requested_by) == ("pending", 150_000, "Wire sent", member)
    entry = AuditEntry.objects.get(action="funds.requested")
    assert entry.subject == f"funds:{funds.pk}" and entry.parties == ["fund-buyer"]
    assert entry.payload == {"amount": 150_000, "organisation": "fund-buyer"}
    notice = Notification.objects.get(kind="funds_requested")
    assert notice.user == operator and notice.subject == f"funds:{funds.pk}"
    assert notice.params == {"organisation": "Fund Buyer", "amount_cents": 150_000}
    assert notice.url == "/operator/top-ups/"
    assert balance(organisation) == 0  # nothing is paid before the operator decides


@pytest.mark.django_db
def test_it_refuses_a_second_pending_request_and_allows_one_once_the_first_is_decided(buyer, operator):
    organisation, (first, second) = buyer
    pending = funds_request_create(organisation=organisation, user=first, amount=1_000)

    with pytest.raises(Conflict) as refused:
        funds_request_create(organisation=organisation, user=second, amount=2_000)
    assert refused.value.status == 409 and refused.value.extra == {"pending": pending.pk}
    assert "pending request" in refused.value.message and "$10.00" in refused.value.message
    assert FundsRequest.objects.count() == 1

    funds_request_decline(request_id=pending.pk, operator_user=operator, reason="Payment not received")
    again = funds_request_create(organisation=organisation, user=second, amount=2_000)
    assert again.status == "pending" and FundsRequest.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [0, -5, 1.5, "100", True, None, TOP_UP_MAX + 1])
def test_it_refuses_an_amount_that_is_not_whole_positive_cents_within_the_limit(buyer, amount):
    organisation, (member, _) = buyer
    with pytest.raises(ApplicationError) as refused:
        funds_request_create(organisation=organisation, user=member, amount=amount)
    assert refused.value.status == 400 and refused.value.extra["field"] == "amount"
    assert not FundsRequest.objects.exists() and not AuditEntry.objects.filter(action="funds.requested").exists()


@pytest.mark.django_db
def test_it_takes_the_largest_amount_and_refuses_a_note_over_500_characters(buyer):
    organisation, (member, _) = buyer
    with pytest.raises(ApplicationError) as refused:
        funds_request_create(organisation=organisation, user=member, amount=100, note="x" * 501)
    assert refused.value.extra["field"] == "note" and not FundsRequest.objects.exists()
    assert funds_request_create(organisation=organisation, user=member, amount=TOP_UP_MAX).amount == TOP_UP_MAX


@pytest.mark.django_db
def test_it_lets_only_members_of_a_trading_organisation_ask(buyer):
    organisation, _ = buyer
    stranger = organisation_with_member("fund-stranger")[1][0]
    auditors, (auditor,), _ = organisation_with_member("fund-auditor", auditor=True)
    for who, where in ((stranger, organisation), (auditor, auditors)):
        with pytest.raises(PermissionDenied):
            funds_request_create(organisation=where, user=who, amount=100)
    stranger.is_active = False
    stranger.save()
    with pytest.raises(PermissionDenied):
        funds_request_create(organisation=Organisation.objects.get(slug="fund-stranger"), user=stranger, amount=100)
    assert not FundsRequest.objects.exists()


@pytest.mark.django_db
def test_it_approves_once_through_the_top_up_and_tells_every_member(buyer, operator):
    organisation, members = buyer
    funds = funds_request_create(organisation=organisation, user=members[0], amount=25_000)

    approved = funds_request_approve(request_id=funds.pk, operator_user=operator)
    again = funds_request_approve(request_id=funds.pk, operator_user=operator)

    assert approved.status == again.status == "approved" and again.top_up_id == approved.top_up_id
    assert approved.decided_by == operator and approved.decided_at is not None
    assert balance(organisation) == 25_000  # paid once
    top_up = LedgerTransaction.objects.get(pk=approved.top_up_id)
    assert top_up.memo == TOP_UP_MEMO and top_up.idempotency_key == f"funds-request:{funds.pk}"
    assert top_up.initiator.slug == "fund-operator"
    assert LedgerTransaction.objects.filter(memo=TOP_UP_MEMO).count() == 1
    assert AuditEntry.objects.filter(action="ledger.top_up").count() == 1
    decided = AuditEntry.objects.get(action="funds.approved")
    assert decided.parties == ["fund-buyer", "fund-operator"] and decided.payload["transaction"] == top_up.pk
    notices = Notification.objects.filter(kind="funds_decided", subject=f"funds:{funds.pk}")
    assert {n.user for n in notices} == set(members)
    assert all(n.params == {"approved": True, "amount_cents": 25_000, "reason": ""} for n in notices)


@pytest.mark.django_db
def test_it_declines_with_a_reason_the_buyer_reads_and_refuses_an_empty_one(buyer, operator):
    organisation, members = buyer
    funds = funds_request_create(organisation=organisation, user=members[0], amount=9_900)
    for empty in ("", "   "):
        with pytest.raises(ApplicationError) as refused:
            funds_request_decline(request_id=funds.pk, operator_user=operator, reason=empty)
        assert refused.value.extra["field"] == "reason"
    funds.refresh_from_db()
    assert funds.status == "pending"

    declined = funds_request_decline(request_id=funds.pk, operator_user=operator, reason=" No transfer arrived ")
    repeat = funds_request_decline(request_id=funds.pk, operator_user=operator, reason="Another reason")
    assert declined.status == repeat.status == "declined" and repeat.reason == "No transfer arrived"
    assert balance(organisation) == 0 and declined.top_up is None
    assert AuditEntry.objects.filter(action="funds.declined").count() == 1
    notice = Notification.objects.filter(kind="funds_decided").first()
    assert notice is not None and notice.params == {"approved": False, "amount_cents": 9_900,
                                                    "reason": "No transfer arrived"}


@pytest.mark.django_db
def test_it_keeps_a_decision_final(buyer, operator):
    organisation, members = buyer
    declined = funds_request_create(organisation=organisation, user=members[0], amount=100)
    funds_request_decline(request_id=declined.pk, operator_user=operator, reason="Duplicate")
    approved = funds_request_create(organisation=organisation, user=members[0], amount=200)
    funds_request_approve(request_id=approved.pk, operator_user=operator)

    with pytest.raises(Conflict):
        funds_request_approve(request_id=declined.pk, operator_user=operator)
    with pytest.raises(Conflict):
        funds_request_decline(request_id=approved.pk, operator_user=operator, reason="Changed my mind")
    assert balance(organisation) == 200
    with pytest.raises(NotFound):
        funds_request_approve(request_id=999_999, operator_user=operator)
    with pytest.raises(NotFound):
        funds_request_decline(request_id="not a number", operator_user=operator, reason="x")


@pytest.mark.django_db
def test_it_lets_only_the_operator_decide_and_staff_act_for_it(buyer, operator):
    organisation, members = buyer
    funds = funds_request_create(organisation=organisation, user=members[0], amount=500)
    for who in (members[0], organisation_with_member("fund-other")[1][0]):
        assert not is_operator_user(who)
        with pytest.raises(PermissionDenied):
            funds_request_approve(request_id=funds.pk, operator_user=who)
        with pytest.raises(PermissionDenied):
            funds_request_decline(request_id=funds.pk, operator_user=who, reason="no")
    assert FundsRequest.objects.get(pk=funds.pk).status == "pending" and balance(organisation) == 0

    staff = User.objects.create_user("fund-staff", password=PASSWORD, is_staff=True)
    assert is_operator_user(staff) and is_operator_user(operator)
    approved = funds_request_approve(request_id=funds.pk, operator_user=staff)
    top_up = LedgerTransaction.objects.select_related("initiator").get(pk=approved.top_up_id)
    assert approved.status == "approved" and top_up.initiator_id == Organisation.objects.get(slug="fund-operator").pk
    assert balance(organisation) == 500


@pytest.mark.django_db(transaction=True)
def test_it_pays_once_when_two_operators_approve_at_the_same_moment(buyer, operator):
    organisation, members = buyer
    second = member_create(organisation=Organisation.objects.get(slug="fund-operator"), username="fund-op-2",
                           password=PASSWORD, role="member")[0]
    funds = funds_request_create(organisation=organisation, user=members[0], amount=7_000)
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def approve(user: User) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(funds_request_approve(request_id=funds.pk, operator_user=user).status)
        except Exception as error:  # noqa: BLE001 - the test reports whatever a thread met
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(user,)) for user in (operator, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert outcomes == ["approved", "approved"]
    assert balance(organisation) == 7_000
    assert LedgerTransaction.objects.filter(memo=TOP_UP_MEMO).count() == 1
    assert AuditEntry.objects.filter(action="funds.approved").count() == 1
