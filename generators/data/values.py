"""Column values as plain arrays: the one place that decides how datetimes become numbers
and how missing values become a label. Encoders, distances and scores all read through it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MISSING = "\x00missing"  # the label of a missing value: sorts first, never a real value


def as_float(values: pd.Series) -> np.ndarray:
    """float64 array, NaN where missing; datetimes as int64 nanoseconds since the epoch (UTC)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        as_int = values.dt.as_unit("ns").astype("int64").to_numpy().astype(np.float64)
        return np.where(values.isna().to_numpy(), np.nan, as_int)
    return pd.to_numeric(values, errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def as_labels(values: pd.Series) -> pd.Series:
    """Strings, with missing values as the MISSING label (a category of its own)."""
    return values.astype("string").fillna(MISSING).astype(str)
