"""Catalog API benchmark: `/api/products/?limit=20` and one product's detail under gunicorn (2 workers,
DEBUG off) on 127.0.0.1, loaded from a second process by locust (headless, bounded run time).

Runs on the PostgreSQL server of DATABASE_URL, in a dedicated database `<name>_catalog_bench` that is
created, migrated, seeded with products through the real services (organisations, nodes, dataset
imports, product listings, a tenth of them joint products of two providers), and dropped afterwards.
The baseline, measured in the same run against the same server: the same catalog URL without a token,
answered 401 by the same middleware and DRF stack without any database query. The database queries per
request are counted in-process (Django test client) against the same database.

`python -m bench.catalog seed` is the seeding step, run in a subprocess with the bench environment.
"""
from __future__ import annotations

import csv
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

COMMAND = ("BENCH_ONLY=catalog make bench   # or: DATABASE_URL=postgres://postgres@127.0.0.1:5432/dataxchange "
           "BENCH_ONLY=catalog .venv/bin/python -m bench")
PRODUCTS = 200
USERS = 8  # concurrent locust users: enough to keep both workers busy, few enough to show queueing
WORKERS = 2
# The project's settings (one database connection per request), then the same with persistent connections.
CONFIGS = [("per-request connections", "config.settings"), ("persistent connections", "bench.catalog_settings")]
ROOT = Path(__file__).resolve().parent.parent


def _log(message: str) -> None:
    print(f"[catalog] {message}", flush=True)


def _server_url(settings_dict: dict[str, Any], name: str) -> str:
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    return f"postgres://{user}{password}@{host}:{settings_dict.get('PORT') or 5432}/{name}"


def _admin_execute(settings_dict: dict[str, Any], statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(
        dbname="postgres", user=settings_dict.get("USER") or "postgres", password=settings_dict.get("PASSWORD"),
        host=settings_dict.get("HOST") or "127.0.0.1", port=settings_dict.get("PORT") or 5432,
    )
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _bench_env(database_url: str, var_dir: Path) -> dict[str, str]:
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),  # production settings refuse the public embedded key
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on 127.0.0.1; every other production setting stays on
        "LOG_LEVEL": "ERROR",
        # One token drives the whole load: a per-token limit of 120/min would answer 429 after two seconds.
        "API_RATE_READ": "",
        "CELERY_BROKER_URL": "memory://",  # requests to nodes are queued here; no node runs for a read bench
        "CHAIN_DEV_FUNDING": "0",
        "PYTHONUNBUFFERED": "1",
    }


def _wait_ready(url: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - our own 127.0.0.1 server
            return
        except urllib.error.HTTPError:
            return  # it answers (401 without a token)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {url} within {timeout:.0f}s")


def _locust(*, host: str, path: str, token: str, expect: int, run_time: str, scratch: Path, label: str) -> dict:
    """One bounded headless locust run from its own process; its aggregated statistics."""
    prefix = scratch / f"locust-{label}"
    env = os.environ | {"BENCH_PATH": path, "BENCH_TOKEN": token, "BENCH_EXPECT_STATUS": str(expect)}
    command = [sys.executable, "-m", "locust", "--headless", "-u", str(USERS), "-r", str(USERS),
               "--run-time", run_time, "--stop-timeout", "5", "--host", host,
               "-f", str(ROOT / "bench" / "catalog_locustfile.py"), "--csv", str(prefix), "--only-summary",
               "--loglevel", "WARNING"]
    _log(f"locust {label}: {USERS} users on {path} for {run_time}")
    subprocess.run(command, env=env, cwd=ROOT, check=True, timeout=300, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    stats = {
        "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]), "p50": float(row["50%"]), "p99": float(row["99%"]),
        "mean": float(row["Average Response Time"]),
    }
    _log(f"  {stats['rps']:,.0f} req/s, p50 {stats['p50']:.0f} ms, p99 {stats['p99']:.0f} ms, "
         f"{stats['failures']} errors of {stats['requests']:,}")
    return stats


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # gunicorn's arbiter stops its workers
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run() -> str:
    """Run the catalog benchmark; return its markdown section."""
    import django

    django.setup()
    from django.db import connection

    from audit.chain.devnode import free_port

    if connection.vendor != "postgresql":
        raise RuntimeError("the catalog benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    quick = os.environ.get("BENCH_QUICK") == "1"
    run_time = "5s" if quick else "20s"
    settings_dict = connection.settings_dict
    name = f"{settings_dict['NAME']}_catalog_bench"
    database_url = _server_url(settings_dict, name)
    scratch = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    env = _bench_env(database_url, scratch / "var")
    server: subprocess.Popen[bytes] | None = None
    created = False
    try:
        _log(f"creating and migrating database {name}")
        _admin_execute(settings_dict, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin_execute(settings_dict, f'CREATE DATABASE "{name}"')
        created = True
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], env=env, cwd=ROOT,
                       check=True, timeout=300)
        _log(f"seeding {PRODUCTS} products through the services")
        seeded = subprocess.run([sys.executable, "-m", "bench.catalog", "seed"], env=env, cwd=ROOT, check=True,
                                timeout=600, capture_output=True, text=True)
        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        _log(f"  seeded in {seed['seconds']:.1f} s; queries per request: {seed['queries']}")

        runs: dict[str, dict] = {}
        for config, settings_module in CONFIGS:
            port = free_port()
            host = f"http://127.0.0.1:{port}"
            log = open(scratch / f"gunicorn-{config}.log", "wb")  # noqa: SIM115 - removed with the scratch dir
            _log(f"starting gunicorn ({config}): {WORKERS} sync workers on {host}, DEBUG off")
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--workers", str(WORKERS),
                 "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
                env=env | {"DJANGO_SETTINGS_MODULE": settings_module}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
            paths = {"list": "/api/products/?limit=20", "detail": f"/api/products/{seed['product']}/"}
            _wait_ready(host + paths["list"])
            for path in paths.values():  # warm every worker: imports, URL resolver, connections
                for _ in range(4 * WORKERS):
                    request = urllib.request.Request(  # noqa: S310 - our own 127.0.0.1 server
                        host + path, headers={"Authorization": f"Token {seed['token']}"})
                    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1
                        assert response.status == 200, path
            if not runs:
                runs["baseline"] = _locust(host=host, path=paths["list"], token="", expect=401, run_time=run_time,
                                           scratch=scratch, label="baseline")
            for kind, path in paths.items():
                runs[f"{kind}-{config}"] = _locust(host=host, path=path, token=seed["token"], expect=200,
                                                   run_time=run_time, scratch=scratch, label=f"{kind}-{config}")
            _log("stopping gunicorn")
            _stop(server)
            log.close()
            server = None
    finally:
        if server is not None:
            _stop(server)
        if created:
            _log(f"dropping database {name}")
            _admin_execute(settings_dict, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)
    return _section(runs=runs, seed=seed, run_time=run_time)


def _section(*, runs: dict[str, dict], seed: dict, run_time: str) -> str:
    def verdict(stats: dict) -> str:
        ok = stats["rps"] >= 500 and stats["p99"] < 50 and stats["failures"] == 0
        return "meets" if ok else "misses"

    base = runs["baseline"]["rps"]
    rows = [("`GET /api/products/` without a token (baseline: 401, no query)", runs["baseline"], 0)]
    for config, _ in CONFIGS:
        rows += [
            (f"`GET /api/products/?limit=20` (catalog list), {config}", runs[f"list-{config}"],
             seed["queries"]["list"]),
            (f"`GET /api/products/<id>/` (product detail), {config}", runs[f"detail-{config}"],
             seed["queries"]["detail"]),
        ]
    lines = [
        "## Catalog API under gunicorn",
        "",
        f"`{COMMAND}`",
        "",
        f"gunicorn with {WORKERS} sync workers on 127.0.0.1, DEBUG off, against a dedicated PostgreSQL "
        f"database seeded with {PRODUCTS} published products through the services (a tenth of them joint "
        f"products of two providers); locust headless from a second process, {USERS} users without pause, "
        f"{run_time} per row, one API token (per-token rate limit off for the run). The load generator shares "
        f"the machine's {os.cpu_count()} cores with the server. Goal: ≥ 500 requests/s and p99 < 50 ms.",
        "",
        "| request | DB queries | requests/s | vs baseline | p50 ms | p99 ms | errors | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, stats, queries in rows:
        ratio = f"{stats['rps'] / base:.2f}×" if base else "—"
        lines.append(f"| {label} | {queries} | {stats['rps']:,.0f} | {ratio} | {stats['p50']:.0f} | "
                     f"{stats['p99']:.0f} | {stats['failures']} of {stats['requests']:,} | "
                     f"{'—' if queries == 0 else verdict(stats)} |")
    lines += [
        "",
        "DB queries per request are counted in-process with the Django test client on the same database "
        "(token authentication included); uncached, the list's count stays the same whatever the page size "
        "(asserted in tests/marketplace/test_catalog.py). With the default `CATALOG_CACHE_SECONDS=5`, catalog "
        "pages and published products are served from the cache (the one query left is the token lookup; a "
        "miss costs 4 queries for the list and 6 for a product), and any product change retires the cached "
        "copies (tests/marketplace/test_catalog_cache.py). *Per-request connections* is config/settings.py as "
        "it stands (`conn_max_age=0`: each request opens a PostgreSQL connection); *persistent connections* "
        "is bench/catalog_settings.py, the same settings with `CONN_MAX_AGE=60` and health checks.",
    ]
    return "\n".join(lines) + "\n"


def seed() -> dict[str, Any]:
    """Fill the bench database through the services; the reader's token, a product id, query counts."""
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from eth_account import Account

    from compute.models import Node, StoredTable
    from compute.node.tables import table_meta
    from compute.tabular import table_parse
    from marketplace.models import Dataset, Product
    from marketplace.services.catalog import (
        product_contribute,
        product_contribution_decide,
        product_create,
        product_transition,
    )
    from marketplace.services.organisations import member_create, organisation_create

    started = time.perf_counter()
    rng = random.Random(2026)  # noqa: S311 - reproducible bench data, not security
    providers = [organisation_create(slug=f"bench-{name}", name=f"Bench {name.title()}", is_provider=True,
                                     is_consumer=False) for name in ("acme", "beta", "gamma", "delta")]
    for organisation in providers:
        # Enrolled as a node would enrol (public keys, chain address); no node process runs for a read bench.
        Node.objects.filter(pk=organisation.node_id).update(
            status=Node.Status.ENROLLED, sealing_public_key=secrets.token_hex(32),
            signing_public_key=secrets.token_hex(32), chain_address=Account.create().address)
        organisation.node.refresh_from_db()
    datasets = {}
    for organisation in providers:
        rows = "\n".join(f"{organisation.slug}-{n},{rng.choice(['north', 'south'])},{rng.randint(0, 9)}"
                         for n in range(500))
        # The catalog is read only: the metadata a node would report is written directly (no node runs here).
        name = f"{organisation.name} customers"
        meta = table_meta(table_parse(f"customer_id,region,score\n{rows}\n".encode(), id_column="customer_id"),
                          table_id=str(uuid.uuid4()), name=name)
        table = StoredTable.objects.create(node=organisation.node, **meta)
        datasets[organisation.slug] = Dataset.objects.create(id=table.id, organisation=organisation, table=table,
                                                             name=name)
    reader = organisation_create(slug="bench-reader", name="Bench Reader", is_provider=False, is_consumer=True)
    _, issued = member_create(organisation=reader, username="bench-reader", role="owner",
                              password=secrets.token_urlsafe(16))
    token = issued.secret
    categories = list(Product.Category.values)
    tags = ["customers", "weekly", "payments", "churn", "stores", "traffic", "risk", "geo", "daily", "panel"]
    for n in range(PRODUCTS):
        lead = providers[n % len(providers)]
        joint = n % 10 == 0
        product = product_create(
            provider=lead, dataset_ids=[str(datasets[lead.slug].id)], title=f"Bench product {n:03d}",
            description=f"Synthetic catalog entry {n} for the load benchmark.", purposes=["risk_control"],
            category=categories[n % len(categories)], tags=rng.sample(tags, 3),
            base_price=rng.randint(100, 100_000), price_per_match=rng.randint(1, 50), quota=5,
            validity_days=30, publish=not joint, actor="bench")
        if joint:
            partner = providers[(n + 1) % len(providers)]
            proposed = product_contribute(product=product, organisation=partner,
                                          dataset_id=str(datasets[partner.slug].id), actor="bench")
            product_contribution_decide(product=product, organisation=lead, contribution_id=proposed.id,
                                        accept=True, actor="bench")
            product_transition(product=product, organisation=lead, status=Product.Status.PUBLISHED, actor="bench")
    seconds = time.perf_counter() - started
    product = Product.objects.filter(status=Product.Status.PUBLISHED).order_by("title")[0]
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    queries = {}
    for label, path in (("list", "/api/products/?limit=20"), ("detail", f"/api/products/{product.id}/")):
        client.get(path)  # the first use of the token writes last_used_at; count a steady-state request
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        assert response.status_code == 200, response.content[:500]
        queries[label] = len(captured)
    return {"token": token, "product": str(product.id), "queries": queries, "seconds": seconds}


if __name__ == "__main__":
    if sys.argv[1:] != ["seed"]:
        sys.exit("usage: python -m bench.catalog seed   (run by bench/catalog.py in the bench environment)")
    print(json.dumps(seed()))
