"""Golden saved models and golden runs (tests/golden.py): a saved model from before a
refactor loads and samples the same frame after it, and a run of each modality writes the
same files, keys and figures."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from generators.registry import generator_class, load_generator
from tests.golden import (
    GOLDEN_RUNS,
    SAMPLE_ROWS,
    SAMPLE_SEED,
    SAVED_MODELS,
    SKIPPED,
    model_cases,
    parquet_roundtrip,
    run_golden,
)

FIXTURE_CASES = sorted(
    (folder.parent.name, folder.name) for folder in SAVED_MODELS.glob("*/*") if folder.is_dir()
)


def test_every_registered_generator_has_a_golden_saved_model():
    missing = sorted(set(model_cases()) - set(FIXTURE_CASES) - set(SKIPPED))
    assert not missing, (
        f"no golden saved model for {missing}: run "
        "`.venv/bin/python scripts/make_golden.py --add-missing` and commit the folders"
    )
    # A fixture for a name no longer registered means a saved model of users' would no
    # longer load: a rename or removal must be deliberate.
    assert set(FIXTURE_CASES) <= set(model_cases())


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(("modality", "name"), FIXTURE_CASES)
def test_a_model_saved_before_loads_and_samples_the_same_frame(modality, name):
    folder = SAVED_MODELS / modality / name
    # The fixtures are the repository's own: the class is known and SDV's pickles may load.
    trained = generator_class(name, modality)
    generator = load_generator(folder / "model", expected=trained, allow_pickle=True)
    assert (generator.modality, generator.name) == (modality, name)
    expected = pd.read_parquet(folder / "sample.parquet")
    drawn = parquet_roundtrip(generator.sample(SAMPLE_ROWS, seed=SAMPLE_SEED))
    pd.testing.assert_frame_equal(drawn, expected)


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["table", "image", "text", "sequence"])
def test_a_run_writes_the_same_files_keys_and_figures(modality, tmp_path, prefect_harness):
    golden = json.loads((GOLDEN_RUNS / f"{modality}.json").read_text())
    figures = run_golden(modality, tmp_path)
    for key in ("status", "config_hash", "output_config_hash_is_digest"):
        assert figures[key] == golden[key], key
    for key in ("run_files", "parquet_metadata_keys", "tag_keys", "artifacts", "params"):
        assert figures[key] == golden[key], (
            f"{key}: added {sorted(set(figures[key]) - set(golden[key]))}, "
            f"gone {sorted(set(golden[key]) - set(figures[key]))}"
        )
    assert sorted(figures["metrics"]) == sorted(golden["metrics"])
    differ = {
        key: (value, golden["metrics"][key])
        for key, value in figures["metrics"].items()
        if not _close(value, golden["metrics"][key])
    }
    assert not differ, f"metrics that changed (now, golden): {differ}"
