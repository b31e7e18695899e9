"""The embedded default's broker: kombu's filesystem transport, made safe to lose a process on.

Two changes to kombu's own transport, which is fine for one long-lived consumer and loses work otherwise:

* **Whole messages or none.** kombu creates a message file and then writes it, while a consumer may
  already move and read it: an empty file fails to decode and stops the consuming worker for good.
  Here a message is written under a name no consumer looks at and renamed into place (``os.replace``,
  atomic on one file system).
* **Taken is not done.** kombu deletes a message file as it reads it, so a worker killed while it ran
  the task loses the task for good. Here a consumer *claims* a message by renaming it into
  ``claimed/`` under a name that carries its host and process id, and deletes it only when the task
  is acknowledged (or put back, when it is rejected or its channel closes with it unacknowledged). A
  claim whose process is gone is put back into its queue by the next consumer that looks (at most every
  ``RECLAIM_SECONDS``): a message in flight when its worker or node died is delivered again, once.
  The tasks are idempotent (signed nonces, conditional updates), so a second delivery changes nothing
  that the first one did.

Why this design and not another broker: the embedded mode must need no server, and SQLite-backed
transports (kombu's SQLAlchemy one) poll a table under the same write lock the web process uses.
A rename is atomic and cheap, and polling a folder every ``polling_interval`` (20 ms by default, set
from BROKER_POLL_SECONDS) costs one ``listdir``: a hand-off no longer waits kombu's 1 s default.
Single host only (process ids are checked locally), like the embedded mode itself.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

TRANSPORT = "compute.broker_fs:AtomicFilesystemTransport"
CLAIMED = "claimed"
# How often a consumer looks for claims whose process is gone.
RECLAIM_SECONDS = 1.0

logger = logging.getLogger(__name__)


def _host() -> str:
    return socket.gethostname().replace(".", "-").replace("~", "-") or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def claims_reclaim(folder: str) -> int:
    """Put back into their queues the messages claimed by processes of this host that no longer run;
    returns how many. Safe to run from any number of processes at once (each rename happens once)."""
    claimed = os.path.join(folder, CLAIMED)
    try:
        names = os.listdir(claimed)
    except FileNotFoundError:
        return 0
    host = _host()
    restored = 0
    for name in names:
        original, _, owner = name.rpartition("~")
        claim_host, _, pid = owner.rpartition("-")
        if not original or claim_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            os.rename(os.path.join(claimed, name), os.path.join(folder, original))
        except OSError:  # another consumer put it back first
            continue
        restored += 1
        logger.warning("broker: message %s was taken by process %s, which is gone; delivered again", original, pid)
    return restored


class AtomicFilesystemChannel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claims: dict[str, str] = {}  # delivery tag → claimed file
        self._reclaimed_at = 0.0
        os.makedirs(os.path.join(self.data_folder_in, CLAIMED), exist_ok=True)

    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000):015d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # consumers only take names ending in "<queue>.msg"
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """Claim the oldest message of ``queue``: it stays on disk until it is acknowledged."""
        now = monotonic()
        if now - self._reclaimed_at > RECLAIM_SECONDS:
            self._reclaimed_at = now
            claims_reclaim(self.data_folder_in)
        wanted = f"{queue}.msg"
        pid = os.getpid()
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.data_folder_in, CLAIMED, f"{filename}~{_host()}-{pid}")
            try:
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except OSError:  # another consumer took it meanwhile
                continue
            try:
                with open(claimed, "rb") as handle:
                    payload = loads(bytes_to_str(handle.read()))
            except (OSError, ValueError) as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
            tag = (payload.get("properties") or {}).get("delivery_tag")
            if tag is None:
                os.remove(claimed)  # not a kombu message: nothing could acknowledge it
            else:
                self._claims[tag] = claimed
            return payload
        raise filesystem.Empty()

    def _claim_drop(self, delivery_tag: Any) -> None:
        claimed = self._claims.pop(delivery_tag, None)
        if claimed is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(claimed)

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple=multiple)
        self._claim_drop(delivery_tag)

    def _restore(self, message: Any) -> None:
        # Rejected with requeue, or unacknowledged when the channel closes: a fresh copy goes back
        # into the queue (kombu writes it), then the claim goes.
        super()._restore(message)
        self._claim_drop(message.delivery_tag)

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)
        self._claim_drop(delivery_tag)


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicFilesystemChannel
