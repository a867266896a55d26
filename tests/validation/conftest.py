"""Fixture data for the validation tests: the generators tests' mixed table, reused, and
seeded samples of the shipped UCI Adult table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import Schema, infer_schema
from generators.data.split import split_holdout
from generators.data.tables import read_table
from tests.conftest import ADULT_COLUMNS, ADULT_FILE
from tests.generators.conftest import make_mixed_frame

ADULT_SAMPLE_ROWS = 3000  # 2000 train + 1000 holdout: seconds per suite, per report
ADULT_FRESH_ROWS = 2000  # a third real sample, as large as train, for TSTR vs TRTR


def read_adult(path) -> tuple[pd.DataFrame, Schema]:
    """UCI Adult (header-less, ', '-separated, '?' for missing) and its inferred schema."""
    frame, arrow_schema = read_table(
        str(path), columns=ADULT_COLUMNS, separator=", ", na_values=["?"]
    )
    return frame, infer_schema(frame, arrow_schema=arrow_schema)


@pytest.fixture(scope="session")
def fidelity_frame() -> pd.DataFrame:
    return make_mixed_frame()


@pytest.fixture(scope="session")
def fidelity_schema(fidelity_frame: pd.DataFrame) -> Schema:
    return infer_schema(fidelity_frame)


@pytest.fixture(scope="session")
def adult_table() -> tuple[pd.DataFrame, Schema]:
    """The shipped Adult training file (32,561 rows x 15 columns); tests must not modify it."""
    return read_adult(ADULT_FILE)


@pytest.fixture(scope="session")
def adult_parts(adult_table) -> dict[str, pd.DataFrame]:
    """Disjoint seeded real samples of Adult: `train` (2000) and `holdout` (1000) from
    split_holdout stratified on income, and `fresh` (2000) from the rows left over."""
    frame, _ = adult_table
    order = np.random.default_rng(20240611).permutation(len(frame))
    sample = frame.iloc[order[:ADULT_SAMPLE_ROWS]].reset_index(drop=True)
    train, holdout = split_holdout(sample, 1 / 3, seed=0, target="income")
    rest = order[ADULT_SAMPLE_ROWS : ADULT_SAMPLE_ROWS + ADULT_FRESH_ROWS]
    fresh = frame.iloc[rest].reset_index(drop=True)
    return {"train": train, "holdout": holdout, "fresh": fresh}
