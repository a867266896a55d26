"""Fidelity: how well the synthetic table stands in for the real one, by the field's measures.

- SDMetrics' QualityReport (Column Shapes: KS/TV complements; Column Pair Trends:
  correlation and contingency similarity; the overall score is their mean) and
  DiagnosticReport (data validity and structure), for synthetic vs train and, as the
  ceiling, for the real holdout vs train. The SDMetrics version is recorded: its scoring
  changed in 0.27.
- Machine-learning efficacy when a target is set: gradient boosting trained on synthetic,
  tested on the holdout (TSTR), against the same model trained on the real training rows
  (TRTR).
- Discriminator AUC: a classifier's cross-validated ROC AUC at telling real training rows
  from synthetic ones. 0.5 = indistinguishable.

Large or wide tables are scored on a seeded subsample of `max_rows` rows and at most
`max_columns` columns; the report records what was used. Scores are informational: this
report never blocks publication.
"""

from __future__ import annotations

import warnings
from importlib.metadata import version

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import f1_score, r2_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from generators.data.schema import Schema
from generators.data.values import as_float
from validation.expectations import cramers_v, spearman_matrix
from validation.privacy import subsample
from validation.report import Report

SDTYPES = {
    "numeric": "numerical",
    "categorical": "categorical",
    "boolean": "boolean",
    "datetime": "datetime",
    "id": "id",
}
MAX_CATEGORIES_AS_CATEGORICAL = 250  # HistGradientBoosting's limit (max_bins 255) with margin
MIN_ROWS_FOR_MODELS = 20
# Gradient boosting's OpenMP threads spin-wait: on a busy 2-core machine (a training job
# beside it) fitting with 2 threads took 10x longer than with one. The models here are small.
MODEL_THREADS = 1


def fidelity_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    target: str | None = None,
    max_rows: int = 20_000,
    max_columns: int = 50,
    seed: int = 0,
) -> Report:
    """Every fidelity score of `synthetic` (same columns as `train`) in one report.

    Metrics: quality, column_shapes, column_pair_trends (+ `_holdout` ceilings),
    diagnostic, discriminator_auc, and with a target tstr_*/trtr_*/efficacy_ratio.
    """
    rng = np.random.default_rng(seed)
    columns = _scored_columns(schema, max_columns, rng)
    real = subsample(train, max_rows, rng)
    fake = subsample(synthetic, max_rows, rng)
    held = subsample(holdout, max_rows, rng)
    metrics: dict[str, float] = {}
    details: dict = {
        "sdmetrics_version": version("sdmetrics"),
        "rows_scored": {"train": len(real), "synthetic": len(fake), "holdout": len(held)},
        "columns_scored": columns,
    }
    quality, column_details = sdmetrics_quality(real, fake, schema, columns)
    metrics.update(quality)
    details["columns"] = column_details
    ceiling, _ = sdmetrics_quality(real, held, schema, columns)
    metrics.update({f"{key}_holdout": value for key, value in ceiling.items()})
    metrics["diagnostic"] = sdmetrics_diagnostic(real, fake, schema, columns)
    metrics["discriminator_auc"] = discriminator_auc(real, fake, schema, columns, seed=seed)
    if target is not None and target in schema.names:
        metrics.update(ml_efficacy(real, fake, held, schema, target, seed=seed))
        details["efficacy_target"] = target
    return Report(name="fidelity", passed=True, metrics=metrics, details=details, blocking=False)


def _scored_columns(schema: Schema, max_columns: int, rng: np.random.Generator) -> list[str]:
    names = [c.name for c in schema.columns if c.kind in SDTYPES and c.kind != "id"]
    if len(names) > max_columns:
        chosen = set(rng.choice(len(names), size=max_columns, replace=False).tolist())
        names = [name for i, name in enumerate(names) if i in chosen]
    return names


def _metadata(schema: Schema, columns: list[str]) -> dict:
    return {"columns": {name: {"sdtype": SDTYPES[schema[name].kind]} for name in columns}}


def sdmetrics_quality(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, columns: list[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """SDMetrics QualityReport. Returns ({quality, column_shapes, column_pair_trends},
    {column: its shape score})."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices of the single-table API
        from sdmetrics.reports.single_table import QualityReport

        report = QualityReport()
        report.generate(
            real[columns], synthetic[columns], _metadata(schema, columns), verbose=False
        )
    properties = report.get_properties().set_index("Property")["Score"]
    scores = {"quality": float(report.get_score())}
    for prop, key in (
        ("Column Shapes", "column_shapes"),
        ("Column Pair Trends", "column_pair_trends"),
    ):
        if prop in properties.index and not pd.isna(properties[prop]):
            scores[key] = float(properties[prop])
    shapes = report.get_details("Column Shapes")
    per_column = {str(row["Column"]): float(row["Score"]) for _, row in shapes.iterrows()}
    return scores, per_column


def sdmetrics_diagnostic(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, columns: list[str]
) -> float:
    """SDMetrics DiagnosticReport score: are values valid and the structure the same?"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sdmetrics.reports.single_table import DiagnosticReport

        report = DiagnosticReport()
        report.generate(
            real[columns], synthetic[columns], _metadata(schema, columns), verbose=False
        )
    return float(report.get_score())


def _features(frames: list[pd.DataFrame], schema: Schema, columns: list[str]) -> list[pd.DataFrame]:
    """Model inputs for scikit-learn's gradient boosting, encoded alike for every frame:
    numbers (datetimes as ns), categoricals as pandas categories over the first frame's
    values (others missing); high-cardinality categoricals as their codes."""
    encoded: list[dict[str, object]] = [{} for _ in frames]
    for name in columns:
        if schema[name].kind in ("numeric", "datetime"):
            for out, frame in zip(encoded, frames, strict=True):
                out[name] = as_float(frame[name])
            continue
        reference = frames[0][name].astype("string").dropna().unique().tolist()
        as_category = len(reference) <= MAX_CATEGORIES_AS_CATEGORICAL
        dtype = pd.CategoricalDtype(sorted(reference))
        for out, frame in zip(encoded, frames, strict=True):
            values = pd.Categorical(frame[name].astype("string").astype(object), dtype=dtype)
            codes = np.where(values.codes < 0, np.nan, values.codes.astype(float))
            out[name] = pd.Series(values) if as_category else codes
    return [pd.DataFrame(out) for out in encoded]


@threadpool_limits.wrap(limits=MODEL_THREADS, user_api="openmp")
def discriminator_auc(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, columns: list[str], *, seed: int
) -> float:
    """3-fold cross-validated ROC AUC of gradient boosting telling real rows from synthetic
    ones, on equal numbers of each. 0.5 is ideal; 1.0 is trivially told apart."""
    rows = min(len(real), len(synthetic))
    if rows < MIN_ROWS_FOR_MODELS:
        return float("nan")
    rng = np.random.default_rng(seed)
    real, synthetic = subsample(real, rows, rng), subsample(synthetic, rows, rng)
    both = pd.concat([real[columns], synthetic[columns]], ignore_index=True)
    (features,) = _features([both], schema, columns)
    labels = np.r_[np.zeros(rows), np.ones(rows)]
    model = HistGradientBoostingClassifier(
        max_iter=100, categorical_features="from_dtype", random_state=seed
    )
    # Identical rows share a fold: a synthetic row that copies a real one would otherwise
    # meet its twin, labelled the other way, across folds and push the AUC below 0.5.
    groups = pd.util.hash_pandas_object(both, index=False).to_numpy()
    folds = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=seed)
    scores = cross_val_predict(
        model, features, labels, groups=groups, cv=folds, method="predict_proba"
    )[:, 1]
    return float(roc_auc_score(labels, scores))


@threadpool_limits.wrap(limits=MODEL_THREADS, user_api="openmp")
def ml_efficacy(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: Schema,
    target: str,
    *,
    seed: int,
) -> dict[str, float]:
    """Train on synthetic, test on holdout (TSTR) vs train on real, test on holdout (TRTR).

    Classification (categorical/boolean target): macro F1, and ROC AUC for two classes;
    regression (numeric target): R^2. efficacy_ratio = TSTR / TRTR of the first metric.
    """
    kind = schema[target].kind
    features = [
        c.name
        for c in schema.columns
        if c.name != target and c.kind in ("numeric", "datetime", "categorical", "boolean")
    ]
    frames = [f[f[target].notna()].reset_index(drop=True) for f in (real, synthetic, holdout)]
    if min(len(f) for f in frames) < MIN_ROWS_FOR_MODELS or not features:
        return {}
    x_real, x_fake, x_test = _features(frames, schema, features)
    if kind in ("categorical", "boolean"):
        y_real, y_fake, y_test = (f[target].astype("string").to_numpy() for f in frames)
        scores = {}
        for prefix, x, y in (("trtr", x_real, y_real), ("tstr", x_fake, y_fake)):
            if len(np.unique(y)) < 2:  # a synthetic table with one class predicts only it
                predicted, proba, classes = np.full(len(y_test), y[0]), None, None
            else:
                model = HistGradientBoostingClassifier(
                    max_iter=100, categorical_features="from_dtype", random_state=seed
                ).fit(x, y)
                predicted, proba, classes = (
                    model.predict(x_test),
                    model.predict_proba(x_test),
                    model.classes_,
                )
            scores[f"{prefix}_f1_macro"] = float(f1_score(y_test, predicted, average="macro"))
            test_classes = np.unique(y_test)
            if len(test_classes) == 2:
                positive = test_classes[1]
                column = (
                    list(classes).index(positive)
                    if classes is not None and positive in classes
                    else None
                )
                ranking = (
                    proba[:, column]
                    if column is not None
                    else (predicted == positive).astype(float)
                )
                scores[f"{prefix}_roc_auc"] = float(roc_auc_score(y_test == positive, ranking))
        scores["efficacy_ratio"] = scores["tstr_f1_macro"] / max(scores["trtr_f1_macro"], 1e-12)
        return scores
    y_real, y_fake, y_test = (as_float(f[target]) for f in frames)
    scores = {}
    for prefix, x, y in (("trtr", x_real, y_real), ("tstr", x_fake, y_fake)):
        model = HistGradientBoostingRegressor(
            max_iter=100, categorical_features="from_dtype", random_state=seed
        ).fit(x, y)
        scores[f"{prefix}_r2"] = float(r2_score(y_test, model.predict(x_test)))
    scores["efficacy_ratio"] = (
        scores["tstr_r2"] / scores["trtr_r2"] if scores["trtr_r2"] > 0 else float("nan")
    )
    return scores


def association_matrix(frame: pd.DataFrame, schema: Schema, columns: list[str]) -> np.ndarray:
    """Pairwise association, columns x columns, in [-1, 1]: Spearman correlation for two
    numeric/datetime columns, else bias-corrected Cramer's V with numerics cut into
    deciles. The diagonal is 1."""
    numeric = [schema[c].kind in ("numeric", "datetime") for c in columns]
    codes = []
    for name, is_number in zip(columns, numeric, strict=True):
        if is_number:
            values = as_float(frame[name])
            present = values[~np.isnan(values)]
            edges = (
                np.unique(np.quantile(present, np.linspace(0.1, 0.9, 9))) if len(present) else []
            )
            binned = np.searchsorted(edges, values, side="right")
            codes.append(np.where(np.isnan(values), -1, binned))
        else:
            codes.append(pd.factorize(frame[name].astype("string").fillna("\x00missing"))[0])
    k = len(columns)
    matrix = np.eye(k)
    numbers = [i for i in range(k) if numeric[i]]
    if len(numbers) >= 2:
        ranks = spearman_matrix(np.column_stack([as_float(frame[columns[i]]) for i in numbers]))
        for a, i in enumerate(numbers):
            for b, j in enumerate(numbers):
                matrix[i, j] = ranks[a, b]
    for i in range(k):
        for j in range(i + 1, k):
            if not (numeric[i] and numeric[j]):
                matrix[i, j] = matrix[j, i] = cramers_v(codes[i], codes[j])
    return matrix
