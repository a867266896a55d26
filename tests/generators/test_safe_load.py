"""Loading a model never runs code: our generators store tensors and JSON only, and a model
folder whose files were swapped for a pickle that runs code is refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from generators.errors import DataError
from generators.registry import TABLE_GENERATORS, load_generator
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
