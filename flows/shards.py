"""Sharded sampling: `sample.shard_rows` (and streamed runs) sample in parallel tasks.

`sample_shards` (the "sample-shards" subflow) maps `sample_part` over the shards on the
task runner `runner:` asks for; each part is one Parquet file, seeded by its index only, so
the parts are the same whatever the number of workers. `read_check_sample` then reads the
seeded sample of the parts that the checks judge.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from flows.config import RunnerConfig
from flows.tasks import IO_RETRIES, write_parquet
from generators.data.schema import Schema, normalize_dtypes
from generators.registry import load_generator
from generators.seeds import shard_seed


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def sample_part(
    model_dir: Path,
    index: int,
    start: int,
    rows: int,
    seed: int,
    schema: Schema,
    parts_dir: Path,
    metadata: dict[str, str],
) -> Path:
    """Rows [start, start + rows) of a sharded sample, written as one Parquet part.

    Identifiers continue from `start`, so they are distinct across parts."""
    # The run's own freshly trained model in its owner-only staging folder (see tasks.sample).
    generator = load_generator(model_dir, allow_pickle=True)
    frame = generator.reissue_ids(generator.sample(rows, seed=shard_seed(seed, index)), start)
    return write_parquet(schema.to_arrow(frame), parts_dir / f"part-{index:05d}.parquet", metadata)


@flow(name="sample-shards")
def sample_shards(
    model_dir: Path,
    rows: int,
    shard_rows: int,
    seed: int,
    table_schema: Schema,
    parts_dir: Path,
    metadata: dict[str, str],
) -> list[Path]:
    """`rows` synthetic rows as parts of `shard_rows`, sampled by parallel tasks on the
    flow's task runner (runner.kind: threads, processes or dask)."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, rows, shard_rows))
    futures = sample_part.map(
        unmapped(model_dir),
        list(range(len(starts))),
        starts,
        [min(shard_rows, rows - start) for start in starts],
        unmapped(seed),
        unmapped(table_schema),
        unmapped(parts_dir),
        unmapped(metadata),
    )
    return [future.result() for future in futures]


def task_runner(runner: RunnerConfig):
    """The Prefect task runner `runner:` asks for."""
    if runner.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=runner.workers)
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner  # only runs that ask for Dask import it

        if runner.address:
            return DaskTaskRunner(address=runner.address)
        workers = runner.workers or os.cpu_count() or 1
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
        )
    return ThreadPoolTaskRunner(max_workers=runner.workers)


def read_check_sample(parts: list[Path], size: int, seed: int, schema: Schema) -> pd.DataFrame:
    """A seeded sample of about `size` rows across the parts, in part order: what the
    checks judge when the output is too large to hold (each part gives its share)."""
    rng = np.random.default_rng(seed)
    counts = [pq.read_metadata(part).num_rows for part in parts]
    total = sum(counts)
    frames = []
    for part, count in zip(parts, counts, strict=True):
        take = min(count, max(1, round(size * count / total)))
        rows = np.sort(rng.choice(count, take, replace=False))
        frames.append(pq.read_table(part).take(rows).to_pandas())
    return schema.conform(normalize_dtypes(pd.concat(frames, ignore_index=True)))
