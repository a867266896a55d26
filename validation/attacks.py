"""Privacy attacks on a synthetic table: singling out, linkability and attribute inference.

These are the three attacks of anonymeter (Giomi et al., "A Unified Framework for
Quantifying Privacy Risk in Synthetic Data", PETS 2023; the evaluation France's CNIL
reviewed). They are written again here in numpy/pandas/torch, not imported: anonymeter 1.1.0
pins numpy<1.27 and pyarrow<22. Each function says which anonymeter code it mirrors and
where it differs. `benchmarks/anonymeter_check.py` runs both on the same data.

Every attack works the same way:

- the attacker uses the synthetic table to attack `n_attacks` target records drawn from the
  training data (anonymeter's "ori"; for singling out, `n_attacks` predicates tried on the
  whole training set);
- the same attack is run against records of the holdout (anonymeter's "control"), which
  the generator never saw: success there is what the synthetic data reveals about the
  population, not about the training records;
- a naive attacker (random guesses) gives the baseline, a sanity check: an attack no better
  than it proves nothing.

    risk = (attack_rate - control_rate) / (1 - control_rate)

(for singling out against a holdout smaller than the training set, the 1 becomes the
holdout's share of the training set's size; see `singling_out_risk`). Each success rate is
a Wilson score estimate with its error at `confidence_level`; the risk's error is
propagated from both (anonymeter's `stats.confidence`). The risk and its
interval are clipped to [0, 1], as anonymeter reports them.

Identifier and free-text columns are never used. Columns named in arguments that are not in
the schema, or that are identifiers or text, are a `DataError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from generators.data.schema import Schema
from generators.data.values import as_float
from generators.errors import DataError
from validation.distance import DistanceEncoder, nearest_neighbors

ATTACK_KINDS = ("numeric", "categorical", "boolean", "datetime")
# anonymeter's defaults.
N_ATTACKS = 500
CONFIDENCE_LEVEL = 0.95
SINGLING_OUT_N_COLS = 3
SINGLING_OUT_BATCH = 1000  # multivariate_singling_out_queries(batch_size=1000)
INFERENCE_TOLERANCE = 0.05  # evaluate_inference_guesses(tolerance=0.05)
# anonymeter caps query generation at 10,000,000 attempts; here 1,000,000 (1,000 batches), so
# a table where few combinations single anyone out ends in seconds, not hours.
SINGLING_OUT_MAX_ATTEMPTS = 1_000_000
# Query masks are evaluated in blocks of at most this many cells (queries x rows).
MASK_BLOCK_CELLS = 1 << 23

# Predicate operators; a query is an AND of (column, operator, value) terms.
_ISNULL, _NOTNULL, _EQ, _NE, _GT, _LT, _GE, _LE = range(8)
_NUMERIC_OPS = (_EQ, _NE, _GT, _LT, _GE, _LE)  # _random_operator("numerical")
_CATEGORICAL_OPS = (_EQ, _NE)  # _random_operator("categorical" | "boolean")


@dataclass
class RiskEstimate:
    """One attack's outcome, as anonymeter's `EvaluationResults` and `risk()` report it.

    `risk`, `ci_low`, `ci_high`: the privacy risk and its confidence interval, clipped to
    [0, 1]. The rates are Wilson point estimates (anonymeter's `SuccessRate.value`), so
    they sit slightly toward 0.5 from the raw fractions. `n_attacks`: attacks on the
    training targets (and on the control targets).
    """

    risk: float
    ci_low: float
    ci_high: float
    attack_rate: float
    control_rate: float
    baseline_rate: float
    n_attacks: int

    def to_dict(self) -> dict:
        return asdict(self)


# --- anonymeter.stats.confidence ---------------------------------------------------------


@dataclass(frozen=True)
class SuccessRate:
    """anonymeter.stats.confidence.SuccessRate: a rate and its symmetric error."""

    value: float
    error: float


def success_rate(n_total: float, n_success: float, confidence_level: float) -> SuccessRate:
    """Wilson score estimate of a Bernoulli rate; mirrors `stats.confidence.success_rate`."""
    if not 0 <= confidence_level <= 1:
        raise ValueError(f"confidence_level must be between 0 and 1, got {confidence_level}")
    z = NormalDist().inv_cdf(0.5 * (1.0 + confidence_level))  # anonymeter's probit
    z_squared = z * z
    variance = n_success * (n_total - n_success) / n_total
    denominator = n_total + z_squared
    rate = (n_success + 0.5 * z_squared) / denominator
    error = (z / denominator) * math.sqrt(variance + 0.25 * z_squared)
    return SuccessRate(rate, error)


def residual_success(
    attack: SuccessRate, control: SuccessRate, max_rate: float = 1.0
) -> SuccessRate:
    """Excess of attack over control success, normalised by the control's margin.

    Mirrors `stats.confidence.residual_success`: (a - c) / (1 - c), with the errors of both
    rates propagated through the first derivatives. `max_rate` replaces the 1 where a
    perfect attack cannot score 1 (singling out compared on subsets, see there).
    """
    margin = max_rate - control.value
    if margin <= 0:  # the control does as well as a perfect attack could: nothing to measure
        return SuccessRate(0.0, 1.0)
    residual = (attack.value - control.value) / margin
    d_attack = 1 / margin
    d_control = (attack.value - max_rate) / margin**2
    error = math.sqrt((attack.error * d_attack) ** 2 + (control.error * d_control) ** 2)
    return SuccessRate(residual, error)


def _bind(rate: SuccessRate) -> tuple[float, float, float]:
    """`stats.confidence.bind_value`: point and interval, each clipped to [0, 1]."""

    def clip(x: float) -> float:
        return min(max(x, 0.0), 1.0)

    return clip(rate.value), clip(rate.value - rate.error), clip(rate.value + rate.error)


def _estimate(
    n_attacks: int,
    n_success: float,
    n_control: float,
    n_baseline: float,
    n_baseline_attacks: int,
    confidence_level: float,
    max_rate: float = 1.0,
) -> RiskEstimate:
    """anonymeter's `EvaluationResults(...).risk()`: residual risk of attack over control."""
    if n_attacks == 0:
        warnings.warn(
            "no attack could be made; the risk is unknown (reported as 0 with interval [0, 1])",
            stacklevel=3,
        )
        return RiskEstimate(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0)
    attack = success_rate(n_attacks, n_success, confidence_level)
    control = success_rate(n_attacks, n_control, confidence_level)
    baseline = success_rate(max(n_baseline_attacks, 1), n_baseline, confidence_level)
    if baseline.value >= attack.value:  # EvaluationResults._sanity_check
        warnings.warn(
            "Attack is as good or worse as baseline model. Estimated rates: attack = "
            f"{attack.value:.4f}, baseline = {baseline.value:.4f}. Analysis results cannot be "
            "trusted.",
            stacklevel=3,
        )
    risk, low, high = _bind(residual_success(attack, control, max_rate))
    return RiskEstimate(
        risk=risk,
        ci_low=low,
        ci_high=high,
        attack_rate=attack.value,
        control_rate=control.value,
        baseline_rate=baseline.value,
        n_attacks=int(n_attacks),
    )


# --- columns and frames ------------------------------------------------------------------


def _attack_columns(schema: Schema) -> list[str]:
    return schema.names_of(*ATTACK_KINDS)


def _check_named(names: Sequence[str], schema: Schema, what: str) -> list[str]:
    names = list(names)
    if not names:
        raise DataError(f"{what} names no columns; give at least one column of the table")
    for name in names:
        if name not in schema.names:
            raise DataError(
                f"{what}: column '{name}' is not in the table's schema; columns are {schema.names}"
            )
        kind = schema[name].kind
        if kind not in ATTACK_KINDS:
            raise DataError(
                f"{what}: column '{name}' is of kind '{kind}'; privacy attacks use only "
                f"{', '.join(ATTACK_KINDS)} columns"
            )
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataError(f"{what} repeats column(s) {duplicated}")
    return names


def _check_frames(columns: Sequence[str], **frames: pd.DataFrame) -> None:
    for label, frame in frames.items():
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise DataError(f"the {label} table lacks column(s) {missing}")
    for label in ("train", "holdout", "synthetic"):
        if label in frames and len(frames[label]) == 0:
            raise DataError(f"the {label} table has no rows; nothing to attack")


def _n_attacks(n_attacks: int, train: pd.DataFrame, holdout: pd.DataFrame) -> int:
    if n_attacks < 1:
        raise ValueError(f"n_attacks must be at least 1, got {n_attacks}")
    return int(min(n_attacks, len(holdout), len(train)))


def _sub_schema(schema: Schema, columns: Sequence[str]) -> Schema:
    wanted = set(columns)
    return Schema(tuple(c for c in schema.columns if c.name in wanted), schema.arrow_schema)


def _labels(values: pd.Series) -> np.ndarray:
    """Values as comparable strings, missing as None (the same text in every frame)."""
    strings = values.astype("string")
    out = np.array(strings.astype(object).to_numpy(), dtype=object)  # a copy: pandas 3 is CoW
    out[strings.isna().to_numpy()] = None
    return out


# --- singling out ------------------------------------------------------------------------


@dataclass
class _Encoded:
    """Query columns of several frames as float matrices (columns x rows).

    Numeric columns hold their values; every other kind holds category codes shared by all
    frames. Missing is NaN in both, so one set of comparisons serves every kind.
    """

    columns: list[str]
    numeric: np.ndarray  # bool per column
    boolean: np.ndarray  # bool per column
    true_code: np.ndarray  # boolean columns: the codes of "True" and "False" (-1 if absent)
    false_code: np.ndarray
    frames: list[np.ndarray]  # each (n_columns, n_rows), C-contiguous


def _encode_for_queries(schema: Schema, columns: list[str], *frames: pd.DataFrame) -> _Encoded:
    kinds = [schema[name].kind for name in columns]
    encoded = [np.empty((len(columns), len(frame))) for frame in frames]
    true_code = np.full(len(columns), -1.0)
    false_code = np.full(len(columns), -1.0)
    for j, (name, kind) in enumerate(zip(columns, kinds, strict=True)):
        if kind == "numeric":
            for out, frame in zip(encoded, frames, strict=True):
                out[j] = as_float(frame[name])
            continue
        labels = [_labels(frame[name]) for frame in frames]
        joined = np.concatenate(labels)
        codes, uniques = pd.factorize(joined, use_na_sentinel=True)
        codes = codes.astype(float)
        codes[codes < 0] = np.nan
        start = 0
        for out, part in zip(encoded, labels, strict=True):
            out[j] = codes[start : start + len(part)]
            start += len(part)
        if kind == "boolean":
            uniques = np.asarray(uniques, dtype=object)
            for code, label in ((true_code, "True"), (false_code, "False")):
                where = np.flatnonzero(uniques == label)
                code[j] = float(where[0]) if len(where) else -1.0
    return _Encoded(
        columns=columns,
        numeric=np.array([k == "numeric" for k in kinds]),
        boolean=np.array([k == "boolean" for k in kinds]),
        true_code=true_code,
        false_code=false_code,
        frames=encoded,
    )


@dataclass
class _Queries:
    """A batch of conjunctive queries with the same number of terms, as arrays."""

    cols: np.ndarray  # (n_queries, n_terms) int
    ops: np.ndarray  # (n_queries, n_terms) int
    vals: np.ndarray  # (n_queries, n_terms) float (NaN for null tests)

    def __len__(self) -> int:
        return len(self.cols)

    def take(self, index) -> _Queries:
        return _Queries(self.cols[index], self.ops[index], self.vals[index])

    def keys(self) -> list[bytes]:
        """One byte string per query; equal queries have equal keys (terms sorted by column)."""
        order = np.argsort(self.cols, axis=1, kind="stable")
        cols = np.take_along_axis(self.cols, order, 1)
        ops = np.take_along_axis(self.ops, order, 1)
        vals = np.where(np.isnan(self.vals), 0.0, self.vals)
        vals = np.take_along_axis(vals, order, 1)
        stacked = np.concatenate([cols.astype(float), ops.astype(float), vals], axis=1)
        stacked = np.ascontiguousarray(stacked)
        return [row.tobytes() for row in stacked]


def _term_mask(x: np.ndarray, op: int, values: np.ndarray) -> np.ndarray:
    """(len(values), len(x)) booleans; like polars, a comparison with a null is false."""
    if op == _ISNULL:
        return np.broadcast_to(np.isnan(x), (len(values), len(x)))
    if op == _NOTNULL:
        return np.broadcast_to(~np.isnan(x), (len(values), len(x)))
    v = values[:, None]
    if op == _EQ:
        return x == v
    if op == _NE:
        return (x != v) & ~np.isnan(x)
    if op == _GT:
        return x > v
    if op == _LT:
        return x < v
    if op == _GE:
        return x >= v
    return x <= v


def _count_matches(queries: _Queries, data: np.ndarray) -> np.ndarray:
    """How many rows of `data` (columns x rows) each query matches.

    Queries are evaluated as boolean masks over the rows, in blocks of queries so memory
    stays bounded.
    """
    n_rows = data.shape[1]
    counts = np.zeros(len(queries), dtype=np.int64)
    block = max(1, MASK_BLOCK_CELLS // max(n_rows, 1))
    for start in range(0, len(queries), block):
        part = queries.take(slice(start, start + block))
        mask = np.ones((len(part), n_rows), dtype=bool)
        for t in range(part.cols.shape[1]):
            pairs = part.cols[:, t] * 8 + part.ops[:, t]
            for pair in np.unique(pairs):
                rows = np.flatnonzero(pairs == pair)
                col, op = divmod(int(pair), 8)
                mask[rows] &= _term_mask(data[col], op, part.vals[rows, t])
        counts[start : start + len(part)] = mask.sum(1)
    return counts


class _UniqueQueries:
    """anonymeter's `UniqueSinglingOutQueries`: distinct queries that single out one row."""

    def __init__(self, max_size: int):
        self.max_size = max_size
        self.seen: set[bytes] = set()
        self.kept: list[_Queries] = []
        self.size = 0

    def extend(self, queries: _Queries, counts: np.ndarray) -> None:
        if self.size >= self.max_size:
            return
        keys = queries.keys()
        take = []
        for i in np.flatnonzero(counts == 1):
            if keys[i] in self.seen:
                continue
            self.seen.add(keys[i])
            take.append(i)
            if self.size + len(take) >= self.max_size:
                break
        if take:
            self.kept.append(queries.take(np.array(take)))
            self.size += len(take)

    def queries(self, n_terms: int) -> _Queries:
        if not self.kept:
            empty = np.zeros((0, n_terms))
            return _Queries(empty.astype(int), empty.astype(int), empty)
        return _Queries(
            np.concatenate([q.cols for q in self.kept]),
            np.concatenate([q.ops for q in self.kept]),
            np.concatenate([q.vals for q in self.kept]),
        )


def _univariate_queries(
    syn: np.ndarray, enc: _Encoded, n_queries: int, rng: np.random.Generator
) -> _Queries:
    """Mirrors `univariate_singling_out_queries`: one-column queries from rare attributes.

    Candidates per column: `is null` when exactly one value is missing; `<= min` and
    `>= max` for numeric columns; `== v` for every value seen once. They are shuffled and
    the first `n_queries` distinct ones that single out one synthetic row are kept.
    """
    cols, ops, vals = [], [], []
    for j in range(syn.shape[0]):
        x = syn[j]
        missing = np.isnan(x)
        if missing.sum() == 1:
            cols.append(j)
            ops.append(_ISNULL)
            vals.append(np.nan)
        present = x[~missing]
        if enc.numeric[j] and len(present):
            cols += [j, j]
            ops += [_LE, _GE]
            vals += [present.min(), present.max()]
        values, counts = np.unique(present, return_counts=True)
        rare = values[counts == 1]
        cols += [j] * len(rare)
        ops += [_EQ] * len(rare)
        vals += rare.tolist()
    order = rng.permutation(len(cols))
    candidates = _Queries(
        np.array(cols, dtype=int)[order][:, None],
        np.array(ops, dtype=int)[order][:, None],
        np.array(vals, dtype=float)[order][:, None],
    )
    found = _UniqueQueries(n_queries)
    # anonymeter evaluates every candidate; stopping once enough are kept gives the same set.
    step = max(4 * n_queries, 1000)
    for start in range(0, len(candidates), step):
        part = candidates.take(slice(start, start + step))
        found.extend(part, _count_matches(part, syn))
        if found.size >= n_queries:
            break
    return found.queries(1)


def _multivariate_queries(
    syn: np.ndarray,
    enc: _Encoded,
    n_queries: int,
    n_cols: int,
    max_attempts: int | None,
    rng: np.random.Generator,
) -> _Queries:
    """Mirrors `multivariate_singling_out_queries`: queries built from synthetic records.

    In batches of 1,000: draw a synthetic record and `n_cols` of its columns; each term is
    `is null` for a missing value, `>= v` (`<= v`) for a numeric value above (at or below)
    the column's median, so the query reaches for the extremes, and `== v` otherwise. Keep
    the distinct queries that single out exactly one synthetic row, until `n_queries` are
    kept or `max_attempts` queries were tried.
    """
    n_columns, n_rows = syn.shape
    medians = np.array(
        [
            np.nanmedian(x) if enc.numeric[j] and (~np.isnan(x)).any() else np.nan
            for j, x in enumerate(syn)
        ]
    )
    found = _UniqueQueries(n_queries)
    batch = SINGLING_OUT_BATCH
    if max_attempts is not None:
        batch = min(batch, max_attempts)
    attempts = 0
    while found.size < n_queries:
        if max_attempts is not None and attempts >= max_attempts:
            break
        rows = rng.integers(0, n_rows, size=batch)
        cols = np.sort(np.argsort(rng.random((batch, n_columns)), axis=1)[:, :n_cols], axis=1)
        vals = syn[cols, rows[:, None]]
        above = vals > medians[cols]  # NaN medians (non-numeric columns) compare false
        ops = np.where(enc.numeric[cols], np.where(above, _GE, _LE), _EQ)
        ops = np.where(np.isnan(vals), _ISNULL, ops)
        queries = _Queries(cols, ops, vals)
        found.extend(queries, _count_matches(queries, syn))
        attempts += batch
    return found.queries(n_cols)


def _random_queries(
    syn: np.ndarray, enc: _Encoded, n_queries: int, n_cols: int, rng: np.random.Generator
) -> _Queries:
    """Mirrors `_random_queries`: the naive attacker's queries, for the baseline.

    Each of `n_cols` random columns gets a random value seen in the synthetic data (missing
    included) and a random operator: ==, !=, >, <, >=, <= for numbers; ==, != otherwise.
    A missing value gives `is null` / `is not null`; a boolean column `is true` / `is false`.
    """
    n_columns = syn.shape[0]
    uniques = []
    for x in syn:
        present = np.unique(x[~np.isnan(x)])
        uniques.append(np.append(present, np.nan) if np.isnan(x).any() else present)
    cols = np.sort(np.argsort(rng.random((n_queries, n_columns)), axis=1)[:, :n_cols], axis=1)
    vals = np.empty(cols.shape)
    ops = np.empty(cols.shape, dtype=int)
    for i, j in np.ndindex(*cols.shape):
        col = cols[i, j]
        value = uniques[col][rng.integers(len(uniques[col]))] if len(uniques[col]) else np.nan
        choices = _NUMERIC_OPS if enc.numeric[col] else _CATEGORICAL_OPS
        op = choices[rng.integers(len(choices))]
        if np.isnan(value):
            op, value = (_ISNULL if op == _EQ else _NOTNULL), np.nan
        elif enc.boolean[col]:
            # `col` / `~col`: true rows for ==, false rows for != (missing rows never match;
            # code -1 is no row's).
            value = enc.true_code[col] if op == _EQ else enc.false_code[col]
            op = _EQ
        vals[i, j], ops[i, j] = value, op
    return _Queries(cols, ops, vals)


def _singles_out_in_subset(counts: np.ndarray, n_rows: int, size: int) -> np.ndarray:
    """Per query: the chance it matches exactly one row of a random `size`-row subset.

    A query matching `c` of `n_rows` rows singles out in such a subset with hypergeometric
    probability c * C(n_rows - c, size - 1) / C(n_rows, size): the exact mean over all
    subsets, so no subsampling noise. At `size == n_rows` it is 1 when c == 1, else 0.
    """
    if size >= n_rows:
        return (counts == 1).astype(float)
    from scipy.stats import hypergeom

    return hypergeom.pmf(1, n_rows, counts, size)


def singling_out_risk(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    n_attacks: int = N_ATTACKS,
    mode: str = "univariate",
    n_cols: int = SINGLING_OUT_N_COLS,
    seed: int = 0,
    confidence_level: float = CONFIDENCE_LEVEL,
    max_attempts: int | None = SINGLING_OUT_MAX_ATTEMPTS,
) -> RiskEstimate:
    """Singling-out risk; mirrors anonymeter's `SinglingOutEvaluator(...).evaluate(mode)`.

    The attacker writes predicates from the synthetic data that match exactly one synthetic
    row (`mode="univariate"`: rare values, and <= min / >= max of numeric columns, see
    `_univariate_queries`; `"multivariate"`: `n_cols` attributes of a synthetic record, see
    `_multivariate_queries`). An attack succeeds when its predicate matches exactly one
    training row, a control attack when it matches exactly one holdout row; the baseline
    uses random predicates (`_random_queries`). Tables are de-duplicated first, over the
    columns attacked (all but identifier and text columns). Predicates are (column,
    operator, value) arrays evaluated as boolean masks; no string queries.

    Population size. Whether a predicate singles someone out depends on how many rows it is
    tried on, so training and control successes are only comparable at one size. anonymeter
    extrapolates the control count to the training set's size with a fitted model
    (`fit_correction_term`); that fit is unstable on a control set a few times smaller than
    the training set (measured: it often returns (n_c + 1) / (n_o + 1), which manufactures
    risk for an independent sample), and 1.1.0 fits it to the number of all predicates
    rather than of those that single out. Here both sides are compared at m = the smaller
    set's size, with no extrapolation: each predicate's chance of singling out in a random
    m-row subset is exact (`_singles_out_in_subset`). A predicate aimed at one training
    record can only succeed in subsets holding that record, a share f = m / n_train of them,
    so the margin in anonymeter's formula becomes f - control_rate:

        risk = (attack_rate - control_rate) / (f - control_rate)

    which is anonymeter's formula when the holdout is at least as large as the training
    set (f = 1). The rates reported are those at m rows (a perfect attack scores f). The
    price is width: where predicates often single someone out by chance (large tables,
    multivariate), the control rate nears f and the interval widens (75,000 training and
    25,000 holdout rows, multivariate: [0, 0.36] for an independent sample); a larger
    holdout narrows it.

    `n_attacks` (anonymeter's default 500) is capped at the holdout's size, like the other
    attacks; when fewer distinct singling-out predicates exist, the rates are over the
    predicates found (anonymeter's main branch; 1.1.0 divides by the number requested).
    `max_attempts` caps multivariate predicate generation (anonymeter: 10,000,000).
    """
    if mode not in ("univariate", "multivariate"):
        raise ValueError(f"mode must be 'univariate' or 'multivariate', got {mode!r}")
    columns = _attack_columns(schema)
    if not columns:
        raise DataError(
            "singling_out_risk: the schema has no numeric, categorical, boolean or "
            "datetime column to attack"
        )
    terms = 1 if mode == "univariate" else n_cols
    if not 1 <= terms <= len(columns):
        raise ValueError(
            f"n_cols must be between 1 and {len(columns)} (the columns attacked), got {n_cols}"
        )
    _check_frames(columns, train=train, holdout=holdout, synthetic=synthetic)
    n = _n_attacks(n_attacks, train, holdout)
    rng = np.random.default_rng(seed)

    # SinglingOutEvaluator.__init__: ori, syn and control are de-duplicated.
    ori, control, syn = (f[columns].drop_duplicates() for f in (train, holdout, synthetic))
    enc = _encode_for_queries(schema, columns, ori, control, syn)
    ori_x, control_x, syn_x = enc.frames
    n_ori, n_control_rows = ori_x.shape[1], control_x.shape[1]
    size = min(n_ori, n_control_rows)

    if mode == "univariate":
        queries = _univariate_queries(syn_x, enc, n, rng)
    else:
        queries = _multivariate_queries(syn_x, enc, n, terms, max_attempts, rng)
    if len(queries) < n:
        warnings.warn(
            f"singling out ({mode}): only {len(queries)} predicates single out a synthetic row, "
            f"of {n} asked for; the risk rests on those",
            stacklevel=2,
        )
    n_queries = len(queries)
    baseline = _random_queries(syn_x, enc, n_queries, terms, rng)

    def singled_out(q: _Queries, data: np.ndarray) -> float:
        return float(_singles_out_in_subset(_count_matches(q, data), data.shape[1], size).sum())

    return _estimate(
        n_queries,
        n_success=singled_out(queries, ori_x),
        n_control=singled_out(queries, control_x),
        n_baseline=singled_out(baseline, ori_x),
        n_baseline_attacks=n_queries,
        confidence_level=confidence_level,
        max_rate=size / n_ori,
    )


# --- linkability -------------------------------------------------------------------------


def _neighbours(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    columns: list[str],
    k: int,
    *targets: pd.DataFrame,
) -> list[np.ndarray]:
    """Indices of each target's k nearest synthetic rows over `columns` (validation.distance).

    The encoder is fitted on the training data restricted to `columns`; the search is
    exact, chunked, and on CUDA when present.
    """
    encoder = DistanceEncoder.fit(train[columns], _sub_schema(schema, columns))
    reference = encoder.transform(synthetic[columns])
    out = []
    for frame in targets:
        queries = encoder.transform(frame[columns])
        _, index = nearest_neighbors(queries, reference, k, **encoder.search)
        out.append(index)
    return out


def _linked(index_0: np.ndarray, index_1: np.ndarray) -> np.ndarray:
    """`LinkabilityIndexes.find_links`: both halves share a synthetic neighbour."""
    return (index_0[:, :, None] == index_1[:, None, :]).any(axis=(1, 2))


def linkability_risk(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    aux_columns: tuple[list[str], list[str]],
    n_attacks: int = N_ATTACKS,
    n_neighbors: int = 1,
    seed: int = 0,
    confidence_level: float = CONFIDENCE_LEVEL,
) -> RiskEstimate:
    """Linkability risk; mirrors anonymeter's `LinkabilityEvaluator(...).evaluate()`.

    The attacker holds two datasets about the same people, with columns `aux_columns[0]`
    and `aux_columns[1]`, and uses the synthetic data to join them: a target record is
    linked when its two halves have a common synthetic record among their `n_neighbors`
    nearest (`_linkability_attack`). Attacked: `n_attacks` training records, and as many
    holdout records for the control; the baseline links random synthetic records
    (`_random_linkability_attack`).

    Distances are `validation.distance`'s (Euclidean on range-scaled numbers and one-hot
    categories; anonymeter uses an L1 Gower-like distance), fitted on the training data
    restricted to each half's columns. `n_attacks` is capped at the holdout's size (and
    anonymeter's `control.sample(n_attacks)` would fail beyond it).
    """
    if len(aux_columns) != 2:
        raise DataError("linkability_risk: aux_columns must be two lists of columns")
    aux_0 = _check_named(aux_columns[0], schema, "linkability_risk aux_columns[0]")
    aux_1 = _check_named(aux_columns[1], schema, "linkability_risk aux_columns[1]")
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be positive, got {n_neighbors}")
    _check_frames(aux_0 + aux_1, train=train, holdout=holdout, synthetic=synthetic)
    n = _n_attacks(n_attacks, train, holdout)
    k = min(n_neighbors, len(synthetic))
    rng = np.random.default_rng(seed)

    # evaluate(): baseline first, then the attack on ori, then on control.
    random_0 = np.stack([rng.choice(len(synthetic), k, replace=False) for _ in range(n)])
    random_1 = np.stack([rng.choice(len(synthetic), k, replace=False) for _ in range(n)])
    n_baseline = int(_linked(random_0, random_1).sum())

    targets = train.iloc[rng.choice(len(train), n, replace=False)]
    controls = holdout.iloc[rng.choice(len(holdout), n, replace=False)]
    target_0, control_0 = _neighbours(train, synthetic, schema, aux_0, k, targets, controls)
    target_1, control_1 = _neighbours(train, synthetic, schema, aux_1, k, targets, controls)
    n_success = int(_linked(target_0, target_1).sum())
    n_control = int(_linked(control_0, control_1).sum())
    return _estimate(n, n_success, n_control, n_baseline, n, confidence_level)


# --- inference ---------------------------------------------------------------------------


def _correct_guesses(
    guesses: pd.Series, secrets: pd.Series, regression: bool, tolerance: float
) -> np.ndarray:
    """`evaluate_inference_guesses`: exact match, or within `tolerance` relative for numbers.

    Both missing counts as correct. anonymeter divides by the guess itself, so any negative
    guess passes; here by its absolute value.
    """
    if regression:
        g, s = as_float(guesses), as_float(secrets)
        with np.errstate(invalid="ignore"):
            match = np.abs(g - s) <= tolerance * (np.abs(g) + 1e-12)
        both_missing = np.isnan(g) & np.isnan(s)
    else:
        g, s = _labels(guesses), _labels(secrets)
        missing_g = pd.isna(g)
        missing_s = pd.isna(s)
        match = (g == s) & ~missing_g & ~missing_s
        both_missing = missing_g & missing_s
    return np.asarray(match | both_missing, dtype=bool)


def inference_risk(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    secret: str,
    aux_columns: list[str] | None = None,
    n_attacks: int = N_ATTACKS,
    seed: int = 0,
    confidence_level: float = CONFIDENCE_LEVEL,
    tolerance: float = INFERENCE_TOLERANCE,
) -> RiskEstimate:
    """Attribute-inference risk; mirrors anonymeter's `InferenceEvaluator(...).evaluate()`.

    The attacker knows a target's `aux_columns` (default: every other column but
    identifiers and text) and guesses its `secret` as that of the nearest synthetic record
    (anonymeter's `KNNInferencePredictor`, one neighbour). A guess is right when equal, or
    for a numeric secret within `tolerance` (5%) relative to the guess
    (`evaluate_inference_guesses`; anonymeter calls that `regression`, which it decides from
    the secret's dtype only when asked to). Attacked: `n_attacks` training records and as
    many holdout records for the control; the baseline guesses the secret of a random
    synthetic record (`naive=True`).

    Distances are `validation.distance`'s, fitted on the training data restricted to the
    auxiliary columns. `n_attacks` is capped at the holdout's size.
    """
    (secret,) = _check_named([secret], schema, "inference_risk secret")
    if aux_columns is None:
        aux = [name for name in _attack_columns(schema) if name != secret]
        if not aux:
            raise DataError(
                f"inference_risk: no column besides the secret '{secret}' to attack with"
            )
    else:
        aux = _check_named(aux_columns, schema, "inference_risk aux_columns")
    if secret in aux:
        raise DataError(
            f"inference_risk: the secret '{secret}' is also among aux_columns; an "
            "attacker who knows it has nothing to infer"
        )
    _check_frames([*aux, secret], train=train, holdout=holdout, synthetic=synthetic)
    n = _n_attacks(n_attacks, train, holdout)
    n_baseline_attacks = min(len(synthetic), n)
    regression = schema[secret].kind == "numeric"
    rng = np.random.default_rng(seed)

    # evaluate(): the naive attack first, then the attack on ori, then on control.
    base_targets = train[secret].iloc[rng.choice(len(train), n_baseline_attacks, replace=False)]
    base_guesses = synthetic[secret].iloc[
        rng.choice(len(synthetic), n_baseline_attacks, replace=False)
    ]
    n_baseline = int(_correct_guesses(base_guesses, base_targets, regression, tolerance).sum())

    targets = train.iloc[rng.choice(len(train), n, replace=False)]
    controls = holdout.iloc[rng.choice(len(holdout), n, replace=False)]
    target_nn, control_nn = _neighbours(train, synthetic, schema, aux, 1, targets, controls)
    syn_secret = synthetic[secret]
    n_success = int(
        _correct_guesses(
            syn_secret.iloc[target_nn[:, 0]], targets[secret], regression, tolerance
        ).sum()
    )
    n_control = int(
        _correct_guesses(
            syn_secret.iloc[control_nn[:, 0]], controls[secret], regression, tolerance
        ).sum()
    )
    return _estimate(n, n_success, n_control, n_baseline, n_baseline_attacks, confidence_level)
