"""Fixtures for flow tests: Prefect's test harness, a small Adult slice, configs in tmp_path."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import yaml

# Importing the flow imports Prefect's engine, which sets up its console log handler on
# the sys.stderr of that moment: do it at collection, not inside a test's capsys.
import flows.synthesize  # noqa: F401
from tests.conftest import ADULT_COLUMNS, ADULT_FILE

SLICE_ROWS = 400


@pytest.fixture(scope="session")
def adult_slice(tmp_path_factory) -> Path:
    """The first rows of the shipped Adult file, raw (header-less, ', '-separated, '?' = NA)."""
    path = tmp_path_factory.mktemp("data") / "adult_slice.csv"
    with gzip.open(ADULT_FILE, "rt") as source:
        lines = [next(source) for _ in range(SLICE_ROWS)]
    path.write_text("".join(lines))
    return path


def write_slice_config(folder: Path, adult_slice: Path, **sections) -> Path:
    """Write a run config for the Adult slice into `folder`; keyword sections override."""
    config = {
        "name": "adult-slice",
        "seed": 0,
        "data": {
            "path": str(adult_slice),
            "columns": ADULT_COLUMNS,
            "separator": ", ",
            "na_values": ["?"],
            "target": "income",
        },
        "generator": {"name": "gaussian_copula", "params": {"default_distribution": "norm"}},
        "sample": {"rows": 300, "seed": 7},
        # The shadow attack trains 8 shadow generators per table run (about 5 s of CPU on
        # this slice); tests of other features leave it out. It runs, at the defaults, in
        # the golden table run (tests/test_golden.py) and in tests/validation/test_shadow.py;
        # a flow test that needs it passes privacy={"shadow": {"enabled": True}}.
        "privacy": {"shadow": {"enabled": False}},
        "output": {"dir": str(folder / "outputs")},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "tests"},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(config.get(section), dict):
            config[section] = {**config[section], **values}
        else:
            config[section] = values
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def write_config(tmp_path, adult_slice):
    """`write_slice_config` into this test's tmp_path."""
    return lambda **sections: write_slice_config(tmp_path, adult_slice, **sections)


# data: settings for a plain CSV with a header, replacing the Adult slice's raw-format ones.
PLAIN_CSV = {"columns": None, "separator": ",", "na_values": [], "target": None}


def assert_nothing_written(folder: Path) -> None:
    """No file anywhere under `folder` (empty folders may remain)."""
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]
