"""Protections applied around training, each switched on in the `privacy:` config.

- Rare-category merging (before training, on by default): a category seen fewer than k
  times in the training rows is a fingerprint of the few people who have it; it is
  replaced by one placeholder category before the generator sees the data.
- Extreme-value clipping (before training, on by default): a numeric value far out in a
  tail that no other training row is near (a single very high income, say) discloses the
  one person who has it, and generators spread or repeat it. Values beyond a noisy
  quantile are clipped when they are isolated (fewer than k rows within a small radius),
  never when many rows share them (a top-code such as capital_gain = 99999 is kept).
- Similarity filter (after sampling): synthetic rows closer to some training row than
  real unseen rows usually are (the `quantile` of holdout->train distances) are dropped,
  and more rows are sampled until the requested count is reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from generators.base import Generator
from generators.data.schema import Column, Schema
from generators.data.values import as_float
from generators.errors import DataError
from validation.distance import DistanceEncoder, nearest_neighbors

RARE_PLACEHOLDER = "(rare)"
MAX_FILTER_ROUNDS = 20
# A value's neighbourhood: this share of the column's spread between its 1st and 99th
# percentiles (at least one step of its grid). Adult's age: 1 year; fnlwgt: about 4,800.
RADIUS_SHARE_OF_SPREAD = 0.01
# The noise on the clipping quantile's rank: Laplace with scale 1/epsilon ranks, as the
# rank-based noisy quantile of DP practice. It keeps the bound from being pinned to one
# chosen row; it is not a differential-privacy guarantee (the tail test below reads the data).
QUANTILE_RANK_EPSILON = 1.0


def merge_rare_categories(
    train: pd.DataFrame, schema: Schema, min_count: int, placeholder: str = RARE_PLACEHOLDER
) -> tuple[pd.DataFrame, Schema, dict[str, int]]:
    """Replace categories seen fewer than `min_count` times by `placeholder`.

    Only string categorical columns are touched (a placeholder cannot live in an int
    column). Returns the new training frame, the schema with updated category sets (so the
    placeholder survives `conform`), and the number of rows changed per column.
    """
    out = train.copy()
    columns = list(schema.columns)
    changed = {}
    for index, column in enumerate(columns):
        if column.kind != "categorical" or not pd.api.types.is_string_dtype(
            train[column.name].dtype
        ):
            continue
        counts = train[column.name].value_counts()
        rare = counts[counts < min_count].index
        if len(rare) == 0:
            continue
        hit = train[column.name].isin(rare).fillna(False).to_numpy(dtype=bool)
        out.loc[hit, column.name] = placeholder
        kept = sorted(set(out[column.name].dropna().astype(str)))
        columns[index] = replace(column, categories=tuple(kept))
        changed[column.name] = int(hit.sum())
    return out, Schema(tuple(columns), schema.arrow_schema), changed


@dataclass
class Protection:
    """What the protections changed in the training table, per column: rows whose
    category was merged, rows whose value was clipped, and the clip bounds applied
    (lower, upper; None where that side was left alone)."""

    merged: dict[str, int] = field(default_factory=dict)
    clipped: dict[str, int] = field(default_factory=dict)
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "rare_category_rows_merged": self.merged,
            "extreme_rows_clipped": self.clipped,
            "extreme_clip_bounds": {k: list(v) for k, v in self.bounds.items()},
        }


def value_radius(values: np.ndarray) -> float:
    """The half-width of a value's neighbourhood in a numeric column (`values`: its present
    values, any order): RADIUS_SHARE_OF_SPREAD of the spread between the 1st and 99th
    percentiles (of the full range when those are equal), and at least the smallest gap
    between two distinct values (1 for a column of integers), so a grid step is "near"."""
    if len(values) == 0:
        return 0.0
    low, high = np.quantile(values, [0.01, 0.99])
    spread = high - low if high > low else float(np.max(values) - np.min(values))
    gaps = np.diff(np.unique(values))
    step = float(gaps.min()) if len(gaps) else 0.0
    return max(step, RADIUS_SHARE_OF_SPREAD * float(spread))


def neighbour_counts(sorted_values: np.ndarray, points: np.ndarray, radius: float) -> np.ndarray:
    """How many of `sorted_values` (ascending) lie within `radius` of each of `points`."""
    upper = np.searchsorted(sorted_values, points + radius, side="right")
    return upper - np.searchsorted(sorted_values, points - radius, side="left")


def noisy_quantile(sorted_values: np.ndarray, quantile: float, rng: np.random.Generator) -> float:
    """The value at rank `quantile * (n - 1)` plus Laplace noise, the rank kept in
    [1, n - 2] so the bound is never the column's own minimum or maximum (n >= 3)."""
    n = len(sorted_values)
    rank = quantile * (n - 1) + rng.laplace(scale=1 / QUANTILE_RANK_EPSILON)
    return float(sorted_values[int(np.clip(round(rank), 1, n - 2))])


def tail_bounds(
    values: np.ndarray, quantile: float, min_rows: int, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    """(lower, upper) clip bounds of one numeric column (`values`: present values), None
    where nothing is to clip. The upper bound is the noisy `quantile` or, when a value
    beyond it is shared by `min_rows` or more rows within `value_radius` (a spike, a
    top-code), the highest such value: only the isolated values beyond it are clipped.
    The lower bound mirrors it at 1 - `quantile`. Bounds are values of the column, so an
    integer column stays on its grid."""
    ordered = np.sort(values)
    if len(ordered) < 3:
        return None, None
    populated = neighbour_counts(ordered, ordered, value_radius(ordered)) >= min_rows
    high = noisy_quantile(ordered, quantile, rng)
    high = max(high, float(ordered[populated].max())) if populated.any() else high
    low = noisy_quantile(ordered, 1 - quantile, rng)
    low = min(low, float(ordered[populated].min())) if populated.any() else low
    return (low if ordered[0] < low else None), (high if ordered[-1] > high else None)


def clip_extremes(
    train: pd.DataFrame, schema: Schema, quantile: float, min_rows: int, seed: int
) -> tuple[pd.DataFrame, Schema, dict[str, int], dict[str, tuple[float | None, float | None]]]:
    """Clip the isolated tail values of every numeric column (see `tail_bounds`).

    Identifiers, datetimes and other kinds are untouched; an integer column keeps its
    dtype. The schema's minimum and maximum become the bounds, so `conform` keeps the
    generator's output inside them and the saved schema no longer holds the extreme.
    Returns (new frame, new schema, rows clipped per column, bounds per clipped column).
    The noise is seeded by `seed`.
    """
    rng = np.random.default_rng(seed)
    out, columns = train.copy(), list(schema.columns)
    clipped, bounds = {}, {}
    for index, column in enumerate(columns):
        if column.kind != "numeric" or column.name not in train.columns:
            continue
        numbers = as_float(train[column.name])
        present = ~np.isnan(numbers)
        low, high = tail_bounds(numbers[present], quantile, min_rows, rng)
        if low is None and high is None:
            continue
        below = present & (numbers < low) if low is not None else np.zeros_like(present)
        above = present & (numbers > high) if high is not None else np.zeros_like(present)
        if below.any():
            out.loc[below, column.name] = _on_dtype(low, column)
        if above.any():
            out.loc[above, column.name] = _on_dtype(high, column)
        columns[index] = replace(
            column,
            minimum=column.minimum if low is None else float(low),
            maximum=column.maximum if high is None else float(high),
        )
        clipped[column.name] = int(below.sum() + above.sum())
        bounds[column.name] = (low, high)
    return out, Schema(tuple(columns), schema.arrow_schema), clipped, bounds


def _on_dtype(value: float, column: Column) -> float | int:
    return int(value) if column.is_integer else float(value)


class SimilarityFilter:
    """Flags synthetic rows closer to a training row than `quantile` of holdout rows are."""

    def __init__(self, train: pd.DataFrame, holdout: pd.DataFrame, schema: Schema, quantile: float):
        self.encoder = DistanceEncoder.fit(train, schema)
        self.train_features = self.encoder.transform(train)
        holdout_distances, _ = nearest_neighbors(
            self.encoder.transform(holdout),
            self.train_features,
            1,
            **self.encoder.search,
        )
        self.threshold = float(np.quantile(holdout_distances[:, 0], quantile))

    def too_close(self, synthetic: pd.DataFrame) -> np.ndarray:
        distances, _ = nearest_neighbors(
            self.encoder.transform(synthetic),
            self.train_features,
            1,
            **self.encoder.search,
        )
        return distances[:, 0] < self.threshold


def sample_filtered(
    generator: Generator, n: int, seed: int, similarity: SimilarityFilter
) -> tuple[pd.DataFrame, int]:
    """Sample `n` rows none of which the filter flags; returns (rows, how many were dropped).

    Each round samples with a seed derived from `seed`, so the result is reproducible.
    """
    kept, dropped, have = [], 0, 0
    for round_index in range(MAX_FILTER_ROUNDS):
        batch = generator.sample(
            max(n - have, 1) if round_index == 0 else max(2 * (n - have), 100),
            seed=seed + 7919 * round_index,
        )
        close = similarity.too_close(batch)
        dropped += int(close.sum())
        batch = batch[~close]
        kept.append(batch)
        have += len(batch)
        if have >= n:
            rows = pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)
            return rows, dropped
    raise DataError(
        f"the similarity filter dropped {dropped} rows in {MAX_FILTER_ROUNDS} rounds and kept only "
        f"{have} of {n}: the generator keeps reproducing training rows; lower "
        "privacy.similarity_filter_quantile or change the generator"
    )
