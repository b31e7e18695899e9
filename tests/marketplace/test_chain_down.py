"""A read that needs the chain, while the chain does not answer (paused: it takes the connection and says
nothing) or is down: a JSON 503 with Retry-After, within CHAIN_RPC_TIMEOUT and a margin — never a 500 or a
debug page, and never a wait as long as the chain's silence."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.marketplace.api_flow import buy, client_for, list_product, quote, upload, wait_order
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]

CLOSED_PORT_URL = "http://127.0.0.1:9"
CHAIN_DOWN = {"message": "The chain is not answering; try again shortly.", "extra": {"retry_after": 10}}


@pytest.fixture
def silent_chain_url() -> Iterator[str]:
    """A JSON-RPC endpoint like a paused chain: it accepts every connection and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        server.close()


def bought_order(make_party: Any, name: str) -> tuple[Any, dict[str, Any]]:
    """A consumer's client and its fulfilled order (one grant), bought through the API with the chain up."""
    provider = make_party(f"{name}-p", provider=True)
    consumer = make_party(f"{name}-c", provider=False, balance=100_000)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=20, consumer=10, overlap=6)
    product = list_product(seller, upload(seller, "Customers", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "Applicants", consumer_csv(consumer_ids))
    response = buy(buyer, quote(buyer, product["id"], mine["id"])["id"])
    assert response.status_code == 201, response.content
    return buyer, wait_order(buyer, response.json()["id"], {"fulfilled"})


def test_it_answers_503_with_retry_after_within_the_rpc_timeout_when_the_chain_is_silent(
        make_party, settings, silent_chain_url):
    buyer, order = bought_order(make_party, "silent")
    assert buyer.get(f"/api/orders/{order['id']}/grants/").json()[0]["used"] == 1  # read from the chain
    settings.CHAIN_RPC_URL = silent_chain_url

    started = time.monotonic()
    response = buyer.get(f"/api/orders/{order['id']}/grants/")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == CHAIN_DOWN
    assert response["Retry-After"] == "10"
    assert elapsed < settings.CHAIN_RPC_TIMEOUT + 2.5, elapsed


def test_it_answers_503_at_once_when_the_chain_refuses_connections(make_party, settings):
    buyer, order = bought_order(make_party, "down")
    settings.CHAIN_RPC_URL = CLOSED_PORT_URL

    response = buyer.get(f"/api/orders/{order['id']}/grants/")

    assert response.status_code == 503 and response.json() == CHAIN_DOWN and response["Retry-After"] == "10"
