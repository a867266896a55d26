"""Prefect's ephemeral server: it must not outlive the process that started it.

Without PREFECT_API_URL, Prefect 3 (prefect.server.api.server.SubprocessASGIServer) starts
a temporary API server as a child process, `python -m uvicorn ... create_app`, and stops
it from an `atexit` hook. A process killed with SIGKILL runs no hook, so each kill -9 of
the CLI left its server running (~225 MB and a port) for good.

`watch_ephemeral_server()` makes that child watch its parent: the server is started
through a small wrapper (WATCHDOG) that runs uvicorn as before, with a thread that stops
the server (SIGTERM, then SIGKILL after STOP_GRACE_S) as soon as its parent is gone.
Polling the parent pid rather than Linux's parent-death signal: that signal follows the
parent *thread*, and Prefect may start the server from a worker thread that ends early.

`ephemeral_servers()` finds such servers of this user, started before this fix or not,
so `synthpipe doctor` can stop the orphans (flows.doctor).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_S = 10  # uvicorn's graceful shutdown normally takes well under a second
WATCH_INTERVAL_S = 1.0
# What marks a process as Prefect's ephemeral server: its app factory and its environment.
SERVER_APP = "prefect.server.api.server:create_app"
EPHEMERAL_ENV = b"PREFECT__SERVER_EPHEMERAL=1"

# Runs as `python -c WATCHDOG <parent pid> <uvicorn arguments...>`.
WATCHDOG = f"""
import os, signal, sys, threading, time, runpy
parent = int(sys.argv.pop(1))

def watch():
    while os.getppid() == parent:
        time.sleep({WATCH_INTERVAL_S})
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep({STOP_GRACE_S})
    os._exit(1)

threading.Thread(target=watch, name="parent-watch", daemon=True).start()
sys.argv[0] = "uvicorn"
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


def watched_command(args: list[str], parent: int) -> list[str]:
    """`[python, -m, uvicorn, ...]` as the same command under WATCHDOG for `parent`;
    any other command unchanged."""
    if len(args) >= 3 and list(args[1:3]) == ["-m", "uvicorn"]:
        return [args[0], "-c", WATCHDOG, str(parent), *args[3:]]
    return list(args)


class _WatchedSubprocess:
    """The `subprocess` module as Prefect's server module sees it: Popen of a uvicorn
    command starts it under WATCHDOG; everything else is the real module."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args, *rest, **kwargs):  # noqa: N802  (stands in for subprocess.Popen)
        return subprocess.Popen(watched_command(list(args), os.getpid()), *rest, **kwargs)


def watch_ephemeral_server() -> None:
    """From now on, an ephemeral Prefect server this process starts stops when it dies.
    Imports Prefect's server module (seconds): call it only where the ephemeral server
    will be used (no PREFECT_API_URL)."""
    from prefect.server.api import server

    if not isinstance(server.subprocess, _WatchedSubprocess):
        server.subprocess = _WatchedSubprocess()


@dataclass(frozen=True)
class ServerProcess:
    """An ephemeral Prefect server process of this user, and whether its parent is gone."""

    pid: int
    parent: int
    orphaned: bool

    def describe(self) -> str:
        return f"ephemeral Prefect server pid {self.pid} (parent {self.parent} is gone)"


def ephemeral_servers(proc: Path = Path("/proc")) -> list[ServerProcess]:
    """Every ephemeral Prefect server of this user (Linux /proc; elsewhere none is found).
    One is orphaned when its parent is no longer the process that started it: the pid
    WATCHDOG was given, or, for a server started without it, any Python process (init or
    a subreaper adopts an orphan)."""
    found = []
    for entry in proc.glob("[0-9]*"):
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if SERVER_APP.encode() not in argv or EPHEMERAL_ENV not in _environ(entry):
                continue
            parent = _parent_pid(entry)
        except OSError:  # it ended while being read, or is not ours to read
            continue
        found.append(ServerProcess(int(entry.name), parent, _orphaned(argv, parent, proc)))
    return sorted(found, key=lambda server: server.pid)


def _environ(entry: Path) -> list[bytes]:
    return (entry / "environ").read_bytes().split(b"\0")


def _parent_pid(entry: Path) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])


def _orphaned(argv: list[bytes], parent: int, proc: Path) -> bool:
    if len(argv) > 3 and argv[1] == b"-c" and argv[3].isdigit():  # started under WATCHDOG
        return int(argv[3]) != parent
    try:
        exe = Path(os.readlink(proc / str(parent) / "exe")).name
    except OSError:
        return True
    return not exe.startswith("python")


def stop(pid: int, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM, then SIGKILL after `grace_s`; whether the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.1)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (ended, not yet reaped by its parent) does not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return state != "Z"
