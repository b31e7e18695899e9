"""Suite-wide fixtures: a throwaway Ganache chain for the session, Celery in eager mode for unit and
integration tests, a real Celery worker process and real node processes for end-to-end tests, and
organisations whose nodes run in their own homes (outside the marketplace's VAR_DIR) with their own secrets.

In eager mode each organisation's node is a ``NodeRuntime`` in the test process: the same node code (its
keystore, vault, store, signed and sealed messages, its own chain key), without the broker hop."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import translation

import compute.jobs.tasks  # noqa: F401 - registers marketplace.handle (eager mode runs it inline)
import compute.node.tasks  # noqa: F401 - registers node.handle, so that eager mode runs node messages inline
from audit.chain.devnode import free_port, ganache_start, ganache_stop
from config.celery import app as celery_app

NODES_ROOT = Path(tempfile.mkdtemp(prefix="dx-test-nodes-"))  # the organisations' hosts, not the operator's

# Quotes carry differential-privacy noise. Most tests check exact coverage and prices, so by default they
# quote at an ε whose noise is zero but for a chance below 1e-40, with a budget that does not run out;
# tests/marketplace/test_quote_privacy.py quotes at the deployed ε and budget. Processes the suite
# starts (nodes, workers) inherit these.
TEST_QUOTE_EPSILON, TEST_QUOTE_BUDGET = 100.0, 100_000.0
os.environ.setdefault("NODE_QUOTE_EPSILON_MAX", str(TEST_QUOTE_EPSILON))
os.environ.setdefault("QUOTE_EPSILON", str(TEST_QUOTE_EPSILON))
os.environ.setdefault("QUOTE_BUDGET_EPSILON", str(TEST_QUOTE_BUDGET))


@pytest.fixture(scope="session")
def ganache_url() -> Iterator[str]:
    """A fresh Ganache for this test session (or Anvil, with TEST_CHAIN=anvil: `make test` runs the chain
    modules on both); settings point at it while it runs."""
    port = free_port()
    log_dir = settings.VAR_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    kind = os.environ.get("TEST_CHAIN", "ganache")
    process = ganache_start(port=port, log_path=log_dir / f"{kind}-test.log", kind=kind)
    url = f"http://127.0.0.1:{port}"
    previous = settings.CHAIN_RPC_URL
    settings.CHAIN_RPC_URL = url
    try:
        yield url
    finally:
        settings.CHAIN_RPC_URL = previous
        ganache_stop(process)


@pytest.fixture(autouse=True)
def default_language() -> Iterator[None]:
    """Each test starts in the deployment's default language: a request in another language (a client's
    Accept-Language) leaves it active in the thread, where code run outside a request would pick it up."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def celery_eager(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tasks run inline, except in end-to-end tests, which use a real worker (and poll the API while the
    processes work, so the per-token rate limits are lifted for them)."""
    eager = request.node.get_closest_marker("e2e") is None
    test_settings = request.getfixturevalue("settings")
    test_settings.QUOTE_EPSILON, test_settings.QUOTE_BUDGET_EPSILON = TEST_QUOTE_EPSILON, TEST_QUOTE_BUDGET
    if not eager:
        request.getfixturevalue("settings").API_RATE_READ = None
        request.getfixturevalue("settings").API_RATE_WRITE = None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def node_home(slug: str) -> Path:
    return NODES_ROOT / slug


def node_secret(slug: str) -> str:
    """Each test node's own secret, kept beside its home (the organisation's host), never in settings."""
    path = NODES_ROOT / f"{slug}.secret"
    if not path.exists():
        NODES_ROOT.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text()


def node_environment(slug: str, ganache_url: str) -> dict[str, str]:
    """What a node process gets: its secret, the broker and the chain; nothing of the marketplace's."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "KEY_ENCRYPTION_SECRET"}}
    return env | {
        "NODE_SECRET": node_secret(slug),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CHAIN_RPC_URL": ganache_url,
        "CHAIN_DEPLOYMENTS_DIR": str(settings.CHAIN_DEPLOYMENTS_DIR),
        "CONTRACTS_BUILD_DIR": str(settings.CONTRACTS_BUILD_DIR),
        "NODE_HEARTBEAT_SECONDS": "5",
    }


def node_runtime_start(organisation: Any, *, enrol_token: str = "") -> Any:
    """Give an organisation's node its home and keys (generated here, as on its own host), serve it in
    this process and enrol it with the marketplace; returns its NodeRuntime."""
    from compute.jobs.identity import marketplace_public_key
    from compute.jobs.services import node_enrol_token_issue
    from compute.node.keys import keystore_create, keystore_open
    from compute.node.runtime import NodeRuntime
    from compute.node.tasks import runtime_register

    node = organisation.node
    home, secret = node_home(node.slug), node_secret(node.slug)
    if (home / "node-keys.json").exists():
        keys = keystore_open(home=home, secret=secret)
    else:
        keys = keystore_create(home=home, slug=node.slug, secret=secret, marketplace_public=marketplace_public_key())
    runtime = NodeRuntime(home=home, keys=keys)
    runtime_register(runtime)
    if node.status == node.Status.AWAITING:
        runtime.hello(enrol_token=enrol_token or node_enrol_token_issue(node=node))
        node.refresh_from_db()
    return runtime


def node_runtime(slug: str) -> Any:
    """The in-process runtime of an organisation's node (eager mode): the test acts as the organisation."""
    from compute.node.tasks import runtime_for

    runtime = runtime_for({"recipient": slug})
    assert runtime is not None, f"node {slug} does not run in this process"
    return runtime


@pytest.fixture
def celery_worker_process(ganache_url: str) -> Iterator[Callable[[list[str]], subprocess.Popen[bytes]]]:
    """Start the marketplace's real Celery worker (a separate process) on the test broker and, for each
    given node queue (`node.<slug>`), that organisation's node as its own process (`python -m compute.node
    run`, with its own home and secret, no database); waits until every node has enrolled.

    The worker reads the same test database and chain as the test. Use with `django_db(transaction=True)`
    or `live_server`, so that what the test writes is committed and visible to the worker.
    """
    from audit.chain.contracts import contracts_deploy
    from compute.models import Node

    started: list[subprocess.Popen[bytes]] = []

    def start(queues: list[str]) -> subprocess.Popen[bytes]:
        contracts_deploy()  # as the operator does before nodes join: a node never deploys
        if settings.CELERY_BROKER_URL.startswith("redis://"):
            import redis

            redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # the suite's own broker database
        env = os.environ | {
            "DATABASE_URL": _database_url(),
            "CHAIN_RPC_URL": ganache_url,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "VAR_DIR": str(settings.VAR_DIR),
        }
        log = open(Path(settings.VAR_DIR) / "worker-test.log", "ab")  # noqa: SIM115
        process = worker_start(env, log, queue="celery", concurrency=2)
        # Chain writes have their own worker, as in every deployment: a slow chain never holds node relays.
        start.chain_worker = worker_start(env, log, queue=settings.CHAIN_QUEUE, concurrency=1)  # type: ignore[attr-defined]
        slugs = [queue.removeprefix("node.") for queue in queues if queue.startswith("node.")]
        for slug in slugs:
            start_node(slug)
        wait_for(lambda: Node.objects.filter(slug__in=slugs, status=Node.Status.ENROLLED).count() == len(slugs),
                 timeout=60)
        return process

    def worker_start(env: dict[str, str], log: Any, *, queue: str, concurrency: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-n", f"{queue}@%h",
             "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
        )
        started.append(process)
        return process

    def start_node(slug: str) -> subprocess.Popen[bytes]:
        """(Re)start one organisation's node process (its home and secret are kept between starts)."""
        node = node_process_start(Node.objects.get(slug=slug), ganache_url)
        started.append(node)
        start.nodes[slug] = node  # type: ignore[attr-defined]
        return node

    start.nodes = {}  # type: ignore[attr-defined]
    start.start_node = start_node  # type: ignore[attr-defined]
    yield start
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def node_process_start(node: Any, ganache_url: str, *, concurrency: int = 2) -> subprocess.Popen[bytes]:
    """Init (once) and run an organisation's node as its own process, as the organisation would."""
    from compute.jobs.identity import marketplace_public_key
    from compute.jobs.services import node_enrol_token_issue

    home = node_home(node.slug)
    env = node_environment(node.slug, ganache_url)
    if not (home / "node-keys.json").exists():
        token = node_enrol_token_issue(node=node) if node.status == node.Status.AWAITING else ""
        subprocess.run(
            [sys.executable, "-m", "compute.node", "init", "--home", str(home), "--slug", node.slug,
             "--marketplace-key", marketplace_public_key().hex(), f"--enrol-token={token}"],
            env=env, cwd=settings.BASE_DIR, check=True, capture_output=True, timeout=60,
        )
    log = open(Path(settings.VAR_DIR) / f"node-{node.slug}-test.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "compute.node", "run", "--home", str(home), "--concurrency", str(concurrency)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
    )


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.0f}s")


@dataclass
class Party:
    organisation: Any
    user: Any
    token: str


def _make_party(slug: str, *, provider: bool, balance: int = 0) -> Party:
    from marketplace.services.ledger import balance_top_up
    from marketplace.services.organisations import member_create, organisation_create

    organisation = organisation_create(slug=slug, name=slug.title(), is_provider=provider, is_consumer=not provider)
    if celery_app.conf.task_always_eager:
        node_runtime_start(organisation)
        organisation.refresh_from_db()
    user, token = member_create(organisation=organisation, username=f"{slug}-user", password="pw-12345-long",
                                role="owner")
    if balance:
        balance_top_up(organisation=organisation, amount=balance)
    return Party(organisation=organisation, user=user, token=token.secret)


@pytest.fixture
def make_party(ganache_url: str) -> Callable[..., Party]:
    """Create an organisation with its node, one owner member with an API token, and a balance."""
    return _make_party


def dataset_on_node(*, organisation: Any, name: str, data: bytes, id_column: str = "customer_id",
                    actor: str = "test", description: str = "") -> Any:
    """Import ``data`` as its owner does: sealed to the organisation's node key, relayed by the marketplace,
    imported by the node (in this process, eager mode); returns the Dataset."""
    from django.test import TestCase

    from compute.crypto.sealing import seal
    from marketplace.models import Dataset
    from marketplace.services.catalog import dataset_import

    sealed = seal(data, recipient_public=bytes.fromhex(organisation.node.sealing_public_key))
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = dataset_import(organisation=organisation, name=name, sealed_file=sealed, id_column=id_column,
                                 description=description, actor=actor)
    return Dataset.objects.get(id=request.id)
