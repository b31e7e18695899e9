"""Products in the web UI: a joint product drafted, contributed to and published by two providers through
the pages, quoted and bought by a consumer (Celery eager, real Ganache), its revenue split shown to each
provider; the lifecycle buttons; and an order cancelled before fulfilment."""
from __future__ import annotations

import re
import uuid

import pytest
from django.conf import settings

from audit.chain.outbox import outbox_process
from audit.models import ChainOutbox
from marketplace.models import LedgerEntry, Order, OrderGrant, Product, Quote
from marketplace.selectors import balance_of
from marketplace.services.catalog import product_create
from tests.frontend.test_pages import imported_through_page, opened_in_the_browser, own_dataset, signed_in
from tests.marketplace.data import consumer_csv, provider_csv

CLOSED_PORT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def draft_through_page(client, dataset_ids: list[str], *, title: str, publish: bool = False, **terms):
    body = {
        "datasets": dataset_ids, "title": title, "description": "Customers of two retailers",
        "category": "retail", "tags": "retail, customers", "purposes": ["risk_control", "research"],
        "base_price": "5.00", "price_per_match": "0.10", "quota": 4, "validity_days": 30, "min_cohort": 3,
    } | terms
    if publish:
        body["publish"] = "on"
    return client.post("/provider/products/", body)


def ledger_balances_to_zero() -> bool:
    transactions = LedgerEntry.objects.values_list("transaction_id", flat=True).distinct()
    return all(sum(LedgerEntry.objects.filter(transaction_id=t).values_list("amount", flat=True)) == 0
               for t in transactions)


@pytest.mark.django_db(transaction=True)
def test_it_builds_sells_and_splits_a_joint_product_through_the_pages(make_party):
    lead = make_party("ui-joint-a", provider=True)
    partner = make_party("ui-joint-b", provider=True)
    consumer = make_party("ui-joint-c", provider=False, balance=100_000)
    a_ids = [f"A{n:05d}" for n in range(60)]
    b_ids = [f"B{n:05d}" for n in range(40)]
    buyer_ids = a_ids[:15] + b_ids[:9] + [f"X{n:05d}" for n in range(6)]
    as_lead, as_partner, as_consumer = signed_in(lead), signed_in(partner), signed_in(consumer)

    # The lead drafts a product over its dataset; the partner finds the draft and contributes its own.
    a_data = imported_through_page(as_lead, "Shop A customers", provider_csv(a_ids))
    drafted = draft_through_page(as_lead, [str(a_data.id)], title="Two shops")
    assert drafted.status_code == 302, drafted.content.decode()[:2000]
    product = Product.objects.get(title="Two shops")
    assert product.status == Product.Status.DRAFT and product.tags == ["customers", "retail"]
    b_data = imported_through_page(as_partner, "Shop B customers", provider_csv(b_ids))
    console = as_partner.get("/provider/").content.decode()
    assert 'id="open-drafts"' in console and "Two shops" in console
    assert f'action="/provider/products/{product.id}/contribute/"' in console
    assert as_consumer.get(f"/products/{product.id}/").status_code == 404  # a draft is for its providers

    contributed = as_partner.post(f"/provider/products/{product.id}/contribute/", {"dataset": str(b_data.id)},
                                  follow=True)
    assert "is proposed for Two shops" in contributed.content.decode()
    assert product.contributions.count() == 2
    again = as_partner.post(f"/provider/products/{product.id}/contribute/", {"dataset": str(b_data.id)})
    assert again.status_code == 409 and "already contributes" in again.content.decode()
    assert as_partner.post(f"/provider/products/{product.id}/status/", {"status": "published"}).status_code == 403
    partner_console = as_partner.get("/provider/").content.decode()
    assert "Partner of Ui-Joint-A" in partner_console and "Two shops" in partner_console

    # The partner's dataset counts only once the lead accepts it: publishing waits for the decision.
    blocked = as_lead.post(f"/provider/products/{product.id}/status/", {"status": "published"})
    assert blocked.status_code == 409 and "pending contributions" in blocked.content.decode()
    proposed = product.contributions.get(accepted=False)
    lead_console = as_lead.get("/provider/").content.decode()
    assert f'action="/provider/products/{product.id}/contributions/{proposed.id}/decide/"' in lead_console
    assert as_partner.post(f"/provider/products/{product.id}/contributions/{proposed.id}/decide/",
                           {"accept": "1"}).status_code in {403, 404}  # only the lead decides
    decided = as_lead.post(f"/provider/products/{product.id}/contributions/{proposed.id}/decide/", {"accept": "1"},
                           follow=True)
    assert "Contribution accepted" in decided.content.decode()
    published = as_lead.post(f"/provider/products/{product.id}/status/", {"status": "published"}, follow=True)
    assert "is published" in published.content.decode()
    product.refresh_from_db()
    assert product.status == Product.Status.PUBLISHED and product.chain_asset_id

    # The consumer sees both contributions, the terms and the synthetic preview, then quotes.
    mine = imported_through_page(as_consumer, "My customers", consumer_csv(buyer_ids))
    page = as_consumer.get(f"/products/{product.id}/").content.decode()
    assert "Shop A customers" in page and "Shop B customers" in page and "(joint product)" in page
    assert "synthetic preview — no real record" in page and "(masked)" in page
    assert product.chain_asset_id in page and "4 × compute jobs per purchase" in page
    assert not set(a_ids) & set(re.findall(r"[AB]\d{5}", page))  # no real record on the page
    asked = as_consumer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "research"})
    assert asked.status_code == 302
    quote_page = as_consumer.get(asked["Location"]).content.decode()
    assert 'data-status="ready"' in quote_page, quote_page
    assert '<dd id="quote-coverage">24</dd>' in quote_page
    assert 'id="quote-shares"' in quote_page and "Ui-Joint-A" in quote_page and "Ui-Joint-B" in quote_page

    bought = as_consumer.post(asked["Location"] + "buy/", {"idempotency_key": str(uuid.uuid4())})
    order = Order.objects.get(buyer=consumer.organisation)
    assert order.status == Order.Status.FULFILLED
    grants = {grant.provider_id: grant for grant in order.grants.all()}
    assert set(grants) == {lead.organisation.id, partner.organisation.id}
    assert sum(grant.share for grant in grants.values()) == order.price
    fee_bps = settings.PLATFORM_FEE_BPS
    for party in (lead, partner):
        share = grants[party.organisation.id].share
        assert balance_of(organisation=party.organisation)["balance"] == share - share * fee_bps // 10_000
    assert balance_of(organisation=consumer.organisation)["balance"] == 100_000 - order.price
    assert ledger_balances_to_zero()

    # The buyer sees the result, both grants with their use read from the chain, and the jobs of run 1.
    buyer_view = as_consumer.get(bought["Location"]).content.decode()
    assert sorted(opened_in_the_browser(as_consumer, order.id)) == sorted(a_ids[:15] + b_ids[:9])
    assert buyer_view.count('class="num grant-remaining">3</td>') == 2  # quota 4, one unit used each
    assert 'data-run="1"' in buyer_view and "Cancel order" not in buyer_view
    assert "Revoke grant" not in buyer_view

    # Each provider sees the split, its own share marked, and a Revoke button on its own grant only.
    for party, other in ((lead, partner), (partner, lead)):
        view = signed_in(party).get(f"/orders/{order.id}/").content.decode()
        shares = view[view.index('id="order-shares"'):]
        shares = shares[:shares.index("</section>")]
        assert shares.count('class="row-mine"') == 1 and "yours" in shares
        assert party.organisation.name in shares and other.organisation.name in shares
        mine_share = grants[party.organisation.id].share
        assert f"${mine_share // 100:,}.{mine_share % 100:02d}" in shares
        assert view.count("Revoke grant") == 1
        assert not set(buyer_ids) & set(re.findall(r"[ABX]\d{5}", view))  # counts only, no ids
        listing = signed_in(party).get("/orders/").content.decode()
        assert "Two shops" in listing

    # The partner revokes its own grant: the next run has only the lead's job.
    revoked = as_partner.post(f"/orders/{order.id}/revoke/", {"reason": "Our data licence ended."}, follow=True)
    assert "revoked on chain" in revoked.content.decode()
    assert OrderGrant.objects.get(order=order, provider=partner.organisation).revoked
    assert not OrderGrant.objects.get(order=order, provider=lead.organisation).revoked
    rerun = as_consumer.post(f"/orders/{order.id}/jobs/", follow=True)
    assert "A new run started: 1 job" in rerun.content.decode()
    assert list(order.order_jobs.filter(run=2).values_list("grant__provider", flat=True)) == [lead.organisation.id]


@pytest.mark.django_db
def test_it_moves_a_product_through_its_lifecycle_with_the_console_buttons(make_party):
    provider = make_party("ui-life-p", provider=True)
    consumer = make_party("ui-life-c", provider=False)
    dataset = own_dataset(provider, "Lifecycle data", provider_csv([f"P{n:05d}" for n in range(12)]))
    mine = own_dataset(consumer, "Mine", consumer_csv(["P00001", "P00002", "P00003"]))
    as_provider, as_consumer = signed_in(provider), signed_in(consumer)
    drafted = draft_through_page(as_provider, [str(dataset.id)], title="Lifecycle")
    product = Product.objects.get(title="Lifecycle")
    status_url = f"/provider/products/{product.id}/status/"

    def buttons() -> list[str]:
        row = as_provider.get("/provider/").content.decode()
        row = row[row.index(f'data-product="{product.id}"'):]
        return re.findall(r'name="status" value="(\w+)"', row[:row.index("</tr>")])

    assert drafted.status_code == 302
    assert buttons() == ["published", "retired"]
    draft_page = as_provider.get(f"/products/{product.id}/").content.decode()
    assert "This product is a draft" in draft_page and "Measure coverage" not in draft_page

    assert as_provider.post(status_url, {"status": "published"}).status_code == 302
    assert buttons() == ["suspended", "retired"]
    assert as_consumer.get(f"/products/{product.id}/").status_code == 200

    assert as_provider.post(status_url, {"status": "suspended"}).status_code == 302
    assert buttons() == ["published", "retired"]
    assert as_consumer.get(f"/products/{product.id}/").status_code == 404  # suspended: providers only
    refused = as_consumer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "research"})
    assert refused.status_code == 404
    own_quote = as_provider.post(f"/products/{product.id}/quote/", {"dataset": str(dataset.id),
                                                                     "purpose": "research"})
    assert own_quote.status_code == 409
    assert "only published products can be quoted" in own_quote.content.decode()
    assert not Quote.objects.filter(product=product).exists()

    resumed = as_provider.post(status_url, {"status": "published", "from": "product"})
    assert resumed["Location"] == f"/products/{product.id}/"
    assert as_provider.post(status_url, {"status": "retired"}).status_code == 302
    assert buttons() == []
    again = as_provider.post(status_url, {"status": "published"})
    assert again.status_code == 409 and "A retired product cannot become published" in again.content.decode()
    assert as_provider.post(status_url, {"status": "nonsense"}).status_code == 400
    product.refresh_from_db()
    assert product.status == Product.Status.RETIRED


@pytest.mark.django_db
def test_it_refuses_lifecycle_and_contribution_posts_from_the_wrong_parties(make_party):
    provider = make_party("ui-wrong-p", provider=True)
    other = make_party("ui-wrong-o", provider=True)
    consumer = make_party("ui-wrong-c", provider=False)
    dataset = own_dataset(provider, "Theirs", provider_csv([f"P{n:05d}" for n in range(12)]))
    product = product_create(
        provider=provider.organisation, dataset_ids=[str(dataset.id)], title="Guarded", description="",
        purposes=["research"], base_price=100, price_per_match=1, quota=1, validity_days=1, actor="test",
    )
    consumer_data = own_dataset(consumer, "Mine", consumer_csv(["A", "B", "C"]))
    provider_data = own_dataset(provider, "Second", provider_csv(["Q1", "Q2", "Q3"]))

    # A stranger cannot see the draft, so cannot change it; a consumer cannot contribute.
    assert signed_in(other).post(f"/provider/products/{product.id}/status/",
                                 {"status": "published"}).status_code == 404
    as_consumer = signed_in(consumer)
    assert as_consumer.post(f"/provider/products/{product.id}/contribute/",
                            {"dataset": str(consumer_data.id)}).status_code == 403
    # Someone else's dataset is not a choice; an unknown product is a 404.
    stolen = signed_in(other).post(f"/provider/products/{product.id}/contribute/",
                                   {"dataset": str(provider_data.id)})
    assert stolen.status_code == 400 and "Choose one of your datasets" in stolen.content.decode()
    assert signed_in(other).post(f"/provider/products/{uuid.uuid4()}/contribute/",
                                 {"dataset": str(provider_data.id)}).status_code == 404
    assert signed_in(other).get(f"/provider/products/{product.id}/status/").status_code == 405
    product.refresh_from_db()
    assert product.status == Product.Status.DRAFT and product.contributions.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_refunds_an_order_the_buyer_cancels_before_fulfilment(make_party):
    provider = make_party("ui-cancel-p", provider=True)
    consumer = make_party("ui-cancel-c", provider=False, balance=50_000)
    ids = [f"P{n:05d}" for n in range(30)]
    dataset = own_dataset(provider, "Cancel data", provider_csv(ids))
    product = product_create(
        provider=provider.organisation, dataset_ids=[str(dataset.id)], title="Cancellable", description="",
        purposes=["research"], base_price=500, price_per_match=10, quota=2, validity_days=5, actor="test",
        publish=True,
    )
    mine = own_dataset(consumer, "Mine", consumer_csv(ids[:8] + ["X1", "X2"]))
    as_consumer, as_provider = signed_in(consumer), signed_in(provider)
    asked = as_consumer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "research"})
    assert Quote.objects.get(product=product).status == Quote.Status.READY

    # The chain is down while the consumer buys: the order is paid into escrow, its grant waits in the outbox.
    chain_url = settings.CHAIN_RPC_URL
    settings.CHAIN_RPC_URL = CLOSED_PORT_URL
    try:
        bought = as_consumer.post(asked["Location"] + "buy/", {"idempotency_key": str(uuid.uuid4())})
        order = Order.objects.get(buyer=consumer.organisation)
        assert order.status == Order.Status.PAID
        assert balance_of(organisation=consumer.organisation) == {"balance": 50_000 - order.price,
                                                                 "escrow": order.price}
        paid_page = as_consumer.get(bought["Location"]).content.decode()
        assert 'id="order-cancel"' in paid_page
        assert "The chain cannot be reached right now" in paid_page  # usage is read from the chain
        assert as_provider.post(f"/orders/{order.id}/cancel/").status_code == 404  # only the buyer cancels

        cancelled = as_consumer.post(f"/orders/{order.id}/cancel/", follow=True)
    finally:
        settings.CHAIN_RPC_URL = chain_url

    assert "Order cancelled" in cancelled.content.decode()
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert balance_of(organisation=consumer.organisation) == {"balance": 50_000, "escrow": 0}
    assert not order.order_jobs.exists()
    assert 'id="order-cancel"' not in cancelled.content.decode()
    again = as_consumer.post(f"/orders/{order.id}/cancel/")
    assert again.status_code == 409 and "cancelled only before fulfilment" in again.content.decode()
    assert balance_of(organisation=consumer.organisation) == {"balance": 50_000, "escrow": 0}
    assert ledger_balances_to_zero()

    # Once the chain is back, the grant and then its revocation go out; no job ever runs under it.
    grant = order.grants.get()
    for row in ChainOutbox.objects.filter(subject__in=[f"order-grant:{grant.id}", f"order-revoke:{grant.id}"]):
        assert outbox_process(outbox_id=row.pk).status == ChainOutbox.Status.CONFIRMED
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED and not order.order_jobs.exists()
    page = as_consumer.get(f"/orders/{order.id}/").content.decode()
    assert "Revoked" in page and "Run again" not in page


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "message"), [
    ({"datasets": []}, "This field is required."),
    ({"tags": ", ".join(f"tag{n}" for n in range(11))}, "Up to 10 tags of 1-40 characters."),
    ({"tags": "x" * 41}, "Up to 10 tags of 1-40 characters."),
    ({"category": "weapons"}, "Select a valid choice."),
    ({"min_cohort": 0}, "Ensure this value is greater than or equal to 1."),
    ({"purposes": ["spying"]}, "Select a valid choice."),
])
def test_it_shows_a_bad_product_form_as_an_error_and_writes_nothing(make_party, change, message):
    provider = make_party("ui-badform", provider=True)
    dataset = own_dataset(provider, "Some data", provider_csv([f"P{n:05d}" for n in range(5)]))
    before = Product.objects.count()

    response = draft_through_page(signed_in(provider), [str(dataset.id)], title="Bad", **change)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert Product.objects.count() == before
