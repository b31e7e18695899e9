"""The audit explorer's pages: the public anchored batches with their confirmations, the entry search with its
form errors, each entry's inclusion proof, usage over time, an order's grant timeline from the chain's events
beside the marketplace's records, and the in-browser verifier (audit_verify.js, run here under Node) checked
against the Python encoding, Merkle code and web3's ABI encoding."""
from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from web3 import Web3

from audit.chain.contracts import artefact, contract
from audit.chain.devnode import free_port
from audit.chain.outbox import outbox_process
from audit.encoding import payload_digest_compute
from audit.merkle import _LEAF_PREFIX, _NODE_PREFIX, leaf_hash, merkle_proof
from audit.models import AuditEntry, ChainOutbox
from audit.selectors import GrantChainEvent, GrantChainHistory, audit_entry_hashed_fields, chain_head
from audit.services import audit_batch_seal, audit_chain_extend, audit_record
from audit.usage import job_key
from frontend.views.audit import grant_timeline
from marketplace.models import Order, OrderGrant
from marketplace.services.organisations import member_create, organisation_create
from tests.audit.test_verify import batch_ids_past_other_tests
from tests.frontend.test_pages import PASSWORD, listed_product, own_dataset, signed_in
from tests.marketplace.data import consumer_csv, overlapping_ids

VERIFY_JS = Path(settings.BASE_DIR) / "frontend" / "static" / "frontend" / "audit_verify.js"
DAY = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


def member(slug: str, **roles: bool) -> Client:
    """A signed-in member of a new organisation (no node needed: these pages only read)."""
    organisation = organisation_create(slug=slug, name=slug.title(), **({"is_provider": False, "is_consumer": True}
                                                                         | roles))
    user, _ = member_create(organisation=organisation, username=f"{slug}-user", password=PASSWORD, role="owner")
    client = Client()
    client.force_login(user)
    return client


def recorded(*, action: str, subject: str, parties: list[str], at: dt.datetime, payload: dict | None = None) -> int:
    payload = payload or {}
    return AuditEntry.objects.append(created_at=at, actor="test", action=action, subject=subject, parties=parties,
                                     payload=payload, payload_digest=payload_digest_compute(payload))


def anchored() -> Any:
    """Seal what is unsealed into a batch and anchor its root on the session's chain."""
    audit_chain_extend()
    batch = audit_batch_seal()
    row = outbox_process(outbox_id=batch.outbox_id)
    assert row.status == ChainOutbox.Status.CONFIRMED, row.last_error
    return batch


def dead_chain_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused at once


def listed_ids(response) -> set[int]:
    return {int(found) for found in re.findall(r'data-entry-id="(\d+)"', response.content.decode())}


# Anchored batches (public) -----------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.chain
def test_it_shows_the_anchored_batches_to_anyone_with_their_confirmations(client, ganache_url):
    batch_ids_past_other_tests()
    audit_record(actor="test", action="test.done", subject="test:1", parties=["acme"])
    batch = anchored()
    audit_record(actor="test", action="test.done", subject="test:2", parties=["acme"])
    audit_chain_extend()
    waiting = audit_batch_seal()  # its anchor is queued, not sent

    response = client.get("/audit/batches/")

    page = response.content.decode()
    assert response.status_code == 200
    anchor = ChainOutbox.objects.get(pk=batch.outbox_id)
    row = re.search(rf'<tr data-batch="{batch.id}" data-state="final">(.*?)</tr>', page, re.S).group(1)
    assert batch.root[:10] in row and anchor.tx_hash[:10] in row and f">{anchor.block_number}<" in row
    assert f"<strong>{chain_head() - anchor.block_number + 1}</strong>" in row
    assert re.search(rf'<tr data-batch="{waiting.id}" data-state="pending on chain">', page)
    assert "data-batch-check" in page and 'id="audit-browser-chain"' in page
    assert client.get("/audit/").status_code == 302  # the entries themselves need a login
    assert 'href="/audit/batches/"' in client.get("/").content.decode()  # linked from the nav


@pytest.mark.django_db
@pytest.mark.chain
def test_it_says_the_chain_is_unreachable_on_the_batches_page_and_still_lists_them(client, ganache_url, settings):
    batch_ids_past_other_tests()
    audit_record(actor="test", action="test.done", subject="test:3", parties=["acme"])
    batch = anchored()
    settings.CHAIN_RPC_URL = dead_chain_url()

    response = client.get("/audit/batches/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "chain unreachable" in page
    assert re.search(rf'<tr data-batch="{batch.id}" data-state="chain unreachable">', page)


# Entries: who sees what, the search and its errors -------------------------------------------------------

@pytest.mark.django_db
def test_it_shows_each_role_the_entries_it_may_read(ganache_url):
    mine, theirs = member("ae-mine"), member("ae-theirs")
    auditor, operator = member("ae-audit", is_auditor=True), member("ae-op", is_operator=True)
    own = AuditEntry.objects.get(action="organisation.created", subject="organisation:ae-mine").id
    other = AuditEntry.objects.get(action="organisation.created", subject="organisation:ae-theirs").id

    seen = {name: listed_ids(client.get("/audit/", {"action": "organisation.created"}))
            for name, client in {"mine": mine, "theirs": theirs, "auditor": auditor, "operator": operator}.items()}

    assert own in seen["mine"] and other not in seen["mine"]
    assert other in seen["theirs"] and own not in seen["theirs"]
    assert {own, other} <= seen["auditor"] and {own, other} <= seen["operator"]
    loner = Client()
    loner.force_login(get_user_model().objects.create_user(username="ae-loner", password=PASSWORD))
    assert listed_ids(loner.get("/audit/")) == set()


@pytest.mark.django_db
def test_it_searches_entries_by_product_order_organisation_and_time(ganache_url):
    auditor = member("ae-search", is_auditor=True)
    product, order = uuid.uuid4(), uuid.uuid4()
    listed = recorded(action="product.published", subject=f"product:{product}", parties=["acme"], at=DAY)
    placed = recorded(action="order.placed", subject=f"order:{order}", parties=["acme", "globex"],
                      at=DAY + dt.timedelta(days=1))
    charged = recorded(action="privacy.charged", subject=f"order:{order}:run:1", parties=["globex"],
                       at=DAY + dt.timedelta(days=1, hours=2))
    later = recorded(action="order.placed", subject=f"order:{uuid.uuid4()}", parties=["globex"],
                     at=DAY + dt.timedelta(days=3))

    by_product = auditor.get("/audit/", {"product": str(product)})
    by_order = auditor.get("/audit/", {"order": str(order)})
    by_organisation = auditor.get("/audit/", {"organisation": "globex", "until": "2025-03-12T00:00"})
    by_time = auditor.get("/audit/", {"since": "2025-03-11T00:00", "until": "2025-03-13T00:00"})

    assert listed_ids(by_product) == {listed}
    assert listed_ids(by_order) == {placed, charged}
    assert f'href="/audit/orders/{order}/grants/"' in by_order.content.decode()  # its grant timeline
    assert listed_ids(by_organisation) == {placed, charged}
    assert listed_ids(by_time) == {placed, charged}
    assert later not in listed_ids(auditor.get("/audit/", {"until": "2025-03-12T00:00"}))
    bundle = auditor.get("/audit/bundle/", {"order": str(order)}).json()
    assert sorted(bundle["pending"]) == sorted([placed, charged])


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "message"), [
    ({"order": "12345"}, "Enter a valid UUID."),
    ({"product": "nope"}, "Enter a valid UUID."),
    ({"organisation": "no spaces!"}, "Enter a valid “slug”"),
    ({"since": "yesterday"}, "Enter a valid date/time."),
    ({"since": "2025-03-12T00:00", "until": "2025-03-11T00:00"}, "The end of the range must come after its start."),
    ({"product": str(uuid.uuid4()), "order": str(uuid.uuid4())}, "Filter by a product or by an order, not both."),
])
def test_it_answers_a_bad_search_with_a_form_error(ganache_url, query, message):
    auditor = member("ae-bad", is_auditor=True)
    recorded(action="order.placed", subject=f"order:{uuid.uuid4()}", parties=["acme"], at=DAY)

    response = auditor.get("/audit/", query)

    assert response.status_code == 400
    page = response.content.decode()
    assert message in page and 'role="alert"' in page
    assert listed_ids(response) == set()
    assert auditor.get("/audit/bundle/", query).status_code == 400


# Proofs and usage --------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.chain
def test_it_shows_an_entrys_inclusion_proof_on_demand_to_those_who_may_read_it(ganache_url):
    batch_ids_past_other_tests()
    mine, theirs = member("ae-proof"), member("ae-proof-x")
    ids = [audit_record(actor="test", action="test.done", subject=f"test:{n}", parties=["ae-proof"]).id
           for n in range(5)]
    batch = anchored()
    entries = list(AuditEntry.objects.filter(batch=batch).order_by("leaf_index"))
    entry = next(e for e in entries if e.id == ids[2])
    leaves = [leaf_hash(e.leaf_data()) for e in entries]

    page = mine.get("/audit/", {"subject": "test:2"}).content.decode()
    proof = mine.get(f"/audit/entries/{entry.id}/proof/")

    assert f'hx-get="/audit/entries/{entry.id}/proof/"' in page
    fields = json.loads(html.unescape(re.search(r'data-entry="([^"]+)"', page).group(1)))
    assert fields == json.loads(json.dumps(audit_entry_hashed_fields(entry)))
    body = proof.content.decode()
    assert proof.status_code == 200
    assert leaf_hash(entry.leaf_data()).hex() in body and batch.root in body
    assert f"leaf {entry.leaf_index} of {batch.size}" in body
    for sibling in merkle_proof(leaves, entry.leaf_index):
        assert sibling.hex() in body
    assert ChainOutbox.objects.get(pk=batch.outbox_id).tx_hash in body
    assert contract("AuditAnchor").address in body
    chain = json.loads(re.search(r'<script id="audit-browser-chain" type="application/json">(.*?)</script>',
                                 page).group(1))
    assert chain["rpc_url"] == settings.CHAIN_RPC_URL  # no CHAIN_PUBLIC_RPC_URL set: the server's own
    public = Client().get(f"{chain['proof_url']}{entry.entry_hash}/")  # where the page's script asks, anonymously
    assert public.status_code == 200 and public.json()["root"] == batch.root
    assert theirs.get(f"/audit/entries/{entry.id}/proof/").status_code == 404
    assert Client().get(f"/audit/entries/{entry.id}/proof/").status_code == 302


@pytest.mark.django_db
def test_it_charts_usage_per_day_from_the_entries_the_user_may_read(ganache_url):
    provider = member("ae-usage")
    consume = {"consume_tx": "0x" + "cd" * 32}
    for at in (DAY, DAY + dt.timedelta(hours=3)):
        recorded(action="job.created", subject="job:a", parties=["ae-usage"], at=at)
        recorded(action="job.step1.done", subject="job:a", parties=["ae-usage"], at=at, payload=consume)
    recorded(action="job.succeeded", subject="job:a", parties=["ae-usage"], at=DAY + dt.timedelta(days=2))
    recorded(action="job.failed", subject="job:b", parties=["ae-usage"], at=DAY + dt.timedelta(days=2))
    recorded(action="job.created", subject="job:z", parties=["someone-else"], at=DAY)

    page = provider.get("/audit/", {"since": "2025-03-10T00:00", "until": "2025-03-13T00:00"}).content.decode()

    usage = json.loads(re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', page).group(1))
    assert usage == {"days": ["2025-03-10", "2025-03-11", "2025-03-12"], "started": [2, 0, 0],
                     "succeeded": [0, 0, 1], "failed": [0, 0, 1], "charges": [2, 0, 0]}
    assert 'data-chart="usage"' in page and "vendor/chartjs/chart.umd.js" in page and "audit_charts.js" in page
    assert "<td>2025-03-10</td>" in page and "<td>2025-03-11</td>" not in page  # the table lists active days


# The grant timeline ------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.chain
def test_it_shows_a_grants_events_from_the_chain_beside_the_marketplaces_records(make_party, settings):
    provider = make_party("ae-tl-p", provider=True)
    consumer = make_party("ae-tl-c", provider=False, balance=100_000)
    stranger = make_party("ae-tl-s", provider=False)
    provider_ids, consumer_ids = overlapping_ids(provider=30, consumer=10, overlap=6)
    product = listed_product(provider, provider_ids)
    mine = own_dataset(consumer, "Mine", consumer_csv(consumer_ids))
    as_consumer, as_provider = signed_in(consumer), signed_in(provider)
    asked = as_consumer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "risk_control"})
    as_consumer.post(asked["Location"] + "buy/", {"idempotency_key": str(uuid.uuid4())})
    order = Order.objects.get(buyer=consumer.organisation)
    assert order.status == Order.Status.FULFILLED
    assert as_provider.post(f"/orders/{order.id}/revoke/", {"reason": "Contract ended."}).status_code == 302
    grant = order.grants.get()
    job = order.order_jobs.get().job
    path = f"/audit/orders/{order.id}/grants/"

    pages = {"buyer": as_consumer.get(path), "provider": as_provider.get(path),
             "auditor": member("ae-tl-a", is_auditor=True).get(path),
             "operator": member("ae-tl-o", is_operator=True).get(path)}

    for who, response in pages.items():
        assert response.status_code == 200, who
        page = response.content.decode()
        events = re.findall(r'data-event="(\w+)"', page)
        assert events == ["granted", "consumed", "revoked"], (who, events)
        assert grant.grant_id in page and str(job.id)[:8] in page
        assert "The chain and the marketplace's records agree." in page
        assert "order.placed" in page and "job.succeeded" in page  # the audit entries of the order and its job
    assert signed_in(stranger).get(path).status_code == 404
    assert signed_in(stranger).get(f"/audit/orders/{uuid.uuid4()}/grants/").status_code == 404
    assert Client().get(path).status_code == 302

    settings.CHAIN_RPC_URL = dead_chain_url()
    cut = as_consumer.get(path)
    assert cut.status_code == 200
    page = cut.content.decode()
    assert 'id="chain-unreachable"' in page and "Chain unreachable" in page
    assert 'data-event="' not in page
    assert "Confirmed · revoked" in page and "1 run under it" in page  # the marketplace's side still shows


def test_it_adds_expired_and_flags_a_charge_the_marketplace_does_not_know():
    grant = OrderGrant(grant_id="0x" + "11" * 32, status=OrderGrant.Status.CONFIRMED, revoked=False)
    expires = DAY + dt.timedelta(days=1)
    known, unknown = uuid.uuid4(), uuid.uuid4()

    def event(name: str, block: int, **args: Any) -> GrantChainEvent:
        return GrantChainEvent(name=name, block_number=block, log_index=0, tx_hash="0x" + "22" * 32,
                               at=DAY + dt.timedelta(hours=block), args=args)

    history = GrantChainHistory(events=[
        event("granted", 1, quota=3, expiresAt=int(expires.timestamp()), grantee="0xB", issuer="0xA"),
        event("consumed", 2, jobId="0x" + job_key(str(known)).hex(), units=1, used=1),
        event("consumed", 3, jobId="0x" + job_key(str(unknown)).hex(), units=1, used=2),
    ], from_block=0, head=9, head_time=DAY + dt.timedelta(days=2))
    link = type("Link", (), {"job_id": known, "job": type("Job", (), {"id": known})(), "run": 1})()

    timeline = grant_timeline(grant, [link], history, expires_fallback=None, now=DAY)

    assert [row["name"] for row in timeline["events"]] == ["granted", "consumed", "consumed", "expired"]
    assert timeline["expired"] and timeline["events"][-1]["at"] == expires
    assert timeline["jobs"][0]["charged"] is True
    assert timeline["differences"] == [
        "1 charge on chain for a job the marketplace does not link to this grant."]
    before = grant_timeline(grant, [link], GrantChainHistory(
        events=history.events[:2], from_block=0, head=9, head_time=DAY), expires_fallback=None, now=DAY)
    assert not before["expired"] and before["differences"] == []
    unread = grant_timeline(grant, [link], None, expires_fallback=DAY - dt.timedelta(days=1), now=DAY)
    assert unread["expired"] and not unread["chain_read"] and unread["differences"] == []


# The in-browser verifier, run under Node: its constants and results match Python's -----------------------

def js_constant(name: str) -> str:
    return re.search(rf"var {name} = ([^;]+);", VERIFY_JS.read_text()).group(1).strip('"')


@pytest.mark.django_db
@pytest.mark.chain
def test_the_in_browser_verifiers_constants_match_the_python_and_the_contract(ganache_url):
    root_of = next(item for item in artefact("AuditAnchor")["abi"] if item.get("name") == "rootOf")
    signature = f"rootOf({','.join(arg['type'] for arg in root_of['inputs'])})"

    assert js_constant("ROOT_OF_SELECTOR") == "0x" + Web3.keccak(text=signature)[:4].hex()
    assert contract("AuditAnchor").encode_abi("rootOf", args=[7]).startswith(js_constant("ROOT_OF_SELECTOR"))
    assert bytes([int(js_constant("LEAF_PREFIX"), 16)]) == _LEAF_PREFIX
    assert bytes([int(js_constant("NODE_PREFIX"), 16)]) == _NODE_PREFIX


NODE_RUNNER = """
const verify = require(process.argv[1]);
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const job = JSON.parse(input);
  const out = {calldata: job.batch_ids.map(verify.rootOfCallData), entries: []};
  for (const item of job.entries) {
    const result = await verify.verifyEntry(item.fields, item.proof,
      (contract, batch) => verify.readAnchor(job.rpc_url, contract, batch));
    out.entries.push({leaf: verify.toHex(await verify.leafHash(item.fields)), hash: await verify.entryHash(item.fields),
                      status: result.status, summary: result.summary});
  }
  process.stdout.write(JSON.stringify(out));
});
"""


def run_in_node(job: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node is not installed")
    done = subprocess.run([node, "-e", NODE_RUNNER, str(VERIFY_JS)], input=json.dumps(job), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.django_db
@pytest.mark.chain
def test_the_in_browser_verifier_recomputes_what_python_does_and_reads_the_chain_itself(client, ganache_url):
    batch_ids_past_other_tests()
    # Text that JSON escapes, and text it does not (UTF-8 kept as is, as canonical_json does).
    for actor in ('user:张三', 'quote " back\\slash', "line\nbreak\ttab\u0001", "plain"):
        audit_record(actor=actor, action="test.done", subject="test:é", parties=["acme", "globex"])
    batch = anchored()
    entries = list(AuditEntry.objects.filter(batch=batch).order_by("leaf_index"))
    honest = [{"fields": audit_entry_hashed_fields(entry),
               "proof": client.get(f"/api/audit/proofs/{entry.entry_hash}/").json()} for entry in entries]
    edited = {"fields": honest[0]["fields"] | {"actor": "someone else"}, "proof": honest[0]["proof"]}
    moved = {"fields": honest[1]["fields"], "proof": honest[1]["proof"] | {"leaf_index": 0}}

    checked = run_in_node({"rpc_url": ganache_url, "batch_ids": [7, batch.id], "entries": [*honest, edited, moved]})
    unreachable = run_in_node({"rpc_url": dead_chain_url(), "batch_ids": [], "entries": honest[:1]})

    web3_calldata = [contract("AuditAnchor").encode_abi("rootOf", args=[n]) for n in (7, batch.id)]
    assert checked["calldata"] == web3_calldata
    for entry, result in zip(entries, checked["entries"], strict=False):
        assert result["leaf"] == leaf_hash(entry.leaf_data()).hex()
        assert result["hash"] == entry.entry_hash
        assert result["status"] == "verified", result
    edited_result, moved_result = checked["entries"][-2:]
    assert edited_result["status"] == "failed" and "do not give its hash" in edited_result["summary"]
    assert moved_result["status"] == "failed" and "root anchored on chain" in moved_result["summary"]
    assert unreachable["entries"][0]["status"] == "server-root"
    assert "the root the server reported only" in unreachable["entries"][0]["summary"]
