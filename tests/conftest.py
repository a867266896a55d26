"""Shared fixtures: the repo's shipped Adult file, and ../shared/data when it is present."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pytest

import flows  # noqa: F401  (offline, telemetry-off defaults before Prefect or MLflow load)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ADULT_FILE = REPO / "data" / "adult" / "adult.data.gz"
ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]


def read_adult(rows: int) -> pd.DataFrame:
    """The first `rows` rows of the shipped Adult file, as pandas reads them (no dtypes
    normalised): header-less, ', '-separated, '?' as missing."""
    return pd.read_csv(
        ADULT_FILE,
        header=None,
        names=ADULT_COLUMNS,
        sep=", ",
        engine="python",
        na_values=["?"],
        nrows=rows,
    )


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module (results that must not depend on the thread
    count), restored after; use with pytestmark = pytest.mark.usefixtures(...)."""
    import torch  # here, not at the top: most tests never need torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (a fresh clone has no ../shared)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_adult_file() -> Path:
    """UCI Adult from ../shared/data when present (CI), else the byte-identical copy the repo
    ships, so the privacy gate's calibration on real data also runs on a fresh clone."""
    shared = SHARED_DATA / "adult" / "adult.data.gz"
    return shared if shared.is_file() else ADULT_FILE


@pytest.fixture
def memory():
    """A fresh bucket on fsspec's in-process memory filesystem: (filesystem, its URL),
    removed afterwards."""
    fs = fsspec.filesystem("memory")
    url = f"memory://test-{uuid.uuid4().hex[:8]}"
    yield fs, url
    if fs.exists(url):
        fs.rm(url, recursive=True)


@pytest.fixture(autouse=True)
def _no_ambient_tracking(monkeypatch):
    """A user's MLFLOW_TRACKING_URI must never receive test runs."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield


def pytest_report_header(config) -> str:
    return f"shared data: {'present' if SHARED_DATA.is_dir() else 'absent'}; CPUs: {os.cpu_count()}"


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server and database for the whole session (every package's
    flow tests share it: it takes tens of seconds to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
