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
from compute.direct.config import engine_available
from compute.jobs.identity import marketplace_public_key
from compute.messages import MARKETPLACE, envelope_open
from compute.models import Job, Node
from tests.conftest import wait_for
from tests.marketplace.api_flow import (
    buy,
    buy_fulfilled,
    client_for,
    list_joint_product,
    list_product,
    quote_chosen,
    result_rows,
    run_purchase,
    upload,
    wait_order,
)
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.e2e, pytest.mark.chain, pytest.mark.django_db(transaction=True)]


class BrokerTap:
    """Records every message pushed to the Redis broker (MONITOR), to check what crossed it."""

    def __init__(self, url: str) -> None:
        # No read timeout: MONITOR is silent while nothing happens (redis-py 8 times out after 5 s).
        self.client = redis.Redis.from_url(url, socket_timeout=None)
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

    def opened(self) -> tuple[list[Any], bytes]:
        """Every node and marketplace message that crossed, opened (each verified under its sender's
        registered key), and all the bytes that crossed: raw payloads, message bodies, sealed step payloads."""
        envelopes = [args[0] for name, args in self.task_messages() if name in {"node.handle", "marketplace.handle"}]
        keys = {node.slug: bytes.fromhex(node.signing_public_key) for node in Node.objects.all()}
        keys[MARKETPLACE] = marketplace_public_key()
        messages = [envelope_open(doc, recipient=doc["recipient"], signer_key=keys.get) for doc in envelopes]
        bodies = [json.dumps(message.body).encode() for message in messages]
        sealed = [base64.b64decode(message.body["payload"]) for message in messages if message.kind == "job.step"]
        return messages, b"\n".join([p.encode() for p in self.payloads] + bodies + sealed)

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
    assert sorted(seen["result"].opened["ids"]) == sorted(truth)
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
        # Every message that crossed the broker is signed by its sender's registered key (opened() checks).
        opened, everything = tap.opened()
        steps = [message for message in opened if message.kind == "job.step"]
        assert len(steps) >= 4  # two hand-offs between the nodes for the quote's job and the order's
        assert {message.kind for message in opened} >= {"job.start", "job.progress", "job.succeeded",
                                                        "table.import", "table.imported", "grant.write",
                                                        "chain.written", "result.export", "result.sealed"}
        for value in provider_ids + consumer_ids:
            assert value.encode() not in everything


def test_a_node_stopped_and_started_again_keeps_its_keys_its_vault_and_its_pending_work(
        make_party, celery_worker_process):
    provider = make_party("prov-restart", provider=True)
    consumer = make_party("cons-restart", provider=False, balance=1_000_000)
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    provider_ids, consumer_ids = overlapping_ids(provider=60, consumer=30, overlap=12)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "p", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "c", consumer_csv(consumer_ids))
    node = Node.objects.get(slug="prov-restart")
    keys = (node.signing_public_key, node.sealing_public_key, node.chain_address)

    stopped = celery_worker_process.nodes["prov-restart"]
    stopped.terminate()
    stopped.wait(timeout=30)
    # The quote's job reaches the provider's queue while its node is down: the broker keeps the step.
    response = buyer.post("/api/quotes/", {"product": product["id"], "dataset": mine["id"],
                                           "purpose": "risk_control"}, format="json")
    assert response.status_code == 201
    wait_for(lambda: Job.objects.filter(status=Job.Status.RUNNING, step__gte=1).exists(), timeout=60)
    assert buyer.get(f"/api/quotes/{response.json()['id']}/").json()["status"] == "measuring"

    celery_worker_process.start_node("prov-restart")

    def priced() -> dict[str, Any] | None:
        body = buyer.get(f"/api/quotes/{response.json()['id']}/").json()
        return body if body["status"] != "measuring" else None

    quoted = wait_for(priced, timeout=90)
    assert quoted["status"] == "ready" and quoted["coverage"] == 12  # its vault and table index were kept
    node.refresh_from_db()
    assert (node.signing_public_key, node.sealing_public_key, node.chain_address) == keys  # no new keys


def test_a_private_lookup_on_a_real_worker_sends_no_raw_id_or_value_through_the_broker(
        make_party, celery_worker_process):
    provider = make_party("prov-lk-e2e", provider=True)
    consumer = make_party("cons-lk-e2e", provider=False, balance=1_000_000)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        tap.start()
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    provider_ids, consumer_ids = overlapping_ids(provider=200, consumer=40, overlap=15)
    incomes = {value: f"income-{index:04d}-{value[::-1]}" for index, value in enumerate(provider_ids)}
    data = ("customer_id,income\n" + "".join(f"{value},{incomes[value]}\n" for value in provider_ids)).encode()
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "incomes", data, timeout=120)["id"], compute_types=["lookup"])
    mine = upload(buyer, "asked", consumer_csv(consumer_ids), timeout=120)

    asked = buyer.post("/api/quotes/", {"product": product["id"], "dataset": mine["id"], "purpose": "risk_control",
                                        "compute_type": "lookup", "params": {"columns": ["income"]}}, format="json")
    assert asked.status_code == 201, asked.content
    quoted = wait_for(lambda: (body := buyer.get(f"/api/quotes/{asked.json()['id']}/").json())["status"] != "measuring"
                      and body, timeout=120)
    response = buy(buyer, quoted["id"])
    order = wait_order(buyer, response.json()["id"], {"fulfilled", "refunded", "failed"}, timeout=120)
    assert order["status"] == "fulfilled", order
    opened = result_rows(buyer, order["id"], timeout=120).opened
    truth = sorted([value, incomes[value]] for value in set(provider_ids) & set(consumer_ids))
    assert sorted(opened["rows"]) == truth

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        _, everything = tap.opened()
        for value in [*provider_ids, *consumer_ids, *incomes.values()]:
            assert value.encode() not in everything


def test_cross_table_statistics_on_a_real_worker_send_no_raw_id_value_or_group_through_the_broker(
        make_party, celery_worker_process):
    provider = make_party("prov-st-e2e", provider=True)
    consumer = make_party("cons-st-e2e", provider=False, balance=1_000_000)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        tap.start()
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    provider_ids, consumer_ids = overlapping_ids(provider=200, consumer=40, overlap=15)
    incomes = {value: f"{1000 + index * 7.31:.2f}" for index, value in enumerate(provider_ids)}
    segments = {value: f"segment-{'alpha' if index % 2 else 'omega'}" for index, value in enumerate(consumer_ids)}
    data = ("customer_id,income\n" + "".join(f"{value},{incomes[value]}\n" for value in provider_ids)).encode()
    mine_data = ("customer_id,segment\n" + "".join(f"{value},{segments[value]}\n" for value in consumer_ids)).encode()
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "incomes", data, timeout=120)["id"], compute_types=["cross_stats"])
    mine = upload(buyer, "segments", mine_data, timeout=120)

    params = {"value_column": "income", "group_column": "segment", "bounds": [0, 5000], "decimals": 2}
    quoted = quote_chosen(buyer, product["id"], mine["id"], "cross_stats", params, timeout=120)
    order = buy_fulfilled(buyer, quoted["id"], timeout=120)
    opened = result_rows(buyer, order["id"], timeout=120).opened
    truth = {}
    for label in sorted(set(segments.values())):
        shared = [float(incomes[v]) for v in consumer_ids if segments[v] == label and v in incomes]
        truth[label] = [label, str(len(shared)), f"{sum(shared):.2f}"]
    assert {row[0]: row[:3] for row in opened["rows"]} == truth

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        messages, everything = tap.opened()
        assert {message.body.get("step") for message in messages if message.kind == "job.step"} >= {2, 3, 4, 5}
        for value in [*provider_ids, *consumer_ids, *incomes.values(), *set(segments.values())]:
            assert value.encode() not in everything, value


def test_cross_table_statistics_across_two_providers_on_a_real_worker_send_nothing_in_clear(
        make_party, celery_worker_process):
    lead, partner = make_party("prov-jc-e2e0", provider=True), make_party("prov-jc-e2e1", provider=True)
    consumer = make_party("cons-jc-e2e", provider=False, balance=1_000_000)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        tap.start()
    celery_worker_process([party.organisation.node.queue for party in (lead, partner, consumer)])
    values = {f"K{n:05d}": f"{2000 + n * 3.17:.2f}" for n in range(120)}
    split = [list(values)[:70], list(values)[50:]]  # 20 ids at both providers
    segments = {key: f"segment-{'north' if n % 2 else 'south'}" for n, key in enumerate(list(values)[30:90])}
    datasets = [upload(client_for(party.token), f"values {n}", ("customer_id,income\n" + "".join(
        f"{key},{values[key]}\n" for key in keys)).encode(), timeout=120)["id"]
        for n, (party, keys) in enumerate(zip((lead, partner), split, strict=True))]
    product = list_joint_product(client_for(lead.token), [client_for(partner.token)], datasets,
                                 compute_types=["joint_cross_stats"])
    buyer = client_for(consumer.token)
    mine = upload(buyer, "segments", ("customer_id,segment\n" + "".join(f"{k},{s}\n" for k, s in segments.items())
                                      ).encode(), timeout=120)
    params = {"value_column": "income", "group_column": "segment", "bounds": [0, 5000], "decimals": 2}
    quoted = quote_chosen(buyer, product["id"], mine["id"], "joint_cross_stats", params, timeout=120)
    order = buy_fulfilled(buyer, quoted["id"], timeout=120)
    opened = result_rows(buyer, order["id"], timeout=120).opened
    truth = {}
    for label in sorted(set(segments.values())):
        shared = [float(values[k]) for keys in split for k in keys if segments.get(k) == label]
        truth[label] = [label, str(len(shared)), f"{sum(shared):.2f}"]
    assert {row[0]: row[:3] for row in opened["rows"]} == truth

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        messages, everything = tap.opened()
        assert {message.body.get("step") for message in messages if message.kind == "job.step"} >= {2, 3, 4, 5, 6, 7}
        for value in [*values, *values.values(), *set(segments.values())]:
            assert value.encode() not in everything, value


def test_statistics_across_two_providers_on_a_real_worker_send_no_id_or_value_through_the_broker(
        make_party, celery_worker_process):
    lead, partner = make_party("prov-js-e2e0", provider=True), make_party("prov-js-e2e1", provider=True)
    consumer = make_party("cons-js-e2e", provider=False, balance=1_000_000)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        tap.start()
    celery_worker_process([party.organisation.node.queue for party in (lead, partner, consumer)])
    tables = [{f"R{p}{n:04d}": (f"{3000 + n * 5.13 + p:.2f}", f"region-{n % 2}") for n in range(60)} for p in range(2)]
    datasets = [upload(client_for(party.token), f"incomes {p}", ("customer_id,income,region\n" + "".join(
        f"{key},{income},{region}\n" for key, (income, region) in rows.items())).encode(), timeout=120)["id"]
        for p, (party, rows) in enumerate(zip((lead, partner), tables, strict=True))]
    product = list_joint_product(client_for(lead.token), [client_for(partner.token)], datasets,
                                 compute_types=["joint_stats"], price_per_match=0)
    buyer = client_for(consumer.token)
    mine = upload(buyer, "anyone", consumer_csv(["B0001", "B0002", "B0003"]), timeout=120)
    # The groups are the buyer's public parameters (in the signed job spec); the providers' ids and values
    # are what must not cross.
    params = {"value_column": "income", "group_column": "region", "groups": ["region-0", "region-1"],
              "bounds": [0, 5000], "decimals": 2}
    order = buy_fulfilled(buyer, quote_chosen(buyer, product["id"], mine["id"], "joint_stats", params,
                                              timeout=120)["id"], timeout=120)
    opened = result_rows(buyer, order["id"], timeout=120).opened
    truth = {}
    for label in params["groups"]:
        values = [float(income) for rows in tables for income, region in rows.values() if region == label]
        truth[label] = [label, str(len(values)), f"{sum(values):.2f}"]
    assert {row[0]: row[:3] for row in opened["rows"]} == truth

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        messages, everything = tap.opened()
        assert {message.body.get("step") for message in messages if message.kind == "job.step"} >= {2, 3, 4}
        for rows in tables:
            for key, (income, _) in rows.items():
                assert key.encode() not in everything and income.encode() not in everything, key


def test_a_joint_quote_on_a_real_worker_sends_only_sealed_bitmaps_and_releases_only_the_histogram(
        make_party, celery_worker_process):
    lead, partner = make_party("prov-ov-e2e0", provider=True), make_party("prov-ov-e2e1", provider=True)
    consumer = make_party("cons-ov-e2e", provider=False, balance=1_000_000)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        tap.start()
    celery_worker_process([party.organisation.node.queue for party in (lead, partner, consumer)])
    held = [[f"OV{n:04d}" for n in range(0, 40)], [f"OV{n:04d}" for n in range(25, 70)]]
    datasets = [upload(client_for(party.token), f"held {p}", provider_csv(ids), timeout=120)["id"]
                for p, (party, ids) in enumerate(zip((lead, partner), held, strict=True))]
    product = list_joint_product(client_for(lead.token), [client_for(partner.token)], datasets, min_cohort=2)
    buyer = client_for(consumer.token)
    theirs = [f"OV{n:04d}" for n in range(10, 90)]
    mine = upload(buyer, "mine", consumer_csv(theirs), timeout=120)

    quoted = quote_chosen(buyer, product["id"], mine["id"], "psi", {}, timeout=120)

    assert quoted["status"] == "ready", quoted
    job = Job.objects.get(id=quoted["measurements"][0]["job"]["id"])
    assert job.protocol == "coverage_overlap"
    histogram = {int(cell): count for cell, count in job.result["histogram"].items()}
    assert set(job.result) == {"histogram", "providers", "epsilon", "cardinality"}  # nothing but the histogram
    # 10-24 the lead's only, 25-39 both's, 40-69 the partner's only; the noise's scale is 2/ε = 4 ids
    assert all(abs(histogram.get(cell, 0) - exact) <= 30 for cell, exact in {1: 15, 3: 15, 2: 30}.items()), histogram
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        _, everything = tap.opened()
        for key in sorted(set(theirs) | set(held[0]) | set(held[1])):
            assert key.encode() not in everything, key


@pytest.mark.skipif(not engine_available(), reason="the PSI engine's virtualenv .venv-spu is absent (`make test` "
                                                   "installs it)")
def test_a_direct_psi_on_real_nodes_meets_through_a_sealed_rendezvous_and_the_broker_sees_no_id(
        make_party, celery_worker_process):
    provider = make_party("prov-pd-e2e", provider=True)
    consumer = make_party("cons-pd-e2e", provider=False, balance=1_000_000)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        tap.start()
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    provider_ids, consumer_ids = overlapping_ids(provider=900, consumer=300, overlap=120)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "customers", provider_csv(provider_ids), timeout=120)["id"])
    mine = upload(buyer, "applicants", consumer_csv(consumer_ids), timeout=120)
    quoted = quote_chosen(buyer, product["id"], mine["id"], "psi", {"psi_transport": "direct"}, timeout=120)
    order = buy_fulfilled(buyer, quoted["id"], timeout=180)
    job = order["jobs"][0]["job"]
    assert job["protocol"] == "psi_direct" and job["consume_tx_hash"].startswith("0x")
    assert sorted(result_rows(buyer, order["id"], timeout=120).opened["ids"]) == sorted(
        set(provider_ids) & set(consumer_ids))

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        messages, everything = tap.opened()
        steps = [m for m in messages if m.kind == "job.step" and m.job == job["id"]]
        # Two hand-offs (the sealed rendezvous, the provider's "done"), each a few hundred bytes: the PSI's own
        # traffic went over the link, none of it through the broker.
        assert [m.body["step"] for m in steps] == [2, 3]
        assert all(len(m.body["payload"]) < 2_000 for m in steps)
        for value in provider_ids + consumer_ids:
            assert value.encode() not in everything
        assert b"rendezvous" not in everything and b"127.0.0.1:" not in everything  # the address travels sealed
