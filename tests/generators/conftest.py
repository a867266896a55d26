"""Small mixed-type tables built in code (no downloads, nothing from ../shared).

`make_mixed_frame` is a plain function so tests/validation can reuse it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from generators.data.schema import Schema, infer_schema, normalize_dtypes

MIXED_ROWS = 400
MIXED_SEED = 20240611
REGION_LEVELS = ("north", "south", "east", "west")
REGION_WEIGHTS = (0.55, 0.25, 0.13, 0.07)  # skewed, so a flat sampler is caught


def make_mixed_frame(rows: int = MIXED_ROWS, seed: int = MIXED_SEED) -> pd.DataFrame:
    """A seeded table with one column of each kind, already in synthpipe's nullable dtypes.

    customer_id: unique Int64 (an identifier); age: Int64 with about 3% missing; income:
    Float64, strongly correlated with age; region: string with 4 levels and about 2.5%
    missing; member: boolean; signup: datetime64[ns] at day resolution.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows)
    income = 1000.0 + 50.0 * age + rng.normal(0.0, 300.0, rows)
    age_values = pd.array(age, dtype="Int64")
    age_values[rng.choice(rows, size=max(1, rows * 3 // 100), replace=False)] = pd.NA
    region = rng.choice(REGION_LEVELS, size=rows, p=REGION_WEIGHTS).astype(object)
    region[rng.choice(rows, size=max(1, rows // 40), replace=False)] = None
    frame = pd.DataFrame(
        {
            "customer_id": pd.array(rng.permutation(np.arange(1000, 1000 + rows)), dtype="Int64"),
            "age": age_values,
            "income": pd.array(income, dtype="Float64"),
            "region": pd.array(region, dtype="string"),
            "member": pd.array(rng.random(rows) < 0.3, dtype="boolean"),
            "signup": pd.Timestamp("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 1000, rows), unit="D"),
        }
    )
    return normalize_dtypes(frame)


@pytest.fixture(scope="session", autouse=True)
def _torch_single_thread():
    """Tiny models gain nothing from intra-op threads, and on a small shared CPU torch's
    thread pool spins against other processes (measured: 100x slower backward passes on
    2 busy cores). One thread keeps the suite fast and its timings stable."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def mixed_frame_shared() -> pd.DataFrame:
    """Session-wide copy for module-scoped fixtures; tests must not modify it."""
    return make_mixed_frame()


@pytest.fixture(scope="session")
def mixed_schema(mixed_frame_shared: pd.DataFrame) -> Schema:
    return infer_schema(mixed_frame_shared)


@pytest.fixture
def mixed_frame(mixed_frame_shared: pd.DataFrame) -> pd.DataFrame:
    """A fresh copy per test, so a test may modify it."""
    return mixed_frame_shared.copy()


@pytest.fixture(scope="session")
def model_frame_shared(mixed_frame_shared: pd.DataFrame) -> pd.DataFrame:
    """The mixed table without its identifier column: only columns a model learns."""
    return mixed_frame_shared.drop(columns=["customer_id"])


@pytest.fixture(scope="session")
def model_schema(model_frame_shared: pd.DataFrame) -> Schema:
    return infer_schema(model_frame_shared)
