"""QUALITY 11: the ledger's invariants under random sequences of business events (hypothesis stateful).

The machine drives the real services of the order pipeline — the operator's top-up, quote_request and
quote_finalize, order_place, order_grant_confirmed / order_grant_failed, order_job_finished,
order_cancel — over two providers (one single and one joint product) and two consumers. Only the
outcome of each compute job (coverage measured, job succeeded or failed) is drawn by hypothesis instead
of running the PSI protocol: the job row is finished the way the compute layer finishes it, then the
marketplace is told, as its signal receiver would. Chain sends and job dispatch wait for a commit that
never comes (each example runs in a transaction rolled back at its end).

After every step: every transaction sums to zero; each account's balance is the sum of its entries;
Σ of all organisation and platform accounts == Σ of top-ups (no money created or lost); each
organisation's escrow == Σ price of its orders still PAID, GRANTED or FULFILLING; no account but the
outside world below zero; fees == the fee on every share paid out.
"""
from __future__ import annotations

import uuid

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from compute.jobs.services import job_fail
from compute.models import Job
from marketplace.exceptions import ApplicationError, Conflict, InsufficientFunds
from marketplace.models import LedgerAccount, LedgerEntry, Order, OrderGrant, OrderJob, Organisation, Quote
from marketplace.services.catalog import (
    product_contribute,
    product_contribution_decide,
    product_create,
    product_transition,
)
from marketplace.services.ledger import balance_top_up, ledger_top_up
from marketplace.services.orders import (
    order_cancel,
    order_grant_confirmed,
    order_grant_failed,
    order_job_finished,
    order_place,
)
from marketplace.services.organisations import organisation_create
from marketplace.services.quotes import quote_finalize, quote_request
from tests.conftest import dataset_on_node
from tests.marketplace.data import consumer_csv, provider_csv

pytestmark = [pytest.mark.django_db, pytest.mark.chain]

QUERY_SIZE = 12
HELD = (Order.Status.PAID, Order.Status.GRANTED, Order.Status.FULFILLING)


def _world(make_party) -> dict:
    """Two providers (a single and a joint product), two consumers with a dataset each, an operator."""
    ids = [f"H{n:03d}" for n in range(30)]
    p1, p2 = make_party("inv-p1", provider=True), make_party("inv-p2", provider=True)
    d1 = dataset_on_node(organisation=p1.organisation, name="p1", data=provider_csv(ids[:20]), id_column="customer_id",
                        actor="test")
    d2 = dataset_on_node(organisation=p2.organisation, name="p2", data=provider_csv(ids[10:]), id_column="customer_id",
                        actor="test")
    terms = {"description": "", "purposes": ["risk_control"], "base_price": 50, "price_per_match": 7, "quota": 3,
             "validity_days": 30, "actor": "test"}
    single = product_create(provider=p1.organisation, dataset_ids=[str(d1.id)], title="single", publish=True, **terms)
    joint = product_create(provider=p1.organisation, dataset_ids=[str(d1.id)], title="joint", **terms)
    proposed = product_contribute(product=joint, organisation=p2.organisation, dataset_id=str(d2.id), actor="test")
    product_contribution_decide(product=joint, organisation=p1.organisation, contribution_id=proposed.id, accept=True,
                                actor="test")
    product_transition(product=joint, organisation=p1.organisation, status="published", actor="test")
    consumers = []
    for slug in ("inv-c1", "inv-c2"):
        party = make_party(slug, provider=False)
        dataset = dataset_on_node(organisation=party.organisation, name=slug, data=consumer_csv(ids[5:5 + QUERY_SIZE]),
                                 id_column="customer_id", actor="test")
        balance_top_up(organisation=party.organisation, amount=1_000)  # enough for a few purchases
        consumers.append((party.organisation, dataset))
    operator = organisation_create(slug="inv-op", name="Operator", is_provider=False, is_consumer=False,
                                   is_operator=True)
    return {"products": [single, joint], "consumers": consumers, "operator": operator}


class LedgerMachine(RuleBasedStateMachine):
    world: dict = {}

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.baseline = self._held_total()
        self.topped_up = 0
        self.keys: list[tuple[str, str, int]] = []
        self.quotes: list[str] = []

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @staticmethod
    def _held_total() -> int:
        return LedgerAccount.objects.exclude(kind=LedgerAccount.Kind.EXTERNAL).aggregate(
            total=Sum("balance"))["total"] or 0

    @staticmethod
    def _balance(organisation: Organisation) -> int:
        return LedgerAccount.objects.get(organisation=organisation, kind=LedgerAccount.Kind.BALANCE).balance

    @staticmethod
    def _pick(data: st.DataObject, queryset) -> str:
        return data.draw(st.sampled_from([str(pk) for pk in queryset.order_by("created_at", "id").values_list(
            "id", flat=True).distinct()]))

    @staticmethod
    def _awaiting_grants():
        return Order.objects.filter(status=Order.Status.PAID, grants__status=OrderGrant.Status.PENDING)

    @staticmethod
    def _running():
        return Order.objects.filter(status=Order.Status.FULFILLING, order_jobs__run=1,
                                    order_jobs__job__status=Job.Status.PENDING)

    # -- money in ----------------------------------------------------------------------------------

    @rule(consumer=st.integers(0, 1), amount=st.integers(1, 400), repeat=st.booleans())
    def top_up(self, consumer: int, amount: int, repeat: bool) -> None:
        organisation = self.world["consumers"][consumer][0]
        if repeat and self.keys:
            key, slug, amount = self.keys[-1]
        else:
            key, slug = str(uuid.uuid4()), organisation.slug
        _, created = ledger_top_up(operator=self.world["operator"], organisation_slug=slug, amount=amount,
                                   idempotency_key=key, actor="test")
        assert created is not (repeat and bool(self.keys))
        if created:
            self.keys.append((key, slug, amount))
            self.topped_up += amount

    # -- quote and buy ---------------------------------------------------------------------------

    @rule(consumer=st.integers(0, 1), product=st.integers(0, 1),
          cells=st.lists(st.integers(0, QUERY_SIZE // 3), min_size=3, max_size=3), confirmed=st.booleans())
    def buy(self, consumer: int, product: int, cells: list[int], confirmed: bool) -> None:
        organisation, dataset = self.world["consumers"][consumer]
        quote = quote_request(buyer=organisation, product_id=str(self.world["products"][product].id),
                              dataset_id=str(dataset.id), purpose="risk_control", actor="test")
        # the compute layer's outcome of the quote's coverage job, drawn instead of run: one provider's count,
        # or for the joint product the histogram of which providers cover the buyer's ids (cells 1, 2 and 3)
        histogram = {str(cell): count for cell, count in enumerate(cells, start=1) if count}
        covered = cells[0] if product == 0 else sum(cells)
        Job.objects.filter(id=quote.measurements.first().job_id).update(
            status=Job.Status.SUCCEEDED, step=3, result_cardinality=covered, finished_at=timezone.now(),
            result={} if product == 0 else {"histogram": histogram, "providers": 2, "cardinality": covered})
        quote = quote_finalize(quote_id=str(quote.id))
        assert quote.status == Quote.Status.READY and quote.price == sum(s["share"] for s in quote.shares)
        self.quotes.append(str(quote.id))
        before = self._balance(organisation)
        key = str(uuid.uuid4())
        try:
            order, created = order_place(buyer=organisation, quote_id=str(quote.id), idempotency_key=key,
                                         actor="test")
        except InsufficientFunds:
            assert before < quote.price
            assert not Order.objects.filter(quote=quote).exists() and self._balance(organisation) == before
            return
        except ApplicationError:  # a quote covering fewer ids than the cohort releases nothing: not for sale
            assert covered < max(quote.product.min_cohort, 1)
            assert not Order.objects.filter(quote=quote).exists() and self._balance(organisation) == before
            return
        assert created and self._balance(organisation) == before - quote.price
        again, created_again = order_place(buyer=organisation, quote_id=str(quote.id), idempotency_key=key,
                                           actor="test")
        assert again.id == order.id and not created_again and self._balance(organisation) == before - quote.price
        if confirmed:  # the chain was quick: every grant confirmed before anything else happens
            for grant in order.grants.all():
                order_grant_confirmed(order_grant_id=grant.id)

    @precondition(lambda self: bool(self.quotes))
    @rule(data=st.data())
    def buy_a_quote_again(self, data: st.DataObject) -> None:
        quote = Quote.objects.select_related("buyer").get(id=data.draw(st.sampled_from(self.quotes)))
        before = self._balance(quote.buyer)
        with pytest.raises((Conflict, InsufficientFunds, ApplicationError)):  # bought, too dear or empty
            order_place(buyer=quote.buyer, quote_id=str(quote.id), idempotency_key=str(uuid.uuid4()), actor="test")
        assert self._balance(quote.buyer) == before

    # -- the chain answers ---------------------------------------------------------------------------

    @precondition(lambda self: self._awaiting_grants().exists())
    @rule(data=st.data(), how_many=st.integers(1, 2))
    def grants_confirmed(self, data: st.DataObject, how_many: int) -> None:
        order_id = self._pick(data, self._awaiting_grants())
        for grant in OrderGrant.objects.filter(order_id=order_id, status=OrderGrant.Status.PENDING)[:how_many]:
            order_grant_confirmed(order_grant_id=grant.id)

    @precondition(lambda self: self._awaiting_grants().exists())
    @rule(data=st.data())
    def grant_failed(self, data: st.DataObject) -> None:
        order_id = self._pick(data, self._awaiting_grants())
        grant = OrderGrant.objects.filter(order_id=order_id, status=OrderGrant.Status.PENDING).first()
        order_grant_failed(order_grant_id=grant.id, reason="reverted")
        assert Order.objects.get(id=order_id).status == Order.Status.REFUNDED

    # -- the compute jobs finish ---------------------------------------------------------------------

    @precondition(lambda self: self._running().exists())
    @rule(data=st.data(), outcomes=st.lists(st.booleans(), min_size=1, max_size=2))
    def jobs_finish(self, data: st.DataObject, outcomes: list[bool]) -> None:
        order_id = self._pick(data, self._running())
        pending = list(OrderJob.objects.filter(order_id=order_id, run=1, job__status=Job.Status.PENDING))
        for link, succeeded in zip(pending, outcomes, strict=False):
            if succeeded:  # the compute layer's outcome, drawn instead of run
                Job.objects.filter(id=link.job_id).update(status=Job.Status.SUCCEEDED, step=3, result_cardinality=3,
                                                          finished_at=timezone.now())
            else:
                job_fail(job_id=str(link.job_id), reason="the provider's node refused")
            order_job_finished(job_id=str(link.job_id))

    @precondition(lambda self: Order.objects.exists())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order = Order.objects.select_related("buyer").get(id=self._pick(data, Order.objects.all()))
        before = self._balance(order.buyer)
        try:
            order_cancel(order=order, organisation=order.buyer, actor="test")
        except Conflict:
            assert order.status not in {Order.Status.PAID, Order.Status.GRANTED} or order.order_jobs.exists()
            assert self._balance(order.buyer) == before
            return
        assert self._balance(order.buyer) == before + order.price

    # -- after every step ----------------------------------------------------------------------------

    @invariant()
    def every_transaction_sums_to_zero(self) -> None:
        unbalanced = LedgerEntry.objects.values("transaction_id").annotate(total=Sum("amount")).exclude(total=0)
        assert not unbalanced.exists(), list(unbalanced)

    @invariant()
    def balances_are_the_sum_of_their_entries(self) -> None:
        for account in LedgerAccount.objects.annotate(entries_total=Sum("entries__amount")):
            assert account.balance == (account.entries_total or 0), account

    @invariant()
    def no_money_is_created_or_lost(self) -> None:
        held = self._held_total()
        assert held == self.baseline + self.topped_up
        external = LedgerAccount.objects.filter(organisation__isnull=True, kind=LedgerAccount.Kind.EXTERNAL).first()
        assert held == -(external.balance if external else 0)

    @invariant()
    def escrow_holds_exactly_the_open_orders(self) -> None:
        for organisation, _ in self.world["consumers"]:
            escrow = LedgerAccount.objects.get(organisation=organisation, kind=LedgerAccount.Kind.ESCROW).balance
            open_orders = Order.objects.filter(buyer=organisation, status__in=HELD).aggregate(
                total=Sum("price"))["total"] or 0
            assert escrow == open_orders

    @invariant()
    def no_account_is_negative(self) -> None:
        assert not LedgerAccount.objects.exclude(kind=LedgerAccount.Kind.EXTERNAL).filter(balance__lt=0).exists()

    @invariant()
    def fees_are_the_fee_on_every_share_paid_out(self) -> None:
        fees = LedgerAccount.objects.filter(organisation__isnull=True, kind=LedgerAccount.Kind.FEES).first()
        expected = 0
        for link in OrderJob.objects.filter(run=1, job__status=Job.Status.SUCCEEDED,
                                            order__status=Order.Status.FULFILLED).select_related("grant", "order"):
            expected += link.grant.share * int(link.order.terms["platform_fee_bps"]) // 10_000
        assert (fees.balance if fees else 0) == expected


def test_it_keeps_the_ledger_invariants_under_random_order_flows(make_party):
    LedgerMachine.world = _world(make_party)
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=25, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
