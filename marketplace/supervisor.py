"""The embedded stack's child processes: started in process groups of their own, restarted within a budget,
stopped in order, and recorded on disk so that the next run can find what a killed run left behind.

Why process groups: a Celery worker, a node or Ganache starts processes of its own (pool workers), and a
signal to the parent alone can leave them running. Each child is the leader of a new session; stopping it
sends SIGTERM to the leader (it knows how to stop its own children), waits a bounded time, then SIGKILLs
the whole group, which also removes whatever a leader that exited or was killed left behind.

Why a record file: `kill -9` of the runner gives its children no chance to be stopped, and children in
their own sessions outlive it. The record (name, pid, start time) lets the next run stop them, or adopt
one knowingly; the start time guards against a pid that the system has since given to another process.

Nothing here knows Django: it is plain processes, so it can be tested with `sleep`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Protocol

import psutil


class StopOrder(IntEnum):
    """Who stops first: those that use the others before what they use (the web server stops before
    all of these, in the runner itself)."""

    WORKERS = 1
    BEAT = 2
    NODES = 3
    CHAIN = 4


class StackFailure(RuntimeError):
    """A child kept exiting beyond its restart budget, or could not be started again: the stack stops."""


class StackStopping(RuntimeError):
    """The supervisor is stopping the stack and starts nothing more."""


class Handle(Protocol):
    """What the supervisor needs of a process: `subprocess.Popen` for its own children, `AdoptedProcess`
    for one an earlier run started."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class AdoptedProcess:
    """A process this runner did not start (its parent was an earlier run): it can be watched and
    stopped, but its exit code is not ours to read, so `poll` answers -1 once it is gone."""

    def __init__(self, process: psutil.Process) -> None:
        self._process = process
        self._pid = process.pid

    @property
    def pid(self) -> int:
        return self._pid

    def poll(self) -> int | None:
        try:
            # A zombie is gone for every purpose here; whoever became its parent reaps it.
            if self._process.is_running() and self._process.status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            pass
        return -1

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self._pid}", timeout or 0)
            time.sleep(0.1)
        return code


def process_alive(pid: int, started: float) -> psutil.Process | None:
    """The process `pid` if it is running and is the one that started at `started` (not a later process
    that got the same pid), else None."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started) > 1 or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def process_started(pid: int) -> float:
    """The start time of `pid`, to be recorded beside it; 0 when it is already gone."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return 0.0


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _signal_leader(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def processes_stop(handles: Iterable[Handle], *, timeout: float) -> None:
    """Stop group leaders together: SIGTERM to each leader, up to `timeout` seconds for them all to exit,
    then SIGKILL to each whole group (what a leader left behind, or a leader that did not exit in time)."""
    handles = list(handles)
    for handle in handles:
        if handle.poll() is None:
            _signal_leader(handle.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for handle in handles:
        with suppress(subprocess.TimeoutExpired):
            handle.wait(timeout=max(0.0, deadline - time.monotonic()))
    for handle in handles:
        _signal_group(handle.pid, signal.SIGKILL)
    for handle in handles:
        with suppress(subprocess.TimeoutExpired):
            handle.wait(timeout=5)


def group_popen(command: list[str], *, log_path: Path, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new session (so a signal to its group reaches everything it
    starts), appending its output to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(  # noqa: S603 - the caller's fixed command line
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True,
        )


def exit_text(code: int | None) -> str:
    if code is None:
        return "is running"
    if code == -1:
        return "ended"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class RestartBudget:
    """At most `limit` restarts within any `window` seconds: a child that crashes now and then is
    restarted; one that crashes in a loop is a fault someone must look at."""

    def __init__(self, *, limit: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._restarts: deque[float] = deque()

    def spend(self) -> bool:
        """Take one restart if the budget allows it now."""
        now = self._clock()
        while self._restarts and now - self._restarts[0] >= self.window:
            self._restarts.popleft()
        if len(self._restarts) >= self.limit:
            return False
        self._restarts.append(now)
        return True

    @property
    def spent(self) -> int:
        return len(self._restarts)


@dataclass
class Child:
    name: str
    launch: Callable[[], Handle]
    stop_order: StopOrder
    stop_timeout: float
    log_path: Path | None
    handle: Handle
    budget: RestartBudget
    on_stopped: Callable[[], None] | None = None
    started: float = field(default=0.0)


class Supervisor:
    """Starts, watches and stops the stack's children. `check` (called regularly by one thread) restarts
    a child that exited; beyond its budget it raises `StackFailure` with the reason. `stop` stops all in
    `StopOrder` and forgets the record. Thread-safe: starting, checking and stopping take one lock, so a
    stop never misses a child started meanwhile."""

    def __init__(self, *, record_path: Path | None = None, say: Callable[[str], None] = print,
                 restart_limit: int = 5, restart_window: float = 60.0,
                 hold: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        self.record_path = record_path
        self.say = say
        self.restart_limit = restart_limit
        self.restart_window = restart_window
        # Postpones a stop request while a child is started and registered, so none is left unrecorded.
        self._hold = hold
        self._lock = threading.RLock()
        self._children: dict[str, Child] = {}
        self._stopping = False
        self.failure: str | None = None

    def __contains__(self, name: str) -> bool:
        return name in self._children

    def handle(self, name: str) -> Handle:
        """The process now running as `name` (a restart replaces it)."""
        return self._children[name].handle

    def start(self, name: str, launch: Callable[[], Handle], *, stop_order: StopOrder,
              stop_timeout: float = 10.0, log_path: Path | None = None, running: Handle | None = None,
              on_stopped: Callable[[], None] | None = None) -> Handle:
        """Start `name` with `launch` (or take over `running`, a process already up) and supervise it;
        `launch` is also how it is restarted. `on_stopped` runs once it is stopped for good."""
        with self._lock, self._hold():
            if self._stopping:
                raise StackStopping(f"not starting {name}: the stack is stopping")
            if name in self._children:
                raise ValueError(f"{name} is already supervised")
            handle = running if running is not None else launch()
            self._children[name] = Child(
                name=name, launch=launch, stop_order=stop_order, stop_timeout=stop_timeout, log_path=log_path,
                handle=handle, on_stopped=on_stopped, started=process_started(handle.pid),
                budget=RestartBudget(limit=self.restart_limit, window=self.restart_window),
            )
            self._record()
            return handle

    def check(self) -> list[str]:
        """Restart every child that exited; return their names. Raises `StackFailure` when one exited
        more often than its budget allows or cannot be started again."""
        restarted = []
        with self._lock:
            if self._stopping:
                return []
            for child in list(self._children.values()):
                code = child.handle.poll()
                if code is None:
                    continue
                # Its own children may outlive it (a killed Celery worker leaves its pool): clear the group.
                _signal_group(child.handle.pid, signal.SIGKILL)
                where = f"; see {child.log_path}" if child.log_path else ""
                if not child.budget.spend():
                    self.failure = (f"{child.name} (pid {child.handle.pid}) {exit_text(code)} after "
                                    f"{self.restart_limit} restarts within {self.restart_window:.0f} s: "
                                    f"stopping the stack{where}")
                    raise StackFailure(self.failure)
                old = child.handle.pid
                try:
                    with self._hold():
                        child.handle = child.launch()
                except Exception as error:
                    self.failure = f"{child.name} {exit_text(code)} and could not be started again: {error}{where}"
                    raise StackFailure(self.failure) from error
                child.started = process_started(child.handle.pid)
                self._record()
                self.say(f"{child.name} (pid {old}) {exit_text(code)}; restarted as pid {child.handle.pid} "
                         f"(restart {child.budget.spent} of {self.restart_limit} allowed within "
                         f"{self.restart_window:.0f} s){where}")
                restarted.append(child.name)
        return restarted

    def stop(self) -> list[str]:
        """Stop every child, in `StopOrder`, each group within its bounded time; then forget the record.
        Returns the names of the children stopped, in the order stopped."""
        with self._lock:
            self._stopping = True
            children = sorted(self._children.values(), key=lambda child: child.stop_order)
        for order in sorted({child.stop_order for child in children}):
            group = [child for child in children if child.stop_order == order]
            processes_stop([child.handle for child in group], timeout=max(child.stop_timeout for child in group))
            for child in group:
                if child.on_stopped is not None:
                    child.on_stopped()
        with self._lock:
            self._children.clear()
            if self.record_path is not None:
                self.record_path.unlink(missing_ok=True)
        return [child.name for child in children]

    def _record(self) -> None:
        if self.record_path is None:
            return
        entries = [{"name": child.name, "pid": child.handle.pid, "started": child.started}
                   for child in self._children.values()]
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.record_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(entries, indent=1))
        temporary.replace(self.record_path)


def record_read(path: Path) -> list[dict[str, Any]]:
    """The entries of a record file (a list, or one object), or [] when there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    entries = data if isinstance(data, list) else [data]
    return [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("pid"), int)]


def record_write(path: Path, entry: dict[str, Any]) -> None:
    """Record one process (with its start time) in `path`, replacing what was there."""
    entry = {**entry, "started": process_started(int(entry["pid"]))}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(entry))
    temporary.replace(path)


def leftovers(path: Path) -> list[tuple[dict[str, Any], AdoptedProcess]]:
    """The processes of a record file that are still running (the same processes, not reused pids)."""
    alive = []
    for entry in record_read(path):
        process = process_alive(int(entry["pid"]), float(entry.get("started", 0)))
        if process is not None:
            alive.append((entry, AdoptedProcess(process)))
    return alive


def leftovers_stop(path: Path, *, keep: Iterable[int] = (), timeout: float = 10.0) -> list[str]:
    """Stop what an earlier run recorded in `path` and left running, except the pids in `keep`; return
    "name (pid N)" for each one stopped."""
    keep = set(keep)
    found = [(entry, process) for entry, process in leftovers(path) if process.pid not in keep]
    processes_stop([process for _, process in found], timeout=timeout)
    return [f"{entry.get('name', 'process')} (pid {process.pid})" for entry, process in found]


class StopSignals:
    """SIGINT and SIGTERM become KeyboardInterrupt in the main thread, so that Django's in-process
    runserver stops for either and the runner's `finally` stops the children. Inside `held()` (starting
    and registering a child) the interrupt waits until the block ends, so no child is left unrecorded."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._held = 0
        self._pending = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def ignore(self) -> None:
        """While stopping, which is bounded, a second Ctrl-C must not cut the stop short."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        if self._held:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def held(self) -> Iterator[None]:
        # Handlers run in the main thread only; another thread's start needs no holding.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and self._pending:
                self._pending = False
                raise KeyboardInterrupt
