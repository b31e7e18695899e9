"""QUALITY 10, crash mid-flow: an exception after the debit inside `order_place` — while the grant requests
to the providers' nodes are written, or when the purchase is audited — rolls everything back: no order, no
ledger rows, no outbox row, no audit entry, the balance as it was, and no task or node message (hence no
chain transaction) sent."""
from __future__ import annotations

from typing import Any

import pytest
from celery.app.task import Task

from audit.models import AuditEntry, ChainOutbox
from audit.services import audit_record
from compute.jobs.services import chain_write_request
from config.celery import app as celery_app
from marketplace.models import LedgerAccount, Order
from marketplace.services import orders
from tests.marketplace.api_flow import client_for, quote
from tests.marketplace.trading_world import World, build_world, idempotency_key, rows_snapshot, snapshot_diff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


class Crash(RuntimeError):
    pass


def crash_on_order_placed(**kwargs: Any) -> Any:
    if kwargs["action"] == "order.placed":
        raise Crash("the process died while auditing the purchase")
    return audit_record(**kwargs)


def crash_on_second_grant_request(calls: list[int]) -> Any:
    """Crash on the second grant request counted in `calls` (pre-filled with one: the first grant's)."""
    def request(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise Crash("the process died while asking for the second grant")
        return chain_write_request(**kwargs)
    return request


@pytest.fixture
def world(make_party) -> World:
    return build_world(make_party, "crash", base_price=6_000)


@pytest.mark.parametrize("where", ["audit", "grant request"])
def test_it_rolls_the_whole_purchase_back_when_it_crashes_after_the_debit(world, monkeypatch, where):
    priced = quote(client_for(world.consumer.token), world.product["id"], world.consumer_dataset["id"])
    sent: list[Any] = []
    monkeypatch.setattr(Task, "apply_async", lambda self, *a, **k: sent.append(self.name))
    monkeypatch.setattr(celery_app, "send_task", lambda *a, **k: sent.append(a))
    monkeypatch.setattr("compute.jobs.services.message_send", lambda **k: sent.append(k))
    calls: list[int] = [1]  # the crash fires on the first grant: the debit is already written
    if where == "audit":
        monkeypatch.setattr(orders, "audit_record", crash_on_order_placed)
    else:
        monkeypatch.setattr(orders, "chain_write_request", crash_on_second_grant_request(calls))
    debited: list[int] = []
    real_post = orders.ledger_post

    def ledger_post_spy(**kwargs: Any) -> Any:
        debited.append(sum(-amount for _, amount in kwargs["entries"] if amount < 0))
        return real_post(**kwargs)

    monkeypatch.setattr(orders, "ledger_post", ledger_post_spy)
    balance = LedgerAccount.objects.get(organisation=world.consumer.organisation, kind="balance").balance
    outbox_rows, audit_entries = ChainOutbox.objects.count(), AuditEntry.objects.count()
    before = rows_snapshot()
    client = client_for(world.consumer.token)
    client.raise_request_exception = False

    response = client.post("/api/orders/create/", {"quote": priced["id"]}, format="json",
                           HTTP_IDEMPOTENCY_KEY=idempotency_key())

    assert response.status_code == 500
    assert debited == [priced["price"]]  # the crash came after the debit
    assert not snapshot_diff(before, rows_snapshot())
    assert not Order.objects.filter(quote_id=priced["id"]).exists()
    assert ChainOutbox.objects.count() == outbox_rows and AuditEntry.objects.count() == audit_entries
    assert LedgerAccount.objects.get(organisation=world.consumer.organisation, kind="balance").balance == balance
    assert sent == []

    # After the crash the same purchase goes through, once.
    monkeypatch.undo()
    again = client_for(world.consumer.token).post("/api/orders/create/", {"quote": priced["id"]}, format="json",
                                                 HTTP_IDEMPOTENCY_KEY=idempotency_key())
    assert again.status_code == 201, again.content
