"""A node killed (``kill -9``) in the middle of a step: the step is delivered again when the node comes
back, and takes effect once — one charge on chain, one result, the order fulfilled, nothing lost.

Runs on the suite's broker (Redis in ``make test``; kombu's filesystem broker of the embedded mode has
its own kill test in test_broker_fs.py). On Redis a message taken by a worker that died is delivered
again once its visibility timeout has passed: the node processes here get a short one.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
from typing import Any

import psutil
import pytest
from django.conf import settings

from compute.messages import envelope_header
from compute.models import Job
from marketplace.models import Order
from tests.conftest import node_home, wait_for
from tests.marketplace.api_flow import buy, client_for, list_product, quote, result_rows, upload, wait_order
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.e2e, pytest.mark.chain, pytest.mark.django_db(transaction=True)]

VISIBILITY_SECONDS = 6


def _in_flight(queue: str) -> list[dict[str, Any]]:
    """The envelopes a consumer of ``queue`` has taken and not acknowledged yet."""
    envelopes = []
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        import redis

        for raw in redis.Redis.from_url(settings.CELERY_BROKER_URL).hvals("unacked"):
            message, _exchange, routing_key = json.loads(raw)
            if routing_key == queue:
                envelopes.append(_envelope(message))
    else:
        folder = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        for path in (os.path.join(folder, "claimed", name) for name in os.listdir(os.path.join(folder, "claimed"))):
            if f".{queue}.msg~" in path:
                with open(path, "rb") as handle:
                    envelopes.append(_envelope(json.loads(handle.read())))
    return envelopes


def _envelope(message: dict[str, Any]) -> dict[str, Any]:
    import base64

    args = json.loads(base64.b64decode(message["body"]))[0]
    return args[0]


def _outputs_recorded(slug: str, envelope: dict[str, Any]) -> bool:
    """Whether the node finished handling this message (it records what it sends before sending)."""
    kind, _, _, _ = envelope_header(envelope)
    with sqlite3.connect(node_home(slug) / "node.sqlite3") as db:
        row = db.execute("SELECT 1 FROM outputs WHERE key = ?", (f"{kind}:{envelope['nonce']}",)).fetchone()
    return row is not None


def _kill_tree(process: Any) -> None:
    """kill -9 the node and its pool processes at once, as a crash of its host would."""
    tree = [process.pid] + [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_a_node_killed_mid_step_gets_the_step_again_and_it_takes_effect_once(
        make_party, celery_worker_process, monkeypatch):
    monkeypatch.setenv("BROKER_VISIBILITY_TIMEOUT", str(VISIBILITY_SECONDS))  # node processes read it
    provider = make_party("prov-kill", provider=True)
    consumer = make_party("cons-kill", provider=False, balance=10_000_000)
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    # Large enough that the provider's step (blinding both sets) takes seconds: time to kill it mid-way.
    provider_ids, consumer_ids = overlapping_ids(provider=60_000, consumer=30_000, overlap=1_200)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "p", provider_csv(provider_ids), timeout=180)["id"])
    mine = upload(buyer, "c", consumer_csv(consumer_ids), timeout=180)
    priced = quote(buyer, product["id"], mine["id"], timeout=180)
    response = buy(buyer, priced["id"])
    assert response.status_code == 201, response.content
    order = Order.objects.get(id=response.json()["id"])

    queue = provider.organisation.node.queue

    def provider_step_taken() -> dict[str, Any] | None:
        job_ids = {str(job_id) for job_id in order.order_jobs.values_list("job_id", flat=True)}
        for envelope in _in_flight(queue):
            if envelope.get("kind") == "job.step" and envelope.get("job") in job_ids:
                return envelope
        return None

    taken = wait_for(provider_step_taken, timeout=120, interval=0.05)
    _kill_tree(celery_worker_process.nodes["prov-kill"])
    assert not _outputs_recorded("prov-kill", taken), "the step finished before the kill: nothing was tested"
    job = Job.objects.get(id=taken["job"])
    assert job.status == Job.Status.RUNNING

    celery_worker_process.start_node("prov-kill")
    finished = wait_order(buyer, str(order.id), {"fulfilled", "refunded", "failed"},
                          timeout=VISIBILITY_SECONDS + 240)
    assert finished["status"] == "fulfilled", finished
    assert _outputs_recorded("prov-kill", taken)
    result = result_rows(buyer, str(order.id), timeout=120)
    assert sorted(result.opened["ids"]) == sorted(set(provider_ids) & set(consumer_ids))
    # Charged once on chain for the job, though its charging step ran twice.
    usage = buyer.get(f"/api/orders/{order.id}/grants/").json()
    assert [grant["used"] for grant in usage] == [1]
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
