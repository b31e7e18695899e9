"""The whole purchase path through the REST API, with Celery tasks run inline (eager)."""
import pytest

from audit.chain.registry import grant_state
from audit.models import AuditEntry
from marketplace.models import LedgerEntry, Order
from tests.conftest import node_runtime
from tests.marketplace.api_flow import buy, client_for, run_purchase, wait_order
from tests.marketplace.data import overlapping_ids

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def test_it_sells_the_use_of_data_and_returns_the_intersection_to_the_buyer(make_party):
    provider = make_party("prov-path", provider=True)
    consumer = make_party("cons-path", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=200, consumer=60, overlap=40)

    seen = run_purchase(provider.token, consumer.token, provider_ids, consumer_ids)

    assert seen["quote"]["status"] == "ready"
    assert seen["quote"]["coverage"] == len(set(provider_ids) & set(consumer_ids)) == 40
    assert seen["quote"]["price"] == sum(line["amount"] for line in seen["quote"]["breakdown"])
    assert seen["order"]["status"] == "fulfilled", seen["order"]
    assert seen["result"].status_code == 202
    assert seen["result"].opened["status"] == "ready", seen["result"].opened
    assert sorted(seen["result"].opened["ids"]) == sorted(set(provider_ids) & set(consumer_ids))
    state = grant_state(bytes.fromhex(seen["order"]["grants"][0]["grant_id"][2:]))
    assert state.exists and state.used == 1 and state.quota == 3
    for transaction_id in LedgerEntry.objects.values_list("transaction_id", flat=True).distinct():
        assert sum(LedgerEntry.objects.filter(transaction_id=transaction_id).values_list("amount", flat=True)) == 0


def test_it_stops_the_next_job_once_the_grant_is_revoked_on_chain(make_party):
    provider = make_party("prov-rev", provider=True)
    consumer = make_party("cons-rev", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=50, consumer=20, overlap=10)
    seen = run_purchase(provider.token, consumer.token, provider_ids, consumer_ids)
    order_id = seen["order"]["id"]
    grant_id = bytes.fromhex(seen["order"]["grants"][0]["grant_id"][2:])
    used_before = grant_state(grant_id).used

    # The provider revokes on chain directly, outside the marketplace: the chain alone must stop the job.
    node_runtime(provider.organisation.node.slug).chain.revoke(grant_id="0x" + grant_id.hex())
    again = client_for(consumer.token).post(f"/api/orders/{order_id}/jobs/")
    assert again.status_code == 201, again.content

    job = client_for(consumer.token).get(f"/api/orders/{order_id}/").json()["jobs"][-1]["job"]
    assert job["status"] == "failed"
    assert "revoked" in job["error"]
    assert grant_state(grant_id).used == used_before
    usage = client_for(consumer.token).get(f"/api/orders/{order_id}/grants/").json()
    assert usage[0]["revoked"] is True and usage[0]["used"] == used_before


def test_it_refuses_further_jobs_once_the_provider_revokes_through_the_api(make_party):
    provider = make_party("prov-rev2", provider=True)
    consumer = make_party("cons-rev2", provider=False, balance=100_000)
    seen = run_purchase(provider.token, consumer.token, *overlapping_ids(provider=50, consumer=20, overlap=10))
    order_id = seen["order"]["id"]
    revoked = client_for(provider.token).post(f"/api/orders/{order_id}/revoke/", {"reason": "  Consent withdrawn. "},
                                              format="json")
    assert revoked.status_code == 200
    assert AuditEntry.objects.get(action="grant.revoke_requested", subject=f"order:{order_id}").payload["reason"] == (
        "Consent withdrawn.")
    again = client_for(consumer.token).post(f"/api/orders/{order_id}/jobs/")
    assert again.status_code == 400
    assert "no active grant" in again.json()["message"]
    assert grant_state(bytes.fromhex(seen["order"]["grants"][0]["grant_id"][2:])).revoked


def test_it_charges_once_for_the_same_idempotency_key(make_party):
    provider = make_party("prov-idem", provider=True)
    consumer = make_party("cons-idem", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=30, consumer=10, overlap=5)
    seen = run_purchase(provider.token, consumer.token, provider_ids, consumer_ids)
    # a second quote, bought twice with one key
    from tests.marketplace.api_flow import quote

    client = client_for(consumer.token)
    second = quote(client, seen["product"]["id"], seen["consumer_dataset"]["id"])
    first = buy(client, second["id"], key="key-1")
    repeat = buy(client, second["id"], key="key-1")
    assert first.status_code == 201 and repeat.status_code == 200
    assert first.json()["id"] == repeat.json()["id"]
    assert Order.objects.filter(buyer=consumer.organisation).count() == 2
    wait_order(client, first.json()["id"], {"fulfilled"})


def test_it_refuses_a_purchase_beyond_the_balance_and_writes_nothing(make_party):
    provider = make_party("prov-poor", provider=True)
    consumer = make_party("cons-poor", provider=False, balance=10)
    provider_ids, consumer_ids = overlapping_ids(provider=30, consumer=10, overlap=5)
    client = client_for(consumer.token)
    from tests.marketplace.api_flow import list_product, quote, upload
    from tests.marketplace.data import consumer_csv, provider_csv

    provider_client = client_for(provider.token)
    product = list_product(provider_client, upload(provider_client, "p", provider_csv(provider_ids))["id"])
    priced = quote(client, product["id"], upload(client, "c", consumer_csv(consumer_ids))["id"])
    entries_before = LedgerEntry.objects.count()

    response = buy(client, priced["id"])

    assert response.status_code == 402
    assert "Insufficient balance" in response.json()["message"]
    assert not Order.objects.filter(buyer=consumer.organisation).exists()
    assert LedgerEntry.objects.count() == entries_before
