"""The Python client and its command line against a live server (Celery eager): a provider scripts
import and listing, a consumer scripts import, quote, buy, result and statement; errors are
ClientError(status, message) in Python and one line with exit status 1 on the command line."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from django.conf import settings

from marketplace.client import ClientError, MarketplaceClient, main
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = pytest.mark.chain


@pytest.mark.django_db(transaction=True)
def test_it_scripts_listing_and_buying_end_to_end(live_server, make_party, tmp_path):
    provider = make_party("cli-prov", provider=True)
    consumer = make_party("cli-cons", provider=False, balance=50_000)
    provider_ids, consumer_ids = overlapping_ids(provider=60, consumer=25, overlap=15)
    (tmp_path / "provider.csv").write_bytes(provider_csv(provider_ids))
    (tmp_path / "consumer.csv").write_bytes(consumer_csv(consumer_ids))

    seller = MarketplaceClient(live_server.url, provider.token, poll_interval=0.2)
    dataset = seller.dataset_import(tmp_path / "provider.csv", "Customers", "customer_id")
    assert dataset["table"]["row_count"] == 60
    assert [d["id"] for d in seller.datasets()] == [dataset["id"]]
    draft = seller.product_create(datasets=[dataset["id"]], title="Scripted match", purposes=["risk_control"],
                                  base_price=100, price_per_match=3, quota=2, tags=["scripted"])
    assert draft["status"] == "draft"
    assert seller.product_publish(draft["id"])["status"] == "published"

    buyer = MarketplaceClient(live_server.url, consumer.token, poll_interval=0.2)
    assert draft["id"] in [p["id"] for p in buyer.products()]
    mine = buyer.dataset_import(tmp_path / "consumer.csv", "Applicants", "customer_id")
    quote = buyer.quote(draft["id"], mine["id"], "risk_control")
    assert quote["status"] == "ready" and quote["coverage"] == 15
    key = str(uuid.uuid4())
    order = buyer.buy(quote["id"], idempotency_key=key)
    assert buyer.buy(quote["id"], idempotency_key=key)["id"] == order["id"]  # a safe retry
    finished = buyer.wait_order(order["id"], timeout=120)
    assert finished["status"] == "fulfilled", finished
    assert buyer.order(order["id"])["price"] == quote["price"]
    assert sorted(buyer.result(order["id"])["ids"]) == sorted(set(provider_ids) & set(consumer_ids))

    statement = buyer.statement()
    assert statement["balances"] == {"balance": 50_000 - quote["price"], "escrow": 0}
    assert statement["count"] == 4
    exported = buyer.statement_csv().splitlines()
    assert exported[0].startswith("date,transaction,account,memo,order,amount,running_balance")
    assert len(exported) == 5

    with pytest.raises(ClientError) as refused:
        seller.result(order["id"])  # the provider never sees the buyer's result
    assert refused.value.status == 404 and refused.value.message
    with pytest.raises(ClientError) as again:
        buyer.buy(quote["id"])  # a new key for a quote already bought
    assert again.value.status == 409 and "already been bought" in again.value.message


@pytest.mark.django_db(transaction=True)
def test_it_raises_client_errors_with_the_apis_message(live_server, make_party, tmp_path):
    consumer = make_party("cli-err", provider=False)
    client = MarketplaceClient(live_server.url, consumer.token)
    with pytest.raises(ClientError) as missing:
        client.order(str(uuid.uuid4()))
    assert (missing.value.status, missing.value.message) == (404, "Order not found.")
    with pytest.raises(ClientError) as bad_token:
        MarketplaceClient(live_server.url, "not-a-token").me()
    assert bad_token.value.status == 401
    with pytest.raises(ClientError) as not_operator:
        client.top_up("cli-err", 100)
    assert not_operator.value.status == 403
    with pytest.raises(ClientError) as unreadable:
        client.dataset_import(tmp_path / "missing.csv", "x", "id")
    assert unreadable.value.status == 0 and "Cannot read" in unreadable.value.message
    with pytest.raises(ClientError) as down:
        MarketplaceClient("http://127.0.0.1:9", consumer.token, timeout=2).me()
    assert down.value.status == 0 and "Cannot reach" in down.value.message


@pytest.mark.django_db(transaction=True)
def test_it_runs_the_command_line(live_server, make_party, capsys):
    consumer = make_party("cli-cmd", provider=False, balance=4_200)
    base = ["--url", live_server.url, "--token", consumer.token]

    assert main([*base, "me"]) == 0
    assert json.loads(capsys.readouterr().out)["balances"]["balance"] == 4_200
    assert main([*base, "statement", "--csv"]) == 0
    assert "Top-up (payment provider stand-in)" in capsys.readouterr().out

    assert main([*base, "order", str(uuid.uuid4())]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "error: 404: Order not found.\n"
    assert main(["--url", live_server.url, "--token", "wrong", "datasets"]) == 1
    assert capsys.readouterr().err.startswith("error: 401: ")


def test_it_runs_as_a_module_and_fails_with_one_line_when_the_server_is_down():
    completed = subprocess.run(
        [sys.executable, "-m", "marketplace.client", "--url", "http://127.0.0.1:9", "--token", "t", "products"],
        capture_output=True, text=True, timeout=60, cwd=settings.BASE_DIR, check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1 and completed.stderr.startswith("error: Cannot reach http://127.0.0.1:9")
    usage = subprocess.run([sys.executable, "-m", "marketplace.client", "--token", "t", "no-such-command"],
                           capture_output=True, text=True, timeout=60, cwd=settings.BASE_DIR, check=False)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
