"""Fixture data for the validation tests: the generators tests' mixed table, reused."""

from __future__ import annotations

import pandas as pd
import pytest

from generators.schema import Schema, infer_schema
from tests.generators.conftest import make_mixed_frame


@pytest.fixture(scope="session")
def fidelity_frame() -> pd.DataFrame:
    return make_mixed_frame()


@pytest.fixture(scope="session")
def fidelity_schema(fidelity_frame: pd.DataFrame) -> Schema:
    return infer_schema(fidelity_frame)
