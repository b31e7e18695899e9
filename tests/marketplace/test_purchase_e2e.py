"""The purchase path end to end with a real Celery worker process on the test broker (Redis in
`make test`), Ganache and PostgreSQL: import → list → quote → buy → PSI job → result → audit verified."""
from __future__ import annotations

import base64
import json
import threading
from typing import Any

import pytest
import redis
from django.conf import settings

from audit.models import AuditEntry
from audit.services import audit_batch_seal
from tests.conftest import wait_for
from tests.marketplace.api_flow import client_for, run_purchase
from tests.marketplace.data import overlapping_ids

pytestmark = [pytest.mark.e2e, pytest.mark.chain, pytest.mark.django_db(transaction=True)]


class BrokerTap:
    """Records every message pushed to the Redis broker (MONITOR), to check what crossed it."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.payloads: list[str] = []
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        try:
            with self.client.monitor() as monitor:
                for command in monitor.listen():
                    text = command.get("command", "")
                    if text.startswith("LPUSH "):
                        self.payloads.append(text)
        except (redis.ConnectionError, OSError, ValueError):
            return

    def start(self) -> None:
        self._thread.start()

    def task_messages(self) -> list[tuple[str, list[Any]]]:
        """(task name, args) of each Celery message seen, with its JSON envelope decoded."""
        seen = []
        for payload in self.payloads:
            start = payload.find("{")
            if start < 0:
                continue
            try:
                raw = json.loads(json.loads(f'"{payload[start:-1]}"') if payload[start - 1] == '"' else payload[start:])
            except (json.JSONDecodeError, TypeError):
                continue
            headers = raw.get("headers", {})
            body = json.loads(base64.b64decode(raw["body"])) if raw.get("body") else [[], {}, {}]
            seen.append((headers.get("task", ""), body[0]))
        return seen


def test_it_runs_the_purchase_path_on_a_real_worker_and_the_broker_sees_no_raw_id(make_party, celery_worker_process):
    provider = make_party("prov-e2e", provider=True)
    consumer = make_party("cons-e2e", provider=False, balance=1_000_000)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        tap.start()
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    provider_ids, consumer_ids = overlapping_ids(provider=400, consumer=120, overlap=75)

    seen = run_purchase(provider.token, consumer.token, provider_ids, consumer_ids, timeout=120)

    truth = set(provider_ids) & set(consumer_ids)
    assert seen["quote"]["coverage"] == len(truth)
    assert seen["order"]["status"] == "fulfilled", seen["order"]
    assert sorted(seen["result"].json()["ids"]) == sorted(truth)
    job = seen["order"]["jobs"][0]["job"]
    assert job["status"] == "succeeded" and job["consume_tx_hash"].startswith("0x")

    # Audit: seal a batch, the worker anchors it on chain, the API verifies an entry of this order.
    audit_batch_seal()
    entry = AuditEntry.objects.filter(subject=f"order:{seen['order']['id']}", action="order.placed").get()
    client = client_for(consumer.token)

    def verified() -> dict[str, Any] | None:
        body = client.get(f"/api/audit/entries/{entry.id}/verify/").json()
        return body if body["status"] == "verified" else None

    proof = wait_for(verified, timeout=60)
    assert proof["chain_root"] == proof["root"]

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        messages = tap.task_messages()
        steps = [args for name, args in messages if name == "compute.tasks.job_step_task"]
        assert len(steps) >= 6  # 3 steps of the quote's job and 3 of the order's job crossed the broker
        sealed = [base64.b64decode(args[2]) for args in steps if args[2]]
        assert len(sealed) >= 4
        everything = b"\n".join([p.encode() for p in tap.payloads] + sealed)
        for value in provider_ids + consumer_ids:
            assert value.encode() not in everything
