"""kombu's filesystem broker (the embedded default: no server), with messages written atomically.

kombu's own transport creates a message file and then writes it, while a consumer may already move and
read it: an empty file fails to decode and stops the consuming worker for good ("Unrecoverable error:
JSONDecodeError"). Here a message is written under a name no consumer looks at and renamed into place
(``os.replace``, atomic on one file system), so a consumer sees a whole message or none.
Used by the marketplace's settings and by a node's worker whenever the broker URL is ``filesystem://``.
"""
from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

TRANSPORT = "compute.broker_fs:AtomicFilesystemTransport"


class AtomicFilesystemChannel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # consumers only take names ending in "<queue>.msg"
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicFilesystemChannel
