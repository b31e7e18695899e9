"""The embedded default's stand-in for the organisations: it runs one node process per organisation, as
each organisation would on its own host, with its own home directory and its own secret.

Each node home is ``<nodes dir>/<slug>/`` and its secret ``<nodes dir>/<slug>.secret`` (mode 0600),
generated here once. The marketplace (web process, its settings and database) never reads either; on one
machine under one user the file permissions are the only wall, so a real deployment runs each node on its
organisation's own host (docs/deployment.md). A node registered after start-up (``/register/``) is
enrolled and started by ``poll``.

Each node runs under the runner's `Supervisor`, in a process group of its own: a node that exits is
restarted by the supervisor within the same budget as every other child (and past it the stack stops),
so ``poll`` only starts the nodes of organisations it has not started yet.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from functools import partial
from pathlib import Path

from django.conf import settings

from compute.jobs.identity import marketplace_public_key
from compute.jobs.services import node_enrol_token_issue
from compute.models import Node
from compute.node.worker import ENROL_TOKEN_FILE
from marketplace.supervisor import StopOrder, Supervisor, group_popen

# A node finishes the step in hand on SIGTERM (Celery's warm shutdown); past this it is killed, and the
# broker delivers the step again.
NODE_STOP_TIMEOUT = 10.0


class EmbeddedNodes:
    def __init__(self, *, directory: Path, log_dir: Path, supervisor: Supervisor | None = None) -> None:
        self.directory = Path(directory)
        self.log_dir = Path(log_dir)
        self.supervisor = supervisor if supervisor is not None else Supervisor()

    @staticmethod
    def child_name(slug: str) -> str:
        return f"node {slug}"

    def home(self, slug: str) -> Path:
        return self.directory / slug

    def _secret_file(self, slug: str) -> Path:
        return self.directory / f"{slug}.secret"

    def environment(self, slug: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DATABASE_URL",
                                                                             "KEY_ENCRYPTION_SECRET"}}
        env |= {
            "NODE_SECRET_FILE": str(self._secret_file(slug)),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CHAIN_RPC_URL": settings.CHAIN_RPC_URL,
            "CHAIN_DEPLOYMENTS_DIR": str(settings.CHAIN_DEPLOYMENTS_DIR),
            "CONTRACTS_BUILD_DIR": str(settings.CONTRACTS_BUILD_DIR),
        }
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        if "data_folder_in" in options:
            env["NODE_BROKER_FOLDER"] = options["data_folder_in"]
        return env

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "compute.node", *args]

    def ensure(self, node: Node) -> None:
        """Give an organisation's node its home and keys (once) and start it; a node the marketplace does not
        know as enrolled (a new database) gets a fresh enrolment token."""
        home = self.home(node.slug)
        if (home / "node-keys.json").exists() and node.status == Node.Status.AWAITING:
            token_file = home / ENROL_TOKEN_FILE
            token_file.write_text(node_enrol_token_issue(node=node))
            token_file.chmod(0o600)
        if not (home / "node-keys.json").exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            secret_file = self._secret_file(node.slug)
            if not secret_file.exists():
                secret_file.write_text(secrets.token_urlsafe(32))
                secret_file.chmod(0o600)
            token = node_enrol_token_issue(node=node) if node.status == Node.Status.AWAITING else ""
            subprocess.run(  # noqa: S603 - fixed command line
                self._command("init", "--home", str(home), "--slug", node.slug,
                              "--marketplace-key", marketplace_public_key().hex(), f"--enrol-token={token}"),
                env=self.environment(node.slug), check=True, capture_output=True, cwd=settings.BASE_DIR,
            )
        self.start(node.slug)

    def start(self, slug: str) -> None:
        """Run the node under the supervisor (once: from then on the supervisor restarts it)."""
        name = self.child_name(slug)
        if name in self.supervisor:
            return
        log_path = self.log_dir / f"node-{slug}.log"
        self.supervisor.start(name, partial(self._launch, slug, log_path), stop_order=StopOrder.NODES,
                              stop_timeout=NODE_STOP_TIMEOUT, log_path=log_path)

    def _launch(self, slug: str, log_path: Path) -> subprocess.Popen[bytes]:
        return group_popen(self._command("run", "--home", str(self.home(slug)), "--concurrency", "1"),
                           log_path=log_path, env=self.environment(slug), cwd=Path(settings.BASE_DIR))

    def import_file(self, slug: str, *, path: Path, name: str, id_column: str, profiled: bool = False) -> None:
        """Import a file on the node, as its organisation would from its own host; a provider's with its
        columns' profile (``compute/profile.py``)."""
        subprocess.run(  # noqa: S603 - fixed command line
            self._command("import", "--home", str(self.home(slug)), str(path), "--name", name,
                          "--id-column", id_column, *(["--profile"] if profiled else [])),
            env=self.environment(slug), check=True, capture_output=True, cwd=settings.BASE_DIR,
        )

    def poll(self) -> list[str]:
        """Start the nodes of organisations registered since; returns their slugs. (A node that stopped is
        the supervisor's to restart.)"""
        started = []
        for node in Node.objects.order_by("slug"):
            if self.child_name(node.slug) not in self.supervisor:
                self.ensure(node)
                started.append(node.slug)
        return started
