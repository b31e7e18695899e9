"""What the database benchmarks share: a throwaway PostgreSQL database built from the models with a
throwaway Ganache beside it, and a way to run work in threads that start together."""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class _NoMigrations:
    """Build the throwaway database straight from the models (as pytest --nomigrations does)."""

    def __contains__(self, item: str) -> bool:
        return True

    def __getitem__(self, item: str) -> None:
        return None


@contextmanager
def bench_environment(*, label: str) -> Iterator[str]:
    """A fresh `<db>_bench` database and a fresh Ganache; the caller's settings are restored after."""
    from django.conf import settings
    from django.db import connections
    from django.test.utils import setup_databases, teardown_databases

    from audit.chain.devnode import free_port, ganache_start, ganache_stop
    from config.celery import app as celery_app

    connection = connections["default"]
    if connection.vendor != "postgresql":
        raise RuntimeError(f"the {label} benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    saved = {name: getattr(settings, name) for name in ("MIGRATION_MODULES", "CHAIN_RPC_URL",
                                                          "CHAIN_DEPLOYMENTS_DIR", "DEBUG")}
    saved_eager = celery_app.conf.task_always_eager
    scratch = Path(tempfile.mkdtemp(prefix=f"{label}-bench-"))
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{connection.settings_dict['NAME']}_bench"
    settings.MIGRATION_MODULES = _NoMigrations()
    settings.DEBUG = False  # as in production: no per-query logging cursor
    # The bench chain's contract addresses must not overwrite the caller's deployment record.
    settings.CHAIN_DEPLOYMENTS_DIR = scratch / "deployments"
    # Anchor transactions are sent inline after commit, not through the caller's broker.
    celery_app.conf.task_always_eager = True
    port = free_port()
    ganache = ganache_start(port=port, log_path=scratch / "ganache.log")
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{port}"
    old_config = None
    try:
        print(f"[{label}] creating database {connection.settings_dict['TEST']['NAME']}", flush=True)
        old_config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        yield settings.CHAIN_RPC_URL
    finally:
        connections.close_all()
        if old_config is not None:
            teardown_databases(old_config, verbosity=0)
        ganache_stop(ganache)
        celery_app.conf.task_always_eager = saved_eager
        for name, value in saved.items():
            setattr(settings, name, value)
        shutil.rmtree(scratch, ignore_errors=True)


def run_threads(count: int, work: Callable[[int], None]) -> float:
    """Run `work(i)` in `count` threads that start together; the wall time."""
    from django.db import connection

    barrier = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed
