"""The money ledger's own rules: balanced transactions, no account below zero (service and database),
accounts locked so parallel debits of one balance never overspend, and the operator's top-up with its
Idempotency-Key (sequential, different body, concurrent)."""
from __future__ import annotations

import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction

from marketplace.exceptions import ApplicationError, Conflict, InsufficientFunds, PermissionDenied, Unprocessable
from marketplace.models import LedgerAccount, LedgerEntry, LedgerTransaction
from marketplace.services.ledger import TOP_UP_MEMO, ledger_account, ledger_post, ledger_top_up
from marketplace.services.organisations import member_create, organisation_create

pytestmark = pytest.mark.chain


def _operator(slug: str = "platform-op"):
    organisation = organisation_create(slug=slug, name="Platform operator", is_provider=False, is_consumer=False,
                                       is_operator=True)
    member_create(organisation=organisation, username=f"{slug}-user", password="pw-12345-long", role="owner")
    return organisation


def _balance(organisation, kind=LedgerAccount.Kind.BALANCE) -> int:
    return ledger_account(organisation=organisation, kind=kind).balance


@pytest.mark.django_db
def test_it_refuses_entries_that_do_not_sum_to_zero(make_party):
    buyer = make_party("ledger-sum", provider=False, balance=1_000)
    balance = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.ESCROW)
    before = LedgerTransaction.objects.count()
    with pytest.raises(ValueError, match="sum to zero"):
        ledger_post(memo="unbalanced", entries=[(balance, -100), (escrow, 99)])
    assert LedgerTransaction.objects.count() == before
    assert _balance(buyer.organisation) == 1_000


@pytest.mark.django_db
def test_it_refuses_to_take_a_balance_below_zero_and_writes_nothing(make_party):
    buyer = make_party("ledger-neg", provider=False, balance=500)
    balance = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.ESCROW)
    entries_before = LedgerEntry.objects.count()
    with pytest.raises(InsufficientFunds) as refused:
        ledger_post(memo="too much", entries=[(balance, -501), (escrow, 501)])
    assert refused.value.extra == {"needed": 501, "available": 500, "account": "balance"}
    assert LedgerEntry.objects.count() == entries_before
    assert (_balance(buyer.organisation), _balance(buyer.organisation, LedgerAccount.Kind.ESCROW)) == (500, 0)
    ledger_post(memo="exactly all", entries=[(balance, -500), (escrow, 500)])
    assert _balance(buyer.organisation) == 0


@pytest.mark.django_db
def test_it_nets_entries_on_one_account_before_checking_the_floor(make_party):
    buyer = make_party("ledger-net", provider=False, balance=100)
    balance = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.ESCROW)
    # -150 then +100 on the same balance nets to -50: allowed although -150 alone is not
    record = ledger_post(memo="netted", entries=[(balance, -150), (balance, 100), (escrow, 50)])
    assert sorted(record.entries.values_list("amount", flat=True)) == [-150, 50, 100]
    assert (_balance(buyer.organisation), _balance(buyer.organisation, LedgerAccount.Kind.ESCROW)) == (50, 50)


@pytest.mark.django_db
def test_it_drops_entries_of_zero(make_party):
    buyer = make_party("ledger-zero", provider=False, balance=100)
    balance = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.ESCROW)
    fees = ledger_account(organisation=None, kind=LedgerAccount.Kind.FEES)
    record = ledger_post(memo="no fee", entries=[(balance, -10), (escrow, 10), (fees, 0)])
    assert record.entries.count() == 2


@pytest.mark.django_db
def test_it_has_a_database_constraint_against_negative_organisation_accounts(make_party):
    buyer = make_party("ledger-db", provider=False, balance=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.filter(organisation=buyer.organisation, kind=LedgerAccount.Kind.BALANCE).update(
            balance=-1)
    external = ledger_account(organisation=None, kind=LedgerAccount.Kind.EXTERNAL)
    assert external.balance <= -10  # the outside world is the only account allowed below zero


@pytest.mark.django_db
def test_it_tops_up_once_per_idempotency_key(make_party):
    operator = _operator()
    buyer = make_party("ledger-topup", provider=False)
    record, created = ledger_top_up(operator=operator, organisation_slug=buyer.organisation.slug, amount=2_500,
                                    idempotency_key="pay-1", actor="user:op")
    again, created_again = ledger_top_up(operator=operator, organisation_slug=buyer.organisation.slug,
                                         amount=2_500, idempotency_key="pay-1", actor="user:op")
    assert (created, created_again) == (True, False)
    assert again.id == record.id and record.memo == TOP_UP_MEMO == "Top-up (payment provider stand-in)"
    assert _balance(buyer.organisation) == 2_500
    assert sorted(record.entries.values_list("amount", flat=True)) == [-2_500, 2_500]
    with pytest.raises(Unprocessable):
        ledger_top_up(operator=operator, organisation_slug=buyer.organisation.slug, amount=2_600,
                      idempotency_key="pay-1", actor="user:op")
    assert _balance(buyer.organisation) == 2_500


@pytest.mark.django_db
@pytest.mark.parametrize(("slug", "amount", "key", "error"), [
    ("ledger-bad", 0, "k", "amount"),
    ("ledger-bad", -5, "k", "amount"),
    ("ledger-bad", 10**11 + 1, "k", "amount"),
    ("ledger-bad", 100, "", "Idempotency-Key"),
    ("ledger-bad", 100, "k" * 201, "Idempotency-Key"),
    ("nobody-here", 100, "k", "Organisation not found"),
])
def test_it_refuses_a_bad_top_up_and_writes_nothing(make_party, slug, amount, key, error):
    operator = _operator()
    make_party("ledger-bad", provider=False)
    before = LedgerTransaction.objects.count()
    with pytest.raises(ApplicationError) as refused:
        ledger_top_up(operator=operator, organisation_slug=slug, amount=amount, idempotency_key=key, actor="u")
    assert error in refused.value.message
    assert LedgerTransaction.objects.count() == before


@pytest.mark.django_db
def test_it_lets_only_the_operator_top_up(make_party):
    provider = make_party("ledger-notop", provider=True)
    with pytest.raises(PermissionDenied):
        ledger_top_up(operator=provider.organisation, organisation_slug=provider.organisation.slug, amount=100,
                      idempotency_key="k", actor="u")
    assert _balance(provider.organisation) == 0


@pytest.mark.django_db(transaction=True)
def test_it_answers_409_to_a_concurrent_top_up_with_the_same_key(make_party):
    operator = _operator("platform-op-c")
    buyer = make_party("ledger-conc", provider=False)
    slug = buyer.organisation.slug
    inserted, outcome = threading.Event(), {}

    def first() -> None:
        try:
            with transaction.atomic():  # holds the first request open while the second arrives
                ledger_top_up(operator=operator, organisation_slug=slug, amount=700, idempotency_key="same",
                              actor="user:op")
                inserted.set()
                time.sleep(0.5)
        finally:
            connection.close()

    def second() -> None:
        inserted.wait(10)
        try:
            outcome["second"] = ledger_top_up(operator=operator, organisation_slug=slug, amount=700,
                                              idempotency_key="same", actor="user:op")
        except Conflict as error:
            outcome["second"] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert isinstance(outcome["second"], Conflict), outcome
    assert outcome["second"].status == 409
    assert _balance(buyer.organisation) == 700
    assert LedgerTransaction.objects.filter(idempotency_key="same").count() == 1
    # once the first has committed, the same key returns its transaction
    record, created = ledger_top_up(operator=operator, organisation_slug=slug, amount=700, idempotency_key="same",
                                    actor="user:op")
    assert not created and record.idempotency_key == "same"


@pytest.mark.django_db(transaction=True)
def test_it_never_overspends_one_balance_under_parallel_debits(make_party):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    buyer = make_party("ledger-par", provider=False, balance=100)
    balance = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=buyer.organisation, kind=LedgerAccount.Kind.ESCROW)
    barrier, results = threading.Barrier(8), []

    def debit() -> None:
        try:
            barrier.wait()
            ledger_post(memo="parallel", entries=[(balance, -30), (escrow, 30)])
            results.append("ok")
        except InsufficientFunds:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=debit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["ok"] * 3 + ["refused"] * 5
    assert (_balance(buyer.organisation), _balance(buyer.organisation, LedgerAccount.Kind.ESCROW)) == (10, 90)
