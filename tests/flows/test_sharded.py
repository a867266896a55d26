"""Sharded sampling: parts written by parallel tasks, the same data whatever the runner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.config import load_config
from flows.synthesize import synthesize
from generators.errors import ConfigError

ROWS, SHARD = 5000, 1200


def _run(write_config, runner: dict, name: str):
    config = load_config(
        write_config(
            name=name,
            generator={"name": "gmm", "params": {"max_components": 3, "max_iter": 20}},
            sample={"rows": ROWS, "seed": 4, "shard_rows": SHARD},
            runner=runner,
            validation={"fidelity": False, "plots": False},
            privacy={"attacks": False},
        )
    )
    return config, synthesize(config)


def _parts(output: str) -> list[pd.DataFrame]:
    return [pq.read_table(p).to_pandas() for p in sorted(Path(output).glob("part-*.parquet"))]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_parts_on_threads_and_on_a_dask_cluster(
    write_config, prefect_harness
):
    _, one = _run(write_config, {"kind": "threads", "workers": 1}, "one-thread")
    _, dask = _run(write_config, {"kind": "dask", "workers": 2}, "dask")
    assert one.status == dask.status == "published"
    assert one.rows == dask.rows == ROWS
    first, second = _parts(one.output), _parts(dask.output)
    assert [len(p) for p in first] == [1200, 1200, 1200, 1200, 200]
    for a, b in zip(first, second, strict=True):
        pd.testing.assert_frame_equal(a, b)
    # A partitioned dataset: read as one table, with the input's columns.
    whole = pq.read_table(one.output).to_pandas()
    assert len(whole) == ROWS and "income" in whole.columns
    manifest = json.loads((Path(one.output) / "_manifest.json").read_text())
    assert manifest["rows"] == ROWS and manifest["synthpipe.status"] == "published"
    assert len(manifest["parts"]) == 5
    # Different shards are different draws, not one repeated.
    assert (
        not first[0]
        .head(50)
        .reset_index(drop=True)
        .equals(first[1].head(50).reset_index(drop=True))
    )


def test_sharding_with_conditions_is_refused(write_config):
    with pytest.raises(ConfigError, match="sample.shard_rows: .*sample.conditions"):
        load_config(
            write_config(sample={"rows": 5000, "shard_rows": 1000, "conditions": {"sex": "Male"}})
        )


def test_a_dask_address_needs_the_dask_runner(write_config):
    with pytest.raises(ConfigError, match="runner.address: applies to runner.kind: dask"):
        load_config(write_config(runner={"kind": "threads", "address": "tcp://x:8786"}))
