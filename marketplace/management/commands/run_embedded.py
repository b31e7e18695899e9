"""`make run`: the whole marketplace on its embedded default, in one command.

Starts Ganache (state under var/chain) unless a chain already answers, migrates SQLite, deploys the
contracts, creates the demo organisations once, starts the marketplace's Celery worker (with beat) and
one node process per organisation (each with its own home and secret under var/nodes; new organisations'
nodes are started as they register), imports the demo data on the demo nodes and lists the demo products,
and serves http://127.0.0.1:8000. Ctrl-C stops every child it started.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from audit.chain.contracts import contracts_deploy
from audit.chain.devnode import DevChainError, ganache_start, ganache_stop, rpc_ready
from marketplace.embedded_nodes import EmbeddedNodes
from marketplace.services.demo import (
    DEMO_PASSWORD,
    demo_datasets_ready,
    demo_files,
    demo_organisations,
    demo_products,
)

DEMO_IMPORT_TIMEOUT = 120


class Command(BaseCommand):
    help = "Run the marketplace on its embedded default (SQLite, filesystem broker, Ganache, node processes)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-server", action="store_true", help="Set up (demo data included), then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        # Pages tell a newly registered organisation that its node is started here, not to run it itself.
        settings.EMBEDDED_NODES = True
        os.environ["EMBEDDED_NODES"] = "1"
        var = Path(settings.VAR_DIR)
        children: list[subprocess.Popen[bytes]] = []
        nodes = EmbeddedNodes(directory=var / "nodes", log_dir=var)
        chain = None
        stop = threading.Event()
        try:
            if not rpc_ready(settings.CHAIN_RPC_URL):
                port = urlparse(settings.CHAIN_RPC_URL).port or 8545
                self.stdout.write(f"Starting Ganache on 127.0.0.1:{port} (state in {var / 'chain'})")
                try:
                    chain = ganache_start(port=port, db_path=var / "chain", log_path=var / "ganache.log")
                except DevChainError as exc:
                    raise CommandError(str(exc)) from exc
            call_command("migrate", interactive=False, verbosity=0)
            addresses = contracts_deploy()
            self.stdout.write("Contracts: " + ", ".join(f"{k} {v}" for k, v in sorted(addresses.items())))
            logins = demo_organisations()
            worker_log = open(var / "worker.log", "ab")  # noqa: SIM115 - lives as long as the worker
            children.append(subprocess.Popen(  # noqa: S603 - fixed command line
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-Q", "celery",
                 "--concurrency", "2", "--loglevel", "INFO", "-s", str(var / "celerybeat-schedule")],
                stdout=worker_log, stderr=subprocess.STDOUT, env=os.environ.copy(),
            ))
            self.stdout.write(f"Marketplace worker started (log: {var / 'worker.log'})")
            started = nodes.poll()
            self.stdout.write(f"Nodes started: {', '.join(started)} (homes in {var / 'nodes'}, logs in {var})")
            if logins:
                self._demo_data(nodes)
                self.stdout.write("Demo data created. API tokens:")
                for username, _, token in logins:
                    self.stdout.write(f"  {username}: {token}")
            if options["no_server"]:
                return
            threading.Thread(target=self._supervise, args=(nodes, stop), daemon=True).start()
            self.stdout.write("")
            self.stdout.write(f"Marketplace at http://127.0.0.1:{options['port']}/")
            self.stdout.write(f"Demo logins (password {DEMO_PASSWORD}): alice (Acme Data, provider), "
                              "bob (Beta Insights, provider), carol (Co-operative Bank, consumer)")
            self.stdout.write(f"API docs at http://127.0.0.1:{options['port']}/api/docs/", ending="\n")
            self.stdout.flush()
            call_command("runserver", f"127.0.0.1:{options['port']}", use_reloader=False)
        finally:
            stop.set()
            nodes.stop()
            for child in children:
                child.terminate()
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
            if chain is not None:
                ganache_stop(chain)

    def _demo_data(self, nodes: EmbeddedNodes) -> None:
        """Import the demo files on the demo nodes (as their organisations would), then list the products."""
        with tempfile.TemporaryDirectory() as folder:
            for slug, (name, data) in demo_files().items():
                path = Path(folder) / f"{slug}.csv"
                path.write_bytes(data)
                nodes.import_file(slug, path=path, name=name, id_column="customer_id")
        deadline = time.monotonic() + DEMO_IMPORT_TIMEOUT
        while not demo_datasets_ready():
            if time.monotonic() > deadline:
                raise CommandError("The demo nodes did not report their imports in time; see var/node-*.log.")
            time.sleep(0.3)
        demo_products()

    def _supervise(self, nodes: EmbeddedNodes, stop: threading.Event) -> None:
        """Start the nodes of organisations that register meanwhile; restart a node that stopped."""
        while not stop.wait(2):
            try:
                for slug in nodes.poll():
                    self.stdout.write(f"Node {slug} started")
            except Exception as error:  # noqa: BLE001 - keep supervising; say what went wrong
                self.stderr.write(f"node supervision: {error}")
