"""Start and stop a local Ganache chain as a child process (embedded mode and tests), and tell whether a
chain that is already running is the one the deployment record describes."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings


class DevChainError(RuntimeError):
    """The local chain could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ganache_command(*, port: int, db_path: Path | None = None) -> list[str]:
    cli = Path(settings.BASE_DIR) / "node_modules" / "ganache" / "dist" / "node" / "cli.js"
    if not cli.exists():
        raise DevChainError(f"Ganache is not installed at {cli}; run `npm ci` first.")
    command = [
        "node",
        str(cli),
        "--wallet.deterministic",
        "--wallet.totalAccounts",
        "4",
        "--server.host",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--chain.chainId",
        "1337",
        "--logging.quiet",
    ]
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)
        command += ["--database.dbPath", str(db_path)]
    return command


def anvil_command(*, port: int) -> list[str]:
    """Foundry's Anvil (from npm, `@foundry-rs/anvil`): a maintained dev chain, run by the tests beside
    Ganache (TEST_CHAIN=anvil). The same chain id as Ganache's, so deployment records look alike."""
    cli = Path(settings.BASE_DIR) / "node_modules" / ".bin" / "anvil"
    if not cli.exists():
        raise DevChainError(f"Anvil is not installed at {cli}; run `npm ci` first.")
    # Ganache's deterministic wallet: the same funded accounts (the default operator key is its first).
    return [str(cli), "--host", "127.0.0.1", "--port", str(port), "--chain-id", "1337", "--accounts", "4",
            "--mnemonic", GANACHE_MNEMONIC, "--silent"]


DEV_CHAINS = ("ganache", "anvil")
GANACHE_MNEMONIC = "myth like bonus scare over problem client lizard pioneer submit female collect"


def rpc_ready(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310 - local URL
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - local URL
            return "result" in json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return False


def ganache_start(
    *, port: int, db_path: Path | None = None, timeout: float = 60, log_path: Path | None = None,
    kind: str = "ganache",
) -> subprocess.Popen[bytes]:
    """Start the local chain (Ganache, or Anvil for `kind="anvil"`, which keeps no database) on
    127.0.0.1:`port` and wait until it answers JSON-RPC."""
    if kind not in DEV_CHAINS:
        raise DevChainError(f"Unknown dev chain {kind!r}; expected one of {', '.join(DEV_CHAINS)}.")
    command = ganache_command(port=port, db_path=db_path) if kind == "ganache" else anvil_command(port=port)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603 - fixed command line
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevChainError(f"{kind} exited with code {process.returncode}")
        if rpc_ready(url):
            return process
        time.sleep(0.2)
    ganache_stop(process)
    raise DevChainError(f"{kind} did not answer on {url} within {timeout:.0f}s")


def ganache_stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the Ganache we started (by its process group) and wait for it."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def chain_matches_deployment() -> bool:
    """Whether the chain at CHAIN_RPC_URL is the one recorded in CHAIN_DEPLOYMENTS_DIR: a record for its
    chain id, of the current contract sources, with code at every recorded address. A chain that passes
    already holds this marketplace's contracts (say, its Ganache restarted by hand); any other may be
    someone else's, and deploying onto it would write there."""
    # Imported here: starting and stopping Ganache needs none of web3, which is slow to import.
    from audit.chain.client import chain_id
    from audit.chain.contracts import _record_is_live, deployment_read
    from audit.chain.errors import ChainError

    try:
        record = deployment_read()
        return bool(record) and record.get("chainId") == chain_id() and _record_is_live(record)
    except ChainError:
        return False
