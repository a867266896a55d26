"""Flows that take config *paths*: `run_config` (one config) and `batch` (many, in parallel).

`synthesize` takes a validated `RunConfig` object; a deployment's parameters must be plain
JSON, so deployments (`synthpipe deploy`, `synthpipe serve`) run `run_config`, which loads
the YAML file with its `--set` overrides and calls `synthesize` as a subflow.

`batch` runs many configs as subflows, at most `max_parallel` at a time (threads), and a
run that may use the GPU holds one slot of the Prefect global concurrency limit `gpu`
(1 slot unless an operator set it otherwise) for its whole subflow, so two trainings never
share one GPU, whichever batches or workers start them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.config import load_config
from flows.outputs import artifact_key
from flows.result import outcome_of
from flows.synthesize import synthesize
from flows.tracking import tracking_uri
from generators.errors import SynthpipeError

RUN_CONFIG_FLOW = "synthpipe"  # deployments read synthpipe/<config name>
BATCH_FLOW = "synthpipe-batch"
GPU_LIMIT = "gpu"
DEFAULT_GPU_SLOTS = 1  # one training per GPU; raise it with CUDA_VISIBLE_DEVICES per worker
DEFAULT_MAX_PARALLEL = 2


@flow(name=RUN_CONFIG_FLOW, log_prints=True)
def run_config(config_path: str, overrides: list[str] | None = None) -> dict:
    """Load a YAML run config (with `KEY=VALUE` overrides) and run `synthesize` on it.

    Returns the run's result as a dict (see `RunResult`). A quarantined run ends this flow
    run Failed with the gate's reasons (the result dict as its data); a failed one raises
    the subflow's error.
    """
    config = load_config(config_path, list(overrides or []))
    state = synthesize(config, return_state=True)
    outcome = outcome_of(state)
    if outcome.completed:
        return outcome.value.to_dict()
    if outcome.quarantined:  # Failed with the gate's reasons
        return Failed(message=outcome.message, data=outcome.value.to_dict())
    if outcome.error is not None:
        raise outcome.error  # this flow run fails with the subflow's error, e.g. a DataError
    raise RuntimeError(f"synthesize ended {state.type.value}: {state.message}")


def uses_gpu(config) -> bool:
    """Would this run touch a CUDA device? Training and the nearest-neighbour privacy work
    both run there when torch sees one and generator.device is not cpu."""
    if config.generator.device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


@dataclass
class BatchItem:
    """One config's outcome in a batch."""

    config_path: str
    name: str | None
    status: str  # published | quarantined | failed
    output: str | None = None
    mlflow_run_id: str | None = None
    flow_run_id: str | None = None
    used_gpu: bool = False
    error: str | None = None


class _SameValueGate:
    """Lets threads in together only while they all hold the same value.

    MLflow's tracking URI is one global of the process (`mlflow.set_tracking_uri`): runs of a
    batch that log to different stores must not overlap in one process, runs that share a
    store may.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._value: str | None = None
        self._holders = 0

    @contextlib.contextmanager
    def hold(self, value: str) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: self._holders == 0 or self._value == value)
            self._value, self._holders = value, self._holders + 1
        try:
            yield
        finally:
            with self._condition:
                self._holders -= 1
                if not self._holders:
                    self._value = None
                self._condition.notify_all()


_TRACKING_GATE = _SameValueGate()


@task(cache_policy=NO_CACHE, task_run_name="run-{config_path}")
def run_one(config_path: str, overrides: list[str], gpu_limit: str) -> BatchItem:
    """Run one config as a `run_config` subflow, holding a `gpu_limit` slot when it may use
    the GPU. Never raises for a failed run: the batch reports every config."""
    try:
        config = load_config(config_path, overrides)
    except SynthpipeError as error:
        return BatchItem(config_path, None, "failed", error=" ".join(str(error).split()))
    gpu = uses_gpu(config)
    if gpu:
        from prefect.concurrency.sync import concurrency

        # strict: a missing limit is an error here, not a silent "no limit" (batch creates it).
        slot = concurrency(gpu_limit, occupy=1, strict=True)
    else:
        slot = contextlib.nullcontext()
    # GPU slot first, then the tracking gate: a thread waiting for the GPU holds nothing.
    with slot, _TRACKING_GATE.hold(tracking_uri(config.tracking.uri)):
        state = run_config(config_path, overrides, return_state=True)
    item = BatchItem(config_path, config.name, "failed", used_gpu=gpu)
    outcome = outcome_of(state)
    result = outcome.value
    if outcome.completed:
        item.status = result["status"]
        item.output, item.mlflow_run_id = result["output"], result["mlflow_run_id"]
        item.flow_run_id = result["flow_run_id"]
        return item
    if outcome.quarantined:
        item.status, item.output = "quarantined", result["output"]  # under quarantine/
        item.mlflow_run_id, item.flow_run_id = result["mlflow_run_id"], result["flow_run_id"]
    item.error = " ".join(str(outcome.message or result).split())[:2000]
    return item


@flow(name=BATCH_FLOW, log_prints=True)
def batch(
    config_paths: list[str],
    overrides: list[str] | None = None,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
    gpu_limit: str = GPU_LIMIT,
    gpu_slots: int | None = None,
) -> list[dict]:
    """Run every config (same `overrides` for each) as a subflow, `max_parallel` at a time.

    Runs that may use the GPU each hold a slot of the global concurrency limit `gpu_limit`,
    created with `gpu_slots` (default 1) slots when missing; `gpu_slots` given also resets
    an existing limit. Ends Failed when any config failed or was quarantined; the table
    artifact `synthpipe-batch` lists every config's outcome either way.
    """
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
    ensure_gpu_limit(gpu_limit, gpu_slots)
    paths = [str(Path(path).expanduser().resolve()) for path in config_paths]
    with ThreadPoolTaskRunner(max_workers=max_parallel) as runner:
        futures = [
            runner.submit(
                run_one,
                parameters={
                    "config_path": path,
                    "overrides": list(overrides or []),
                    "gpu_limit": gpu_limit,
                },
            )
            for path in paths
        ]
        items = [future.result() for future in futures]
    rows = [asdict(item) for item in items]
    create_table_artifact(
        rows, key=artifact_key(BATCH_FLOW), description=f"{len(rows)} synthpipe configs"
    )
    for item in items:
        print(f"{item.status:<12} {item.name or item.config_path}  {item.output or item.error}")
    bad = [item for item in items if item.status != "published"]
    if bad:
        names = ", ".join(f"{item.name or item.config_path} ({item.status})" for item in bad)
        return Failed(
            message=f"{len(bad)} of {len(items)} configs not published: {names}", data=rows
        )
    return rows


def ensure_gpu_limit(name: str, slots: int | None) -> None:
    """Create the global concurrency limit `name` (default 1 slot) if missing; with `slots`
    given, also set an existing one to that many."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        if slots is not None:
            client.upsert_global_concurrency_limit_by_name(name, slots)
            return
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another batch made it meanwhile
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=DEFAULT_GPU_SLOTS)
                )
