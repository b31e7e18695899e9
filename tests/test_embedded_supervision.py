"""`make run`'s runner supervises its children: a killed worker is restarted, SIGTERM leaves no process
behind, a Ganache that a killed run left is adopted knowingly, a chain that is not ours is refused.

The first tests drive `marketplace.supervisor` with plain `sleep` processes (fast); the `e2e` ones run
`manage.py run_embedded` as a subprocess, each with its own VAR_DIR and free ports."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings

from audit.chain.devnode import free_port, ganache_start, ganache_stop
from marketplace.supervisor import (
    RestartBudget,
    StackFailure,
    StopOrder,
    Supervisor,
    group_popen,
    leftovers_stop,
)

START_TIMEOUT = 180  # a first start compiles nothing (shared build) but deploys, migrates and imports demo data
STOP_TIMEOUT = 60  # workers 10 s, beat 5 s, nodes 10 s, Ganache 10 s, one after the other at worst


def _gone(process: psutil.Process) -> bool:
    """Not running any more (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _until(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


# --- the supervisor on plain processes -------------------------------------------------------------------

def test_it_allows_five_restarts_within_a_minute_and_no_sixth():
    now = [0.0]
    budget = RestartBudget(limit=5, window=60, clock=lambda: now[0])
    assert all(budget.spend() for _ in range(5))
    now[0] = 59.0
    assert not budget.spend()
    now[0] = 60.0  # the first restart left the window
    assert budget.spend()


def test_it_restarts_a_killed_child_and_clears_what_it_left_in_its_group(tmp_path):
    lines: list[str] = []
    supervisor = Supervisor(record_path=tmp_path / "children", say=lines.append)
    # The shell stands for a worker, its background sleep for a pool process that outlives a killed parent.
    launch = lambda: group_popen(["sh", "-c", "sleep 60 & wait"], log_path=tmp_path / "child.log")  # noqa: E731
    first = supervisor.start("worker celery", launch, stop_order=StopOrder.WORKERS, stop_timeout=2,
                             log_path=tmp_path / "child.log")
    try:
        pool = _until(lambda: psutil.Process(first.pid).children(), timeout=5, what="the child's own child")
        os.kill(first.pid, signal.SIGKILL)
        _until(lambda: first.poll() is not None, timeout=5, what="the kill")
        assert supervisor.check() == ["worker celery"]
        assert _until(lambda: all(_gone(p) for p in pool), timeout=5, what="the old group cleared")
        second = supervisor.handle("worker celery").pid
        restarted = psutil.Process(second)
        assert second != first.pid and not _gone(restarted)
        assert lines == [f"worker celery (pid {first.pid}) was killed by SIGKILL; restarted as pid {second} "
                         f"(restart 1 of 5 allowed within 60 s); see {tmp_path / 'child.log'}"]
        assert [entry["pid"] for entry in json.loads((tmp_path / "children").read_text())] == [second]
    finally:
        supervisor.stop()
    assert _gone(restarted)
    assert not (tmp_path / "children").exists()


def test_it_gives_up_on_a_child_that_keeps_exiting_and_says_which(tmp_path):
    supervisor = Supervisor(say=lambda line: None, restart_limit=2, restart_window=60)
    launch = lambda: group_popen(["sh", "-c", "exit 3"], log_path=tmp_path / "beat.log")  # noqa: E731
    supervisor.start("beat", launch, stop_order=StopOrder.BEAT, log_path=tmp_path / "beat.log")
    try:
        with pytest.raises(StackFailure) as failure:
            for _ in range(3):
                _until(lambda: supervisor.handle("beat").poll() is not None, timeout=5, what="the exit")
                handle = supervisor.handle("beat")
                supervisor.check()
        assert str(failure.value) == (f"beat (pid {handle.pid}) exited with code 3 after 2 restarts within 60 s: "
                                      f"stopping the stack; see {tmp_path / 'beat.log'}")
        assert supervisor.failure == str(failure.value)
    finally:
        supervisor.stop()


def test_it_stops_in_order_and_kills_a_child_that_ignores_sigterm(tmp_path):
    stopped: list[str] = []
    supervisor = Supervisor(say=lambda line: None)
    stubborn = supervisor.start(
        "Ganache", lambda: group_popen(["sh", "-c", "trap '' TERM; sleep 60 & wait"], log_path=tmp_path / "g.log"),
        stop_order=StopOrder.CHAIN, stop_timeout=0.5, on_stopped=lambda: stopped.append("Ganache"))
    polite = supervisor.start(
        "worker chain", lambda: group_popen(["sleep", "60"], log_path=tmp_path / "w.log"),
        stop_order=StopOrder.WORKERS, stop_timeout=5, on_stopped=lambda: stopped.append("worker chain"))
    time.sleep(0.3)  # let the shell install its trap
    group = [psutil.Process(stubborn.pid), *psutil.Process(stubborn.pid).children()]
    started = time.monotonic()
    assert supervisor.stop() == ["worker chain", "Ganache"]
    assert time.monotonic() - started < 5
    assert stopped == ["worker chain", "Ganache"]
    assert polite.poll() == -signal.SIGTERM
    assert stubborn.poll() == -signal.SIGKILL
    assert all(_gone(process) for process in group)


def test_it_stops_what_a_killed_run_recorded_but_never_a_process_that_reused_a_pid(tmp_path):
    record = tmp_path / "children"
    supervisor = Supervisor(record_path=record, say=lambda line: None)
    left = supervisor.start("beat", lambda: group_popen(["sleep", "60"], log_path=tmp_path / "b.log"),
                            stop_order=StopOrder.BEAT)
    kept = supervisor.start("Ganache", lambda: group_popen(["sleep", "60"], log_path=tmp_path / "g.log"),
                            stop_order=StopOrder.CHAIN)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        entries = json.loads(record.read_text())
        # A pid the system gave to another process since: same number, another start time.
        entries.append({"name": "worker celery", "pid": stranger.pid, "started": 1.0})
        record.write_text(json.dumps(entries))
        assert leftovers_stop(record, keep={kept.pid}, timeout=5) == [f"beat (pid {left.pid})"]
        assert left.poll() is not None and kept.poll() is None and stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
        supervisor.stop()


# --- the runner, end to end ----------------------------------------------------------------------------------

class Runner:
    """One `manage.py run_embedded` in a process group of its own, its output in a file."""

    def __init__(self, tmp_path: Path, name: str, *, var_dir: Path, chain_port: int,
                 args: list[str]) -> None:
        self.var_dir = var_dir
        self.log_path = tmp_path / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
        env |= {"VAR_DIR": str(var_dir), "CHAIN_RPC_URL": f"http://127.0.0.1:{chain_port}",
                "PYTHONUNBUFFERED": "1", "JOB_SWEEP_INTERVAL": "2",
                # Compiled once for the test session, not once per VAR_DIR.
                "CONTRACTS_BUILD_DIR": str(settings.CONTRACTS_BUILD_DIR)}
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "run_embedded", *args], cwd=settings.BASE_DIR, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.descendants: dict[int, psutil.Process] = {}

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, pattern: str, *, timeout: float) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            assert self.process.poll() is None, f"the runner exited:\n{self.output()}"
            return re.search(pattern, self.output())
        return _until(found, timeout=timeout, what=f"{pattern!r} in\n{self.output()}")

    def wait_serving(self, port: int, *, timeout: float) -> None:
        def serving() -> bool:
            assert self.process.poll() is None, f"the runner exited:\n{self.output()}"
            return _serves(port)
        _until(serving, timeout=timeout, what=f"the marketplace serving on port {port}")

    def record_descendants(self) -> dict[int, psutil.Process]:
        for process in psutil.Process(self.process.pid).children(recursive=True):
            self.descendants.setdefault(process.pid, process)
        return self.descendants

    def child(self, *words: str) -> psutil.Process:
        """The runner's direct child whose command line holds `words` in that order."""
        for process in psutil.Process(self.process.pid).children():
            line = " ".join(process.cmdline())
            if " ".join(words) in line:
                return process
        raise AssertionError(f"no child running {' '.join(words)}")

    def clean_up(self) -> None:
        """Whatever a failed test left: the runner's group, then each recorded descendant, by pid."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for process in self.descendants.values():
            if not _gone(process):
                process.kill()


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[Callable[..., Runner]]:
    started: list[Runner] = []

    def start(name: str, *, var_dir: Path, chain_port: int, args: list[str]) -> Runner:
        runner = Runner(tmp_path, name, var_dir=var_dir, chain_port=chain_port, args=args)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.clean_up()


def _serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:  # noqa: S310 - local
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.e2e
def test_it_restarts_a_killed_worker_and_sigterm_leaves_no_process_behind(tmp_path, runners):
    web_port = free_port()
    runner = runners("run", var_dir=tmp_path / "var", chain_port=free_port(), args=["--port", str(web_port)])
    runner.wait_serving(web_port, timeout=START_TIMEOUT)
    descendants = runner.record_descendants()
    lines = [" ".join(process.cmdline()) for process in descendants.values()]
    assert any("ganache" in line for line in lines)
    assert any(" beat " in f"{line} " for line in lines) and not any(" -B" in line for line in lines)
    assert runner.child("worker", "-Q", settings.CHAIN_QUEUE)

    worker = runner.child("worker", "-Q", "celery")
    worker_log = runner.var_dir / "worker-celery.log"
    os.kill(worker.pid, signal.SIGKILL)
    restart = runner.wait_for(rf"worker celery \(pid {worker.pid}\) was killed by SIGKILL; restarted as pid (\d+)",
                              timeout=15)
    new = psutil.Process(int(restart.group(1)))
    assert new.pid != worker.pid and new.ppid() == runner.process.pid and "-Q celery" in " ".join(new.cmdline())
    # Serving: it takes the beat's job sweeps (every 2 s here) from the queue and runs them.
    offset = len(worker_log.read_text())
    _until(lambda: re.search(r"job_sweep_task\[[-0-9a-f]+\] succeeded", worker_log.read_text()[offset:]),
           timeout=60, what="a task run by the restarted worker")
    assert _serves(web_port)
    runner.record_descendants()

    runner.process.send_signal(signal.SIGTERM)
    runner.process.wait(timeout=STOP_TIMEOUT)
    assert runner.process.returncode == 0, runner.output()
    alive = [f"{pid} {' '.join(p.cmdline())}" for pid, p in runner.descendants.items() if not _gone(p)]
    assert alive == []
    assert "SIGTERM: stopping the stack" in runner.output()
    assert not (runner.var_dir / "chain.pid").exists() and not (runner.var_dir / "embedded.pids").exists()


@pytest.mark.e2e
def test_it_stops_the_whole_stack_when_a_worker_keeps_dying(tmp_path, runners):
    web_port = free_port()
    runner = runners("run", var_dir=tmp_path / "var", chain_port=free_port(), args=["--port", str(web_port)])
    runner.wait_serving(web_port, timeout=START_TIMEOUT)
    runner.record_descendants()
    worker = runner.child("worker", "-Q", "celery").pid
    for restart in range(1, 6):
        os.kill(worker, signal.SIGKILL)
        worker = int(runner.wait_for(rf"worker celery \(pid {worker}\) was killed by SIGKILL; restarted as pid "
                                     rf"(\d+) \(restart {restart} of 5", timeout=15).group(1))
        runner.record_descendants()
    os.kill(worker, signal.SIGKILL)
    runner.process.wait(timeout=STOP_TIMEOUT)
    output = runner.output()
    assert runner.process.returncode == 1, output
    assert (f"worker celery (pid {worker}) was killed by SIGKILL after 5 restarts within 60 s: stopping the "
            f"stack; see {runner.var_dir / 'worker-celery.log'}") in output
    alive = [f"{pid} {' '.join(p.cmdline())}" for pid, p in runner.descendants.items() if not _gone(p)]
    assert alive == []


@pytest.mark.e2e
def test_it_adopts_the_ganache_a_killed_run_left_and_stops_it_at_exit(tmp_path, runners):
    var_dir, chain_port = tmp_path / "var", free_port()
    first = runners("first", var_dir=var_dir, chain_port=chain_port, args=["--port", str(free_port())])
    first.wait_for(r"Nodes started: ", timeout=START_TIMEOUT)
    left = first.record_descendants()
    ganache = json.loads((var_dir / "chain.pid").read_text())
    assert ganache["port"] == chain_port and "ganache" in " ".join(left[ganache["pid"]].cmdline())

    first.process.kill()  # -9: no chance to stop anything
    first.process.wait(timeout=10)
    assert not _gone(left[ganache["pid"]])

    second = runners("second", var_dir=var_dir, chain_port=chain_port, args=["--no-server"])
    second.process.wait(timeout=START_TIMEOUT)
    output = second.output()
    assert second.process.returncode == 0, output
    assert (f"Adopted the Ganache an earlier run left running: pid {ganache['pid']} on port {chain_port}"
            in output)
    assert "Stopped what an earlier run left running: " in output and "worker celery (pid " in output
    assert "Starting Ganache" not in output
    alive = [f"{pid} {' '.join(p.cmdline())}" for pid, p in left.items() if not _gone(p)]
    assert alive == []
    assert not (var_dir / "chain.pid").exists()


@pytest.mark.e2e
def test_it_refuses_a_chain_it_did_not_start_whose_contracts_it_does_not_know(tmp_path, runners):
    chain_port = free_port()
    foreign = ganache_start(port=chain_port, log_path=tmp_path / "foreign-ganache.log")
    try:
        runner = runners("run", var_dir=tmp_path / "var", chain_port=chain_port, args=["--no-server"])
        runner.process.wait(timeout=60)
        output = runner.output()
        assert runner.process.returncode == 1, output
        assert f"A chain this runner did not start answers at http://127.0.0.1:{chain_port}" in output
        assert "Contracts:" not in output  # nothing deployed onto it
        assert foreign.poll() is None  # and it is not ours to stop
    finally:
        ganache_stop(foreign)


@pytest.mark.e2e
def test_it_uses_a_chain_it_did_not_start_when_its_contracts_match_and_leaves_it_running(tmp_path, runners):
    var_dir, chain_port = tmp_path / "var", free_port()
    setup = runners("setup", var_dir=var_dir, chain_port=chain_port, args=["--no-server"])
    setup.process.wait(timeout=START_TIMEOUT)
    assert setup.process.returncode == 0, setup.output()
    # The same chain (its state on disk), started by someone else: the runner has no record of it.
    restarted = ganache_start(port=chain_port, db_path=var_dir / "chain", log_path=tmp_path / "ganache.log")
    try:
        runner = runners("run", var_dir=var_dir, chain_port=chain_port, args=["--no-server"])
        runner.process.wait(timeout=START_TIMEOUT)
        output = runner.output()
        assert runner.process.returncode == 0, output
        assert f"Using the chain that already answers at http://127.0.0.1:{chain_port}: not started here" in output
        assert "Starting Ganache" not in output and "Adopted" not in output
        assert restarted.poll() is None
    finally:
        ganache_stop(restarted)
