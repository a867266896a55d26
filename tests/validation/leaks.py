"""Known leaks for the privacy tests, built from real rows: a 10%-perturbed copy ("flip10")
and heavier perturbations, and a good sample with a handful of near-copies of outliers
planted in it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from generators.data.schema import Schema
from validation.distance import DistanceEncoder, nearest_neighbors

# Planted numerics move by this share of their training range (categoricals are kept).
PLANT_JITTER = 0.005


def disjoint_split(
    frame: pd.DataFrame, seed: int, train_rows: int, holdout_rows: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, holdout, fresh): disjoint seeded slices of `frame`; fresh is as large as train."""
    rows = np.random.default_rng(seed).permutation(len(frame))
    cuts = np.cumsum([train_rows, holdout_rows, train_rows])
    parts = np.split(rows[: cuts[-1]], cuts[:-1])
    return tuple(frame.iloc[part].reset_index(drop=True) for part in parts)


def flip_cells(train: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Every training row with about `share` of its cells replaced by another row's value."""
    rng = np.random.default_rng(seed)
    flipped = train.copy()
    for column in flipped.columns:
        hit = rng.random(len(flipped)) < share
        donors = rng.integers(0, len(train), hit.sum())
        flipped.loc[hit, column] = train[column].to_numpy()[donors]
    return flipped


def flip10(train: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every training row with about 10% of its cells replaced by another row's value."""
    return flip_cells(train, 0.1, seed)


def most_isolated(train: pd.DataFrame, schema: Schema, n: int, k: int = 5) -> np.ndarray:
    """Row numbers of the n training rows farthest from their k-th nearest other row."""
    encoder = DistanceEncoder.fit(train, schema)
    encoded = encoder.transform(train)
    # k + 1 neighbours: the nearest is the row itself
    distances, _ = nearest_neighbors(encoded, encoded, k + 1, **encoder.search)
    return np.argsort(-distances[:, -1], kind="stable")[:n]


def plant_outliers(
    sample: pd.DataFrame, train: pd.DataFrame, schema: Schema, n: int, seed: int
) -> pd.DataFrame:
    """`sample` with its last n rows replaced by near-copies of the n most isolated training
    rows (numerics jittered by PLANT_JITTER of their range, rounded as the column is), so
    the release is as large as `sample` and as good everywhere else."""
    rng = np.random.default_rng(seed)
    copies = train.iloc[most_isolated(train, schema, n)].copy()
    for name in schema.names_of("numeric"):
        values = train[name].astype("float64")
        jitter = rng.normal(0.0, PLANT_JITTER * float(values.max() - values.min()), n)
        moved = copies[name].astype("float64") + jitter
        if pd.api.types.is_integer_dtype(train[name].dtype):
            moved = moved.round()
        copies[name] = moved.astype(train[name].dtype)
    return pd.concat([sample.iloc[: len(sample) - n], copies], ignore_index=True)
