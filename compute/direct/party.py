"""A node's side of one direct PSI run, as a process of the node's own interpreter (``python -m
compute.direct.party``): the link (listen or dial, then the handshake), the engine's subprocess, the tunnel
between them. No Django: everything comes as one JSON line on stdin.

    {"role": "consumer" | "provider", "key": hex, "workdir": dir, "timeout_seconds": n,
     "engine_python": path, "protocol": "RR22", "session": id,
     "host": listen host (consumer) or the consumer's host (provider), "port": the consumer's port (provider)}

The consumer's side answers {"port": n} as soon as it listens and goes on in the background (it detaches,
so that the node's step returns and the rendezvous can travel); when the run is over it leaves
``result.json`` (and the intersection, ``out.csv``) in its work directory for the consumer's last step.
The provider's side runs in the foreground and answers its outcome on stdout. Neither opens the engine's
ports to anything but 127.0.0.1, and neither starts the engine before the peer has proven the key.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from compute.direct.engine import EngineError, engine_start
from compute.direct.link import (
    LinkRefused,
    Tunnel,
    free_loopback_port,
    handshake_accept,
    handshake_connect,
    loopback_listener,
)

MAX_REFUSED_PEERS = 20  # strangers who fail the handshake, before the consumer gives the run up


def _log(workdir: Path, line: str) -> None:
    with open(workdir / "party.log", "a", encoding="utf-8") as log:
        log.write(f"{time.strftime('%H:%M:%S')} {line}\n")


def _run_engine(config: dict[str, Any], channel: Any, *, rank: int) -> dict[str, Any]:
    """Start the engine as ``rank`` and carry its traffic over ``channel`` until it answers."""
    workdir = Path(config["workdir"])
    alias, engine_port = loopback_listener(), free_loopback_port()
    own, peer = f"127.0.0.1:{engine_port}", f"127.0.0.1:{alias.getsockname()[1]}"
    tunnel = Tunnel(channel, alias=alias, engine_port=engine_port, consumer=rank == 0)
    tunnel.start()
    timeout = float(config["timeout_seconds"])
    started = time.perf_counter()
    engine = engine_start(python=Path(config["engine_python"]), rank=rank,
                          addresses=[own, peer] if rank == 0 else [peer, own],
                          input_path=workdir / "in.csv", output_path=workdir / "out.csv", workdir=workdir,
                          timeout_seconds=timeout, protocol=str(config.get("protocol", "RR22")),
                          session=str(config.get("session", "psi-direct")))
    try:
        while engine.process.poll() is None:
            if tunnel.error is not None:  # the link broke: the engine would only wait for its timeout
                engine.process.kill()
                break
            time.sleep(0.02)
        answer = engine.wait(timeout=timeout)
    finally:
        tunnel.finish()
        (workdir / "in.csv").unlink(missing_ok=True)
    if tunnel.error is not None and not isinstance(tunnel.error, ConnectionError):
        raise EngineError(f"The direct link failed: {tunnel.error}")
    return answer | {"sent_bytes": channel.bytes_sent, "wall_seconds": time.perf_counter() - started}


def _consumer(config: dict[str, Any]) -> int:
    workdir, key = Path(config["workdir"]), bytes.fromhex(config["key"])
    listener = socket.create_server((str(config["host"]), 0), backlog=4)
    port = listener.getsockname()[1]
    child = os.fork()
    if child:  # the parent answers and exits: the node's step goes on; the child runs the link
        sys.stdout.write(json.dumps({"port": port, "pid": child}) + "\n")
        sys.stdout.flush()
        os._exit(0)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    result: dict[str, Any]
    try:
        result = _consumer_run(config, listener, key)
    except (EngineError, LinkRefused, OSError) as exc:
        result = {"ok": False, "error": str(exc)}
    (workdir / "in.csv").unlink(missing_ok=True)
    partial = workdir / "result.json.part"
    partial.write_text(json.dumps(result))
    partial.rename(workdir / "result.json")  # whole or absent: the last step reads only a finished answer
    return 0


def _consumer_run(config: dict[str, Any], listener: socket.socket, key: bytes) -> dict[str, Any]:
    workdir = Path(config["workdir"])
    deadline = time.monotonic() + float(config["timeout_seconds"])
    refused = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"ok": False, "error": "No peer proved the session key in time; the engine never started."}
            listener.settimeout(left)
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            try:
                channel = handshake_accept(sock, key)
            except LinkRefused as exc:
                sock.close()
                refused += 1
                _log(workdir, f"refused {address[0]}: {exc}")
                if refused >= MAX_REFUSED_PEERS:
                    return {"ok": False, "error": f"{refused} peers failed the handshake; the run was given up."}
                continue
            _log(workdir, f"peer {address[0]} proved the session key")
            break
    finally:
        listener.close()  # one peer per run: nobody else may connect once it is there
    return _run_engine(config, channel, rank=0)


def _provider(config: dict[str, Any]) -> int:
    key = bytes.fromhex(config["key"])
    deadline = time.monotonic() + float(config["timeout_seconds"])
    while True:
        try:
            sock = socket.create_connection((str(config["host"]), int(config["port"])), timeout=10)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                print(json.dumps({"ok": False, "error": f"Could not reach the consumer's node: {exc}"}))
                return 1
            time.sleep(0.1)
    try:
        channel = handshake_connect(sock, key)
        result = _run_engine(config, channel, rank=1)
    except (EngineError, LinkRefused, OSError) as exc:
        sock.close()
        result = {"ok": False, "error": str(exc)}
    print(json.dumps(result))
    return 0 if result.get("ok") else 1


def main() -> int:
    config = json.loads(sys.stdin.readline())
    if config.get("role") == "consumer":
        return _consumer(config)
    if config.get("role") == "provider":
        return _provider(config)
    print(json.dumps({"ok": False, "error": "Unknown role."}))
    return 2


if __name__ == "__main__":
    sys.exit(main())
