"""One party of the PSI engine as a subprocess of ``.venv-spu``'s interpreter, and the engine run bare
between two local processes (what tests compare against plain intersection, and the benchmark's baseline).

Ids go to the engine hex-encoded, one per line under the header ``id``: any id survives the engine's CSV
reading unchanged, and hex sorts and compares like the bytes it encodes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from compute.direct.link import free_loopback_port

ENGINE_SCRIPT = Path(__file__).resolve().parent / "engine_main.py"


class EngineError(RuntimeError):
    """The engine failed or could not start; the message says why."""


def ids_write(path: Path, ids: Iterable[bytes]) -> int:
    """Write distinct ids as the engine's input; returns how many."""
    distinct = dict.fromkeys(ids)
    with open(path, "w", encoding="ascii", opener=_private) as out:
        out.write("id\n")
        out.writelines(f"{item.hex()}\n" for item in distinct)
    return len(distinct)


def ids_read(path: Path) -> set[bytes]:
    """The ids of the engine's output (its header, and quotes it may add, dropped)."""
    with open(path, encoding="ascii") as source:
        lines = source.read().split("\n")
    return {bytes.fromhex(line.strip().strip('"')) for line in lines[1:] if line.strip()}


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def private_dir(base: Path, prefix: str) -> Path:
    """A fresh directory of this user's only (0700), for one run's files."""
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@dataclass
class EngineProcess:
    """A started engine party; ``wait`` gives its answer."""

    process: subprocess.Popen[bytes]

    def wait(self, timeout: float | None = None) -> dict:
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise EngineError("The PSI engine did not finish in time.") from None
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            answer = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            answer = {}
        if not answer.get("ok"):
            raise EngineError(f"The PSI engine failed: {answer.get('error') or 'no answer'} "
                              f"(exit status {self.process.returncode}).")
        return answer


def engine_start(*, python: Path, rank: int, addresses: Sequence[str], input_path: Path, output_path: Path,
                 workdir: Path, timeout_seconds: float, protocol: str = "RR22", session: str = "psi-direct",
                 ) -> EngineProcess:
    """Start one party: rank 0 (the receiver, who alone gets the intersection) or 1."""
    config = {"rank": rank, "addresses": list(addresses), "input": str(input_path), "output": str(output_path),
              "workdir": str(workdir), "protocol": protocol, "timeout_seconds": timeout_seconds, "session": session}
    try:
        process = subprocess.Popen(  # noqa: S603 - our own script, by our configured interpreter
            [str(python.absolute()), "-I", str(ENGINE_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=workdir, env=_engine_environment(workdir))
    except OSError as exc:
        raise EngineError(f"The PSI engine could not start ({python}): {exc}") from exc
    assert process.stdin is not None
    process.stdin.write((json.dumps(config) + "\n").encode())
    process.stdin.close()
    process.stdin = None  # written and closed: ``communicate`` must not touch it again
    return EngineProcess(process)


def _engine_environment(workdir: Path) -> dict[str, str]:
    # Nothing of the node's environment (its secret, its broker) reaches the engine.
    keep = {"PATH", "LANG", "LC_ALL", "HOME"}
    return {name: value for name, value in os.environ.items() if name in keep} | {"TMPDIR": str(workdir)}


@dataclass(frozen=True)
class BareResult:
    intersection: set[bytes]
    seconds: float  # the receiver's engine time, from link creation to its answer


def engine_bare(receiver_ids: Iterable[bytes], sender_ids: Iterable[bytes], *, python: Path,
                work_dir: Path | None = None, protocol: str = "RR22", timeout_seconds: float = 120) -> BareResult:
    """The engine alone: two local processes on loopback, no link of ours; the receiver's intersection."""
    base = private_dir(work_dir or Path(tempfile.gettempdir()), "dx-psi-bare-")
    try:
        dirs = [base / "receiver", base / "sender"]
        for path in dirs:
            path.mkdir(mode=0o700)
        ids_write(dirs[0] / "in.csv", receiver_ids)
        ids_write(dirs[1] / "in.csv", sender_ids)
        addresses = [f"127.0.0.1:{free_loopback_port()}", f"127.0.0.1:{free_loopback_port()}"]
        runs = [engine_start(python=python, rank=rank, addresses=addresses, input_path=path / "in.csv",
                             output_path=path / "out.csv", workdir=path, timeout_seconds=timeout_seconds,
                             protocol=protocol) for rank, path in enumerate(dirs)]
        try:
            answers = [run.wait(timeout=timeout_seconds * 2) for run in runs]
        finally:
            for run in runs:  # one failed: the other would only wait for its peer
                if run.process.poll() is None:
                    run.process.kill()
                    run.process.wait()
        return BareResult(intersection=ids_read(dirs[0] / "out.csv"), seconds=float(answers[0]["seconds"]))
    finally:
        shutil.rmtree(base, ignore_errors=True)
