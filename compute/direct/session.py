"""What the steps of ``psi_direct`` call on a node: start the consumer's side of a run (it listens and
answers the rendezvous to send), run the provider's side against that rendezvous, and collect the
consumer's intersection at its last step. Each run has its own private directory (0700) under the work
directory; everything in it is deleted when the run is collected or given up."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compute.direct.config import BASE_DIR, DirectConfig, direct_config, engine_available
from compute.direct.engine import EngineError, ids_read, ids_write, private_dir
from compute.direct.link import KEY_SIZE


@dataclass(frozen=True)
class Rendezvous:
    """What the consumer's node tells the provider's, inside the sealed step message: where to dial, the key
    to prove, and the size of the consumer's set (the provider's cohort count; RR22 reveals it anyway)."""

    host: str
    port: int
    key: bytes
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "key": self.key.hex(), "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rendezvous:
        try:
            key = bytes.fromhex(str(data["key"]))
            port = int(data["port"])
            rendezvous = cls(host=str(data["host"]), port=port, key=key, count=int(data["count"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("A malformed rendezvous of the direct link.") from exc
        if len(key) != KEY_SIZE or not 0 < port < 65536 or rendezvous.count < 0:
            raise ValueError("A malformed rendezvous of the direct link.")
        return rendezvous


@dataclass(frozen=True)
class ConsumerRun:
    """The consumer's run in the background: its directory and its process (kept in the party's state)."""

    workdir: str
    pid: int


def _party_environment() -> dict[str, str]:
    # The party needs only to import our package: none of the node's secrets go with it.
    keep = {"PATH", "LANG", "LC_ALL", "HOME"}
    return {name: value for name, value in os.environ.items() if name in keep} | {"PYTHONPATH": str(BASE_DIR)}


def _party(config: dict[str, Any], *, timeout: float | None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 - our own module, by the node's own interpreter
        [sys.executable, "-m", "compute.direct.party"], input=(json.dumps(config) + "\n").encode(),
        capture_output=True, cwd=BASE_DIR, env=_party_environment(), timeout=timeout, check=False)


def _session_tag(key: bytes) -> str:
    """The engine's name for the run, the same at both sides (its link matches messages by it)."""
    return "psi-direct-" + hashlib.sha256(b"session " + key).hexdigest()[:16]


def _engine_check(config: DirectConfig) -> None:
    if not engine_available(config):
        raise EngineError(f"This node has no PSI engine for direct links ({config.engine_python} is missing; "
                          "`make test` installs .venv-spu).")


def consumer_start(ids: Sequence[bytes], *, config: DirectConfig | None = None) -> tuple[Rendezvous, ConsumerRun]:
    """Listen for the job's one peer, with a fresh session key; the engine starts once the peer proved it."""
    config = config or direct_config()
    _engine_check(config)
    workdir = private_dir(config.work_dir, "dx-psi-direct-")
    try:
        count = ids_write(workdir / "in.csv", ids)
        key = os.urandom(KEY_SIZE)
        done = _party({"role": "consumer", "key": key.hex(), "host": config.host, "workdir": str(workdir),
                       "timeout_seconds": config.timeout_seconds, "engine_python": str(config.engine_python),
                       "session": _session_tag(key)}, timeout=30)
        answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
        pid = int(answer["pid"])
    except (OSError, ValueError, IndexError, KeyError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise EngineError(f"The consumer's side of the direct link did not start: {exc}") from exc
    return (Rendezvous(host=config.advertised_host, port=int(answer["port"]), key=key, count=count),
            ConsumerRun(workdir=str(workdir), pid=pid))


def provider_run(rendezvous: Rendezvous, ids: Sequence[bytes], *, config: DirectConfig | None = None) -> dict[str, Any]:
    """Dial the consumer's node, prove the key, run the engine as the sender; its report (no ids in it)."""
    config = config or direct_config()
    _engine_check(config)
    workdir = private_dir(config.work_dir, "dx-psi-direct-")
    try:
        ids_write(workdir / "in.csv", ids)
        done = _party({"role": "provider", "key": rendezvous.key.hex(), "host": rendezvous.host,
                       "port": rendezvous.port, "workdir": str(workdir), "timeout_seconds": config.timeout_seconds,
                       "engine_python": str(config.engine_python), "session": _session_tag(rendezvous.key)},
                      timeout=config.timeout_seconds * 3)
        lines = done.stdout.decode(errors="replace").strip().splitlines()
        answer = json.loads(lines[-1]) if lines else {"ok": False, "error": done.stderr.decode()[-500:]}
    except subprocess.TimeoutExpired as exc:
        raise EngineError("The provider's side of the direct link did not finish in time.") from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not answer.get("ok"):
        raise EngineError(f"The direct PSI failed at the provider: {answer.get('error')}")
    return answer


def consumer_collect(run: ConsumerRun, *, timeout: float) -> set[bytes]:
    """The intersection the consumer's engine found (its ids as given), once its side is over; the run's
    directory is deleted either way."""
    workdir = Path(run.workdir)
    try:
        deadline = time.monotonic() + timeout
        while not (workdir / "result.json").exists():
            if time.monotonic() > deadline or not workdir.exists():
                raise EngineError("The consumer's side of the direct link gave no result in time.")
            time.sleep(0.02)
        result = json.loads((workdir / "result.json").read_text())
        if not result.get("ok"):
            raise EngineError(f"The direct PSI failed at the consumer: {result.get('error')}")
        return ids_read(workdir / "out.csv")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def consumer_abandon(run: ConsumerRun) -> None:
    """Stop a consumer's run that will not be collected (its peer will not come) and delete its files."""
    if run.pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.pid, signal.SIGTERM)
    shutil.rmtree(run.workdir, ignore_errors=True)
