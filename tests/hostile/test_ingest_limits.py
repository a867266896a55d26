"""What ingest refuses or reads before any training: a table too small for the privacy
checks (named, with what to do), and declared booleans read the same from a stream as from
memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.config import load_config
from flows.modalities import modality_of
from flows.tasks import open_stream, split
from generators.errors import DataError
from tests.flows.conftest import PLAIN_CSV, write_slice_config
from validation.privacy import MIN_ROWS_FOR_PRIVACY

FLAG_WORDS = {"yes": True, "no": False, "Y": True, "n": False, "TRUE": True, "f": False}


def _table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "kind": pd.array(rng.choice(["a", "b", "c"], rows), "string"),
            "flag": pd.array(rng.choice(list(FLAG_WORDS), rows), "string"),
        }
    )


def _config(tmp_path, path, **sections):
    data = {"path": str(path), **PLAIN_CSV, **sections.pop("data", {})}
    if "stream" in data:  # a generator that trains from a stream (never fitted here)
        sections["generator"] = {"name": "vae", "params": {}}
    return load_config(write_slice_config(tmp_path, path, data=data, **sections))


@pytest.mark.parametrize("rows", [10, 30, 47])
def test_a_table_too_small_for_the_privacy_checks_is_refused_at_the_split(rows, tmp_path):
    path = tmp_path / "tiny.csv"
    frame = _table(rows)
    frame.to_csv(path, index=False)
    config = _config(tmp_path, path)
    with pytest.raises(DataError) as refused:
        split.fn(frame, config, modality_of(config))
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{path}: {rows} rows")
    for words in (
        "data.holdout_fraction",
        "privacy.enabled: false",
        f"at least {MIN_ROWS_FOR_PRIVACY}",
    ):
        assert words in message, message


def test_the_same_tiny_table_splits_with_privacy_off_or_a_larger_holdout(tmp_path):
    path = tmp_path / "tiny.csv"
    frame = _table(30)
    frame.to_csv(path, index=False)
    off = _config(tmp_path, path, privacy={"enabled": False})
    train, holdout = split.fn(frame, off, modality_of(off))
    assert len(train) + len(holdout) == 30
    half = _config(tmp_path, path, data={"holdout_fraction": 0.5})
    train, holdout = split.fn(frame, half, modality_of(half))
    assert min(len(train), len(holdout)) >= MIN_ROWS_FOR_PRIVACY


def test_the_smallest_table_the_message_asks_for_splits(tmp_path):
    # The message's "about N rows": N rows at the default fraction give both parts enough.
    path = tmp_path / "tiny.csv"
    _table(30).to_csv(path, index=False)
    config = _config(tmp_path, path)
    with pytest.raises(DataError) as refused:
        split.fn(_table(30), config, modality_of(config))
    needed = int(str(refused.value).split("give about ")[1].split()[0])
    train, holdout = split.fn(_table(needed), config, modality_of(config))
    assert min(len(train), len(holdout)) >= MIN_ROWS_FOR_PRIVACY


def test_a_streamed_declared_boolean_reads_its_words_as_in_memory(tmp_path):
    frame = _table(400)
    path = tmp_path / "flags.parquet"
    frame.to_parquet(path, row_group_size=64)
    config = _config(
        tmp_path,
        path,
        data={"schema": {"flag": "boolean"}, "stream": {"sample_rows": 150, "chunk_rows": 50}},
    )
    source, train, holdout, schema = open_stream.fn(config)
    assert schema["flag"].kind == "boolean"
    for sample in (train, holdout):
        assert str(sample["flag"].dtype) == "boolean" and sample["flag"].notna().all()
    # Every batch of a pass, not only the samples: the words map as the readers map them.
    scanned = pd.concat(list(source.scan(50)), ignore_index=True)
    assert str(scanned["flag"].dtype) == "boolean" and len(scanned) == len(source)
    training_rows = ~source.holdout.contains(np.arange(len(frame)))
    expected = frame["flag"][training_rows].map(FLAG_WORDS).astype("boolean")
    assert scanned["flag"].tolist() == expected.tolist()


def test_a_streamed_boolean_with_another_word_is_refused_naming_the_column(tmp_path):
    frame = _table(400)
    frame.loc[len(frame) - 1, "flag"] = "maybe"  # in the last batch only
    path = tmp_path / "flags.parquet"
    frame.to_parquet(path, row_group_size=64)
    config = _config(
        tmp_path,
        path,
        data={"schema": {"flag": "boolean"}, "stream": {"sample_rows": 20, "chunk_rows": 50}},
    )
    with pytest.raises(DataError, match="column 'flag' is declared boolean.*'maybe'"):
        source, *_ = open_stream.fn(config)
        list(source.scan(50))
