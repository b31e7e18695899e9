"""One party of SecretFlow's PSI engine (spu 0.9.5), run by ``.venv-spu/bin/python`` as a subprocess of the
node: it imports nothing of the project, of Django or of the node's virtualenv (spu needs numpy < 2).

Reads one JSON line on stdin:
    {"rank": 0 | 1, "addresses": ["127.0.0.1:p0", "127.0.0.1:p1"], "input": csv, "output": csv,
     "workdir": dir, "protocol": "RR22" | "KKRT" | "ECDH", "timeout_seconds": n, "session": id}
rank 0 is the receiver (the consumer): it alone gets the intersection, in ``output``. The input is a CSV
with one column ``id`` of distinct values. Writes one JSON line on stdout: {"ok": true, "intersection": n,
"count": n, "seconds": s} or {"ok": false, "error": "..."}. The engine's own log goes to workdir/engine.log;
the trace file it writes under /tmp (its path is fixed there) is deleted.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import sys
import time

_TRACE = re.compile(r"Trace has been written to (/tmp/psi_[A-Za-z0-9_-]+\.trace)")


def _trace_delete(log_path: str) -> None:
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            for match in _TRACE.finditer(log.read()):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(match.group(1))
    except FileNotFoundError:
        pass


def _run(config: dict) -> dict:
    import spu.libspu as libspu  # here, after the log is redirected: it logs on import
    import spu.psi as psi

    protocols = {"RR22": psi.PsiProtocol.PROTOCOL_RR22, "KKRT": psi.PsiProtocol.PROTOCOL_KKRT,
                 "ECDH": psi.PsiProtocol.PROTOCOL_ECDH}
    rank = int(config["rank"])
    timeout_ms = int(float(config.get("timeout_seconds", 120)) * 1000)
    desc = libspu.link.Desc()
    desc.id = str(config.get("session", "psi-direct"))
    for name, address in zip(("consumer", "provider"), config["addresses"], strict=True):
        desc.add_party(name, address)
    desc.recv_timeout_ms = timeout_ms  # a peer that stops answering ends the run, not hangs it
    desc.http_timeout_ms = timeout_ms
    desc.connect_retry_times = 120
    desc.connect_retry_interval_ms = 250
    protocol_conf = psi.PsiProtocolConfig(
        protocol=protocols[str(config.get("protocol", "RR22"))], receiver_rank=0, broadcast_result=False,
        rr22_params=psi.Rr22Rarams(low_comm_mode=False),  # sic: the binding's spelling
        ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_25519))
    execute = psi.PsiExecuteConfig(
        protocol_conf=protocol_conf,
        input_params=psi.InputParams(path=config["input"], selected_keys=["id"], keys_unique=True),
        output_params=psi.OutputParams(path=config["output"], disable_alignment=True))
    started = time.perf_counter()
    lctx = libspu.link.create_brpc(desc, rank)
    try:
        report = psi.psi_execute(execute, lctx)
    finally:
        lctx.stop_link()
    return {"ok": True, "intersection": int(report.intersection_count), "count": int(report.original_count),
            "seconds": time.perf_counter() - started}


def main() -> int:
    config = json.loads(sys.stdin.readline())
    workdir = str(config["workdir"])
    os.environ["TMPDIR"] = workdir  # its bucket files go here, not to /tmp
    log_path = os.path.join(workdir, f"engine-{int(config['rank'])}.log")
    answer = os.fdopen(os.dup(1), "w")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)  # the C++ logs go to the log, our answer to the saved stdout
    os.dup2(log_fd, 2)
    try:
        result = _run(config)
    except Exception as exc:  # noqa: BLE001 - reported to the node as the run's failure
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    finally:
        sys.stdout.flush()
        ctypes.CDLL(None).fflush(None)  # the C++ log is buffered by stdio: the trace's path must be in the file
        _trace_delete(log_path)
    answer.write(json.dumps(result) + "\n")
    answer.flush()
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
