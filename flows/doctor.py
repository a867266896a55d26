"""`synthpipe doctor`: find, and with --fix repair, what a killed run leaves behind.

A CLI killed with SIGKILL runs no cleanup: its MLflow run stays RUNNING (perhaps tagged
published, its model version registered), its complete run folder stays in
`<output.dir>/<name>/.staging/<run_id>/`, and an ephemeral Prefect server started before
flows.prefect_server watched its parent keeps running. Each is a `Repair`:

- a RUNNING run whose process is gone: marked FAILED. A run records the process that
  runs it (tags synthpipe.host, synthpipe.pid, synthpipe.run_root at its start); a run of
  another host, or whose process still runs, is never touched;
- `.staging/<run_id>` of a run that is over (dead, failed or finished): removed;
- an ephemeral Prefect server whose parent is gone: stopped.

Every run does the safe part for its own run root when it starts (`clean_up_dead_runs`):
the staging leftovers of dead runs in that folder, and those runs marked FAILED.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from flows import prefect_server
from flows.run_folder import STAGING_DIR, remove_staging

HOST_TAG, PID_TAG, RUN_ROOT_TAG = "synthpipe.host", "synthpipe.pid", "synthpipe.run_root"
# A process that started this much after the run it is said to run is another process
# that reuses the pid (clock ticks and MLflow's milliseconds differ by a little).
START_SLACK_S = 2.0


@dataclass
class Repair:
    """One thing a kill left, described in a line, and how to repair it."""

    what: str
    fix: Callable[[], None]


def process_tags(run_root: Path) -> dict[str, str]:
    """The tags by which a later doctor tells whether this run's process is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), RUN_ROOT_TAG: str(run_root)}


def find_repairs(
    client: MlflowClient | None, run_roots: list[Path], experiment_ids: list[str] | None = None
) -> list[Repair]:
    """Dead RUNNING runs in the store (in `experiment_ids`, default every active
    experiment; no store: none), staging leftovers of runs that are over in `run_roots` and
    in the roots the dead runs name, and orphaned ephemeral Prefect servers."""
    repairs, roots = [], list(dict.fromkeys(run_roots))
    if client is not None and experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiment_ids, "attributes.status = 'RUNNING'") if client else []
    for run in running:
        if dead(run):
            repairs.append(_mark_failed(client, run))
            if RUN_ROOT_TAG in run.data.tags:
                roots.append(Path(run.data.tags[RUN_ROOT_TAG]))
    for root in dict.fromkeys(roots) if client is not None else []:
        repairs += staging_leftovers(client, root, skip={r.what for r in repairs})
    repairs += [
        Repair(f"stop {server.describe()}", lambda pid=server.pid: prefect_server.stop(pid))
        for server in prefect_server.ephemeral_servers()
        if server.orphaned
    ]
    return repairs


def existing_store(uri: str) -> MlflowClient | None:
    """A client of the store at `uri`, None for a local SQLite file that does not exist:
    looking for runs must not create an empty store."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        return None
    return MlflowClient(uri)


def clean_up_dead_runs(client: MlflowClient, run_root: Path, own_run_id: str) -> list[str]:
    """What a new run repairs in its own run root before it starts: staging folders of
    dead runs of this store removed, and those runs marked FAILED. A folder of a live run,
    of another host, or unknown to this store is left alone. Returns what was done."""
    done = []
    for repair in staging_leftovers(client, run_root, skip=set(), own_run_id=own_run_id):
        repair.fix()
        done.append(repair.what)
    return done


def staging_leftovers(
    client: MlflowClient, run_root: Path, skip: set[str], own_run_id: str = ""
) -> list[Repair]:
    """`<run_root>/.staging/<run_id>` folders of runs that are over, each with its run
    marked FAILED first where it is a dead RUNNING one not already in `skip`."""
    staging = run_root / STAGING_DIR
    repairs = []
    for folder in sorted(staging.iterdir()) if staging.is_dir() else []:
        if not folder.is_dir() or folder.name == own_run_id:
            continue
        run = _run_or_none(client, folder.name)
        if run is None:
            continue  # not a run of this store: another store's, not ours to judge
        if PID_TAG in run.data.tags and not dead(run):
            continue  # its process still runs (a run is briefly FINISHED while it logs)
        if run.info.status == "RUNNING":
            if PID_TAG not in run.data.tags:
                continue  # recorded no process: cannot tell it is dead
            marking = _mark_failed(client, run)
            if marking.what not in skip:
                repairs.append(marking)
        repairs.append(
            Repair(
                f"remove {folder} (staging folder of the {_state(run)} run {run.info.run_id})",
                lambda folder=folder: remove_staging(folder),
            )
        )
    return repairs


def dead(run) -> bool:
    """Whether a run's process is gone: recorded on this host, and no process with its pid
    runs that started before the run did. Runs that recorded no process (started before
    synthpipe recorded it), or ran on another host, count as alive."""
    tags = run.data.tags
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    started = process_start_time(int(tags[PID_TAG]))
    return started is None or started > run.info.start_time / 1000 + START_SLACK_S


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None when none runs. Linux
    /proc; elsewhere a live pid counts as started long ago."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        return _alive_elsewhere(pid)
    if fields[0] == "Z":  # ended, not yet reaped
        return None
    ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def _alive_elsewhere(pid: int) -> float | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0.0


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return time.time() - time.monotonic()


def _mark_failed(client: MlflowClient, run) -> Repair:
    run_id, tags = run.info.run_id, run.data.tags
    reason = (
        f"its process (pid {tags.get(PID_TAG)} on {tags.get(HOST_TAG)}) ended without "
        "finishing it (killed?); marked failed by synthpipe doctor"
    )

    def fix() -> None:
        client.set_tag(run_id, "synthpipe.status", "failed")
        client.set_tag(run_id, "synthpipe.error", reason)
        client.set_terminated(run_id, status="FAILED")

    return Repair(f"mark the MLflow run {run_id} FAILED ({reason.split(';')[0]})", fix)


def _run_or_none(client: MlflowClient, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _state(run) -> str:
    return "dead" if run.info.status == "RUNNING" else run.info.status.lower()
