"""The orders pages: the list (filters, pages, the buyer's spend per month, empty states), the revenue split
the settlement pays, and a provider's revocation with its reason; in English and Simplified Chinese."""
from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEntry, ChainOutbox
from compute.models import Job
from marketplace.exceptions import ApplicationError
from marketplace.formatting import money
from marketplace.models import LedgerAccount, LedgerTransaction, Order, Quote
from marketplace.selectors_orders import Payout, order_shares, order_spend_by_month
from marketplace.services.ledger import balance_top_up, ledger_account, ledger_post
from marketplace.services.orders import order_grant_revoke
from tests.frontend.test_pages import listed_product, own_dataset, signed_in
from tests.marketplace.data import consumer_csv, overlapping_ids

UTC = dt.UTC


def section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</section>", start)]


def bought(make_party, slug: str) -> tuple[Any, Any, Order]:
    """A provider's product bought through the pages and fulfilled (Celery eager, the session's chain)."""
    provider = make_party(f"{slug}-p", provider=True)
    consumer = make_party(f"{slug}-c", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=30, consumer=10, overlap=6)
    product = listed_product(provider, provider_ids)
    mine = own_dataset(consumer, "Mine", consumer_csv(consumer_ids))
    as_consumer = signed_in(consumer)
    asked = as_consumer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "risk_control"})
    as_consumer.post(asked["Location"] + "buy/", {"idempotency_key": str(uuid.uuid4())})
    return provider, consumer, Order.objects.get(buyer=consumer.organisation)


@pytest.mark.django_db(transaction=True)
def test_it_pays_each_provider_the_share_fee_and_net_its_order_page_shows(make_party, settings):
    settings.PLATFORM_FEE_BPS = 1234
    provider, consumer, order = bought(make_party, "ord-split")
    assert order.status == Order.Status.FULFILLED and order.terms["platform_fee_bps"] == 1234
    settings.PLATFORM_FEE_BPS = 0  # a later change of the fee leaves a placed order's split as it was

    [share] = order_shares(order=order)
    assert share.share == order.price and share.fee == order.price * 1234 // 10_000 > 0
    assert share.net == share.share - share.fee
    assert share.delivered and share.payout == Payout.PAID
    release = LedgerTransaction.objects.get(order=order, entries__account__kind=LedgerAccount.Kind.FEES)
    posted = {(entry.account.organisation_id, entry.account.kind): entry.amount
              for entry in release.entries.select_related("account")}
    assert posted == {(consumer.organisation.id, "escrow"): -share.share,
                      (provider.organisation.id, "balance"): share.net, (None, "fees"): share.fee}

    shown = section(signed_in(provider).get(f"/orders/{order.id}/").content.decode(), "order-shares")
    assert money(share.net) in shown and money(share.fee) in shown and "paid" in shown
    buyer_view = section(signed_in(consumer).get(f"/orders/{order.id}/").content.decode(), "order-shares")
    assert money(share.share) in buyer_view and money(share.net) not in buyer_view  # the net is the providers'


@pytest.mark.django_db(transaction=True)
def test_it_follows_a_running_job_with_its_progress_and_time_left(make_party):
    provider, consumer, order = bought(make_party, "ord-live")
    job = order.order_jobs.get().job
    took = (job.finished_at - job.created_at).total_seconds()
    started = timezone.now() - dt.timedelta(seconds=40)
    Job.objects.filter(id=job.id).update(status=Job.Status.RUNNING, step=1, finished_at=None, created_at=started)
    live = signed_in(consumer).get(f"/orders/{order.id}/live/").content.decode()
    assert 'hx-trigger="every 1s"' in live  # it keeps polling while the job runs
    assert re.search(r'<progress id="run-1-progress" max="100" value="33"[^>]*aria-valuetext="33% · 1 of 3 steps · '
                     r'about (80|85) seconds left"', live), live  # 40 s for one step of three
    Job.objects.filter(id=job.id).update(step=0)
    nothing_done = signed_in(consumer).get(f"/orders/{order.id}/live/").content.decode()
    assert "estimating the time left…" in nothing_done  # this job was the only finished psi job: now none
    other = Job.objects.create(protocol=job.protocol, status=Job.Status.SUCCEEDED, step=3, total_steps=3)
    Job.objects.filter(id=other.id).update(created_at=started - dt.timedelta(seconds=100),
                                           finished_at=started - dt.timedelta(seconds=100 - took - 60))
    typical = signed_in(consumer).get(f"/orders/{order.id}/live/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "estimating" not in typical and re.search(r"aria-valuenow=\"0\"", typical)  # from the typical time


@pytest.mark.django_db(transaction=True)
def test_it_asks_the_provider_why_it_revokes_and_shows_the_buyer_the_reason(make_party):
    provider, consumer, order = bought(make_party, "ord-revoke")
    as_provider, as_consumer = signed_in(provider), signed_in(consumer)
    url = f"/orders/{order.id}/revoke/"
    form = section(as_provider.get(f"/orders/{order.id}/").content.decode(), "order-grants")
    assert '<label for="revoke-reason">' in form and 'name="reason"' in form
    assert 'id="revoke-form"' not in section(as_consumer.get(f"/orders/{order.id}/").content.decode(), "order-grants")

    def written() -> tuple[int, int]:
        return AuditEntry.objects.filter(action="grant.revoke_requested").count(), ChainOutbox.objects.count()

    before = written()
    blank = as_provider.post(url, {"reason": "   "})
    assert blank.status_code == 400
    assert "Say why you revoke the grant" in blank.content.decode() and 'class="field-error"' in blank.content.decode()
    too_long = as_provider.post(url, {"reason": "Because " + "x" * 500})
    assert too_long.status_code == 400
    assert "Because " + "x" * 500 in too_long.content.decode()  # what was typed comes back
    with pytest.raises(ApplicationError) as refused:
        order_grant_revoke(order=order, organisation=provider.organisation, actor="test", reason="y" * 501)
    assert refused.value.extra == {"field": "reason"}
    assert written() == before and not order.grants.get().revoked  # nothing was written

    revoked = as_provider.post(url, {"reason": "  The contract ended\non 1 June. "}, follow=True)
    assert "The grant was revoked on chain" in revoked.content.decode()
    entry = AuditEntry.objects.get(subject=f"order:{order.id}", action="grant.revoke_requested")
    assert entry.payload["reason"] == "The contract ended on 1 June."
    for client in (as_consumer, as_provider):
        grants = section(client.get(f"/orders/{order.id}/").content.decode(), "order-grants")
        assert "Revoked" in grants and "The contract ended on 1 June." in grants
    assert as_consumer.post(url, {"reason": "Not mine"}).status_code == 403  # the buyer revokes nothing here

    chinese = as_consumer.get(f"/orders/{order.id}/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.status_code == 200 and '<html lang="zh-hans"' in chinese.content.decode()
    assert "The contract ended on 1 June." in chinese.content.decode()
    live = as_consumer.get(f"/orders/{order.id}/live/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert re.search(r'<progress id="run-1-progress" max="100" value="100"[^>]*aria-valuenow="100"', live), live


def _order(buyer: Any, product: Any, dataset: Any, *, price: int, at: dt.datetime | None = None,
           status: str = Order.Status.FULFILLED, refunded: int = 0) -> Order:
    """An order as the ledger knows it: its price into escrow, and what of it was refunded."""
    quote = Quote.objects.create(product=product, buyer=buyer, buyer_dataset=dataset, purpose="risk_control",
                                 status=Quote.Status.READY, price=price)
    order = Order.objects.create(buyer=buyer, product=product, quote=quote, price=price, status=status,
                                 idempotency_key=str(uuid.uuid4()), request_digest="-", terms={}, shares=[],
                                 grant_expires_at=timezone.now() + dt.timedelta(days=30))
    if at is not None:
        Order.objects.filter(id=order.id).update(created_at=at)
    balance = ledger_account(organisation=buyer, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=buyer, kind=LedgerAccount.Kind.ESCROW)
    ledger_post(memo="Purchase", order=order, entries=[(balance, -price), (escrow, price)])
    if refunded:
        ledger_post(memo="Refund", order=order, entries=[(escrow, -refunded), (balance, refunded)])
    return order


@pytest.fixture
def market(make_party) -> dict[str, Any]:
    provider = make_party("ord-list-p", provider=True)
    consumer = make_party("ord-list-c", provider=False, balance=10_000_000)
    other = make_party("ord-list-o", provider=False, balance=10_000_000)
    product = listed_product(provider, [f"P{n:05d}" for n in range(20)])
    return {"provider": provider, "consumer": consumer, "other": other, "product": product,
            "dataset": own_dataset(consumer, "Mine", consumer_csv([f"P{n:05d}" for n in range(5)])),
            "other_dataset": own_dataset(other, "Theirs", consumer_csv([f"P{n:05d}" for n in range(5)]))}


@pytest.mark.django_db
def test_it_sums_the_buyers_spend_per_month_over_the_last_year(market):
    buyer, product, dataset = market["consumer"].organisation, market["product"], market["dataset"]
    now = dt.datetime(2025, 6, 15, 12, tzinfo=UTC)
    _order(buyer, product, dataset, price=10_000, at=dt.datetime(2025, 6, 2, tzinfo=UTC), refunded=2_500)
    _order(buyer, product, dataset, price=4_000, at=dt.datetime(2025, 6, 30, 23, tzinfo=UTC))
    _order(buyer, product, dataset, price=7_000, at=dt.datetime(2025, 4, 9, tzinfo=UTC),
           status=Order.Status.REFUNDED, refunded=7_000)
    _order(buyer, product, dataset, price=1_500, at=dt.datetime(2024, 7, 1, tzinfo=UTC))  # the window's first day
    _order(buyer, product, dataset, price=99_900, at=dt.datetime(2024, 6, 30, 23, tzinfo=UTC))  # before it
    _order(market["other"].organisation, product, market["other_dataset"], price=55_500,
           at=dt.datetime(2025, 6, 3, tzinfo=UTC))  # another buyer's
    balance_top_up(organisation=buyer, amount=12_345)  # money in, not a refund

    spend = order_spend_by_month(organisation=buyer, now=now)

    assert [month.month for month in spend] == [dt.date(2024 + (6 + n) // 12, (6 + n) % 12 + 1, 1) for n in range(12)]
    by_month = {month.month: (month.orders, month.placed, month.refunded, month.spent) for month in spend}
    assert by_month[dt.date(2025, 6, 1)] == (2, 14_000, 2_500, 11_500)
    assert by_month[dt.date(2025, 4, 1)] == (1, 7_000, 7_000, 0)
    assert by_month[dt.date(2024, 7, 1)] == (1, 1_500, 0, 1_500)
    assert sum(month.orders for month in spend) == 4 and by_month[dt.date(2025, 5, 1)] == (0, 0, 0, 0)
    assert order_spend_by_month(organisation=market["provider"].organisation, now=now)[-1].orders == 0


@pytest.mark.django_db
def test_it_pages_and_filters_the_orders_and_charts_the_spend(market):
    buyer, product, dataset = market["consumer"].organisation, market["product"], market["dataset"]
    for n in range(26):
        _order(buyer, product, dataset, price=1_000 + n)
    _order(buyer, product, dataset, price=9_999, status=Order.Status.REFUNDED, refunded=9_999)
    client = signed_in(market["consumer"])

    first = client.get("/orders/").content.decode()
    assert first.count('href="/orders/') - first.count('href="/orders/"') == 25
    assert "Page 1 of 2" in first and 'href="?page=2"' in first
    assert '<canvas id="spend-chart"' in first and 'id="order-spend-data"' in first and 'id="spend-table"' in first
    assert money(sum(1_000 + n for n in range(26))) in section(first, "order-spend")  # the net: the refund is out
    second = client.get("/orders/?page=2").content.decode()
    assert section(second, "order-list").count('class="badge badge-') == 2

    refunded = client.get("/orders/?status=refunded").content.decode()
    assert section(refunded, "order-list").count('class="badge badge-') == 1 and "Page 1 of" not in refunded
    sold = client.get("/orders/?role=sold").content.decode()
    assert "No order matches these filters." in sold and 'href="/orders/"' in sold
    provider_sold = signed_in(market["provider"]).get("/orders/?role=sold&page=2").content.decode()
    assert "Page 2 of 2" in provider_sold and 'href="?role=sold&amp;page=1"' in provider_sold
    assert client.get("/orders/?status=stolen").status_code == 200  # an unknown filter is ignored

    chinese = client.get("/orders/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.status_code == 200 and '<html lang="zh-hans"' in chinese.content.decode()
    assert 'id="spend-chart"' in chinese.content.decode()


@pytest.mark.django_db
def test_it_tells_a_new_buyer_where_to_find_data(market):
    page = signed_in(market["other"]).get("/orders/").content.decode()
    assert "No orders yet." in page and 'href="/products/"' in page
    assert "You have not bought anything in the last 12 months." in page and 'id="spend-chart"' not in page
    chinese = signed_in(market["other"]).get("/orders/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.status_code == 200 and '<html lang="zh-hans"' in chinese.content.decode()
