"""Fidelity plots: one PNG per plotted column and a heatmap of association differences."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from generators.data.schema import Schema, infer_schema
from validation.plots import write_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    pixels = matplotlib.image.imread(path)  # decodes the whole file
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every column permuted on its own: marginals kept, associations gone."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {name: frame[name].to_numpy()[rng.permutation(len(frame))] for name in frame.columns}
    ).astype(frame.dtypes.to_dict())


def test_one_png_per_plotted_column_and_a_heatmap(
    tmp_path: Path, fidelity_frame: pd.DataFrame, fidelity_schema: Schema
) -> None:
    real = fidelity_frame
    written = write_plots(real, _shuffled(real, seed=1), fidelity_schema, tmp_path)
    plotted = [c.name for c in fidelity_schema.columns if c.kind not in ("id", "text")]
    assert "customer_id" not in plotted and len(plotted) == 5  # age, income, region, member, signup
    assert written == [
        *(tmp_path / "columns" / f"{i:03d}_{name}.png" for i, name in enumerate(plotted)),
        tmp_path / "association_difference.png",
    ]
    for path in written:
        _assert_png(path)
    # Nothing else was written.
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(written)


def test_heatmap_shows_broken_associations(
    tmp_path: Path, fidelity_frame: pd.DataFrame, fidelity_schema: Schema
) -> None:
    same = write_plots(fidelity_frame, fidelity_frame, fidelity_schema, tmp_path / "same")[-1]
    broken = write_plots(
        fidelity_frame, _shuffled(fidelity_frame, seed=2), fidelity_schema, tmp_path / "broken"
    )[-1]
    assert same.name == broken.name == "association_difference.png"
    same_pixels, broken_pixels = matplotlib.image.imread(same), matplotlib.image.imread(broken)
    assert same_pixels.shape == broken_pixels.shape
    assert not np.array_equal(same_pixels, broken_pixels)


ODD_NAMES = [
    "income/month",  # a path separator
    "income?month",  # the same safe name as the one above
    "../escape",  # would leave the folder
    "ünïcødé",
    "???",  # nothing safe left
    "x" * 200,  # longer than a file name may be
    " spaced  name ",
]


@pytest.fixture
def odd_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = 120
    frame = {}
    for i, name in enumerate(ODD_NAMES):
        if i % 2:
            frame[name] = pd.array(rng.normal(i, 1.0, rows), dtype="Float64")
        else:  # 30 levels: more than the bars shown, so an "(other)" bar too
            frame[name] = pd.array(rng.choice([f"level {k}" for k in range(30)], rows), "string")
    return pd.DataFrame(frame)


def test_odd_column_names_become_safe_distinct_file_names(tmp_path: Path, odd_frame) -> None:
    schema = infer_schema(odd_frame)
    assert schema.names == ODD_NAMES
    folder = tmp_path / "plots"
    written = write_plots(odd_frame, _shuffled(odd_frame, seed=3), schema, folder)
    columns = written[:-1]
    assert len(columns) == len(ODD_NAMES) and len(set(columns)) == len(columns)
    for path in columns:
        assert path.parent == folder / "columns"
        assert re.fullmatch(r"\d{3}_[A-Za-z0-9_.-]{1,80}\.png", path.name), path.name
        assert not path.name[4:].startswith(".")  # no hidden files, no '..'
        _assert_png(path)
    assert [p.name for p in columns[:2]] == ["000_income_month.png", "001_income_month.png"]
    assert columns[2].name == "002_escape.png" and columns[4].name == "004_column.png"
    assert written[-1] == folder / "association_difference.png"
    # Everything stayed inside the folder it was given.
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(written)


@pytest.mark.parametrize("max_columns", [1, 2, 3])
def test_max_columns_is_respected(
    tmp_path: Path, fidelity_frame: pd.DataFrame, fidelity_schema: Schema, max_columns: int
) -> None:
    written = write_plots(
        fidelity_frame, fidelity_frame, fidelity_schema, tmp_path, max_columns=max_columns
    )
    per_column = sorted((tmp_path / "columns").iterdir())
    assert per_column == written[:max_columns] and len(per_column) == max_columns
    # A heatmap needs two columns.
    heatmap = tmp_path / "association_difference.png"
    assert heatmap.is_file() == (max_columns >= 2)
    assert written[max_columns:] == ([heatmap] if max_columns >= 2 else [])
