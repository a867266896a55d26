"""The seeded train/holdout split of a table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from generators.data.tables import MIN_ROWS
from generators.errors import DataError


def split_holdout(
    frame: pd.DataFrame, fraction: float, seed: int, target: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split into (train, holdout); stratified on `target` when given.

    The holdout is real data the generator never sees: the privacy and validation checks
    compare the synthetic data with it.
    """
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"the table has {len(frame)} rows; at least {MIN_ROWS} are needed to hold out "
            "real rows "
            "for the privacy and validation checks"
        )
    if target is not None and target not in frame.columns:
        raise DataError(
            f"data.target: column '{target}' is not in the table; columns are {list(frame.columns)}"
        )
    rng = np.random.default_rng(seed)
    if target is None:
        groups = [np.arange(len(frame))]
    else:
        codes = pd.factorize(frame[target], use_na_sentinel=False)[0]
        groups = [np.flatnonzero(codes == code) for code in np.unique(codes)]
    holdout_rows = []
    for rows in groups:
        shuffled = rng.permutation(rows)
        take = int(round(fraction * len(shuffled))) if len(shuffled) > 1 else 0
        holdout_rows.append(shuffled[:take])
    holdout_index = np.sort(np.concatenate(holdout_rows))
    if len(holdout_index) == 0 or len(holdout_index) == len(frame):
        take = min(max(1, int(round(fraction * len(frame)))), len(frame) - 1)
        holdout_index = np.sort(rng.permutation(len(frame))[:take])
    is_holdout = np.zeros(len(frame), dtype=bool)
    is_holdout[holdout_index] = True
    train = frame[~is_holdout].reset_index(drop=True)
    holdout = frame[is_holdout].reset_index(drop=True)
    return train, holdout
