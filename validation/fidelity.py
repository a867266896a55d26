"""Fidelity: how closely the synthetic table follows the real one, column by column and in pairs.

Scores follow SDMetrics' definitions so they read the same as SDV's quality report:
- numeric and datetime columns: KSComplement, 1 - the Kolmogorov-Smirnov statistic;
- categorical and boolean columns: TVComplement, 1 - the total variation distance of the
  category frequencies (missing counted as its own category);
- numeric pairs: CorrelationSimilarity, 1 - |r_real - r_synthetic| / 2 (Pearson).
Each is in [0, 1]; 1 is identical. The same scores for the holdout against the training
data are the reference: the best a real sample of that size achieves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from generators.schema import Schema
from generators.values import as_float
from validation.report import Report


def ks_complement(real: pd.Series, synthetic: pd.Series) -> float:
    a = np.sort(_as_float(real))
    b = np.sort(_as_float(synthetic))
    if len(a) == 0 or len(b) == 0:
        return float(len(a) == len(b))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(1.0 - np.max(np.abs(cdf_a - cdf_b)))


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    p = real.astype("string").fillna("<missing>").value_counts(normalize=True)
    q = synthetic.astype("string").fillna("<missing>").value_counts(normalize=True)
    p, q = p.align(q, fill_value=0.0)
    return float(1.0 - 0.5 * np.abs(p - q).sum())


def _as_float(values: pd.Series) -> np.ndarray:
    """Present values only, as floats (datetimes as nanoseconds)."""
    numbers = as_float(values)
    return numbers[~np.isnan(numbers)]


def column_scores(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict[str, float]:
    scores = {}
    for column in schema.columns:
        if column.kind in ("numeric", "datetime"):
            scores[column.name] = ks_complement(real[column.name], synthetic[column.name])
        elif column.kind in ("categorical", "boolean"):
            scores[column.name] = tv_complement(real[column.name], synthetic[column.name])
    return scores


def correlation_similarity(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
) -> float | None:
    names = schema.names_of("numeric")
    if len(names) < 2:
        return None
    real_r = real[names].astype("float64").corr().to_numpy()
    synthetic_r = synthetic[names].astype("float64").corr().to_numpy()
    upper = np.triu_indices(len(names), k=1)
    diffs = np.abs(real_r[upper] - synthetic_r[upper])
    diffs = diffs[~np.isnan(diffs)]
    return float(1.0 - diffs.mean() / 2) if len(diffs) else None


def fidelity_report(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
) -> Report:
    """Column shapes and pair trends of synthetic vs train, with the holdout's as reference.

    Informational: it never blocks publication (only the privacy gate does, for now).
    """
    synthetic_scores = column_scores(train, synthetic, schema)
    holdout_scores = column_scores(train, holdout, schema)
    metrics = {}
    if synthetic_scores:
        metrics["column_shapes"] = float(np.mean(list(synthetic_scores.values())))
        metrics["column_shapes_holdout"] = float(np.mean(list(holdout_scores.values())))
    pairs = correlation_similarity(train, synthetic, schema)
    if pairs is not None:
        metrics["column_pair_trends"] = pairs
        metrics["column_pair_trends_holdout"] = (
            correlation_similarity(train, holdout, schema) or 0.0
        )
    return Report(
        name="fidelity",
        passed=True,
        metrics=metrics,
        details={"columns": synthetic_scores, "columns_holdout": holdout_scores},
    )
