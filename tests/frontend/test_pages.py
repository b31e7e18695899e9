"""The server-rendered pages through Django's test client: access rules, forms and the purchase path
with Celery tasks run inline (eager) against the session's Ganache chain."""
from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from nacl.public import PrivateKey, SealedBox

from audit.models import AuditEntry
from compute.crypto.sealing import seal
from compute.models import StoredTable, TableImport
from marketplace.models import Dataset, LedgerEntry, Order, Product, Quote
from marketplace.selectors import product_catalog
from marketplace.services.catalog import product_create
from marketplace.services.quotes import quote_request
from tests.conftest import dataset_on_node
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

PASSWORD = "pw-12345-long"
PRIVATE_PATHS = [
    "/orders/",
    f"/orders/{uuid.uuid4()}/",
    f"/orders/{uuid.uuid4()}/live/",
    f"/quotes/{uuid.uuid4()}/",
    f"/products/{uuid.uuid4()}/",
    "/provider/",
    "/audit/",
    "/audit/entries/1/verify/",
]


def signed_in(party, **client_options) -> Client:
    client = Client(**client_options)
    assert client.login(username=party.user.username, password=PASSWORD)
    return client


def sealed_in_the_browser(client: Client, data: bytes) -> str:
    """What the console page's script does: seal the file to the node key the page carries."""
    page = client.get("/provider/").content.decode()
    key = re.search(r'data-node-key="([0-9a-f]{64})"', page).group(1)
    return base64.b64encode(seal(data, recipient_public=bytes.fromhex(key))).decode()


def import_through_page(client: Client, name: str, data: bytes, **headers: str) -> Any:
    """The console page's import: the sealed file posted to the API with the session (and CSRF header)."""
    return client.post("/api/datasets/import/", {"name": name, "id_column": "customer_id",
                                                 "sealed_file": sealed_in_the_browser(client, data)},
                       content_type="application/json", **headers)


def imported_through_page(client: Client, name: str, data: bytes) -> Dataset:
    response = import_through_page(client, name, data)
    assert response.status_code == 202, response.content.decode()[:2000]
    return Dataset.objects.get(name=name)


def opened_in_the_browser(client: Client, order_id: Any) -> list[str]:
    """What the order page's script does: a key made in the browser, the result sealed to it by the buyer's
    node and relayed by the marketplace, opened in the browser; returns the result's ids."""
    private = PrivateKey.generate()
    asked = client.post(f"/api/orders/{order_id}/result/", {"public_key": bytes(private.public_key).hex()},
                        content_type="application/json")
    assert asked.status_code == 202, asked.content
    sealed = client.get(f"/api/orders/{order_id}/result/").json()
    assert sealed["status"] == "ready", sealed
    opened = json.loads(SealedBox(private).decrypt(base64.b64decode(sealed["sealed"])))
    return [row[0] for row in opened["rows"]]


def own_dataset(party, name: str, data: bytes) -> Dataset:
    return dataset_on_node(organisation=party.organisation, name=name, data=data, id_column="customer_id",
                          actor="test")


def listed_product(provider, ids: list[str], *, title: str = "Customer match") -> Product:
    dataset = own_dataset(provider, f"{title} data", provider_csv(ids))
    return product_create(
        provider=provider.organisation, dataset_ids=[str(dataset.id)], title=title, publish=True,
        description="Match customers", purposes=["risk_control"], base_price=1000, price_per_match=5, quota=3,
        validity_days=30, actor="test",
    )


def counts() -> tuple[int, int, int]:
    return StoredTable.objects.count(), Dataset.objects.count(), AuditEntry.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize("path", PRIVATE_PATHS)
def test_it_sends_anonymous_users_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.django_db
def test_it_shows_the_catalog_to_anonymous_visitors_and_searches_it(client, make_party):
    provider = make_party("web-cat", provider=True)
    listed_product(provider, [f"P{n}" for n in range(20)], title="Retail customers")
    listed_product(provider, [f"Q{n}" for n in range(10)], title="Telecom subscribers")

    everything = client.get("/products/")
    found = client.get("/products/", {"q": "telecom"})

    assert everything.status_code == 200
    assert b"Retail customers" in everything.content and b"Telecom subscribers" in everything.content
    assert b"$10.00" in everything.content  # the base price, in cents, shown as currency
    assert b"Telecom subscribers" in found.content and b"Retail customers" not in found.content


def queries_for(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


@pytest.mark.django_db
def test_it_reads_the_catalog_in_a_fixed_number_of_queries(client, make_party):
    provider = make_party("web-nplus", provider=True)
    listed_product(provider, [f"P{n}" for n in range(5)], title="First")
    one = queries_for(client, "/products/")
    for title in ("Second", "Third", "Fourth"):
        listed_product(provider, [f"P{n}" for n in range(5)], title=title)
    assert queries_for(client, "/products/") == one


@pytest.mark.django_db
def test_it_signs_in_and_out_with_a_post(make_party):
    consumer = make_party("web-login", provider=False)
    client = Client()
    assert client.get("/login/").status_code == 200

    signed = client.post("/login/", {"username": consumer.user.username, "password": PASSWORD})
    refused_get = client.get("/logout/")
    signed_out = client.post("/logout/")

    assert signed.status_code == 302
    assert refused_get.status_code == 405
    assert signed_out.status_code == 302
    assert client.get("/orders/").status_code == 302


@pytest.mark.django_db
def test_it_shows_the_organisation_and_balance_in_the_nav_bar(make_party):
    consumer = make_party("web-nav", provider=False, balance=123_456)
    response = signed_in(consumer).get("/")
    assert consumer.organisation.name.encode() in response.content
    assert b"$1,234.56" in response.content


@pytest.mark.django_db
def test_it_renders_the_product_page_with_schema_quality_and_quote_form(make_party):
    provider = make_party("web-prod", provider=True)
    consumer = make_party("web-prod-c", provider=False)
    product = listed_product(provider, [f"P{n}" for n in range(12)])
    own_dataset(consumer, "My ids", consumer_csv(["P1", "P2", "X"]))

    response = signed_in(consumer).get(f"/products/{product.id}/")

    body = response.content.decode()
    assert response.status_code == 200
    assert "customer_id" in body and "region" in body and "score" in body
    assert product.chain_asset_id in body
    assert 'id="quality-data"' in body and "vendor/chartjs/chart.umd.js" in body
    assert "My ids (3 rows)" in body
    assert 'value="risk_control"' in body


@pytest.mark.django_db
def test_it_polls_the_quote_status_while_coverage_is_measured(make_party):
    provider = make_party("web-poll", provider=True)
    consumer = make_party("web-poll-c", provider=False)
    product = listed_product(provider, [f"P{n}" for n in range(12)])
    mine = own_dataset(consumer, "Mine", consumer_csv(["P1", "P2", "P3"]))
    # In a test transaction the job's start (on commit) never runs: the quote stays "measuring".
    quote = quote_request(buyer=consumer.organisation, product_id=str(product.id), dataset_id=str(mine.id),
                          purpose="risk_control", actor="test")
    client = signed_in(consumer)

    page = client.get(f"/quotes/{quote.id}/")
    block = client.get(f"/quotes/{quote.id}/status/")

    for response in (page, block):
        assert response.status_code == 200
        assert f'hx-get="/quotes/{quote.id}/status/"' in response.content.decode()
        assert 'hx-trigger="every 1s"' in response.content.decode()
    assert b"<html" not in block.content  # the partial is only the status block
    assert b"Buy for" not in page.content


@pytest.mark.django_db
def test_it_shows_a_refused_quote_request_on_the_product_form(make_party):
    provider = make_party("web-few", provider=True)
    consumer = make_party("web-few-c", provider=False)
    product = listed_product(provider, [f"P{n}" for n in range(12)])
    two = own_dataset(consumer, "Two ids", consumer_csv(["P1", "P2"]))
    before = Quote.objects.count()

    response = signed_in(consumer).post(f"/products/{product.id}/quote/", {
        "dataset": str(two.id), "purpose": "risk_control",
    })

    assert response.status_code == 400
    assert "at least 3 are needed" in response.content.decode()
    assert Quote.objects.count() == before


@pytest.mark.django_db
def test_it_refuses_a_purpose_the_product_does_not_allow(make_party):
    provider = make_party("web-purp", provider=True)
    consumer = make_party("web-purp-c", provider=False)
    product = listed_product(provider, [f"P{n}" for n in range(12)])
    mine = own_dataset(consumer, "Mine", consumer_csv(["P1", "P2", "P3"]))

    response = signed_in(consumer).post(f"/products/{product.id}/quote/", {
        "dataset": str(mine.id), "purpose": "marketing",
    })

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Quote.objects.filter(buyer=consumer.organisation).exists()


@pytest.mark.django_db(transaction=True)
def test_it_rejects_a_page_import_without_csrf_token_and_writes_nothing(make_party):
    consumer = make_party("web-csrf", provider=False)
    client = signed_in(consumer, enforce_csrf_checks=True)

    response = import_through_page(client, "Sneaky", consumer_csv(["A", "B", "C"]))

    assert response.status_code == 403
    assert not TableImport.objects.exists() and not Dataset.objects.filter(name="Sneaky").exists()


@pytest.mark.django_db(transaction=True)
def test_it_accepts_the_same_import_with_the_page_csrf_token(make_party):
    consumer = make_party("web-csrf-ok", provider=False)
    client = signed_in(consumer, enforce_csrf_checks=True)
    client.get("/provider/")

    response = import_through_page(client, "Honest", consumer_csv(["A", "B", "C"]),
                                   HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)

    assert response.status_code == 202
    assert Dataset.objects.filter(name="Honest", organisation=consumer.organisation).exists()
    page = client.get("/provider/").content.decode()
    assert "Honest" in page and "A" not in re.findall(r"<td>([A-Z])</td>", page)


@pytest.mark.django_db
def test_it_shows_a_refused_listing_as_a_form_error(make_party):
    consumer = make_party("web-notprov", provider=False)
    mine = own_dataset(consumer, "Mine", consumer_csv(["A", "B", "C"]))

    response = signed_in(consumer).post("/provider/products/", {
        "datasets": [str(mine.id)], "title": "Not allowed", "purposes": ["research"], "base_price": "1.00",
        "price_per_match": "0.01", "quota": 1, "validity_days": 1, "min_cohort": 3, "category": "other",
        "publish": "on",
    })

    assert response.status_code == 403
    assert "Only provider organisations can list products." in response.content.decode()
    assert not Product.objects.filter(title="Not allowed").exists()


@pytest.mark.django_db
def test_it_refuses_to_list_another_organisations_dataset(make_party):
    provider = make_party("web-list-a", provider=True)
    other = make_party("web-list-b", provider=True)
    theirs = own_dataset(other, "Theirs", consumer_csv(["A", "B", "C"]))

    response = signed_in(provider).post("/provider/products/", {
        "datasets": [str(theirs.id)], "title": "Stolen", "purposes": ["research"], "base_price": "1.00",
        "price_per_match": "0.01", "quota": 1, "validity_days": 1, "min_cohort": 3, "category": "other",
        "publish": "on",
    })

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Product.objects.filter(title="Stolen").exists()


@pytest.mark.django_db
def test_it_answers_403_to_a_user_outside_any_organisation(ganache_url):
    user = get_user_model().objects.create_user(username="loner", password=PASSWORD)
    client = Client()
    client.force_login(user)
    assert client.get("/provider/").status_code == 403
    assert client.get("/orders/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_it_walks_the_purchase_path_through_the_pages(make_party):
    provider = make_party("web-path-p", provider=True)
    consumer = make_party("web-path-c", provider=False, balance=100_000)
    stranger = make_party("web-path-s", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=120, consumer=40, overlap=25)
    overlap = sorted(set(provider_ids) & set(consumer_ids))
    as_provider, as_consumer = signed_in(provider), signed_in(consumer)

    provider_dataset = imported_through_page(as_provider, "Provider customers", provider_csv(provider_ids))
    listed = as_provider.post("/provider/products/", {
        "datasets": [str(provider_dataset.id)], "title": "Customer match", "description": "Match your customers",
        "purposes": ["risk_control", "research"], "base_price": "10.00", "price_per_match": "0.05",
        "quota": 3, "validity_days": 30, "min_cohort": 3, "category": "retail", "tags": "Retail, customers",
        "publish": "on",
    })
    assert listed.status_code == 302, listed.content.decode()[:2000]
    product = product_catalog().get(title="Customer match")
    assert product.base_price == 1000 and product.price_per_match == 5
    assert product.category == "retail" and product.tags == ["customers", "retail"]
    consumer_dataset = imported_through_page(as_consumer, "My applicants", consumer_csv(consumer_ids))

    asked = as_consumer.post(f"/products/{product.id}/quote/", {
        "dataset": str(consumer_dataset.id), "purpose": "risk_control",
    })
    assert asked.status_code == 302
    quote_page = as_consumer.get(asked["Location"])
    body = quote_page.content.decode()
    assert 'data-status="ready"' in body, body
    assert f'<dd id="quote-coverage">{len(overlap)}</dd>' in body
    assert "hx-trigger" not in body  # polling stops once the quote is ready
    key = re.search(r'name="idempotency_key" value="([^"]+)"', body).group(1)
    assert uuid.UUID(key)

    buy_url = asked["Location"] + "buy/"
    bought = as_consumer.post(buy_url, {"idempotency_key": key})
    again = as_consumer.post(buy_url, {"idempotency_key": key})  # a double click
    assert bought.status_code == 302 and again["Location"] == bought["Location"]
    order = Order.objects.get(buyer=consumer.organisation)

    order_page = as_consumer.get(bought["Location"]).content.decode()
    assert 'data-status="fulfilled"' in order_page, order_page
    assert not set(overlap) & set(re.findall(r"[A-Z]\d{5}", order_page))  # the page never holds the result
    assert 'id="result-open"' in order_page
    assert order.grants.get().grant_id in order_page
    assert sorted(opened_in_the_browser(as_consumer, order.id)) == overlap

    provider_view = as_provider.get(f"/orders/{order.id}/").content.decode()
    assert "Revoke grant" in provider_view and "Run again" not in provider_view
    assert f"{len(overlap)} matched records" in provider_view
    assert not set(overlap) & set(re.findall(r"[A-Z]\d{5}", provider_view))  # counts only, no ids
    assert as_provider.get(f"/api/orders/{order.id}/result/").status_code == 404
    assert signed_in(stranger).get(f"/orders/{order.id}/").status_code == 404
    assert signed_in(stranger).get(f"/orders/{order.id}/live/").status_code == 404
    assert signed_in(stranger).post(f"/orders/{order.id}/jobs/").status_code == 404
    assert as_provider.post(f"/orders/{order.id}/jobs/").status_code == 404  # only the buyer runs jobs

    for client in (as_consumer, as_provider):
        listing = client.get("/orders/")
        assert listing.status_code == 200 and b"Customer match" in listing.content
    assert order.price == sum(line["amount"] for line in order.terms["breakdown"])
    for transaction_id in LedgerEntry.objects.values_list("transaction_id", flat=True).distinct():
        amounts = LedgerEntry.objects.filter(transaction_id=transaction_id).values_list("amount", flat=True)
        assert sum(amounts) == 0


@pytest.mark.django_db(transaction=True)
def test_it_stops_further_jobs_once_the_provider_revokes_the_grant(make_party):
    provider = make_party("web-rev-p", provider=True)
    consumer = make_party("web-rev-c", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=30, consumer=10, overlap=6)
    product = listed_product(provider, provider_ids)
    mine = own_dataset(consumer, "Mine", consumer_csv(consumer_ids))
    as_consumer, as_provider = signed_in(consumer), signed_in(provider)
    asked = as_consumer.post(f"/products/{product.id}/quote/", {
        "dataset": str(mine.id), "purpose": "risk_control",
    })
    bought = as_consumer.post(asked["Location"] + "buy/", {"idempotency_key": str(uuid.uuid4())})
    order = Order.objects.get(buyer=consumer.organisation)
    assert order.status == Order.Status.FULFILLED

    reason = {"reason": "The buyer's contract ended."}
    revoked = as_provider.post(f"/orders/{order.id}/revoke/", reason, follow=True)
    assert "The grant was revoked on chain" in revoked.content.decode()
    assert "Revoke grant" not in revoked.content.decode()  # nothing left to revoke
    assert as_provider.post(f"/orders/{order.id}/revoke/", reason).status_code == 409
    rerun = as_consumer.post(f"/orders/{order.id}/jobs/")

    assert rerun.status_code == 400
    assert "no active grant" in rerun.content.decode()
    assert order.order_jobs.count() == 1
    page = as_consumer.get(bought["Location"]).content.decode()
    assert "Revoked" in page and "The buyer&#x27;s contract ended." in page  # the provider's reason, to the buyer


@pytest.mark.django_db(transaction=True)
def test_it_shows_why_a_quote_failed(make_party, settings, monkeypatch):
    provider = make_party("web-qfail-p", provider=True)
    consumer = make_party("web-qfail-c", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=30, consumer=10, overlap=2)
    monkeypatch.setenv("NODE_QUOTE_EPSILON_MAX", "1.0")  # the provider's node refuses the quote's ε
    settings.QUOTE_EPSILON = 2.0
    product = listed_product(provider, provider_ids)
    mine = own_dataset(consumer, "Mine", consumer_csv(consumer_ids))
    client = signed_in(consumer)

    asked = client.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "risk_control"})
    page = client.get(asked["Location"]).content.decode()

    assert 'data-status="failed"' in page
    assert "This node releases a coverage with ε ≤ 1.0 only" in page
    assert "Buy for" not in page
    assert client.post(asked["Location"] + "buy/", {"idempotency_key": "k-1"}).status_code == 400
    assert not Order.objects.filter(buyer=consumer.organisation).exists()


@pytest.mark.django_db(transaction=True)
def test_it_verifies_only_the_audit_entries_the_user_may_read(make_party):
    mine = make_party("web-aud-a", provider=False)
    other = make_party("web-aud-b", provider=False)
    own_entry = AuditEntry.objects.filter(parties__contains=[mine.organisation.slug]).first()
    their_entry = AuditEntry.objects.filter(parties__contains=[other.organisation.slug]).first()
    client = signed_in(mine)

    explorer = client.get("/audit/")
    filtered = client.get("/audit/", {"subject": f"organisation:{mine.organisation.slug}"})
    verified = client.get(f"/audit/entries/{own_entry.id}/verify/")

    assert explorer.status_code == 200
    assert f'hx-get="/audit/entries/{own_entry.id}/verify/"' in explorer.content.decode()
    assert f"/audit/entries/{their_entry.id}/verify/" not in explorer.content.decode()
    assert b"member.created" in filtered.content
    assert verified.status_code == 200
    assert b'data-status="pending"' in verified.content  # not sealed into a batch yet
    assert client.get(f"/audit/entries/{their_entry.id}/verify/").status_code == 404
    # The page's proof bundle holds the user's own entries only, for the standalone verifier.
    bundle = client.get("/audit/bundle/", {"subject": f"organisation:{mine.organisation.slug}"})
    assert bundle.status_code == 200 and "attachment" in bundle["Content-Disposition"]
    body = bundle.json()
    assert body["format"] == "dataxchange-audit-bundle/1" and own_entry.id in body["pending"]
    everything = client.get("/audit/bundle/").json()
    assert their_entry.id not in everything["pending"] + [entry["id"] for entry in everything["entries"]]
    assert 'id="audit-bundle"' in explorer.content.decode()
