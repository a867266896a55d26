"""The measured effect of synthetic rows on a downstream model: the same scikit-learn
gradient boosting model trained three ways and scored on the real holdout.

- `real`: the real training rows only (the baseline);
- `augmented`: the real training rows plus the synthetic ones (what an augmentation job
  hands on);
- `synthetic`: the synthetic rows only (can they stand in for the real ones?).

Classification (categorical/boolean target): per-class recall (`<setting>.recall.<class>`,
one per class of the holdout, so the effect on a rare class shows) and macro F1 over the
holdout's classes (`<setting>.macro_f1`). Regression (numeric target): `<setting>.r2`.
Features and their encoding are fidelity's (`validation.fidelity._features`): every
numeric, datetime, categorical and boolean column but the target, categories fixed by the
real training rows. Tables are cut to a seeded subsample of `max_rows` rows each.

Informational: the report never blocks publication.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import f1_score, r2_score, recall_score
from threadpoolctl import threadpool_limits

from generators.data.schema import Schema
from generators.data.values import as_float
from generators.errors import DataError
from validation.fidelity import MIN_ROWS_FOR_MODELS, MODEL_THREADS, _features
from validation.privacy import subsample
from validation.report import Report

SETTINGS = ("real", "augmented", "synthetic")
FEATURE_KINDS = ("numeric", "datetime", "categorical", "boolean")


@dataclass
class DownstreamReport(Report):
    """A Report whose Markdown is one table: a row per metric, a column per setting."""

    def to_markdown(self) -> str:
        lines = [f"### {self.name}: informational", ""]
        rows = self.details.get("rows", {})
        if rows:
            lines += [
                "Trained on " + ", ".join(f"{k}: {v:,} rows" for k, v in rows.items()) + "; "
                f"scored on {self.details.get('holdout_rows', 0):,} holdout rows.",
                "",
            ]
        measures = list(dict.fromkeys(key.split(".", 1)[1] for key in self.metrics))
        if measures:
            lines += ["| metric | " + " | ".join(SETTINGS) + " |", "|---" * 4 + "|"]
            for measure in measures:
                cells = [self.metrics.get(f"{setting}.{measure}") for setting in SETTINGS]
                shown = ["" if v is None else f"{v:.3f}" for v in cells]
                lines.append(f"| {measure} | " + " | ".join(shown) + " |")
        lines += [f"- {note}" for note in self.details.get("notes", [])]
        return "\n".join(lines)


@threadpool_limits.wrap(limits=MODEL_THREADS, user_api="openmp")
def downstream_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    target: str,
    *,
    seed: int = 0,
    max_rows: int = 20_000,
) -> DownstreamReport:
    """Train gradient boosting on real, real + synthetic and synthetic rows; score each on
    `holdout`. All three frames have the schema's columns; rows missing the target are
    dropped. Metrics as in the module docstring; details hold the rows used, the task, the
    classes with their counts in each training set, and notes on settings left out
    (fewer than 20 rows)."""
    if target not in schema.names:
        raise DataError(
            f"downstream: target column '{target}' is not in the table; columns: "
            f"{', '.join(schema.names)}"
        )
    kind = schema[target].kind
    if kind not in ("numeric", "categorical", "boolean"):
        raise DataError(
            f"downstream: target column '{target}' is {kind}; use a categorical, boolean or "
            "numeric column"
        )
    features = [c.name for c in schema.columns if c.name != target and c.kind in FEATURE_KINDS]
    rng = np.random.default_rng(seed)
    real, fake, held = (
        subsample(frame[frame[target].notna()], max_rows, rng)
        for frame in (train, synthetic, holdout)
    )
    frames = {
        "real": real,
        "augmented": pd.concat([real, fake], ignore_index=True),
        "synthetic": fake,
    }
    classification = kind in ("categorical", "boolean")
    details: dict = {
        "target": target,
        "task": "classification" if classification else "regression",
        "rows": {setting: len(frame) for setting, frame in frames.items()},
        "holdout_rows": len(held),
        "features": features,
        "notes": [],
    }
    report = DownstreamReport(
        name="downstream", passed=True, metrics={}, details=details, blocking=False
    )
    if not features:
        details["notes"].append("no feature columns besides the target")
        return report
    if len(held) < MIN_ROWS_FOR_MODELS:
        details["notes"].append(f"holdout has {len(held)} rows with a target; need 20")
        return report
    encoded = _features([real, frames["augmented"], fake, held], schema, features)
    x_test = encoded[3]
    inputs = dict(zip(SETTINGS, encoded[:3], strict=True))
    if classification:
        y_test = _labels(held[target])
        classes = sorted(np.unique(y_test).tolist())
        details["classes"] = {
            setting: pd.Series(_labels(frame[target])).value_counts().to_dict()
            for setting, frame in frames.items()
        }
    for setting in SETTINGS:
        frame = frames[setting]
        if len(frame) < MIN_ROWS_FOR_MODELS:
            details["notes"].append(f"{setting}: {len(frame)} training rows; need 20, left out")
            continue
        if classification:
            y = _labels(frame[target])
            if len(np.unique(y)) < 2:  # one class: the model can only predict it
                predicted = np.full(len(y_test), y[0], dtype=object)
            else:
                model = HistGradientBoostingClassifier(
                    max_iter=100, categorical_features="from_dtype", random_state=seed
                )
                predicted = model.fit(inputs[setting], y).predict(x_test)
            recalls = recall_score(y_test, predicted, labels=classes, average=None, zero_division=0)
            report.metrics[f"{setting}.macro_f1"] = float(
                f1_score(y_test, predicted, labels=classes, average="macro", zero_division=0)
            )
            for label, recall in zip(classes, recalls, strict=True):
                report.metrics[f"{setting}.recall.{label}"] = float(recall)
        else:
            model = HistGradientBoostingRegressor(
                max_iter=100, categorical_features="from_dtype", random_state=seed
            )
            model.fit(inputs[setting], as_float(frame[target]))
            report.metrics[f"{setting}.r2"] = float(
                r2_score(as_float(held[target]), model.predict(x_test))
            )
    return report


def _labels(values: pd.Series) -> np.ndarray:
    """Class labels as strings (booleans as True/False)."""
    return values.astype("string").to_numpy(dtype=object)
