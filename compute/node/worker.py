"""Starting a node: its settings, keys, runtime and Celery worker on ``node.<slug>`` (no inbound port:
the node only connects out, to the broker and the chain RPC)."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import django
from celery import Celery

from compute.broker_fs import TRANSPORT as FILESYSTEM_TRANSPORT
from compute.messages import node_queue
from compute.node.keys import NodeKeys, keystore_open, node_secret_from_env
from compute.node.runtime import MESSAGE_MAX_AGE_SECONDS, NodeRuntime

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = float(os.environ.get("NODE_HEARTBEAT_SECONDS", "20"))
ENROL_TOKEN_FILE = "enrol-token"  # noqa: S105 - a file name


def django_setup() -> None:
    """Configure Django with the node's own settings (chain client only, no database)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "compute.node.settings"
    django.setup()


def broker_options(broker_url: str) -> dict[str, Any]:
    """Transport options: kombu's filesystem broker needs the shared folder (NODE_BROKER_FOLDER); other
    brokers deliver a message taken by a node that died again after BROKER_VISIBILITY_TIMEOUT seconds."""
    if not broker_url.startswith("filesystem://"):
        return {"visibility_timeout": int(os.environ.get("BROKER_VISIBILITY_TIMEOUT", "300"))}
    folder = os.environ.get("NODE_BROKER_FOLDER", "")
    if not folder:
        raise SystemExit("node: a filesystem:// broker needs NODE_BROKER_FOLDER (the broker's shared folder).")
    return {"data_folder_in": folder, "data_folder_out": folder, "store_processed": False,
            "control_folder": str(Path(folder) / "control"),
            "polling_interval": float(os.environ.get("BROKER_POLL_SECONDS", "0.02"))}


def node_app(*, broker_url: str, queue: str) -> Celery:
    app = Celery("node", broker=broker_url, set_as_current=True)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker_options(broker_url),
        broker_transport=FILESYSTEM_TRANSPORT if broker_url.startswith("filesystem://") else None,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    import compute.node.tasks  # noqa: F401 - registers node.handle with this app

    return app


def result_keys_from_env() -> frozenset[str] | None:
    """NODE_RESULT_KEYS: comma-separated X25519 public keys (hex) that results may be sealed to."""
    listed = [key.strip().lower() for key in os.environ.get("NODE_RESULT_KEYS", "").split(",") if key.strip()]
    for key in listed:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise SystemExit(f"node: NODE_RESULT_KEYS holds {key!r}, which is not a 64-hex-digit public key.")
    return frozenset(listed) if listed else None


def node_open(home: Path) -> NodeKeys:
    return keystore_open(home=home, secret=node_secret_from_env())


def _heartbeat(runtime: NodeRuntime, token: str, stop: threading.Event) -> None:
    """Say hello regularly (the marketplace shows the node online) and forget what is too old to matter."""
    while not stop.is_set():
        try:
            runtime.hello(enrol_token=token)
        except Exception:  # noqa: BLE001 - the broker may be down for a while; keep trying
            logger.warning("node %s: heartbeat not sent", runtime.slug, exc_info=True)
        runtime.store.prune(older_than=MESSAGE_MAX_AGE_SECONDS + 3600)
        stop.wait(HEARTBEAT_SECONDS)


def node_run(*, home: Path, concurrency: int, pool: str = "prefork") -> None:
    """Run the node until stopped: handle messages on its queue, say hello to the marketplace regularly."""
    keys = node_open(home)
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not broker_url:
        raise SystemExit("node: set CELERY_BROKER_URL to the shared broker.")
    queue = node_queue(keys.slug)
    app = node_app(broker_url=broker_url, queue=queue)
    runtime = NodeRuntime(home=home, keys=keys, app=app, result_keys=result_keys_from_env())
    from compute.node.tasks import runtime_register

    runtime_register(runtime)
    token_path = Path(home) / ENROL_TOKEN_FILE
    token = token_path.read_text().strip() if token_path.exists() else ""
    stop = threading.Event()
    threading.Thread(target=_heartbeat, args=(runtime, token, stop), daemon=True, name="heartbeat").start()
    logger.warning("node %s (%s) serving %s", keys.slug, keys.chain_address, queue)
    try:
        app.worker_main(["worker", "-Q", queue, "--concurrency", str(concurrency), "--pool", pool,
                         "--loglevel", os.environ.get("LOG_LEVEL", "INFO"), "--without-gossip", "--without-mingle",
                         "--hostname", f"{keys.slug}@%h"])
    finally:
        stop.set()
