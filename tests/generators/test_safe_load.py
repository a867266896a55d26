"""Loading a model never runs code: our generators store tensors and JSON only, a model
folder whose files were swapped for a pickle that runs code is refused with a clear error,
and a folder whose plain-JSON generator.json was edited to name a class that unpickles
(SDV's) is refused too: the class comes from the caller, and unpickling needs an opt-in."""

from __future__ import annotations

import contextlib
import json
import pickle
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from generators.base import GENERATOR_FILE
from generators.errors import DataError
from generators.registry import TABLE_GENERATORS, load_generator
from generators.table.sdv import SDV_FILE, GaussianCopulaGenerator
from tests.generators.test_contract import make

SAFE_NAMES = sorted(name for name, cls in TABLE_GENERATORS.items() if not cls.unpickles_on_load)


class _RunsCode:
    """Unpickling this calls open(marker, 'w'): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _is_plain_data(file: Path) -> bool:
    """JSON or Parquet: formats whose readers build values, never objects or code."""
    try:
        json.loads(file.read_text())
        return True
    except (UnicodeDecodeError, ValueError):
        pass
    try:
        pq.read_metadata(file)
        return True
    except Exception:
        return False


def test_the_payload_runs_code_when_unpickled_without_protection(tmp_path) -> None:
    # Guards the test below: if this payload did not run code, refusing it would prove nothing.
    marker = tmp_path / "ran"
    torch.save(_RunsCode(marker), tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", SAFE_NAMES)
def test_swapped_model_files_are_refused_without_running_code(
    name, model_frame_shared, model_schema, tmp_path
) -> None:
    folder = tmp_path / "model"
    make(name).fit(model_frame_shared, model_schema, seed=0).save(folder)
    state_files = [f for f in folder.rglob("*") if f.is_file() and not _is_plain_data(f)]
    if not state_files:
        return  # nothing but JSON and Parquet: nothing that could carry code
    marker = tmp_path / "ran"
    for file in state_files:
        torch.save(_RunsCode(marker), file)
    with pytest.raises(DataError, match="never loaded"):
        load_generator(folder)
    assert not marker.exists()


def test_sdv_adapters_are_the_only_generators_that_unpickle() -> None:
    # Documented in SECURITY.md: load SDV models only from a store you trust.
    assert {name for name, cls in TABLE_GENERATORS.items() if cls.unpickles_on_load} == {
        "gaussian_copula",
        "ctgan",
        "tvae",
        "copulagan",
    }


def _tampered_model(frame, schema, folder: Path, marker: Path) -> Path:
    """A plain `uniform` table model whose generator.json was edited to name SDV's
    `gaussian_copula`, with a pickle beside it that creates `marker` when unpickled."""
    make("uniform").fit(frame, schema, seed=0).save(folder)
    meta = json.loads((folder / GENERATOR_FILE).read_text())
    (folder / GENERATOR_FILE).write_text(
        json.dumps({**meta, "name": "gaussian_copula", "params": {}})
    )
    (folder / SDV_FILE).write_bytes(pickle.dumps(_RunsCode(marker)))
    return folder


def test_the_tampered_folder_runs_code_through_the_sdv_loader_when_allowed(
    model_frame_shared, model_schema, tmp_path
) -> None:
    # Guards the tests below: an opted-in SDV load of this folder does run the payload.
    marker = tmp_path / "ran"
    folder = _tampered_model(model_frame_shared, model_schema, tmp_path / "model", marker)
    with contextlib.suppress(Exception):  # the payload is not a synthesizer; it ran already
        GaussianCopulaGenerator.load(folder, allow_pickle=True)
    assert marker.exists()


def test_a_folder_renamed_to_an_unpickling_class_is_refused_by_default(
    model_frame_shared, model_schema, tmp_path
) -> None:
    marker = tmp_path / "ran"
    folder = _tampered_model(model_frame_shared, model_schema, tmp_path / "model", marker)
    with pytest.raises(DataError, match="saved as a pickle.*allow-pickle") as refused:
        load_generator(folder)
    assert str(folder) in str(refused.value) and len(str(refused.value).splitlines()) == 1
    assert not marker.exists()


def test_a_folder_naming_another_class_than_its_run_is_refused_even_with_pickles_allowed(
    model_frame_shared, model_schema, tmp_path
) -> None:
    marker = tmp_path / "ran"
    folder = _tampered_model(model_frame_shared, model_schema, tmp_path / "model", marker)
    with pytest.raises(DataError, match="'gaussian_copula'.*trained a table 'uniform'"):
        load_generator(folder, expected=TABLE_GENERATORS["uniform"], allow_pickle=True)
    assert not marker.exists()


def test_the_expected_class_loads_its_own_untampered_folder(
    model_frame_shared, model_schema, tmp_path
) -> None:
    fitted = make("uniform").fit(model_frame_shared, model_schema, seed=0)
    fitted.save(tmp_path / "model")
    loaded = load_generator(tmp_path / "model", expected=TABLE_GENERATORS["uniform"])
    pd.testing.assert_frame_equal(loaded.sample(30, seed=1), fitted.sample(30, seed=1))
