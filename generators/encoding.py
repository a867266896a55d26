"""The shared, reversible encoding between a typed table and a float tensor.

Per column kind:
- numeric, datetime: a quantile transform to a standard normal (empirical CDF on up to
  `n_quantiles` knots, at most one per 10 rows, then the normal quantile function), plus a
  missing-value indicator when the column has missing values. With `n_quantiles=2` the
  knots are the column's min and max: a plain range scaling, as used under DP. Decoding
  inverts the interpolation, so values stay within the seen range and follow the real
  marginal.
- categorical, boolean: one-hot over the seen categories, missing as its own category.
Identifiers and free text are not encoded (the Generator base class handles identifiers).

Vectorised with NumPy: encoding Adult (26k rows) takes a few tens of milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from generators.schema import Schema
from generators.values import MISSING, as_float, as_labels

_CLIP = 1e-6  # keep normal quantiles finite at the ends of the empirical CDF


@dataclass
class Span:
    """Where one column lives in the encoded matrix: [start, stop) and how to read it."""

    column: str
    kind: str  # "continuous" | "categorical" | "missing"
    start: int
    stop: int


class TabularEncoder:
    """`fit` on the training frame, `transform` frame -> float32 matrix, `inverse` back."""

    def __init__(self, n_quantiles: int = 1000):
        self.n_quantiles = n_quantiles

    def fit(self, data: pd.DataFrame, schema: Schema) -> TabularEncoder:
        self.columns: list[dict] = []
        for column in schema.columns:
            if column.name not in data.columns or column.kind in ("id", "text"):
                continue
            values = data[column.name]
            if column.kind in ("numeric", "datetime"):
                numbers = as_float(values)
                present = numbers[~np.isnan(numbers)]
                # At most one knot per 10 rows: knots are interpolated order statistics, and
                # with one per row they would be the training values themselves.
                n_knots = int(np.clip(len(present) // 10, 2, self.n_quantiles))
                knots = np.quantile(present, np.linspace(0, 1, n_knots))
                self.columns.append(
                    {
                        "name": column.name,
                        "kind": "continuous",
                        "knots": knots.tolist(),
                        "has_missing": bool(np.isnan(numbers).any()),
                    }
                )
            else:
                categories = sorted(as_labels(values).unique().tolist())
                self.columns.append(
                    {
                        "name": column.name,
                        "kind": "categorical",
                        "categories": categories,
                        "boolean": column.kind == "boolean",
                    }
                )
        self._build_spans()
        return self

    def _build_spans(self) -> None:
        self.spans: list[Span] = []
        width = 0
        for entry in self.columns:
            if entry["kind"] == "continuous":
                self.spans.append(Span(entry["name"], "continuous", width, width + 1))
                width += 1
                if entry["has_missing"]:
                    self.spans.append(Span(entry["name"], "missing", width, width + 1))
                    width += 1
            else:
                size = len(entry["categories"])
                self.spans.append(Span(entry["name"], "categorical", width, width + size))
                width += size
        self.width = width

    def transform(self, data: pd.DataFrame) -> np.ndarray:
        """Rows x `width` float32; categories unseen in fit encode as all zeros."""
        out = np.zeros((len(data), self.width), dtype=np.float32)
        spans = iter(self.spans)
        for entry in self.columns:
            span = next(spans)
            values = data[entry["name"]]
            if entry["kind"] == "continuous":
                numbers = as_float(values)
                missing = np.isnan(numbers)
                knots = np.asarray(entry["knots"])
                ranks = np.interp(
                    np.where(missing, knots[len(knots) // 2], numbers),
                    knots,
                    np.linspace(0, 1, len(knots)),
                )
                out[:, span.start] = np.where(missing, 0.0, ndtri(np.clip(ranks, _CLIP, 1 - _CLIP)))
                if entry["has_missing"]:
                    out[:, next(spans).start] = missing
            else:
                codes = pd.Categorical(as_labels(values), categories=entry["categories"]).codes
                seen = codes >= 0
                out[np.flatnonzero(seen), span.start + codes[seen]] = 1.0
        return out

    def inverse(self, matrix: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Decode model output (continuous values; logits for categorical and missing spans).

        Categories and missingness are sampled from the softmax / sigmoid of the logits, so
        the decoded table keeps the model's probabilities rather than only its modes.
        """
        out = {}
        spans = iter(self.spans)
        for entry in self.columns:
            span = next(spans)
            if entry["kind"] == "continuous":
                knots = np.asarray(entry["knots"])
                ranks = ndtr(matrix[:, span.start].astype(np.float64))
                values = np.interp(ranks, np.linspace(0, 1, len(knots)), knots)
                if entry["has_missing"]:
                    missing_span = next(spans)
                    p_missing = 1 / (1 + np.exp(-matrix[:, missing_span.start]))
                    values = np.where(rng.random(len(values)) < p_missing, np.nan, values)
                out[entry["name"]] = values
            else:
                logits = matrix[:, span.start : span.stop].astype(np.float64)
                probabilities = np.exp(logits - logits.max(1, keepdims=True))
                probabilities /= probabilities.sum(1, keepdims=True)
                cumulative = probabilities.cumsum(1)
                picks = (
                    (rng.random((len(logits), 1)) > cumulative).sum(1).clip(max=logits.shape[1] - 1)
                )
                labels = np.asarray(entry["categories"], dtype=object)[picks]
                decoded = pd.Series(labels).replace(MISSING, np.nan)
                if entry.get("boolean"):
                    decoded = decoded.map({"True": True, "False": False})
                out[entry["name"]] = decoded
        return pd.DataFrame(out)

    def save(self, path: Path) -> None:
        Path(path).write_text(
            json.dumps({"n_quantiles": self.n_quantiles, "columns": self.columns})
        )

    @classmethod
    def load(cls, path: Path) -> TabularEncoder:
        state = json.loads(Path(path).read_text())
        encoder = cls(state["n_quantiles"])
        encoder.columns = state["columns"]
        encoder._build_spans()
        return encoder
