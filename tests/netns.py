"""Network namespaces as separate hosts for tests (Linux, as root).

Each ``Host`` is a network namespace joined to the root namespace by a veth pair with a /30 of its own: a
process started with ``host.prefix`` sees only its own loopback and the root side of its veth, so it
reaches what the test chose to listen there (a broker, a chain RPC forwarder) and nothing bound to the
machine's 127.0.0.1 (PostgreSQL). The addresses exist only inside this machine's namespaces.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

NAME_PREFIX = "dxmh"  # namespaces are dxmh-<pid>-<n>, veths dxmh<pid><n>h / dxmh<pid><n>n
SUBNET = "10.231"  # hosts get 10.231.N.0/30: .1 on the root side, .2 inside the namespace
COMMAND_TIMEOUT = 15

_PROBE = """
import json, socket, sys
reached = []
for host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=2).close()
        reached.append(True)
    except OSError:
        reached.append(False)
print(json.dumps(reached))
"""


@dataclass(frozen=True)
class Host:
    name: str  # the network namespace
    veth: str  # the root side of its veth pair
    host_address: str  # the root side's address: where this host finds its broker and chain RPC
    address: str  # its own address inside the namespace

    @property
    def prefix(self) -> list[str]:
        """Put before a command line to run it on this host."""
        return ["ip", "netns", "exec", self.name]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)


def netns_unavailable_reason() -> str | None:
    """Why this machine cannot give a test its own hosts (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"{NAME_PREFIX}-{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` does not work here: {getattr(exc, 'stderr', '') or exc}".strip()
    _ip("netns", "del", probe, check=False)
    return None


def stale_hosts_remove() -> None:
    """Remove namespaces left by an earlier run of this module that was killed before its cleanup."""
    for line in _ip("netns", "list").stdout.splitlines():
        match = re.match(rf"({NAME_PREFIX}-(\d+)-\S+)", line)
        if match is None:
            continue
        try:
            os.kill(int(match.group(2)), 0)
        except ProcessLookupError:
            _ip("netns", "del", match.group(1), check=False)
        except PermissionError:
            continue


def free_subnets(count: int) -> list[int]:
    """``count`` values of N for which no address or route of this machine is in 10.231.N.0/24."""
    in_use = _ip("-4", "-o", "addr", "show").stdout + _ip("-4", "route", "show", "table", "all").stdout
    start = os.getpid() % 250
    chosen = []
    for offset in range(250):
        n = (start + offset) % 250 + 1
        if f"{SUBNET}.{n}." not in in_use:
            chosen.append(n)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"no free /24 left in {SUBNET}.0.0/16 for test hosts")


def host_create(index: int, subnet: int) -> Host:
    """A namespace with ``lo`` up and a veth pair: 10.231.<subnet>.1 outside, .2 inside."""
    tag = f"{os.getpid() % 100000}{index}"
    host = Host(name=f"{NAME_PREFIX}-{os.getpid()}-{index}", veth=f"{NAME_PREFIX}{tag}h",
                host_address=f"{SUBNET}.{subnet}.1", address=f"{SUBNET}.{subnet}.2")
    inner = f"{NAME_PREFIX}{tag}n"
    _ip("netns", "add", host.name)
    try:
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", host.name)
        _ip("addr", "add", f"{host.host_address}/30", "dev", host.veth)
        _ip("link", "set", host.veth, "up")
        _ip("netns", "exec", host.name, "ip", "link", "set", "lo", "up")
        _ip("netns", "exec", host.name, "ip", "addr", "add", f"{host.address}/30", "dev", inner)
        _ip("netns", "exec", host.name, "ip", "link", "set", inner, "up")
    except BaseException:
        host_delete(host)
        raise
    return host


def host_delete(host: Host) -> None:
    """Remove the namespace and its veth pair (deleting either end removes both)."""
    _ip("link", "del", host.veth, check=False)
    _ip("netns", "del", host.name, check=False)


def tcp_probe(host: Host, targets: list[tuple[str, int]]) -> dict[tuple[str, int], bool]:
    """Whether a TCP connect from inside ``host`` to each (address, port) succeeds."""
    done = subprocess.run([*host.prefix, sys.executable, "-c", _PROBE, json.dumps(targets)],
                          check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT + 2 * len(targets))
    return dict(zip(targets, json.loads(done.stdout), strict=True))


def listeners(host: Host) -> list[str]:
    """The TCP and UDP sockets listening inside ``host`` (``ss``), one line each."""
    done = subprocess.run([*host.prefix, "ss", "-H", "-l", "-t", "-u", "-n"], check=True, capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT)
    return [line for line in done.stdout.splitlines() if line.strip()]


def process_stop(process: subprocess.Popen[Any], *, timeout: float = 20) -> None:
    """Terminate one process this test started (by its PID), killing it when it does not stop in time."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def node_process_start(node: Any, *, env: dict[str, str], prefix: list[str],
                       concurrency: int = 2) -> subprocess.Popen[bytes]:
    """Init (once) and run an organisation's node as the organisation would, each command behind ``prefix``
    (``Host.prefix``: on that host). Like conftest's ``node_process_start``, with the host and environment
    given."""
    from compute.jobs.identity import marketplace_public_key
    from compute.jobs.services import node_enrol_token_issue
    from tests.conftest import node_home

    home = node_home(node.slug)
    # `--enrol-token=TOKEN` in one word: a token may begin with "-", which argparse would take for an option.
    if not (home / "node-keys.json").exists():
        token = node_enrol_token_issue(node=node) if node.status == node.Status.AWAITING else ""
        subprocess.run(
            [*prefix, sys.executable, "-m", "compute.node", "init", "--home", str(home), "--slug", node.slug,
             "--marketplace-key", marketplace_public_key().hex(), f"--enrol-token={token}"],
            env=env, cwd=settings.BASE_DIR, check=True, capture_output=True, timeout=60,
        )
    with open(Path(settings.VAR_DIR) / f"node-{node.slug}-test.log", "ab") as log:  # the child keeps its copy
        return subprocess.Popen(
            [*prefix, sys.executable, "-m", "compute.node", "run", "--home", str(home),
             "--concurrency", str(concurrency)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
        )
