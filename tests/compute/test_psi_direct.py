"""PSI over a direct link (psi_direct): SecretFlow's engine alone finds the plain intersection; run through
the protocol's steps it releases exactly what the relay PSI releases; a peer without the session key is
refused before the engine starts; a revoked grant stops the job before any link is opened; the broker
carries no id."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from compute.direct import session
from compute.direct.config import direct_config, engine_available
from compute.direct.engine import engine_bare
from compute.direct.link import LinkRefused, handshake_connect
from compute.protocols import psi, psi_direct
from compute.tabular import Table
from tests.compute.protocol_runner import protocol_run
from tests.conftest import wait_for

needs_engine = pytest.mark.skipif(
    not engine_available(), reason="the PSI engine's virtualenv .venv-spu is absent (`make test` installs it)")


@pytest.fixture(autouse=True)
def direct_settings(settings, tmp_path: Path) -> None:
    """Each test's runs in its own work directory (checked empty after), with a short wait for a peer."""
    settings.PSI_DIRECT_WORK_DIR = str(tmp_path)
    settings.PSI_DIRECT_TIMEOUT = 60


def _ids(prefix: str, start: int, stop: int) -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(start, stop)]


def _table(ids: list[str]) -> Table:
    return Table(columns=["customer_id", "note"], rows=[[value, "x"] for value in ids], id_column="customer_id")


@needs_engine
def test_the_engine_alone_finds_the_plain_intersection(tmp_path: Path) -> None:
    receiver = [value.encode() for value in _ids("c", 0, 3000)] + ["é,\"quoted\"\nline".encode()]
    sender = [value.encode() for value in _ids("c", 1800, 4000)] + ["é,\"quoted\"\nline".encode(), b"only-sender"]
    result = engine_bare(receiver, sender, python=direct_config().engine_python, work_dir=tmp_path)
    assert result.intersection == set(receiver) & set(sender)
    assert list(tmp_path.iterdir()) == []  # its files are gone


@needs_engine
@pytest.mark.parametrize(("consumer", "provider"), [
    # Spellings that one normal form joins, repeated ids, a blank id: the release is the buyer's own spellings.
    (_ids("id-", 0, 2500) + ["  Zoë ", "Zoë", "", "id-000001"], _ids("id-", 2000, 5000) + ["Zoë", "id-000001"]),
    (_ids("a-", 0, 500), _ids("b-", 0, 700)),  # nothing in common
    ([], _ids("b-", 0, 10)),  # an empty side: the engine is not asked
    (_ids("a-", 0, 10), []),
], ids=["overlap", "disjoint", "consumer-empty", "provider-empty"])
def test_it_releases_exactly_what_the_relay_psi_releases(consumer, provider, tmp_path: Path) -> None:
    parties = [("consumer", _table(consumer)), ("provider", _table(provider))]

    direct = protocol_run(psi_direct.SPEC, parties, {})
    relay = protocol_run(psi.SPEC, parties, {})

    assert direct.release.public == relay.release.public
    assert direct.release.cohort == relay.release.cohort
    assert direct.release.table is not None and relay.release.table is not None
    assert direct.release.table.columns == relay.release.table.columns
    assert direct.release.table.rows == relay.release.table.rows
    # Through the broker went a rendezvous and a "done": no id of either party, in clear or hex.
    for message in direct.messages:
        for value in {*consumer, *provider} - {""}:
            assert value.encode() not in message and value.encode().hex().encode() not in message
    assert list(tmp_path.iterdir()) == []  # the runs' private directories are deleted


@needs_engine
def test_a_peer_without_the_session_key_is_refused_and_the_real_one_still_gets_through() -> None:
    consumer, provider = _ids("k-", 0, 1000), _ids("k-", 400, 1600)
    rendezvous, run = session.consumer_start([value.encode() for value in consumer])

    for attempt in (os.urandom(32), b""):  # a wrong key; a stranger who sends garbage
        with socket.create_connection((rendezvous.host, rendezvous.port), timeout=5) as stranger:
            if attempt:
                with pytest.raises(LinkRefused, match="did not prove the session key"):
                    handshake_connect(stranger, attempt)
            else:
                stranger.sendall(b"GET / HTTP/1.1\r\n".ljust(44, b"x"))
                assert stranger.recv(100) == b""  # dropped without an answer
    log = wait_for(lambda: (text := (Path(run.workdir) / "party.log").read_text()).count("refused") == 2 and text)
    assert "proved" not in log
    assert not any(name.startswith("engine") for name in os.listdir(run.workdir))  # the engine never started

    session.provider_run(rendezvous, [value.encode() for value in provider])
    assert session.consumer_collect(run, timeout=60) == {value.encode() for value in set(consumer) & set(provider)}


@needs_engine
def test_a_link_whose_key_is_wrong_on_the_listener_side_is_left_by_the_provider(tmp_path: Path) -> None:
    """The provider checks the consumer's proof first: a listener without the key learns nothing of it."""
    impostor = socket.create_server(("127.0.0.1", 0))
    port = impostor.getsockname()[1]
    wrong = session.Rendezvous(host="127.0.0.1", port=port, key=os.urandom(32), count=10)

    def answer() -> None:
        conn, _ = impostor.accept()
        conn.recv(44)
        conn.sendall(os.urandom(64))  # a nonce and a tag made without the key
        conn.recv(32)
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with pytest.raises(session.EngineError, match="did not prove the session key"):
        session.provider_run(wrong, [b"a", b"b"])
    impostor.close()
    assert list(tmp_path.iterdir()) == []


def test_the_relay_stays_the_default_and_the_choice_is_checked() -> None:
    assert psi_direct.psi_transport_params({}) == {}
    assert psi_direct.psi_transport_params({"psi_transport": "relay"}) == {"psi_transport": "relay"}
    with pytest.raises(ValueError, match="psi_transport must be one of"):
        psi_direct.psi_transport_params({"psi_transport": "carrier-pigeon"})
    with pytest.raises(ValueError, match="takes no parameters"):
        psi_direct.psi_transport_params({"epsilon": 1})
    assert psi_direct.SPEC.sold is False and psi_direct.SPEC.roles == psi.SPEC.roles
    assert psi_direct.SPEC.release_to == psi.SPEC.release_to


@needs_engine
@pytest.mark.django_db(transaction=True)
@pytest.mark.chain
def test_a_bought_direct_psi_gives_the_intersection_and_a_revoked_grant_stops_it_before_any_link(
        make_party, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from compute.models import Job
    from tests.conftest import node_runtime
    from tests.marketplace.api_flow import buy_fulfilled, client_for, list_product, quote_chosen, result_rows, upload
    from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

    provider, consumer = make_party("pd-prov", provider=True), make_party("pd-cons", provider=False, balance=10**6)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=1200, consumer=400, overlap=150)
    product = list_product(seller, upload(seller, "customers", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "applicants", consumer_csv(consumer_ids))
    quoted = quote_chosen(buyer, product["id"], mine["id"], "psi", {"psi_transport": "direct"})
    order = buy_fulfilled(buyer, quoted["id"])
    assert order["jobs"][0]["job"]["protocol"] == "psi_direct"
    assert sorted(result_rows(buyer, order["id"]).opened["ids"]) == sorted(set(provider_ids) & set(consumer_ids))

    # Revoked on chain: the consumer's guard (before its first step) stops the job; no listener is opened.
    opened: list[int] = []
    real_start = session.consumer_start
    monkeypatch.setattr(session, "consumer_start", lambda ids, **kw: opened.append(1) or real_start(ids, **kw))
    grant = order["grants"][0]["grant_id"]
    node_runtime(provider.organisation.node.slug).chain.revoke(grant_id=grant)
    assert buyer.post(f"/api/orders/{order['id']}/jobs/").status_code == 201
    last = Job.objects.filter(parties__grant_id=grant).order_by("-created_at").first()
    assert last is not None and last.protocol == "psi_direct"
    failed = wait_for(lambda: Job.objects.filter(id=last.id, status=Job.Status.FAILED).first(), timeout=30)
    assert "revoked" in failed.error and failed.result_table is None
    assert opened == [] and list(tmp_path.iterdir()) == []
