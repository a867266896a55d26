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


# -- discretisation: table <-> integer tokens -----------------------------------------------
# Datetime resolutions tried, coarsest first, in nanoseconds: a column whose values are all
# whole days is sampled in whole days, not at random nanoseconds.
_DATETIME_UNITS_NS = (86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)
_MAX_DECIMALS = 6  # float columns with at most this many decimals are sampled on that grid
_EXACT, _INTERVAL, _MISSING_TOKEN = 0, 1, 2


class TokenEncoder:
    """`fit` on the training frame, `transform` frame -> int64 tokens (rows x columns),
    `inverse` tokens -> frame. One vocabulary per column, for autoregressive models.

    - categorical, boolean: one token per seen category, missing as its own category.
    - numeric, datetime: a token per *point mass* (a value holding at least as many rows
      as a quantile interval would, e.g. capital_gain = 0), up to `n_bins` minus that many
      quantile intervals over the remaining values, and a missing token when the column has
      missing values. Every bin holds at least `min_bin_rows` training rows, so bin edges
      are interpolated order statistics, not single records (the column's min and max, as
      in the schema, are the exception). Decoding gives a point mass its exact value and
      draws uniformly within an interval: on the column's grid when it has one (integers;
      a datetime's coarsest whole unit, days say; a float's decimals up to 6), skipping
      the point masses so they keep exactly their learned share.

    Vectorised with NumPy: encoding Adult (26k rows) takes tens of milliseconds.
    """

    def __init__(self, n_bins: int = 50, min_bin_rows: int = 10):
        self.n_bins = n_bins
        self.min_bin_rows = min_bin_rows

    def fit(self, data: pd.DataFrame, schema: Schema) -> TokenEncoder:
        self.columns: list[dict] = []
        for column in schema.columns:
            if column.name not in data.columns or column.kind in ("id", "text"):
                continue
            values = data[column.name]
            if column.kind in ("numeric", "datetime"):
                self.columns.append(self._fit_numeric(column.name, column.kind, values))
            else:
                self.columns.append(
                    {
                        "name": column.name,
                        "kind": "categorical",
                        "categories": sorted(as_labels(values).unique().tolist()),
                        "boolean": column.kind == "boolean",
                    }
                )
        return self

    def _fit_numeric(self, name: str, kind: str, values: pd.Series) -> dict:
        numbers = as_float(values)
        missing = np.isnan(numbers)
        present = numbers[~missing]
        grid = _grid_of(present, kind, values.dtype)
        z = _to_grid(present, grid)
        uniques, counts = np.unique(z, return_counts=True)
        # A value is a point mass when it holds at least as many rows as an interval would
        # (its share of what is left, per bin left); repeat, as taking masses out shrinks
        # the intervals.
        is_exact = np.zeros(len(uniques), dtype=bool)
        while (budget := self.n_bins - is_exact.sum()) > 0:
            rows_per_bin = max(self.min_bin_rows, counts[~is_exact].sum() / budget)
            new = ~is_exact & (counts >= rows_per_bin)
            if not new.any():
                break
            is_exact |= new
        exact = uniques[is_exact]
        rest = z[~np.isin(z, exact)]
        edges = np.empty(0)
        if len(rest):
            n_intervals = int(
                np.clip(self.n_bins - len(exact), 1, max(1, len(rest) // self.min_bin_rows))
            )
            edges = np.quantile(rest, np.linspace(0, 1, n_intervals + 1))
            edges = np.unique(np.round(edges) if grid["step"] else edges)
        return {
            "name": name,
            "kind": "numeric",
            "grid": grid,
            "exact": exact.tolist(),
            "edges": edges.tolist(),
            "has_missing": bool(missing.any()),
        }

    @property
    def vocab_sizes(self) -> list[int]:
        """Tokens per column, in column order."""
        return [len(_token_table(entry)[0]) for entry in self.columns]

    @property
    def names(self) -> list[str]:
        return [entry["name"] for entry in self.columns]

    def transform(self, data: pd.DataFrame) -> np.ndarray:
        """Rows x columns int64 tokens; unseen categories map to token 0."""
        out = np.zeros((len(data), len(self.columns)), dtype=np.int64)
        for j, entry in enumerate(self.columns):
            values = data[entry["name"]]
            if entry["kind"] == "categorical":
                codes = pd.Categorical(as_labels(values), categories=entry["categories"]).codes
                out[:, j] = np.maximum(codes, 0)
                continue
            numbers = as_float(values)
            missing = np.isnan(numbers)
            z = _to_grid(np.where(missing, 0.0, numbers), entry["grid"])
            exact, edges = np.asarray(entry["exact"]), np.asarray(entry["edges"])
            n_intervals = max(len(edges) - 1, 1) if len(edges) else 0
            position = np.searchsorted(exact, z).clip(max=max(len(exact) - 1, 0))
            is_exact = exact[position] == z if len(exact) else np.zeros(len(z), bool)
            if len(edges):
                interval = (np.searchsorted(edges, z, side="right") - 1).clip(0, n_intervals - 1)
            else:  # every present value is a point mass
                interval = np.zeros(len(z), dtype=np.int64)
            tokens = np.where(is_exact, position, len(exact) + interval)
            out[:, j] = np.where(missing, len(exact) + n_intervals, tokens)
        return out

    def inverse(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Decode tokens (rows x columns) to a frame: categories as strings (booleans as
        bools), numerics as float64 with NaN, datetimes as datetime64[ns] with NaT."""
        out = {}
        for j, entry in enumerate(self.columns):
            column_tokens = tokens[:, j]
            if entry["kind"] == "categorical":
                categories = entry["categories"]
                if entry.get("boolean"):
                    values = {"True": True, "False": False}
                    labels = np.array([values.get(c) for c in categories], dtype=object)
                    out[entry["name"]] = pd.array(labels[column_tokens], dtype="boolean")
                    continue
                # A pandas Categorical: no Python string per row (the missing label -> NA).
                codes = np.arange(len(categories))
                if MISSING in categories:
                    codes[categories.index(MISSING)] = -1
                    codes[codes > categories.index(MISSING)] -= 1
                    categories = [c for c in categories if c != MISSING]
                out[entry["name"]] = pd.Categorical.from_codes(codes[column_tokens], categories)
                continue
            out[entry["name"]] = self._decode_numeric(entry, column_tokens, rng)
        return pd.DataFrame(out)

    def _decode_numeric(self, entry: dict, tokens: np.ndarray, rng: np.random.Generator):
        kinds, low, high, masses_inside = _token_table(entry)
        kind, lo, hi = kinds[tokens], low[tokens], high[tokens]
        grid = entry["grid"]
        u = rng.random(len(tokens))
        if grid["step"]:
            # Uniform over the grid points in [lo, hi] that are not point masses: draw the
            # r-th such point, then step over each point mass at or below it (ascending).
            z = lo + np.floor(u * (hi - lo + 1 - masses_inside[tokens]))
            skip = np.flatnonzero(masses_inside[tokens] > 0)
            if len(skip):
                z_skip, lo_skip, hi_skip = z[skip], lo[skip], hi[skip]
                for mass in entry["exact"]:
                    z_skip += (mass >= lo_skip) & (mass <= hi_skip) & (z_skip >= mass)
                z[skip] = z_skip
        else:
            z = lo + u * (hi - lo)
        missing = kind == _MISSING_TOKEN
        if grid["datetime"]:  # whole units times the unit, in integers: exact nanoseconds
            nanoseconds = np.where(missing, 0, z).astype(np.int64) * int(grid["step"])
            return pd.Series(pd.to_datetime(nanoseconds, unit="ns")).where(~missing)
        return np.where(missing, np.nan, _from_grid(z, grid))

    def state(self) -> dict:
        return {"n_bins": self.n_bins, "min_bin_rows": self.min_bin_rows, "columns": self.columns}

    @classmethod
    def from_state(cls, state: dict) -> TokenEncoder:
        encoder = cls(state["n_bins"], state["min_bin_rows"])
        encoder.columns = state["columns"]
        return encoder


def _grid_of(present: np.ndarray, kind: str, dtype) -> dict:
    """The grid a numeric column's values lie on: {"step": unit or None, "decimals", ...}.

    Integers: step 1. Datetimes: the coarsest unit (day ... ns) that divides every value.
    Floats: 10**-k for the fewest decimals k <= 6 that hold every value, else no grid.
    """
    grid = {"step": None, "decimals": 0, "datetime": kind == "datetime"}
    if kind == "datetime":
        nanoseconds = np.round(present).astype(np.int64)
        grid["step"] = next(
            (unit for unit in _DATETIME_UNITS_NS if not np.any(nanoseconds % unit)), 1
        )
    elif pd.api.types.is_integer_dtype(dtype):
        grid["step"] = 1
    else:
        for decimals in range(_MAX_DECIMALS + 1):
            scaled = present * 10.0**decimals
            if np.all(np.abs(scaled) < 2**52) and np.allclose(
                scaled, np.round(scaled), rtol=0, atol=1e-6
            ):
                grid.update(step=1, decimals=decimals)
                break
    return grid


def _to_grid(values: np.ndarray, grid: dict) -> np.ndarray:
    """Values -> grid coordinates (whole numbers when the column has a grid)."""
    if not grid["step"]:
        return values
    if grid["datetime"]:
        return np.round(values / grid["step"])
    return np.round(values * 10.0 ** grid["decimals"])


def _from_grid(z: np.ndarray, grid: dict) -> np.ndarray:
    """Grid coordinates -> numbers (datetimes are decoded in `_decode_numeric`)."""
    return z / 10.0 ** grid["decimals"] if grid["step"] else z


def _token_table(entry: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per token of a numeric column: (kind, low, high, point masses inside) in grid
    coordinates. A point mass is its own low and high; categorical columns get one row per
    category."""
    if entry["kind"] == "categorical":
        size = len(entry["categories"])
        return np.full(size, _EXACT), np.zeros(size), np.zeros(size), np.zeros(size)
    exact, edges = np.asarray(entry["exact"], float), np.asarray(entry["edges"], float)
    if len(edges) == 1:
        low, high = edges, edges
    else:
        low, high = edges[:-1], edges[1:].copy()
        if entry["grid"]["step"] and len(high):
            high[:-1] -= 1  # [lo, next edge) on the grid; the last interval holds its edge
    inside = ((exact[None, :] >= low[:, None]) & (exact[None, :] <= high[:, None])).sum(1)
    if not entry["grid"]["step"]:
        inside[:] = 0  # a continuous interval holds no point mass with any probability
    kinds = [np.full(len(exact), _EXACT), np.full(len(low), _INTERVAL)]
    lows, highs = [exact, low], [exact, high]
    counts = [np.zeros(len(exact)), inside]
    if entry["has_missing"]:
        kinds.append(np.array([_MISSING_TOKEN]))
        lows.append(np.zeros(1))
        highs.append(np.zeros(1))
        counts.append(np.zeros(1))
    return tuple(np.concatenate(parts) for parts in (kinds, lows, highs, counts))
