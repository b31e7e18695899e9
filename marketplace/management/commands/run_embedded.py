"""`make run`: the whole marketplace on its embedded default, in one command.

Starts Ganache (state under var/chain), migrates SQLite, deploys the contracts, creates the demo
organisations once, starts the marketplace's Celery workers (queue `celery`, and `chain` for chain writes,
so a slow chain never holds the slots of other work), Celery beat, and one node process per organisation
(each with its own home and secret under var/nodes; new organisations' nodes are started as they
register), imports the demo data on the demo nodes and lists the demo products, and serves
http://127.0.0.1:8000.

Every child runs in a process group of its own under a `Supervisor` (marketplace/supervisor.py):

- SIGINT (Ctrl-C) and SIGTERM stop the web server, then the workers, beat, the nodes and Ganache last,
  each within a bounded time, and the command exits.
- A child that exits is restarted, at most 5 times within 60 s; past that the whole stack stops with a
  message naming the child and its log, and the command exits non-zero.
- The children are recorded in var/embedded.pids and the Ganache in var/chain.pid (pid, port, start time),
  so a run that was killed outright (`kill -9`) leaves a trace for the next one.

A chain left over from an earlier run, the rule: the next run stops what that run recorded and left
running, except a Ganache recorded in chain.pid that still answers at CHAIN_RPC_URL's port, which it
adopts (it says so, with the pid) and stops at exit like its own. A chain that answers at CHAIN_RPC_URL
and was not recorded is used, and left running, only if its chain id and contracts match var/deployments
(what `contracts_deploy` recorded); anything else is refused, with one line and a non-zero exit, rather
than deploying onto a chain that may be someone else's.
"""
from __future__ import annotations

import _thread
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import WSGIServer

from audit.chain.contracts import contracts_deploy, deployment_path
from audit.chain.devnode import DevChainError, chain_matches_deployment, ganache_start, rpc_ready
from marketplace.embedded_nodes import EmbeddedNodes
from marketplace.services.demo import (
    DEMO_ORGANISATIONS,
    DEMO_PASSWORD,
    demo_datasets_ready,
    demo_files,
    demo_organisations,
    demo_products,
)
from marketplace.supervisor import (
    StackFailure,
    StackStopping,
    StopOrder,
    StopSignals,
    Supervisor,
    group_popen,
    leftovers,
    leftovers_stop,
    record_write,
)

DEMO_IMPORT_TIMEOUT = 120
CHILDREN_RECORD = "embedded.pids"
CHAIN_RECORD = "chain.pid"
# Warm shutdown lets a worker finish its task in hand; past this it is killed and the broker delivers
# the task again (every task is acknowledged late and idempotent).
WORKER_STOP_TIMEOUT = 10.0
BEAT_STOP_TIMEOUT = 5.0
CHAIN_STOP_TIMEOUT = 10.0
SUPERVISION_PERIOD = 1.0
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


class Command(BaseCommand):
    help = "Run the marketplace on its embedded default (SQLite, filesystem broker, Ganache, node processes)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-server", action="store_true", help="Set up (demo data included), then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        signals = StopSignals()
        signals.install()
        # Pages tell a newly registered organisation that its node is started here, not to run it itself.
        settings.EMBEDDED_NODES = True
        os.environ["EMBEDDED_NODES"] = "1"
        var = Path(settings.VAR_DIR)
        if not options["no_server"]:
            self._port_check(options["port"])
        supervisor = Supervisor(record_path=var / CHILDREN_RECORD, say=self._say, hold=signals.held)
        nodes = EmbeddedNodes(directory=var / "nodes", log_dir=var, supervisor=supervisor)
        stop = threading.Event()
        watcher = threading.Thread(target=self._supervise, args=(supervisor, nodes, stop), daemon=True,
                                   name="supervisor")
        try:
            self._chain_take(supervisor, var)
            call_command("migrate", interactive=False, verbosity=0)
            addresses = contracts_deploy()
            self._say("Contracts: " + ", ".join(f"{k} {v}" for k, v in sorted(addresses.items())))
            logins = demo_organisations()
            self._workers_start(supervisor, var)
            started = nodes.poll()
            self._say(f"Nodes started: {', '.join(started)} (homes in {var / 'nodes'}, logs in {var})")
            watcher.start()
            if logins:
                self._demo_data(nodes)
                self._say("Demo data created. API tokens:")
                for username, _, token in logins:
                    self._say(f"  {username}: {token}")
            if options["no_server"]:
                return
            self._say("")
            self._say(f"Marketplace at http://127.0.0.1:{options['port']}/")
            self._say(f"Demo logins (password {DEMO_PASSWORD}): alice (Acme Data, provider), "
                      "bob (Beta Insights, provider), carol (Co-operative Bank, consumer), olivia (operator), "
                      "dave (auditor)")
            self._say(f"API docs at http://127.0.0.1:{options['port']}/api/docs/")
            # The development server listens with a backlog of 5; a burst of buyers would be reset.
            WSGIServer.request_queue_size = 128
            call_command("runserver", f"127.0.0.1:{options['port']}", use_reloader=False)
        except KeyboardInterrupt:
            pass
        except SystemExit as exit_:
            # runserver answers KeyboardInterrupt with sys.exit(0); anything else is a real exit.
            if exit_.code:
                raise
        finally:
            signals.ignore()
            stop.set()
            if supervisor.failure is None and signals.received is not None:
                self._say(f"{signal.Signals(signals.received).name}: stopping the stack")
            stopped = supervisor.stop()
            if watcher.is_alive():
                watcher.join(timeout=5)
            if stopped:
                self._say(f"Stopped: {', '.join(stopped)}")
        if supervisor.failure:
            raise CommandError(supervisor.failure)

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _port_check(self, port: int) -> None:
        """runserver ends the process with os._exit when its port is taken, which would leave every child
        running: find out before starting any."""
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                raise CommandError(f"Port {port} is not free ({error.strerror}): stop what uses it or pass "
                                   "--port.") from None

    def _chain_take(self, supervisor: Supervisor, var: Path) -> None:
        """Adopt, use, refuse or start the chain, by the rule in the module docstring."""
        url = settings.CHAIN_RPC_URL
        parsed = urlparse(url)
        port = parsed.port or 8545
        record = var / CHAIN_RECORD
        adopted = None
        for entry, process in leftovers(record):
            if parsed.hostname in LOCAL_HOSTS and entry.get("port") == port and rpc_ready(url):
                adopted = process
        keep = {adopted.pid} if adopted is not None else set()
        stopped = leftovers_stop(var / CHILDREN_RECORD, keep=keep) + leftovers_stop(record, keep=keep)
        if stopped:
            self._say(f"Stopped what an earlier run left running: {', '.join(stopped)}")

        def launch() -> subprocess.Popen[bytes]:
            process = ganache_start(port=port, db_path=var / "chain", log_path=var / "ganache.log")
            record_write(record, {"pid": process.pid, "port": port})
            return process

        forget = partial(record.unlink, missing_ok=True)
        if adopted is not None:
            self._say(f"Adopted the Ganache an earlier run left running: pid {adopted.pid} on port {port}; "
                      "it is stopped with this stack")
            supervisor.start("Ganache", launch, stop_order=StopOrder.CHAIN, stop_timeout=CHAIN_STOP_TIMEOUT,
                             log_path=var / "ganache.log", running=adopted, on_stopped=forget)
        elif rpc_ready(url):
            if not chain_matches_deployment():
                raise CommandError(
                    f"A chain this runner did not start answers at {url}, and its chain id and contracts do not "
                    f"match {settings.CHAIN_DEPLOYMENTS_DIR}: stop it, or set CHAIN_RPC_URL to a free port.")
            self._say(f"Using the chain that already answers at {url}: not started here, but its chain id and "
                      f"contracts match {deployment_path()}; it is left running at exit")
        else:
            self._say(f"Starting Ganache on 127.0.0.1:{port} (state in {var / 'chain'})")
            try:
                supervisor.start("Ganache", launch, stop_order=StopOrder.CHAIN, stop_timeout=CHAIN_STOP_TIMEOUT,
                                 log_path=var / "ganache.log", on_stopped=forget)
            except DevChainError as exc:
                raise CommandError(str(exc)) from exc

    def _workers_start(self, supervisor: Supervisor, var: Path) -> None:
        """The marketplace's workers, one per queue, and beat as a process of its own (inside a worker it
        outlived a killed worker as an orphan)."""
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        base = Path(settings.BASE_DIR)
        for queue, concurrency in ((settings.CELERY_TASK_DEFAULT_QUEUE, 2), (settings.CHAIN_QUEUE, 1)):
            log_path = var / f"worker-{queue}.log"
            command = [*celery, "worker", "-Q", queue, "--concurrency", str(concurrency),
                       "--hostname", f"{queue}@%h", "--loglevel", "INFO"]
            supervisor.start(f"worker {queue}", partial(group_popen, command, log_path=log_path, cwd=base),
                             stop_order=StopOrder.WORKERS, stop_timeout=WORKER_STOP_TIMEOUT, log_path=log_path)
        log_path = var / "beat.log"
        command = [*celery, "beat", "-s", str(var / "celerybeat-schedule"), "--loglevel", "INFO"]
        supervisor.start("beat", partial(group_popen, command, log_path=log_path, cwd=base),
                         stop_order=StopOrder.BEAT, stop_timeout=BEAT_STOP_TIMEOUT, log_path=log_path)
        self._say(f"Workers (queues {settings.CELERY_TASK_DEFAULT_QUEUE}, {settings.CHAIN_QUEUE}) and beat "
                  f"started (logs: {var}/worker-*.log, {log_path})")

    def _demo_data(self, nodes: EmbeddedNodes) -> None:
        """Import the demo files on the demo nodes (as their organisations would), then list the products."""
        with tempfile.TemporaryDirectory() as folder:
            providers = {slug for slug, _, provider, _ in DEMO_ORGANISATIONS if provider}
            for slug, (name, data) in demo_files().items():
                path = Path(folder) / f"{slug}.csv"
                path.write_bytes(data)
                nodes.import_file(slug, path=path, name=name, id_column="customer_id", profiled=slug in providers)
        deadline = time.monotonic() + DEMO_IMPORT_TIMEOUT
        while not demo_datasets_ready():
            if time.monotonic() > deadline:
                raise CommandError("The demo nodes did not report their imports in time; see var/node-*.log.")
            time.sleep(0.3)
        demo_products()

    def _supervise(self, supervisor: Supervisor, nodes: EmbeddedNodes, stop: threading.Event) -> None:
        """Restart children that exited; start the nodes of organisations that register meanwhile. When a
        child is past its restart budget, interrupt the main thread, which stops the stack."""
        while not stop.wait(SUPERVISION_PERIOD):
            try:
                supervisor.check()
            except StackFailure as failure:
                self.stderr.write(str(failure))
                _thread.interrupt_main(signal.SIGTERM)
                return
            try:
                for slug in nodes.poll():
                    self._say(f"Node {slug} started")
            except StackStopping:
                return
            except Exception as error:  # noqa: BLE001 - keep supervising; say what went wrong
                self.stderr.write(f"node supervision: {error}")
