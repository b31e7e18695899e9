"""What the benchmarks that run nodes as their own processes share: the bench's own Redis database,
starting and stopping processes by PID, and reading a process's CPU time and peak memory from /proc."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# A Redis database the benchmarks own: flushed before each use, never the suite's or an operator's.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/10"
# Stripped from a node's environment: a node holds nothing of the marketplace's.
MARKETPLACE_ONLY = {"DATABASE_URL", "SECRET_KEY", "KEY_ENCRYPTION_SECRET", "MARKETPLACE_SIGNING_KEY"}


def bench_broker_url() -> str:
    """The bench's own broker (BENCH_BROKER_URL, default Redis database 10), flushed by whoever uses it."""
    return os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)


def broker_flush(url: str) -> None:
    import redis

    if not url.startswith("redis://"):
        raise RuntimeError(f"the bench broker must be Redis (BENCH_BROKER_URL), not {url}")
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def stopped_on_sigterm() -> Iterator[None]:
    """SIGTERM (a `timeout`, a killed make) raises SystemExit here, so that `finally` blocks still stop
    the processes the bench started."""

    def exit_now(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def node_secret() -> str:
    return secrets.token_urlsafe(24)


def node_environment(*, secret: str, broker_url: str, **extra: str) -> dict[str, str]:
    """A node process's environment: its own secret, the broker, and what ``extra`` adds (the chain)."""
    env = {key: value for key, value in os.environ.items() if key not in MARKETPLACE_ONLY}
    # A heartbeat at start (the enrolment) and then rarely: no traffic during a measurement.
    return env | {"NODE_SECRET": secret, "CELERY_BROKER_URL": broker_url, "NODE_HEARTBEAT_SECONDS": "600",
                  "LOG_LEVEL": "WARNING"} | extra


def node_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "compute.node", *args]


def process_start(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in the repository root, its output into ``log``."""
    with open(log, "ab") as output:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)


def process_stop(process: subprocess.Popen[bytes], *, timeout: float = 20) -> None:
    """Stop one process we started (SIGTERM: Celery's warm shutdown; SIGKILL if it does not exit)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), read while it runs."""
    return _status_kib(pid, "VmHWM") / 1024


def rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
