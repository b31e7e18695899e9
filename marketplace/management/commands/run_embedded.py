"""`make run`: the whole marketplace on its embedded default, in one command.

Starts Ganache (state under var/chain) unless a chain already answers, migrates SQLite, deploys the
contracts, seeds demo data once, starts a Celery worker (with beat) on the filesystem broker for every
node's queue, and serves http://127.0.0.1:8000. Ctrl-C stops the children it started.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from audit.chain.contracts import contracts_deploy
from audit.chain.devnode import DevChainError, ganache_start, ganache_stop, rpc_ready
from compute.models import Node
from marketplace.services.demo import DEMO_PASSWORD, demo_seed


class Command(BaseCommand):
    help = "Run the marketplace on its embedded default (SQLite, filesystem broker, Ganache child process)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-server", action="store_true", help="Set up, then exit (for tests).")

    def handle(self, *args: Any, **options: Any) -> None:
        var = Path(settings.VAR_DIR)
        children: list[subprocess.Popen[bytes]] = []
        chain = None
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
            logins = demo_seed()
            if logins:
                self.stdout.write("Demo data created. API tokens:")
                for username, _, token in logins:
                    self.stdout.write(f"  {username}: {token}")
            if options["no_server"]:
                return
            queues = ",".join(["celery", *(node.queue for node in Node.objects.order_by("slug"))])
            worker_log = open(var / "worker.log", "ab")  # noqa: SIM115 - lives as long as the worker
            children.append(subprocess.Popen(  # noqa: S603 - fixed command line
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-Q", queues,
                 "--concurrency", "2", "--loglevel", "INFO", "-s", str(var / "celerybeat-schedule")],
                stdout=worker_log, stderr=subprocess.STDOUT, env=os.environ.copy(),
            ))
            self.stdout.write(f"Celery worker started for queues {queues} (log: {var / 'worker.log'})")
            self.stdout.write("")
            self.stdout.write(f"Marketplace at http://127.0.0.1:{options['port']}/")
            self.stdout.write(f"Demo logins (password {DEMO_PASSWORD}): alice (Acme Data, provider), "
                              "bob (Beta Insights, provider), carol (Co-operative Bank, consumer)")
            self.stdout.write(f"API docs at http://127.0.0.1:{options['port']}/api/docs/", ending="\n")
            self.stdout.flush()
            call_command("runserver", f"127.0.0.1:{options['port']}", use_reloader=False)
        finally:
            for child in children:
                child.terminate()
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
            if chain is not None:
                ganache_stop(chain)
