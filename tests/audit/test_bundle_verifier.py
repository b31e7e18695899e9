"""A proof bundle checked by the standalone verifier against the chain: an honest bundle verifies, and each
tampering (an edited entry or payload, a swapped proof node, a wrong root, a wrong chain id, a wrong
contract) is refused with its reason; the API gives a bundle only of entries the caller may read."""
from __future__ import annotations

import copy
import json

import pytest

from audit.chain.contracts import contract
from audit.encoding import entry_hash_compute, payload_digest_compute
from audit.models import AuditEntry
from audit.services import audit_bundle, audit_record
from audit.verifier import _chain_reader, bundle_verify, main
from tests.audit.test_audit_api import client_for, party_resolver  # noqa: F401 - the resolver fixture
from tests.audit.test_verify import anchored_batch, fresh_batch_ids  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db, pytest.mark.chain]


@pytest.fixture
def bundle_and_reader(ganache_url):
    sealed, _ = anchored_batch(9)
    entries = list(AuditEntry.objects.filter(pk__in=[entry.pk for entry in sealed]).order_by("seq"))
    bundle = json.loads(json.dumps(audit_bundle(entries=entries[2:6] + [audit_record(
        actor="svc", action="later", subject="job:9", parties=["acme"])])))  # through JSON, as a file would be
    chain_id, read = _chain_reader(ganache_url, bundle["chain"]["anchor_contract"])
    return bundle, chain_id, read


def _verify(bundle, chain_id, read):
    return bundle_verify(bundle, chain_id=chain_id, read_anchor=read)


def test_an_honest_bundle_verifies(bundle_and_reader):
    bundle, chain_id, read = bundle_and_reader
    assert len(bundle["entries"]) == 4 and len(bundle["pending"]) == 1  # the last entry is not sealed yet
    assert _verify(bundle, chain_id, read) == []


@pytest.mark.parametrize("tamper, reason", [
    (lambda b: b["entries"][0].update(action="order.refunded"), "its fields do not match its hash"),
    (lambda b: b["entries"][1]["payload"].update(step=99), "its payload does not match its digest"),
    (lambda b: b["entries"][2]["proof"].__setitem__(0, b["entries"][3]["proof"][0]), "Merkle proof does not lead"),
    (lambda b: b["entries"][0].update(leaf_index=1), "Merkle proof does not lead"),
    (lambda b: b["batches"][0].update(root="ab" * 32), "the bundle's root differs from the root anchored"),
    (lambda b: b["batches"][0].update(size=99), "the bundle says 99 entries, the chain 9"),
    (lambda b: b["chain"].update(chain_id=1), "the bundle is for chain 1"),
])
def test_each_tampering_is_refused_with_its_reason(bundle_and_reader, tamper, reason):
    bundle, chain_id, read = bundle_and_reader
    tampered = copy.deepcopy(bundle)
    tamper(tampered)
    assert any(reason in problem for problem in _verify(tampered, chain_id, read)), _verify(tampered, chain_id, read)


def test_an_edit_with_its_hashes_recomputed_still_fails_against_the_chain(bundle_and_reader):
    bundle, chain_id, read = bundle_and_reader
    entry = copy.deepcopy(bundle)["entries"][0]
    entry["payload"] = {"step": 1234}
    entry["payload_digest"] = payload_digest_compute(entry["payload"])
    fields = {name: entry[name] for name in ("seq", "created_at", "actor", "action", "subject", "parties",
                                             "payload_digest", "prev_hash")}
    entry["entry_hash"] = entry_hash_compute(**fields)
    forged = {**bundle, "entries": [entry]}
    assert _verify(forged, chain_id, read) == [
        f"entry {entry['id']}: its Merkle proof does not lead to the root anchored for batch {entry['batch']}"]


def test_the_command_line(bundle_and_reader, ganache_url, tmp_path, capsys):
    bundle, _, _ = bundle_and_reader
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    assert main([str(path), "--rpc", ganache_url]) == 0
    assert "verified: 4 entries in 1 batches" in capsys.readouterr().out

    wrong = copy.deepcopy(bundle)
    wrong["chain"]["anchor_contract"] = contract("DataRegistry").address  # a contract, but not the anchor
    path.write_text(json.dumps(wrong))
    assert main([str(path), "--rpc", ganache_url]) == 2
    assert "could not be read" in capsys.readouterr().err
    wrong["chain"]["anchor_contract"] = "0x" + "11" * 20  # no contract at all
    path.write_text(json.dumps(wrong))
    assert main([str(path), "--rpc", ganache_url]) == 2
    assert "There is no contract at" in capsys.readouterr().err
    edited = copy.deepcopy(bundle)
    edited["entries"][0]["actor"] = "someone else"
    path.write_text(json.dumps(edited))
    assert main([str(path), "--rpc", ganache_url]) == 1
    assert "its fields do not match its hash" in capsys.readouterr().out
    path.write_text("[1, 2]")
    assert main([str(path), "--rpc", ganache_url]) == 2


def test_the_api_bundles_only_what_the_caller_may_read(ganache_url):
    entries, _ = anchored_batch(4)  # parties acme and globex, subjects job:0..2
    alice, bob, nobody = client_for("alice"), client_for("bob"), client_for("nobody")
    response = alice.get("/api/audit/bundle/", {"subject": "job:0"})
    assert response.status_code == 200, response.content
    assert {entry["subject"] for entry in response.json()["entries"]} == {"job:0"}
    assert bob.get("/api/audit/bundle/", {"entry": entries[1].pk}).json()["entries"][0]["id"] == entries[1].pk
    assert nobody.get("/api/audit/bundle/", {"entry": entries[1].pk}).status_code == 404
    assert nobody.get("/api/audit/bundle/", {"subject": "job:0"}).status_code == 404
    refused = alice.get("/api/audit/bundle/", {"subject": "job:0", "entry": entries[0].pk})
    assert refused.status_code == 400 and "a subject or an entry, not both" in refused.json()["message"]
    latest = alice.get("/api/audit/bundle/").json()  # by default the caller's newest entries
    assert latest["entries"] and all("acme" in entry["parties"] for entry in latest["entries"])
    assert nobody.get("/api/audit/bundle/").json()["entries"] == []


def test_the_verifier_needs_no_django():
    import subprocess
    import sys

    code = "import sys, audit.verifier; sys.exit(1 if any(m.startswith('django') for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_roots_and_proofs_are_public_and_hold_no_contents(bundle_and_reader):
    from rest_framework.test import APIClient

    from audit.encoding import entry_leaf_data
    from audit.merkle import leaf_hash, merkle_verify

    bundle, _, read = bundle_and_reader
    anyone = APIClient()
    batches = anyone.get("/api/audit/batches/")
    assert batches.status_code == 200 and batches.json()["count"] >= 1
    entry = bundle["entries"][0]
    response = anyone.get(f"/api/audit/proofs/{entry['entry_hash']}/")
    assert response.status_code == 200, response.content
    proof = response.json()
    assert set(proof) == {"entry_hash", "batch", "leaf_index", "size", "proof", "root", "anchor_tx", "chain_id",
                          "anchor_contract"}  # where it is, not what it says
    fields = {name: entry[name] for name in ("seq", "created_at", "actor", "action", "subject", "parties",
                                             "payload_digest", "prev_hash")}
    root, count = read(proof["batch"])
    assert merkle_verify(leaf=leaf_hash(entry_leaf_data(entry_hash=entry["entry_hash"], **fields)),
                         index=proof["leaf_index"], size=count, proof=[bytes.fromhex(p) for p in proof["proof"]],
                         root=root)
    assert anyone.get(f"/api/audit/proofs/{'ab' * 32}/").status_code == 404
    assert anyone.get("/api/audit/proofs/not-a-hash/").status_code == 404
    assert anyone.get("/api/audit/entries/").status_code in {401, 403}  # the contents stay behind a login
