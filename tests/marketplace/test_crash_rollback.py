"""QUALITY 10, crash mid-flow: an exception after the debit inside `order_place` — while the grants go
into the outbox, or when the purchase is audited — rolls everything back: no order, no ledger rows,
no outbox row, no audit entry, the balance as it was, and no task (hence no chain transaction) sent."""
from __future__ import annotations

from typing import Any

import pytest
from celery.app.task import Task

from audit.chain.outbox import outbox_enqueue
from audit.models import AuditEntry, ChainOutbox
from audit.services import audit_record
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


def crash_on_second_outbox_row(calls: list[int]) -> Any:
    """Crash on the second outbox write counted in `calls` (pre-filled with one: the first grant's)."""
    def enqueue(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise Crash("the process died while writing the second grant to the outbox")
        return outbox_enqueue(**kwargs)
    return enqueue


@pytest.fixture
def world(make_party) -> World:
    return build_world(make_party, "crash", base_price=6_000)


@pytest.mark.parametrize("where", ["audit", "outbox"])
def test_it_rolls_the_whole_purchase_back_when_it_crashes_after_the_debit(world, monkeypatch, where):
    priced = quote(client_for(world.consumer.token), world.product["id"], world.consumer_dataset["id"])
    sent: list[Any] = []
    monkeypatch.setattr(Task, "apply_async", lambda self, *a, **k: sent.append(self.name))
    monkeypatch.setattr(celery_app, "send_task", lambda *a, **k: sent.append(a))
    calls: list[int] = [1]  # the outbox crash fires on the first grant: the debit is already written
    if where == "audit":
        monkeypatch.setattr(orders, "audit_record", crash_on_order_placed)
    else:
        monkeypatch.setattr(orders, "outbox_enqueue", crash_on_second_outbox_row(calls))
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
