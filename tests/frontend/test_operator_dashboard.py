"""The operator's dashboard figures on a small seeded set: volume, revenue paid to providers and platform fees
(last 30 days and all time, and per day), jobs running and failed, chain outbox health, the audit backlog and
pending funds requests, read by marketplace.selectors_operator and shown on /operator/."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditBatch, AuditEntry, ChainAccount, ChainOutbox
from compute.models import Job, StoredTable
from marketplace.models import Dataset, LedgerAccount, LedgerTransaction, Order, Product, Quote
from marketplace.selectors_operator import operator_dashboard
from marketplace.services.funding import funds_request_create
from marketplace.services.ledger import balance_top_up, ledger_account, ledger_post
from tests.marketplace.test_funding import organisation_with_member


def _ago(**delta: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(**delta)


def _order(buyer, product, dataset, *, price: int, days_ago: int, status: str) -> Order:
    quote = Quote.objects.create(product=product, buyer=buyer, buyer_dataset=dataset, purpose="marketing",
                                 status=Quote.Status.READY, price=price)
    order = Order.objects.create(buyer=buyer, product=product, quote=quote, price=price, status=status,
                                 idempotency_key=uuid.uuid4().hex, request_digest="0" * 64,
                                 grant_expires_at=_ago(days=-30))
    Order.objects.filter(pk=order.pk).update(created_at=_ago(days=days_ago))
    return order


def _backdate(record: LedgerTransaction, days_ago: int) -> None:
    LedgerTransaction.objects.filter(pk=record.pk).update(created_at=_ago(days=days_ago))


def _settle(order: Order, provider, *, fee: int, days_ago: int) -> None:
    """What the order service writes: the price into escrow, then its release to the provider minus the fee."""
    balance = ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.ESCROW)
    _backdate(ledger_post(memo="Purchase", order=order, entries=[(balance, -order.price), (escrow, order.price)]),
              days_ago)
    paid = ledger_account(organisation=provider, kind=LedgerAccount.Kind.BALANCE)
    fees = ledger_account(organisation=None, kind=LedgerAccount.Kind.FEES)
    _backdate(ledger_post(memo="Release", order=order,
                          entries=[(escrow, -order.price), (paid, order.price - fee), (fees, fee)]), days_ago)


def _refund(order: Order) -> None:
    balance = ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.ESCROW)
    ledger_post(memo="Purchase", order=order, entries=[(balance, -order.price), (escrow, order.price)])
    ledger_post(memo="Refund", order=order, entries=[(escrow, -order.price), (balance, order.price)])


@pytest.fixture
def seeded():
    """Three orders (two in the last 30 days, one refunded), jobs, chain writes, audit batches, one request."""
    buyer, (buyer_user,), _ = organisation_with_member("dash-buyer")
    provider, _, _ = organisation_with_member("dash-provider")
    operator, (operator_user,), _ = organisation_with_member("dash-operator", operator=True)
    table = StoredTable.objects.create(node=buyer.node, name="ids", id_column="id", row_count=10, fingerprint="f" * 64)
    dataset = Dataset.objects.create(organisation=buyer, table=table, name="Customers")
    product = Product.objects.create(provider=provider, title="Risk scores", purposes=["marketing"], base_price=100,
                                     price_per_match=1)
    balance_top_up(organisation=buyer, amount=100_000)
    _settle(_order(buyer, product, dataset, price=10_000, days_ago=3, status="fulfilled"), provider, fee=500,
            days_ago=3)
    _settle(_order(buyer, product, dataset, price=4_000, days_ago=40, status="fulfilled"), provider, fee=200,
            days_ago=40)
    _refund(_order(buyer, product, dataset, price=2_000, days_ago=0, status="refunded"))

    for status, hours_ago in (("running", 0), ("running", 1), ("pending", 0), ("failed", 2), ("failed", 48),
                              ("succeeded", 1)):
        job = Job.objects.create(protocol="psi", status=status)
        ended = _ago(hours=hours_ago)
        Job.objects.filter(pk=job.pk).update(updated_at=ended,
                                             finished_at=ended if status in {"failed", "succeeded"} else None)

    account = ChainAccount.objects.create(address="0x" + "1" * 40, key_ciphertext=b"sealed")
    for status, minutes_ago in (("pending", 0), ("pending", 30), ("sent", 30), ("failed", 1), ("confirmed", 0),
                                ("confirmed", 90)):
        row = ChainOutbox.objects.create(account=account, contract="AuditAnchor", function="anchor", status=status)
        ChainOutbox.objects.filter(pk=row.pk).update(updated_at=_ago(minutes=minutes_ago))
    confirmed = ChainOutbox.objects.filter(status="confirmed").first()
    AuditBatch.objects.create(root="a" * 64, size=7, first_entry_id=10**9, last_entry_id=10**9 + 6, outbox=confirmed)
    AuditBatch.objects.create(root="b" * 64, size=5, first_entry_id=10**9 + 7, last_entry_id=10**9 + 11)

    funds_request_create(organisation=buyer, user=buyer_user, amount=30_000)
    return operator_user


@pytest.mark.django_db
def test_it_reads_the_dashboard_figures_of_a_small_seeded_set(seeded, settings):
    settings.CHAIN_OUTBOX_STUCK_SECONDS = 600
    figures = operator_dashboard()

    assert (figures.recent.volume.orders, figures.recent.volume.value) == (2, 12_000)
    assert (figures.total.volume.orders, figures.total.volume.value) == (3, 16_000)
    assert (figures.recent.revenue, figures.total.revenue) == (9_500, 13_300)  # the refund is no revenue
    assert (figures.recent.fees, figures.total.fees) == (500, 700)
    assert (figures.jobs.running, figures.jobs.pending, figures.jobs.failed, figures.jobs.succeeded) == (2, 1, 1, 1)
    outbox = figures.outbox
    assert (outbox.pending, outbox.stuck, outbox.failed, outbox.confirmed) == (3, 2, 1, 2)
    assert outbox.stuck_after_seconds == 600 and outbox.needs_attention
    audit = figures.audit
    assert (audit.unanchored_batches, audit.unanchored_entries) == (1, 5)
    assert audit.unsealed_entries == AuditEntry.objects.filter(batch__isnull=True).count() > 0
    assert audit.entries_behind == audit.unsealed_entries + 5
    assert (figures.funds.count, figures.funds.amount) == (1, 30_000)

    assert len(figures.daily) == 30 and figures.daily[-1].day == timezone.localdate()
    active = {day.day: (day.orders, day.value, day.fees) for day in figures.daily if day.orders or day.fees}
    assert active == {timezone.localdate() - dt.timedelta(days=3): (1, 10_000, 500),
                      timezone.localdate(): (1, 2_000, 0)}
    assert sum(day.value for day in figures.daily) == figures.recent.volume.value
    assert sum(day.fees for day in figures.daily) == figures.recent.fees


@pytest.mark.django_db
def test_it_counts_a_write_as_stuck_by_the_setting(seeded, settings):
    settings.CHAIN_OUTBOX_STUCK_SECONDS = 3600
    assert operator_dashboard().outbox.stuck == 0
    settings.CHAIN_OUTBOX_STUCK_SECONDS = 60
    assert operator_dashboard().outbox.stuck == 2


@pytest.mark.django_db
def test_it_shows_the_figures_and_a_chart_with_its_table_on_the_dashboard(seeded):
    browser = Client()
    browser.force_login(seeded)
    page = browser.get("/operator/")
    assert page.status_code == 200
    html = page.content.decode()
    for element, text in (("orders-recent", "2"), ("orders-total", "3"), ("value-recent", "$120.00"),
                          ("value-total", "$160.00"), ("revenue-recent", "$95.00"), ("revenue-total", "$133.00"),
                          ("fees-recent", "$5.00"), ("fees-total", "$7.00"), ("jobs-running", "2"),
                          ("jobs-failed", "1"), ("outbox-stuck", "2"), ("outbox-failed", "1"),
                          ("audit-unanchored", "1"), ("funds-pending", "1"), ("funds-amount", "$300.00")):
        assert f'id="{element}">{text}<' in html, element
    assert 'data-chart="operator-volume"' in html and 'id="operator-daily"' in html
    assert 'id="operator-daily-table"' in html and "vendor/chartjs/chart.umd.js" in html
    assert 'id="outbox-attention"' in html and "Dash Buyer asks for $300.00" in html
    assert 'id="trading-empty"' not in html and 'id="charts-empty"' not in html


@pytest.mark.django_db
def test_it_says_what_to_do_next_on_an_empty_dashboard():
    _, (operator_user,), _ = organisation_with_member("dash-empty-op", operator=True)
    browser = Client()
    browser.force_login(operator_user)
    html = browser.get("/operator/").content.decode()
    assert 'id="trading-empty"' in html and 'id="charts-empty"' in html
    assert "vendor/chartjs/chart.umd.js" not in html
    assert 'href="/operator/top-ups/"' in html and 'id="outbox-attention"' not in html
