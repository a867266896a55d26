"""A Great Expectations suite derived from the real training table, and validation against it.

`build_suite(train, schema, batch_rows=n)` writes down what a table like the training data
looks like, per column: the column set and order, dtypes, null fraction, value sets (with a
bound on the share of never-seen values), category frequencies (KL divergence), numeric
range, mean, standard deviation, median and quantiles, uniqueness of identifiers; and the
requested row count. Statistics GX cannot express on pandas (datetime ranges and quantiles,
correlations between numeric pairs, association between categorical pairs) are computed
checks stored in the suite's `meta["synthpipe"]`, so the one JSON file carries the whole
contract and `validate_table` can check any later batch against it.

Tolerances come from the data, not from constants: each statistic is recomputed on
`N_RESAMPLES` seeded resamples of `batch_rows` training rows, and the allowed band is
`sigmas` standard deviations of that spread, widened by sqrt(1 + batch_rows / train_rows)
because the reference (the training table) is itself a sample. A fresh real sample of
`batch_rows` rows (the holdout) therefore passes, and a table that differs by more than
sampling noise fails, naming the column or pair.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from generators.data.schema import Schema
from generators.data.values import as_float
from generators.errors import DataError
from validation.report import Report

SUITE_VERSION = 1
QUANTILES = (0.05, 0.25, 0.75, 0.95)  # the median has its own expectation
MAX_BOOTSTRAP_ROWS = 200_000  # bootstrap resamples are capped at this size; stats are smooth
MAX_PAIR_ROWS = 100_000  # pair statistics are computed on at most this many rows
MAX_PAIR_COLUMNS = 30  # per kind; 30 columns = 435 pairs
MIN_EXPECTED_PER_CELL = 5  # the usual validity rule for chi-square statistics
MIN_ROWS = 10
N_RESAMPLES = 40  # resamples per statistic: enough for a stable standard deviation
# Stored in every suite (meta.synthpipe.real_data_note) and shown atop its Data Docs page.
REAL_DATA_NOTE = (
    "Real-data metadata: this suite is built from the real training table and lists its "
    "category values (including values seen on a single real row), numeric ranges and "
    "quantiles. Keep it with the run's private record; it is never part of a release."
)


# -- building ----------------------------------------------------------------------------
def build_suite(
    train: pd.DataFrame,
    schema: Schema,
    *,
    batch_rows: int,
    row_count: int | None = None,
    sigmas: float = 4.0,
    seed: int = 0,
    name: str = "synthpipe",
) -> dict[str, Any]:
    """The suite for tables like `train` (rows x schema columns), as a GX suite JSON dict.

    `batch_rows`: the size of the tables the suite will judge; bands are the spread of a
    real sample of that size. `row_count`: when given, the table must have exactly that
    many rows. Returns a dict that `gx.ExpectationSuite(**suite)` accepts.
    """
    if len(train) < MIN_ROWS:
        raise DataError(f"expectations: the training table has {len(train)} rows; need {MIN_ROWS}")
    if batch_rows < 1:
        raise DataError(f"expectations: batch_rows must be positive, got {batch_rows}")
    rng = np.random.default_rng(seed)
    n = min(batch_rows, MAX_BOOTSTRAP_ROWS)
    # Resampled statistics vary as 1/sqrt(n); the train table's own noise adds 1/sqrt(N).
    widen = math.sqrt(1 + n / len(train))
    band = _Band(sigmas, widen)
    expectations: list[dict] = [
        _expectation("expect_table_columns_to_match_ordered_list", column_list=schema.names)
    ]
    if row_count is not None:
        expectations.append(_expectation("expect_table_row_count_to_equal", value=int(row_count)))
    computed: list[dict] = []
    for column in schema.columns:
        values = train[column.name]
        expectations.append(
            _expectation(
                "expect_column_values_to_be_of_type",
                column=column.name,
                type_=values.dtype.type.__name__,
            )
        )
        expectations.append(_null_fraction(column.name, values, n, rng, band))
        if column.kind == "id":
            if values.dropna().is_unique:
                expectations.append(
                    _expectation("expect_column_values_to_be_unique", column=column.name)
                )
        elif column.kind in ("categorical", "boolean"):
            expectations += _categorical(column.name, values, n, rng, band)
        elif column.kind == "numeric":
            expectations += _numeric(column.name, values, n, rng, band)
        elif column.kind == "datetime":
            computed += _datetime_checks(column.name, values, n, rng, band)
    computed += _pair_checks(train, schema, n, rng, band)
    return {
        "name": name,
        "expectations": expectations,
        "meta": {
            "synthpipe": {
                "version": SUITE_VERSION,
                "batch_rows": int(batch_rows),
                "train_rows": len(train),
                "sigmas": sigmas,
                "resamples": N_RESAMPLES,
                "seed": seed,
                "real_data_note": REAL_DATA_NOTE,
                "computed_checks": computed,
            }
        },
    }


class _Band:
    """Turns resampled statistics into an allowed interval around the real value."""

    def __init__(self, sigmas: float, widen: float):
        self.sigmas, self.widen = sigmas, widen

    def half_width(self, resampled: np.ndarray) -> float:
        return float(self.sigmas * self.widen * np.std(resampled, ddof=1))

    def around(self, center: float, resampled: np.ndarray) -> tuple[float, float]:
        half = self.half_width(resampled)
        return float(center - half), float(center + half)


def _expectation(kind: str, meta: dict | None = None, **kwargs: Any) -> dict:
    return {"type": kind, "kwargs": _plain(kwargs), "meta": _plain(meta or {})}


def _resample(values: np.ndarray, n: int, rng: np.random.Generator, times: int) -> np.ndarray:
    """`times` x n rows drawn with replacement."""
    return values[rng.integers(0, len(values), size=(times, n))]


def _null_fraction(name: str, values: pd.Series, n: int, rng, band: _Band) -> dict:
    null_share = float(values.isna().mean())
    # Binomial spread of the null share in a sample of n rows; at least one row's worth.
    spread = math.sqrt(max(null_share * (1 - null_share), 1 / n) / n)
    half = band.sigmas * band.widen * spread
    present = 1 - null_share
    return _expectation(
        "expect_column_proportion_of_non_null_values_to_be_between",
        column=name,
        min_value=max(0.0, present - half),
        max_value=min(1.0, present + half),
        meta={"real_value": present},
    )


def _categorical(name: str, values: pd.Series, n: int, rng, band: _Band) -> list[dict]:
    present = values.dropna()
    if present.empty:
        return []
    counts = present.value_counts()
    labels = counts.index.tolist()
    weights = (counts / counts.sum()).to_numpy()
    # Good-Turing: the share of values seen once estimates the share a new sample has never
    # seen before; the band adds its binomial spread at n rows.
    unseen = float((counts == 1).sum() / counts.sum())
    unseen_max = min(1.0, unseen + band.sigmas * math.sqrt(max(unseen, 1 / n) / n))
    codes = np.repeat(np.arange(len(labels)), counts.to_numpy())
    draws = _resample(codes, min(n, len(codes)), rng, N_RESAMPLES)
    kl = np.array(
        [_kl(np.bincount(row, minlength=len(labels)) / len(row), weights) for row in draws]
    )
    threshold = float(kl.mean() * band.widen**2 + band.half_width(kl) * band.widen)
    return [
        _expectation(
            "expect_column_values_to_be_in_set",
            column=name,
            value_set=labels,
            mostly=max(0.0, 1 - unseen_max),
            meta={"unseen_share_estimate": unseen},
        ),
        _expectation(
            "expect_column_kl_divergence_to_be_less_than",
            column=name,
            partition_object={"values": labels, "weights": weights.tolist()},
            threshold=max(threshold, 1e-12),
            tail_weight_holdout=max(unseen, 1 / len(codes)),
        ),
    ]


def _kl(observed: np.ndarray, expected: np.ndarray) -> float:
    """KL(observed || expected), as GX computes it for a categorical partition."""
    mask = observed > 0
    return float(np.sum(observed[mask] * np.log(observed[mask] / expected[mask])))


def _present(values: pd.Series) -> np.ndarray:
    """The column's present values as floats (datetimes as nanoseconds)."""
    numbers = as_float(values)
    return numbers[~np.isnan(numbers)]


def _numeric(name: str, values: pd.Series, n: int, rng, band: _Band) -> list[dict]:
    numbers = _present(values)
    if len(numbers) < 2:
        return []
    m = min(n, len(numbers))
    draws = np.sort(_resample(numbers, m, rng, N_RESAMPLES), axis=1)
    levels = (0.5, *QUANTILES)
    real_q = np.quantile(numbers, levels)
    draw_q = np.quantile(draws, levels, axis=1)  # levels x resamples
    low, high = float(numbers.min()), float(numbers.max())
    # A new sample of m rows holds on average 2m/(N+1) values outside the seen range.
    outside = 2 / (len(numbers) + 1)
    outside_max = outside + band.sigmas * math.sqrt(max(outside, 1 / m) / m)
    expectations = [
        _expectation(
            "expect_column_values_to_be_between",
            column=name,
            min_value=low,
            max_value=high,
            mostly=max(0.0, 1 - outside_max),
        ),
        _expectation(
            "expect_column_mean_to_be_between",
            column=name,
            **_between(float(numbers.mean()), draws.mean(axis=1), band),
        ),
        _expectation(
            "expect_column_stdev_to_be_between",
            column=name,
            **_between(float(numbers.std(ddof=1)), draws.std(axis=1, ddof=1), band),
        ),
        _expectation(
            "expect_column_median_to_be_between",
            column=name,
            **_between(float(real_q[0]), draw_q[0], band),
        ),
    ]
    ranges = [list(band.around(float(real_q[i]), draw_q[i])) for i in range(1, len(levels))]
    expectations.append(
        _expectation(
            "expect_column_quantile_values_to_be_between",
            column=name,
            quantile_ranges={"quantiles": list(QUANTILES), "value_ranges": ranges},
        )
    )
    return expectations


def _between(real: float, resampled: np.ndarray, band: _Band) -> dict:
    low, high = band.around(real, resampled)
    return {"min_value": low, "max_value": high, "meta": {"real_value": real}}


def _datetime_checks(name: str, values: pd.Series, n: int, rng, band: _Band) -> list[dict]:
    """GX's pandas backend cannot compare datetimes with JSON bounds; check them here."""
    numbers = _present(values)
    if len(numbers) < 2:
        return []
    m = min(n, len(numbers))
    draws = _resample(numbers, m, rng, N_RESAMPLES)
    outside = 2 / (len(numbers) + 1)
    checks = [
        {
            "check": "datetime_range",
            "columns": [name],
            "min": _iso(numbers.min()),
            "max": _iso(numbers.max()),
            "max_outside_share": outside + band.sigmas * math.sqrt(max(outside, 1 / m) / m),
        }
    ]
    for level in (0.5, *QUANTILES):
        real = float(np.quantile(numbers, level))
        low, high = band.around(real, np.quantile(draws, level, axis=1))
        checks.append(
            {
                "check": "datetime_quantile",
                "columns": [name],
                "quantile": level,
                "real": _iso(real),
                "min": _iso(low),
                "max": _iso(high),
            }
        )
    return checks


def _iso(nanoseconds: float) -> str:
    return pd.Timestamp(int(nanoseconds)).isoformat()


def _pair_checks(train: pd.DataFrame, schema: Schema, n: int, rng, band: _Band) -> list[dict]:
    """Spearman correlation of numeric pairs and bias-corrected Cramer's V of categorical
    pairs. Categorical pairs whose contingency table has more than batch_rows / 5 cells are
    left out (the usual rule for chi-square statistics: at least 5 expected per cell).

    Association measures are biased at small sizes (sparse contingency tables look more
    associated), so their bands come from splits rather than resamples: a random `m` rows
    of the training table against the rest, `m` = min(batch_rows, half the table). The band
    is the real value shifted by the mean split difference, +- `sigmas` of its spread.
    """
    frame = train if len(train) <= MAX_PAIR_ROWS else train.sample(MAX_PAIR_ROWS, random_state=0)
    m = max(2, min(n, len(frame) // 2))
    numeric = schema.names_of("numeric", "datetime")[:MAX_PAIR_COLUMNS]
    categorical = schema.names_of("categorical", "boolean")[:MAX_PAIR_COLUMNS]
    splits = [np.split(rng.permutation(len(frame)), [m]) for _ in range(N_RESAMPLES)]
    checks = []
    if len(numeric) >= 2:
        matrix = np.column_stack([as_float(frame[c]) for c in numeric])
        real = spearman_matrix(matrix)
        differences = np.stack(
            [spearman_matrix(matrix[part]) - spearman_matrix(matrix[rest]) for part, rest in splits]
        )
        for i in range(len(numeric)):
            for j in range(i + 1, len(numeric)):
                diffs = differences[:, i, j]
                if np.isnan(real[i, j]) or np.isnan(diffs).any():
                    continue
                low, high = _split_band(real[i, j], diffs, band.sigmas)
                checks.append(
                    {
                        "check": "spearman_correlation",
                        "columns": [numeric[i], numeric[j]],
                        "real": float(real[i, j]),
                        "min": max(-1.0, low),
                        "max": min(1.0, high),
                    }
                )
    if len(categorical) >= 2:
        codes = [_codes(frame[c]) for c in categorical]
        for i in range(len(categorical)):
            for j in range(i + 1, len(categorical)):
                a, b = codes[i], codes[j]
                cells = (a.max() + 1) * (b.max() + 1)
                if cells * MIN_EXPECTED_PER_CELL > m:
                    # Too sparse a table for a chi-square measure at this size: a fresh
                    # sample's V is dominated by which rare cells happen to be filled.
                    continue
                real = cramers_v(a, b)
                diffs = np.array(
                    [
                        cramers_v(a[part], b[part]) - cramers_v(a[rest], b[rest])
                        for part, rest in splits
                    ]
                )
                low, high = _split_band(real, diffs, band.sigmas)
                checks.append(
                    {
                        "check": "cramers_v",
                        "columns": [categorical[i], categorical[j]],
                        "real": real,
                        "min": max(0.0, low),
                        "max": min(1.0, high),
                    }
                )
    return checks


def _split_band(real: float, differences: np.ndarray, sigmas: float) -> tuple[float, float]:
    """The band around what a batch-sized sample gives, stretched to include the real value
    itself: for near-deterministic pairs the small-sample bias exceeds the spread, and the
    training table must still pass its own suite."""
    center = real + float(differences.mean())
    half = sigmas * float(differences.std(ddof=1))
    return min(center - half, real), max(center + half, real)


def spearman_matrix(matrix: np.ndarray) -> np.ndarray:
    """Spearman correlations of the columns of a rows x columns float matrix (NaN rows of a
    pair are dropped pairwise by ranking missing values out)."""
    ranked = np.column_stack(
        [
            rankdata(col, nan_policy="omit") if np.isnan(col).any() else rankdata(col)
            for col in matrix.T
        ]
    )
    return pd.DataFrame(ranked).corr(min_periods=3).to_numpy()


def _codes(values: pd.Series) -> np.ndarray:
    """Category codes, missing as its own code."""
    return pd.factorize(values.astype("string").fillna("\x00missing"))[0]


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Bias-corrected Cramer's V (Bergsma 2013) of two code arrays; 0 when either is constant."""
    n = len(a)
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    r, k = a.max() + 1, b.max() + 1
    if r < 2 or k < 2 or n < 2:
        return 0.0
    table = np.bincount(a * k + b, minlength=r * k).reshape(r, k).astype(float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    r_corr = r - (r - 1) ** 2 / (n - 1)
    k_corr = k - (k - 1) ** 2 / (n - 1)
    denominator = min(k_corr - 1, r_corr - 1)
    return float(math.sqrt(phi2 / denominator)) if denominator > 0 else 0.0


def _plain(value: Any) -> Any:
    """JSON-safe: NumPy scalars to Python ones (GX cannot store numpy booleans)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_suite(path: Path) -> dict[str, Any]:
    """Read a suite written by a run (expectations/suite.json)."""
    try:
        suite = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: suite file not found") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable JSON suite ({error})") from None
    if not isinstance(suite, dict) or "synthpipe" not in suite.get("meta", {}):
        raise DataError(f"{path}: not a synthpipe expectation suite (no meta.synthpipe)")
    _check_suite(suite, path)
    return suite


def _check_suite(suite: dict[str, Any], path: Path) -> None:
    """Every expectation builds in Great Expectations and every computed check is a mapping
    with its kind and columns, so a damaged or hand-edited suite fails here, naming
    the file, and not half-way through a validation."""
    computed = suite["meta"]["synthpipe"].get("computed_checks")
    expectations = suite.get("expectations")
    if not isinstance(suite.get("name"), str) or not isinstance(expectations, list):
        raise DataError(
            f"{path}: not a synthpipe expectation suite (needs a name and a list "
            "of expectations); use a run's expectations/suite.json"
        )
    if not isinstance(computed, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("check"), str)
        and isinstance(c.get("columns"), list)
        for c in computed
    ):
        raise DataError(
            f"{path}: meta.synthpipe.computed_checks is damaged; use a run's "
            "expectations/suite.json"
        )
    for index, expectation in enumerate(expectations):
        try:
            _gx_config(expectation)
        except Exception as error:  # GX raises its own types, and TypeError for a non-mapping
            detail = " ".join(str(error).split())[:160] or type(error).__name__
            raise DataError(
                f"{path}: expectation {index} is not valid ({detail}); use a run's "
                "expectations/suite.json"
            ) from None


# -- validating --------------------------------------------------------------------------
@functools.cache
def _gx_batch_definition():
    """One ephemeral GX context per process: no files, no telemetry, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("synthpipe")
    asset = source.add_dataframe_asset("table")
    return gx, asset.add_batch_definition_whole_dataframe("whole table")


@dataclass
class Validation:
    """A table validated against a suite: the gate's report, GX's result as JSON (with the
    computed checks under `synthpipe_checks`), and the Data Docs page for people."""

    report: Report
    result: dict
    html: str


def validate_table(frame: pd.DataFrame, suite: dict[str, Any]) -> Validation:
    """Validate `frame` against a suite from `build_suite` (or its JSON file's contents).

    The report has metrics success_percent / evaluated / failed and one failure line per
    failed check, naming the column or pair.
    """
    gx, batch_definition = _gx_batch_definition()
    gx_suite = gx.ExpectationSuite(
        name=suite["name"], expectations=[_gx_config(e) for e in suite["expectations"]]
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    gx_result = batch.validate(gx_suite)
    for item in gx_result.results:
        # NumPy scalars break GX's renderers and JSON; sample values of failed rows are
        # dropped, so reports of a rejected table never carry its rows.
        item.result = {
            key: value
            for key, value in _plain(item.result).items()
            if not key.startswith("partial_unexpected")
        }
    outcome = _plain(gx_result.to_json_dict())
    failures = [_describe_failure(item) for item in outcome["results"] if not item["success"]]
    computed = [run_check(frame, check) for check in suite["meta"]["synthpipe"]["computed_checks"]]
    failures += [c["failure"] for c in computed if not c["success"]]
    outcome["synthpipe_checks"] = computed
    evaluated = len(outcome["results"]) + len(computed)
    failed = len(failures)
    report = Report(
        name="expectations",
        passed=failed == 0,
        metrics={
            "success_percent": 100.0 * (evaluated - failed) / max(evaluated, 1),
            "evaluated": float(evaluated),
            "failed": float(failed),
        },
        details={"failed_columns": sorted(_failed_columns(outcome, computed))},
        failures=failures,
    )
    return Validation(report, outcome, _data_docs_html(gx_result, computed, report))


def _gx_config(expectation: dict):
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    return ExpectationConfiguration(**expectation).to_domain_obj()


def _describe_failure(item: dict) -> str:
    config = item["expectation_config"]
    kwargs = config["kwargs"]
    where = f"column '{kwargs['column']}'" if "column" in kwargs else "table"
    observed = item.get("result", {}).get("observed_value")
    if item.get("exception_info", {}).get("raised_exception"):
        observed = f"error: {item['exception_info']['exception_message']}"
    elif observed is None and "unexpected_percent" in item.get("result", {}):
        observed = f"{item['result']['unexpected_percent']:.3g}% unexpected values"
    expected = {
        k: v
        for k, v in kwargs.items()
        if k not in ("column", "batch_id", "partition_object", "value_set")
    }
    if "value_set" in kwargs:
        expected["value_set"] = f"{len(kwargs['value_set'])} values seen in the real data"
    return (
        f"{where}: {config['type']} failed: observed {_short(observed)}, "
        f"expected {_short(expected)}"
    )


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_check(frame: pd.DataFrame, check: dict) -> dict:
    """Evaluate one computed check on `frame`. Returns {check, columns, observed, success,
    failure}."""
    kind, columns = check["check"], check["columns"]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        observed, success = f"missing column(s) {missing}", False
    elif kind == "datetime_range":
        numbers = _present(frame[columns[0]])
        low, high = pd.Timestamp(check["min"]).value, pd.Timestamp(check["max"]).value
        outside = float(np.mean((numbers < low) | (numbers > high))) if len(numbers) else 0.0
        observed, success = outside, outside <= check["max_outside_share"]
    elif kind == "datetime_quantile":
        numbers = _present(frame[columns[0]])
        value = np.quantile(numbers, check["quantile"]) if len(numbers) else np.nan
        observed = _iso(value) if len(numbers) else None
        success = bool(
            len(numbers)
            and pd.Timestamp(check["min"]).value <= value <= pd.Timestamp(check["max"]).value
        )
    elif kind == "spearman_correlation":
        sample = (
            frame if len(frame) <= MAX_PAIR_ROWS else frame.sample(MAX_PAIR_ROWS, random_state=0)
        )
        matrix = np.column_stack([as_float(sample[c]) for c in columns])
        value = float(spearman_matrix(matrix)[0, 1])
        observed, success = value, bool(check["min"] <= value <= check["max"])
    elif kind == "cramers_v":
        sample = (
            frame if len(frame) <= MAX_PAIR_ROWS else frame.sample(MAX_PAIR_ROWS, random_state=0)
        )
        value = cramers_v(_codes(sample[columns[0]]), _codes(sample[columns[1]]))
        observed, success = value, check["min"] <= value <= check["max"]
    else:
        raise DataError(f"expectation suite: unknown computed check '{kind}'")
    outcome = {"check": kind, "columns": columns, "observed": observed, "success": bool(success)}
    if not success:
        names = " and ".join(f"'{c}'" for c in columns)
        expected = {
            k: v
            for k, v in check.items()
            if k in ("min", "max", "max_outside_share", "quantile", "real")
        }
        label = "column" if len(columns) == 1 else "columns"
        outcome["failure"] = (
            f"{label} {names}: {kind} failed: observed {_short(observed)}, "
            f"expected {_short(expected)}"
        )
    return outcome


def _failed_columns(outcome: dict, computed: list[dict]) -> set[str]:
    names = {
        item["expectation_config"]["kwargs"]["column"]
        for item in outcome["results"]
        if not item["success"] and "column" in item["expectation_config"]["kwargs"]
    }
    for check in computed:
        if not check["success"]:
            names.update(check["columns"])
    return names


# -- Data Docs ---------------------------------------------------------------------------
# GX's page loads Bootstrap, jQuery, Vega and Font Awesome from CDNs, and shows a check's
# status as a Font Awesome icon: offline it renders unstyled with a blank status column.
# The page is made self-contained: external stylesheets, scripts, images and links go,
# a stylesheet of our own (the few Bootstrap classes GX's markup uses) is inlined beside
# GX's own inline styles (hiding the filter buttons, which need GX's scripts, and the
# newsletter footer), and status icons become text markers.
STATUS_MARKERS = {
    "fa-check-circle": '<span class="sp-status sp-pass">&#10004; passed</span>',
    "fa-times": '<span class="sp-status sp-fail">&#10008; failed</span>',
}
OFFLINE_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0;color:#212529;background:#fff;line-height:1.45;font-size:14px}
.container,.container-fluid{padding:12px 24px;box-sizing:border-box}
.row{display:flex;flex-wrap:wrap}
.col-12{flex:0 0 100%;max-width:100%}.col-6{flex:0 0 50%;max-width:50%}
.col-4{flex:0 0 33.3%;max-width:33.3%}
.col-lg-2{flex:0 0 16.6%;max-width:16.6%;box-sizing:border-box;padding-right:12px}
.col-lg-10{flex:0 0 83.3%;max-width:83.3%;box-sizing:border-box}
table{border-collapse:collapse;width:100%;margin-bottom:1rem}
.table td,.table th{border-top:1px solid #c9cfd8;padding:4px 8px;vertical-align:top;
text-align:left}
.table thead th{border-bottom:2px solid #8a94a6;background:#eef1f5}
.table-unbordered td,.table-unbordered th{border:0}
.badge{display:inline-block;padding:1px 5px;font-size:85%;font-weight:600;border-radius:3px}
.badge-secondary{background:#5a6270;color:#fff}
.alert{padding:8px 14px;border-radius:4px;margin:8px 0}
.alert-secondary{background:#e2e6ec;border:1px solid #c9cfd8}
.card{border:1px solid #c9cfd8;border-radius:4px;margin-bottom:12px;padding:8px}
.nav{list-style:none;padding-left:0}.nav-link{display:block;padding:2px 4px}
nav.navbar{height:auto!important;padding:8px 24px;border-bottom:1px solid #c9cfd8}
.breadcrumb{display:flex;list-style:none;gap:8px;margin:0;padding:0}
.d-none,.modal{display:none}
.card:has(.btn-group-toggle),footer{display:none}
.text-success{color:#1e7d32}.text-danger{color:#b3261e}
.show-scrollbars,.table-responsive{overflow-x:auto}
.sp-status{font-weight:700;white-space:nowrap;padding:1px 6px;border-radius:3px}
.sp-pass{background:#1e7d32;color:#fff}.sp-fail{background:#b3261e;color:#fff}
.sp-banner{margin:12px 24px;padding:10px 14px;border:2px solid #9a6700;background:#fff4d6;
color:#4d3300;font-weight:600;border-radius:4px}
.sp-summary{margin:12px 24px;padding:10px 14px;border:2px solid #13294b;background:#eef1f5;
border-radius:4px}
"""


def _data_docs_html(gx_result, computed: list[dict], report: Report) -> str:
    """One self-contained HTML page that renders styled offline: a banner marking it as
    real-data metadata, the counts of report.md (GX expectations and computed checks
    together), GX's rendering of the validation result, and a table of the computed
    checks (pairs, datetimes)."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    page = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(gx_result))
    page = offline_page(page)
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            STATUS_MARKERS["fa-check-circle" if c["success"] else "fa-times"],
            html.escape(c["check"]),
            html.escape(", ".join(c["columns"])),
            html.escape(_short(c["observed"])),
        )
        for c in computed
    )
    section = (
        '<div class="container"><h3 id="synthpipe-checks">Computed checks (pairs, datetimes)</h3>'
        '<table class="table table-sm"><thead><tr><th>status</th><th>check</th><th>columns</th>'
        f"<th>observed</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
    metrics = report.metrics
    head = (
        f'<div class="sp-banner" id="real-data-note">{html.escape(REAL_DATA_NOTE)}</div>'
        '<div class="sp-summary" id="synthpipe-summary"><strong>synthpipe:</strong> '
        f'<span id="evaluated">{int(metrics["evaluated"])}</span> checks evaluated, '
        f'<span id="failed">{int(metrics["failed"])}</span> failed '
        f"({metrics['success_percent']:.1f}% passed), as in report.md: "
        f"{len(gx_result.results)} Great Expectations expectations (below) and "
        f"{len(computed)} computed checks (at the end).</div>"
    )
    page = re.sub(r"(<body[^>]*>)", lambda m: m[1] + head, page, count=1)
    return page.replace("</body>", section + "</body>") if "</body>" in page else page + section


def offline_page(page: str) -> str:
    """GX's Data Docs page without anything fetched from elsewhere: <link>s and <script>s
    removed (the charts they drew go too), remote images dropped, links reduced to their
    text, CSS url()s dropped, status icons turned into text markers, and OFFLINE_STYLE
    inlined."""
    page = re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S | re.I)
    page = re.sub(r"<link\b[^>]*>", "", page, flags=re.I)
    page = re.sub(r"<img\b[^>]*>", "", page, flags=re.I)
    page = re.sub(r"<a\b[^>]*>(.*?)</a>", r"\1", page, flags=re.S | re.I)
    page = re.sub(r"url\([^)]*\)", "none", page)  # GX's inline CSS: a logo on a CDN
    for icon, marker in STATUS_MARKERS.items():
        page = re.sub(rf'<i class="fas {icon}[^"]*"[^>]*>\s*</i>', marker, page)
    page = re.sub(r'<i class="fas? [^"]*"[^>]*>\s*</i>', "", page)  # any other icon
    style = f"<style>{OFFLINE_STYLE}</style>"
    return page.replace("</head>", style + "</head>", 1) if "</head>" in page else style + page
