"""Suite-wide fixtures: a throwaway Ganache chain for the session, Celery in eager mode for unit and
integration tests, a real Celery worker process for end-to-end tests, and demo organisations."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from audit.chain.devnode import free_port, ganache_start, ganache_stop
from config.celery import app as celery_app


@pytest.fixture(scope="session")
def ganache_url() -> Iterator[str]:
    """A fresh Ganache for this test session; settings point at it while it runs."""
    port = free_port()
    log_dir = settings.VAR_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    process = ganache_start(port=port, log_path=log_dir / "ganache-test.log")
    url = f"http://127.0.0.1:{port}"
    previous = settings.CHAIN_RPC_URL
    settings.CHAIN_RPC_URL = url
    try:
        yield url
    finally:
        settings.CHAIN_RPC_URL = previous
        ganache_stop(process)


@pytest.fixture(autouse=True)
def celery_eager(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tasks run inline, except in end-to-end tests, which use a real worker."""
    eager = request.node.get_closest_marker("e2e") is None
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


@pytest.fixture
def celery_worker_process(ganache_url: str) -> Iterator[Callable[[list[str]], subprocess.Popen[bytes]]]:
    """Start a real Celery worker (a separate process) on the test broker for the given node queues.

    It reads the same test database and chain as the test. Use with `django_db(transaction=True)` or
    `live_server`, so that what the test writes is committed and visible to the worker.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(queues: list[str]) -> subprocess.Popen[bytes]:
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
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(["celery", *queues]),
             "--concurrency", "2", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    user, token = member_create(organisation=organisation, username=f"{slug}-user", password="pw-12345-long",
                                role="owner")
    if balance:
        balance_top_up(organisation=organisation, amount=balance)
    return Party(organisation=organisation, user=user, token=token.secret)


@pytest.fixture
def make_party(ganache_url: str) -> Callable[..., Party]:
    """Create an organisation with its node, one owner member with an API token, and a balance."""
    return _make_party
