"""Joint modelling bought and used end to end on real node processes, a real worker, the test broker and
Ganache: a product sells vertical LR; the order trains it epoch by epoch (a job each, a grant unit each), the
buyer's node releases the metrics, the model scores new records (metered per batch), and no id, label or
feature value crosses the broker; a revoked grant stops the next epoch and the buyer is refunded."""
from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings
from django.test import Client
from sklearn.datasets import make_classification

from compute.jobs.services import job_sweep
from compute.models import Job
from tests.conftest import wait_for
from tests.marketplace.api_flow import buy, client_for, list_product, quote_chosen, result_rows, upload, wait_order
from tests.marketplace.test_purchase_e2e import BrokerTap

pytestmark = [pytest.mark.e2e, pytest.mark.chain, pytest.mark.django_db(transaction=True)]


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    return (",".join(header) + "\n" + "".join(",".join(row) + "\n" for row in rows)).encode()


@pytest.fixture
def market(request, make_party, celery_worker_process) -> dict:
    suffix = request.node.name.split("_")[2][:6]  # each test's own nodes (their homes differ)
    provider = make_party(f"prov-vfl{suffix}", provider=True)
    consumer = make_party(f"cons-vfl{suffix}", provider=False, balance=1_000_000)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        tap.start()
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    features, labels = make_classification(n_samples=600, n_features=8, n_informative=5, random_state=3)
    ids = [f"V{n:05d}" for n in range(600)]
    cells = [[f"{value:.6f}" for value in row] for row in features]
    buyer_csv = _csv(["customer_id", "label", "b0", "b1", "b2"],
                     [[ids[n], str(labels[n]), *cells[n][:3]] for n in range(500)])
    provider_csv = _csv(["customer_id", "p0", "p1", "p2", "p3", "p4", "region"],
                        [[ids[n], *cells[n][3:], "north"] for n in range(100, 600)])
    sold, buying = client_for(provider.token), client_for(consumer.token)
    offered = upload(sold, "Telecom features", provider_csv, timeout=120)
    product = list_product(sold, offered["id"], compute_types=["vfl_lr"], quota=40, title="Joint risk model")
    mine = upload(buying, "My labelled applicants", buyer_csv, timeout=120)
    return {"provider": provider, "consumer": consumer, "tap": tap, "product": product, "mine": mine,
            "workers": celery_worker_process, "provider_slug": f"prov-vfl{suffix}",
            "ids": ids, "cells": cells, "buying": buying, "selling": sold}


def test_a_joint_model_is_trained_used_and_metered_and_nothing_in_clear_crosses(market: dict) -> None:
    buying = market["buying"]
    too_long = buying.post("/api/quotes/", {"product": market["product"]["id"], "dataset": market["mine"]["id"],
                                            "purpose": "risk_control", "compute_type": "vfl_lr",
                                            "params": {"label": "label", "max_epochs": 45}}, format="json")
    assert too_long.status_code == 400 and "at most 39 epochs" in too_long.json()["message"]
    no_label = buying.post("/api/quotes/", {"product": market["product"]["id"], "dataset": market["mine"]["id"],
                                            "purpose": "risk_control", "compute_type": "vfl_lr",
                                            "params": {"label": "outcome"}}, format="json")
    assert no_label.status_code == 400 and "no column outcome" in no_label.json()["message"]
    quoted = quote_chosen(buying, market["product"]["id"], market["mine"]["id"], "vfl_lr",
                          {"label": "label", "max_epochs": 4}, timeout=120)
    assert quoted["status"] == "ready", quoted
    placed = buy(buying, quoted["id"])
    assert placed.status_code == 201, placed.content
    order = wait_order(buying, placed.json()["id"], {"fulfilled", "refunded", "failed"}, timeout=300)
    assert order["status"] == "fulfilled", order
    jobs = Job.objects.filter(order_jobs__order_id=order["id"]).distinct().order_by("created_at")
    assert [job.protocol for job in jobs] == ["vfl_lr"] + ["vfl_lr_epoch"] * 4
    assert all(job.status == Job.Status.SUCCEEDED and job.consume_tx_hash.startswith("0x") for job in jobs)
    assert jobs[0].result["aligned"] == 400
    seconds = [(job.finished_at - job.created_at).total_seconds() for job in jobs]
    epochs = ", ".join(f"{value:.2f}" for value in seconds[1:])
    print(f"training across node processes: set-up {seconds[0]:.2f} s, epochs {epochs} s")
    final = jobs.last().result
    assert final["done"] is True and 0.5 < final["auc"] <= 1 and final["iterations"] == 4
    assert list(final["importance"]["buyer"]) == ["b0", "b1", "b2"] and len(final["importance"]["providers"]) == 1

    # Score 150 new records: their ids and the buyer's own features; the provider's come from its node.
    queries = upload(buying, "To score", _csv(["customer_id", "b0", "b1", "b2"], [
        [market["ids"][n], *market["cells"][n][:3]] for n in range(450, 600)]), timeout=120)
    asked = buying.post(f"/api/orders/{order['id']}/predictions/", {"dataset": queries["id"]}, format="json")
    assert asked.status_code == 201, asked.content
    assert asked.json()["protocol"] == "vfl_predict" and asked.json()["units"] == 1
    job = wait_for(lambda: (j := Job.objects.get(id=asked.json()["id"])).is_finished and j, timeout=120)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["scored"] == 150 and job.consume_tx_hash.startswith("0x")
    opened = result_rows(buying, order["id"], timeout=120).opened
    assert len(opened["rows"]) == 150 and all(0 < float(row[2]) < 1 for row in opened["rows"])
    print(f"joint prediction of 150 records: {job.result}, "
          f"{(job.finished_at - job.created_at).total_seconds():.2f} s from request to release")

    page = Client()
    page.force_login(market["consumer"].user)
    shown = page.get(f"/orders/{order['id']}/").content.decode()
    assert "Joint model" in shown and f"{final['auc']:.4f}" in shown and 'id="order-predict"' in shown
    refused = page.post(f"/orders/{order['id']}/predict/", {"dataset": "not-a-dataset"})
    assert refused.status_code == 400 and "your own datasets" in refused.content.decode()

    bad = buying.post(f"/api/orders/{order['id']}/predictions/", {"dataset": market["product"]["id"]}, format="json")
    assert bad.status_code == 400 and "your own datasets" in bad.json()["message"]

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        messages, everything = market["tap"].opened()
        assert {m.body.get("step") for m in messages if m.kind == "job.step"} >= {2, 3, 4, 5, 6, 7}
        for n in range(0, 600, 7):
            assert market["ids"][n].encode() not in everything
            for cell in market["cells"][n]:
                assert cell.encode() not in everything, cell
            assert np.float64(float(market["cells"][n][0])).tobytes() not in everything


def _long_training(market: dict) -> str:
    """Buy a training of 30 epochs (no early stop); returns the order's id."""
    quoted = quote_chosen(market["buying"], market["product"]["id"], market["mine"]["id"], "vfl_lr",
                          {"label": "label", "max_epochs": 30, "patience": 30}, timeout=120)
    placed = buy(market["buying"], quoted["id"])
    assert placed.status_code == 201, placed.content
    return str(placed.json()["id"])


def test_a_revoked_grant_stops_the_next_epoch_and_the_buyer_is_refunded(market: dict) -> None:
    buying = market["buying"]
    order_id = _long_training(market)
    epochs = Job.objects.filter(order_jobs__order_id=order_id, protocol="vfl_lr_epoch")
    wait_for(lambda: epochs.filter(status=Job.Status.SUCCEEDED).count() >= 2, timeout=240)
    revoked = market["selling"].post(f"/api/orders/{order_id}/revoke/", format="json")
    assert revoked.status_code in (200, 202), revoked.content
    order = wait_order(buying, order_id, {"fulfilled", "refunded", "failed"}, timeout=240)
    assert order["status"] == "refunded", order
    ran = epochs.distinct().count()
    assert 2 <= ran < 30
    last = epochs.distinct().order_by("-created_at").first()
    assert last.status == Job.Status.FAILED or "next" in last.result


def test_a_provider_killed_mid_training_fails_the_epoch_cleanly_and_the_buyer_is_refunded(market: dict) -> None:
    buying = market["buying"]
    order_id = _long_training(market)
    jobs = Job.objects.filter(order_jobs__order_id=order_id).distinct()
    wait_for(lambda: jobs.filter(protocol="vfl_lr_epoch", status=Job.Status.SUCCEEDED).exists(), timeout=240)
    killed = market["workers"].nodes[market["provider_slug"]]
    killed.kill()  # no goodbye: the process is gone mid-training
    killed.wait(timeout=30)

    def swept() -> dict | None:
        job_sweep(stall_seconds=3)  # what the beat's sweep does every minute, with a short stall for the test
        body = buying.get(f"/api/orders/{order_id}/").json()
        return body if body["status"] in {"fulfilled", "refunded", "failed"} else None

    order = wait_for(swept, timeout=180)
    assert order["status"] == "refunded", order
    failed = jobs.filter(status=Job.Status.FAILED).get()
    assert market["provider_slug"] in failed.error and "nothing was released" in failed.error
    assert not jobs.filter(status__in=[Job.Status.PENDING, Job.Status.RUNNING]).exists()
    assert not jobs.filter(created_at__gt=failed.created_at).exists()  # no epoch after the failed one
