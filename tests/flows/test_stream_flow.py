"""data.stream: a run trains from Parquet in batches and never loads the whole table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flows.modalities.base
import generators.data.remote
import generators.data.tables
from flows.config import load_config
from flows.synthesize import synthesize
from generators.data.streaming import Holdout, ParquetSource
from generators.errors import ConfigError
from tests.conftest import ADULT_COLUMNS, read_adult

ROWS, ROW_GROUP, SAMPLE = 3000, 500, 800
VAE = {"name": "vae", "params": {"epochs": 2, "batch_size": 200}}


@pytest.fixture(scope="module")
def adult_parquet(tmp_path_factory) -> Path:
    """The first ROWS Adult rows as Parquet in row groups of ROW_GROUP rows."""
    frame = read_adult(ROWS)
    path = tmp_path_factory.mktemp("stream") / "adult.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, ROW_GROUP)
    return path


def _config(write_config, path: Path | str, **sections):
    data = {
        "path": str(path),
        "columns": None,
        "separator": ",",
        "na_values": [],
        "stream": {"sample_rows": SAMPLE, "chunk_rows": 256},
    }
    sections.setdefault("generator", VAE)
    sections.setdefault("validation", {"expectations": True, "fidelity": False, "plots": False})
    # A stream trains unprotected (no rare-category merging: docs/large-data.md), and this
    # tiny VAE spreads Adult's rare categories over most of its rows, which the extremes check
    # rightly quarantines (tests/validation/test_extremes.py); these tests are about reading.
    sections["privacy"] = {"attacks": False, "extremes_check": False, **sections.get("privacy", {})}
    return write_config(data=data, **sections)


@pytest.mark.slow
def test_a_streamed_run_publishes_without_reading_the_table_whole(
    write_config, adult_parquet, prefect_harness, monkeypatch
):
    def refuse(*args, **kwargs):
        raise AssertionError("a streamed run read the whole table")

    monkeypatch.setattr(flows.modalities.base, "read_table", refuse)
    monkeypatch.setattr(generators.data.tables, "read_table", refuse)
    monkeypatch.setattr(pd, "read_parquet", refuse)
    monkeypatch.setattr(generators.data.remote, "local_copy", refuse)  # a copy of the input
    # Every frame a ParquetSource hands out: none may hold more rows than the sample.
    largest = [0]
    to_frame = ParquetSource._to_frame

    def recorded(self, table):
        largest[0] = max(largest[0], table.num_rows)
        return to_frame(self, table)

    monkeypatch.setattr(ParquetSource, "_to_frame", recorded)
    real_read_table = pq.read_table

    def only_other_files(source, *args, **kwargs):
        if Path(str(source)) == adult_parquet:
            refuse()
        return real_read_table(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", only_other_files)
    config = load_config(_config(write_config, adult_parquet, sample={"rows": 1000, "seed": 3}))
    result = synthesize(config)
    assert result.status == "published", result.metrics
    assert 0 < largest[0] <= SAMPLE < ROWS
    # The default protections change training rows, which a stream trains from its files.
    assert result.metrics["privacy.rare_category_rows_merged"] == 0
    assert result.metrics["privacy.extreme_rows_clipped"] == 0
    synthetic = pq.read_table(result.output).to_pandas()
    assert len(synthetic) == 1000
    assert list(synthetic.columns) == ADULT_COLUMNS
    # Training and holdout rows are the hash rule's, counted over every row of the file.
    holdout = Holdout(config.data.holdout_fraction, config.seed).contains(
        pd.RangeIndex(ROWS).to_numpy()
    )
    assert result.metrics["train_rows"] == ROWS - holdout.sum()
    assert result.metrics["holdout_rows"] == holdout.sum()
    assert result.metrics["stream_sample_rows"] == SAMPLE
    # Categories come from the training rows: nothing outside the real support.
    real = set(ParquetSource(adult_parquet).sample(ROWS, 0)["workclass"].dropna())
    assert set(synthetic["workclass"].dropna()) <= real


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"generator": {"name": "gmm", "params": {}}}, "generator 'gmm' loads the whole table"),
        ({"privacy": {"rare_category_min_count": 5}}, "privacy.rare_category_min_count"),
        ({"sample": {"conditions": {"sex": "Male"}}}, "sample.conditions"),
    ],
)
def test_stream_with_what_needs_the_whole_table_is_refused(
    write_config, adult_parquet, sections, message
):
    path = _config(write_config, adult_parquet, **sections)
    with pytest.raises(ConfigError, match=f"data.stream: .*{message}"):
        load_config(path)


def test_stream_reads_parquet_only(write_config, adult_slice):
    with pytest.raises(ConfigError, match="data.stream: reads Parquet"):
        load_config(_config(write_config, adult_slice))


def test_a_stream_reads_an_object_store_url_in_place(write_config, adult_parquet, memory):
    from flows.tasks import open_stream

    fs, url = memory
    fs.pipe(f"{url}/adult.parquet", adult_parquet.read_bytes())
    local = open_stream.fn(load_config(_config(write_config, adult_parquet)))
    remote = open_stream.fn(load_config(_config(write_config, f"{url}/adult.parquet")))
    assert len(remote[0]) == len(local[0])  # the same training rows, counted in place
    pd.testing.assert_frame_equal(remote[1], local[1])  # the same seeded samples
    pd.testing.assert_frame_equal(remote[2], local[2])
    assert remote[3] == local[3]
