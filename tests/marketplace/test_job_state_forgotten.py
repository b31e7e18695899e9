"""After a job, the consumer's node keeps nothing of it: its saved client state (its raw ids and its secret
scalar, encrypted) is deleted when the job succeeds, when its result is below the cohort, and when the job
fails on the provider's node (the marketplace tells every party's node that the job ended)."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from compute.exceptions import ComputeError
from compute.messages import MARKETPLACE
from compute.node import executor
from compute.node.runtime import MessageRefused
from compute.protocols import coverage
from tests.conftest import node_home, node_runtime
from tests.marketplace.api_flow import client_for, list_product, quote, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def _saved_states(slug: str) -> set[str]:
    return {path.name for path in (node_home(slug) / "vault").glob("job-*.bin")}


@pytest.fixture
def trade(make_party):
    provider, consumer = make_party("fgt-prov", provider=True), make_party("fgt-cons", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=40, consumer=12, overlap=6)
    product = list_product(seller, upload(seller, "customers", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "applicants", consumer_csv(consumer_ids))
    return provider, consumer, buyer, product, mine, seller, provider_ids


def test_a_job_the_providers_node_refuses_leaves_no_state_on_the_consumers_node(trade, monkeypatch):
    provider, consumer, buyer, product, mine, *_ = trade
    slug = consumer.organisation.node.slug
    before = _saved_states(slug)  # a node's home outlives one test
    assert quote(buyer, product["id"], mine["id"])["status"] == "ready"
    assert _saved_states(slug) == before  # a job that succeeded deletes its state, as before

    def refuse(*args, **kwargs):
        raise ComputeError("The provider's node refuses this job.")

    monkeypatch.setattr(coverage, "psi_request_distinct", refuse)  # the provider's step of a quote
    failed = quote(buyer, product["id"], mine["id"])
    assert failed["status"] == "failed" and "refuses this job" in failed["error"]
    assert _saved_states(slug) == before


def test_a_result_below_the_cohort_reads_as_zero_and_leaves_no_state(trade):
    _, consumer, buyer, _, mine, seller, provider_ids = trade
    before = _saved_states(consumer.organisation.node.slug)
    tiny = list_product(seller, upload(seller, "two customers", provider_csv(provider_ids[:2]))["id"],
                        title="Two customers", min_cohort=3)
    refused = quote(buyer, tiny["id"], mine["id"])  # two of the buyer's ids are held: below the cohort of 3
    assert refused["status"] == "ready" and refused["coverage"] == 0  # as if none were: no tell-tale failure
    assert _saved_states(consumer.organisation.node.slug) == before


def test_only_the_marketplace_may_end_a_job_on_a_node(trade):
    provider, consumer, *_ = trade
    runtime = node_runtime(consumer.organisation.node.slug)
    job = "00000000-0000-0000-0000-000000000001"
    runtime.vault.put(f"job-{job}-party-0", b"state")
    from_peer = SimpleNamespace(sender=provider.organisation.node.slug, job=job, body={})
    with pytest.raises(MessageRefused, match="only the marketplace"):
        executor.job_forget(runtime, from_peer)
    assert runtime.vault.get(f"job-{job}-party-0") == b"state"
    assert executor.job_forget(runtime, SimpleNamespace(sender=MARKETPLACE, job=job, body={})) == []
    assert f"job-{job}-party-0.bin" not in _saved_states(consumer.organisation.node.slug)


def test_a_job_that_ends_unfinished_lets_its_protocol_stop_what_it_started(trade, tmp_path):
    """A direct PSI's consumer side runs in the background between its steps; when the job fails, job.forget
    stops that process and deletes its files before the job's state goes."""
    _, consumer, *_ = trade
    runtime = node_runtime(consumer.organisation.node.slug)
    job = "00000000-0000-0000-0000-000000000002"
    background = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "ids.csv").write_text("C000001\n")
    runtime.vault.put(f"job-{job}-protocol", b"psi_direct")
    runtime.vault.put(f"job-{job}-party-0", json.dumps({"message": {}, "workdir": str(workdir),
                                                         "pid": background.pid}).encode())
    assert executor.job_forget(runtime, SimpleNamespace(sender=MARKETPLACE, job=job, body={})) == []
    assert background.wait(timeout=10) != 0  # stopped, not left to its own timeout
    assert not workdir.exists() and not runtime.vault.names(f"job-{job}-")
