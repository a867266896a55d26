"""Protections applied around training, each switched on in the `privacy:` config.

- Rare-category merging (before training): a category seen fewer than k times in the
  training rows is a fingerprint of the few people who have it; it is replaced by one
  placeholder category before the generator sees the data.
- Similarity filter (after sampling): synthetic rows closer to some training row than
  real unseen rows usually are (the `quantile` of holdout->train distances) are dropped,
  and more rows are sampled until the requested count is reached.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from generators.base import Generator
from generators.data.schema import Schema
from generators.errors import DataError
from validation.distance import DistanceEncoder, nearest_neighbors

RARE_PLACEHOLDER = "(rare)"
MAX_FILTER_ROUNDS = 20


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
