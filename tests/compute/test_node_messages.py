"""QUALITY 27 and issue 10: what a node accepts. A step message must be signed by the party of the job
that runs the previous step, inside the marketplace-signed spec; a forged one is refused and the job fails
with the reason; a replayed one takes no effect twice. And the chain guard holds against another grant's
issuer charging the victim's job first, and an exhausted grant stops the job."""
from __future__ import annotations

from typing import Any

import pytest

from audit.chain.registry import grant_state
from compute.crypto.signing import signing_keypair
from compute.messages import envelope_body_unverified, envelope_make
from compute.models import Job, NodeMessage
from compute.transport import message_send as deliver
from tests.conftest import node_runtime
from tests.marketplace.api_flow import client_for, list_product, run_purchase, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


class Post:
    """Records every message handed to the broker; holds them back while ``holding``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.held: list[tuple[str, dict[str, Any]]] = []
        self.holding = False

    def __call__(self, *, queue: str, envelope: dict[str, Any], app: Any = None) -> None:
        self.sent.append((queue, envelope))
        if self.holding:
            self.held.append((queue, envelope))
        else:
            deliver(queue=queue, envelope=envelope, app=app)

    def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for queue, envelope in held:
            deliver(queue=queue, envelope=envelope)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [envelope for _, envelope in self.sent if envelope["kind"] == kind]


@pytest.fixture
def post(monkeypatch: pytest.MonkeyPatch) -> Post:
    recorder = Post()
    monkeypatch.setattr("compute.jobs.services.message_send", recorder)
    monkeypatch.setattr("compute.node.runtime.message_send", recorder)
    return recorder


def _bought(make_party, name: str, *, quota: int = 3) -> dict[str, Any]:
    provider = make_party(f"{name}-p", provider=True)
    consumer = make_party(f"{name}-c", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=40, consumer=20, overlap=10)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "p", provider_csv(provider_ids))["id"], quota=quota)
    dataset = upload(buyer, "c", consumer_csv(consumer_ids))
    return {"provider": provider, "consumer": consumer, "buyer": buyer, "product": product, "dataset": dataset}


def _coverage_job(post: Post, world: dict[str, Any]) -> tuple[Job, dict[str, Any]]:
    """A coverage (PSI-cardinality) job whose start is held back; returns it with its signed spec."""
    post.holding = True
    client = world["buyer"]
    client.post("/api/quotes/", {"product": world["product"]["id"], "dataset": world["dataset"]["id"],
                                 "purpose": "risk_control"}, format="json")
    post.holding = False  # the job's start stays held back; what follows is delivered
    spec = post.of_kind("job.start")[-1]
    return Job.objects.get(id=spec["job"]), spec


def test_it_fails_the_job_when_a_step_message_is_forged_in_a_partys_name(make_party, post):
    world = _bought(make_party, "forge")
    job, spec = _coverage_job(post, world)
    consumer, provider = world["consumer"].organisation.node, world["provider"].organisation.node
    mallory_private, _ = signing_keypair()
    forged = envelope_make(kind="job.step", sender=consumer.slug, recipient=provider.slug, job=str(job.id),
                           body={"spec": spec, "step": 2, "payload": ""}, signing_private=mallory_private)

    node_runtime(provider.slug).handle(forged)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "signature does not verify" in job.error and provider.slug in job.error


def test_it_fails_the_job_when_a_node_outside_the_job_sends_a_step(make_party, post):
    world = _bought(make_party, "outsider")
    outsider = make_party("outsider-x", provider=True).organisation.node
    job, spec = _coverage_job(post, world)
    provider = world["provider"].organisation.node
    message = node_runtime(outsider.slug).envelope(kind="job.step", recipient=provider.slug, job=str(job.id),
                                                   body={"spec": spec, "step": 2, "payload": ""})

    node_runtime(provider.slug).handle(message)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "not a party" in job.error


def test_it_refuses_a_spec_the_marketplace_did_not_sign(make_party, post):
    world = _bought(make_party, "spec")
    job, spec = _coverage_job(post, world)
    consumer, provider = world["consumer"].organisation.node, world["provider"].organisation.node
    mallory_private, _ = signing_keypair()
    body = envelope_body_unverified(spec)
    forged_spec = envelope_make(kind="job.start", sender="marketplace", recipient=consumer.slug, job=str(job.id),
                                body=body, signing_private=mallory_private)
    message = node_runtime(consumer.slug).envelope(kind="job.step", recipient=provider.slug, job=str(job.id),
                                                   body={"spec": forged_spec, "step": 2, "payload": ""})

    node_runtime(provider.slug).handle(message)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "signature does not verify" in job.error


def test_a_replayed_message_takes_no_effect_twice(make_party, post):
    world = _bought(make_party, "replay")
    seen = run_purchase(world["provider"].token, world["consumer"].token,
                        *overlapping_ids(provider=30, consumer=12, overlap=6))
    assert seen["order"]["status"] == "fulfilled"
    grant = bytes.fromhex(seen["order"]["grants"][0]["grant_id"][2:])
    used = grant_state(grant).used
    step2 = [m for m in post.of_kind("job.step") if envelope_body_unverified(m)["step"] == 2][-1]
    succeeded = post.of_kind("job.succeeded")[-1]
    job = Job.objects.get(id=step2["job"])
    messages = NodeMessage.objects.count()

    node_runtime(step2["recipient"]).handle(step2)  # the provider's node has processed it: dropped
    from compute.jobs.handlers import node_message_apply

    node_message_apply(succeeded)  # the marketplace has applied it: dropped

    assert grant_state(grant).used == used
    assert NodeMessage.objects.count() == messages
    again = Job.objects.get(id=job.id)
    assert (again.status, again.progress, again.result_table_id) == (job.status, job.progress, job.result_table_id)


def test_another_grants_issuer_cannot_make_a_job_run_free(make_party, post):
    world = _bought(make_party, "victim")
    seen = run_purchase(world["provider"].token, world["consumer"].token,
                        *overlapping_ids(provider=30, consumer=12, overlap=6))
    order_id = seen["order"]["id"]
    victim_grant = bytes.fromhex(seen["order"]["grants"][0]["grant_id"][2:])
    # The attacker is a provider with a grant of its own (to the same buyer).
    attacker = _bought(make_party, "attacker")
    attack = run_purchase(attacker["provider"].token, world["consumer"].token,
                          *overlapping_ids(provider=30, consumer=12, overlap=6))
    attacker_grant = attack["order"]["grants"][0]["grant_id"]
    used = grant_state(victim_grant).used

    post.holding = True
    assert world["buyer"].post(f"/api/orders/{order_id}/jobs/").status_code == 201
    job = Job.objects.filter(parties__grant_id="0x" + victim_grant.hex()).order_by("-created_at").first()
    # The attacker charges the victim's next job to its own grant before the victim's node does.
    node_runtime(attacker["provider"].organisation.node.slug).chain.consume(
        grant_id=attacker_grant, job_id=job.id.bytes.rjust(32, b"\0"), units=1)
    post.release()

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert grant_state(victim_grant).used == used + 1  # the victim's own grant was charged


def test_an_exhausted_grant_stops_the_next_job(make_party, post):
    world = _bought(make_party, "quota")
    seen = run_purchase(world["provider"].token, world["consumer"].token,
                        *overlapping_ids(provider=30, consumer=12, overlap=6))
    order_id = seen["order"]["id"]
    grant = bytes.fromhex(seen["order"]["grants"][0]["grant_id"][2:])
    for _ in range(grant_state(grant).remaining):
        assert world["buyer"].post(f"/api/orders/{order_id}/jobs/").status_code == 201
    assert grant_state(grant).remaining == 0

    assert world["buyer"].post(f"/api/orders/{order_id}/jobs/").status_code == 201

    last = Job.objects.filter(parties__grant_id="0x" + grant.hex()).order_by("-created_at").first()
    assert last.status == Job.Status.FAILED and "QuotaExceeded" in last.error
    assert grant_state(grant).remaining == 0


def test_a_job_held_in_the_broker_runs_once_delivered(make_party, post):
    world = _bought(make_party, "held")
    job, _ = _coverage_job(post, world)
    assert Job.objects.get(id=job.id).status == Job.Status.PENDING
    post.release()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.result_cardinality == 10


def test_a_node_seals_results_only_to_the_keys_its_organisation_lists(make_party, post):
    world = _bought(make_party, "keys")
    seen = run_purchase(world["provider"].token, world["consumer"].token,
                        *overlapping_ids(provider=30, consumer=12, overlap=6))
    buyer_node = node_runtime(world["consumer"].organisation.node.slug)
    buyer_node.result_keys = frozenset({"ab" * 32})
    try:
        refused = world["buyer"].post(f"/api/orders/{seen['order']['id']}/result/", {"public_key": "cd" * 32},
                                      format="json")
        assert refused.status_code == 202
        answer = world["buyer"].get(f"/api/orders/{seen['order']['id']}/result/").json()
        assert answer["status"] == "failed" and "NODE_RESULT_KEYS" in answer["error"] and answer["sealed"] is None
        allowed = world["buyer"].post(f"/api/orders/{seen['order']['id']}/result/", {"public_key": "ab" * 32},
                                      format="json")
        assert allowed.json()["status"] == "ready"
    finally:
        buyer_node.result_keys = None
