"""Privacy, expectations and fidelity for sequences: long tables of entities over time.

Plain functions of long tables (entity, order and value columns; `SequenceSettings` names
the first two). A unit of comparison is an entity, or with `settings.summary_window` each
consecutive window of that many rows of an entity (more units when there are few
entities; a trailing remainder of at least 2 rows is a unit of its own).

- `entity_features`: one row per unit: length, and per numeric column its mean, standard
  deviation and lag-1 autocorrelation; per categorical column the share of each category.
- `sequence_privacy_report`: the table gate's distance figures on units instead of rows,
  on the entity features standardised by the training units' mean and spread (Euclidean,
  divided by sqrt(features); a feature missing for a unit, e.g. the lag-1 of a constant
  series, sits at the training mean):
  - dcr_share: share of synthetic units closer to a training unit than to a holdout unit
    (mostlyai-qa's definition: equal-size samples, ties half), averaged over
    `REFERENCE_DRAWS` seeded draws of the training units so few holdout units do not make
    it a coin toss of one draw;
  - ims (identical unit share): synthetic units whose features equal a training unit's
    (distance < 1e-9), against the holdout's own share;
  - membership_auc: training vs holdout units scored by minus their distance to the
    nearest synthetic unit.
  Intervals count ENTITIES, not windows (windows of one entity are not independent): the
  DCR share's Wilson interval uses min(synthetic entities, holdout entities), the AUC's
  Hanley–McNeil error the training and holdout entity counts. The gate fails a figure only
  when it is over the policy's limit AND significant (interval excluding 0.5), as for
  tables; the IMS fails when above the Wilson upper bound of the holdout's share. With
  Beijing's 2 held-out stations nothing but an exact copy can be significant: the report
  says so (`details.entities`) rather than pretending.
- `sequence_expectation_frame`: the per-unit table (length, lag-1 autocorrelation of each
  numeric column) on which the flow builds a Great Expectations suite with
  `validation.expectations.build_suite`, so bands come from the spread of real units.
- `sequence_fidelity_report` (non-blocking): autocorrelation-function distance per numeric
  column (mean |ACF_real(l) - ACF_synthetic(l)| for l = 1..acf_lags, ACFs pooled over
  entities), per-column KS statistics (numeric) and total variation distances
  (categorical) on rows, within-sequence cross-column correlation difference (Pearson on
  values centred by each entity's mean), and the KS distance of entity lengths; each with
  the holdout's figure against the same training data as the reference a generator can
  hope to reach.
- `acf_plot`: real vs synthetic ACFs as a PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.spatial.distance import cdist  # noqa: E402
from scipy.stats import ks_2samp  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from generators.data.schema import Schema  # noqa: E402
from generators.errors import DataError  # noqa: E402
from generators.sequence.data import SequenceSettings  # noqa: E402
from validation.privacy import (  # noqa: E402
    PrivacyPolicy,
    auc_ci_low,
    judge_distance_figures,
    share_interval,
    wilson_lower,  # noqa: F401  (re-exported: it lived here)
    wilson_upper,
)
from validation.report import Report  # noqa: E402

REFERENCE_DRAWS = 20  # seeded draws of the training units, averaged in the DCR share
IDENTICAL = 1e-9  # standardised feature distance below which two units are the same
MAX_FIDELITY_ROWS = 200_000  # KS statistics on seeded samples of at most this many rows
UNIT = "__unit"


# -- columns and units --------------------------------------------------------------------------
def value_columns(
    frame: pd.DataFrame, settings: SequenceSettings, schema: Schema | None = None
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) value columns: by the schema's kinds when given (numeric and
    datetime count as numeric; categorical and boolean as categorical; identifiers and text
    are left out), else by dtype."""
    skip = {settings.entity_column, settings.order_column}
    numeric, categorical = [], []
    for name in frame.columns:
        if name in skip:
            continue
        if schema is not None and name in schema.names:
            kind = schema[name].kind
            if kind in ("numeric", "datetime"):
                numeric.append(name)
            elif kind in ("categorical", "boolean"):
                categorical.append(name)
        elif pd.api.types.is_bool_dtype(frame[name].dtype):
            categorical.append(name)
        elif pd.api.types.is_numeric_dtype(
            frame[name].dtype
        ) or pd.api.types.is_datetime64_any_dtype(frame[name].dtype):
            numeric.append(name)
        elif pd.api.types.is_string_dtype(frame[name].dtype):
            categorical.append(name)
    return numeric, categorical


def _sorted(frame: pd.DataFrame, entity_column: str, order_column: str) -> pd.DataFrame:
    return frame.sort_values([entity_column, order_column], kind="stable").reset_index(drop=True)


def _units(frame: pd.DataFrame, entity_column: str, window: int | None) -> np.ndarray:
    """Unit code per row of a sorted frame: its entity, or (entity, window number); -1 for
    rows of a trailing window shorter than 2 rows (left out)."""
    entity = pd.factorize(frame[entity_column], sort=False)[0]
    if window is None:
        return entity.astype(np.int64)
    position = frame.groupby(entity_column, sort=False).cumcount().to_numpy()
    piece = position // window
    codes = pd.factorize(pd.Series(entity * (1 << 32) + piece), sort=False)[0]
    sizes = np.bincount(codes)
    return np.where(sizes[codes] >= 2, codes, -1).astype(np.int64)


def _numbers(values: pd.Series) -> np.ndarray:
    from generators.data.values import as_float

    return as_float(values)


def entity_features(
    frame: pd.DataFrame,
    entity_column: str,
    order_column: str,
    numeric: list[str],
    categorical: list[str],
    *,
    window: int | None = None,
    levels: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """One row per unit (entity, or window of `window` rows), in order of first appearance.

    Columns: `entity_column` (the unit's entity), `length` (rows), and per numeric column
    `<c>_mean`, `<c>_std`, `<c>_lag1` (lag-1 autocorrelation of consecutive present
    pairs; NaN with fewer than 3 pairs or no spread), per categorical column
    `<c>_share_<level>` for each level in `levels[c]` (default: the levels in `frame`,
    sorted) and `<c>_share_missing` — all Float64.
    """
    ordered = _sorted(frame, entity_column, order_column)
    units = _units(ordered, entity_column, window)
    keep = units >= 0
    ordered, units = ordered[keep].reset_index(drop=True), units[keep]
    n_units = int(units.max()) + 1 if len(units) else 0
    first = np.unique(units, return_index=True)[1]
    out: dict[str, object] = {entity_column: ordered[entity_column].to_numpy()[first]}
    length = np.bincount(units, minlength=n_units).astype(float)
    out["length"] = length
    same_unit = np.r_[False, units[1:] == units[:-1]]
    for name in numeric:
        x = _numbers(ordered[name])
        present = ~np.isnan(x)
        count = np.bincount(units, weights=present, minlength=n_units)
        total = np.bincount(units, weights=np.where(present, x, 0.0), minlength=n_units)
        mean = total / np.where(count > 0, count, np.nan)
        centred = np.where(present, x - mean[units], 0.0)
        variance = np.bincount(units, weights=centred**2, minlength=n_units) / np.where(
            count > 1, count - 1, np.nan
        )
        out[f"{name}_mean"] = mean
        out[f"{name}_std"] = np.sqrt(variance)
        out[f"{name}_lag1"] = _lag1(x, units, same_unit, n_units)
    for name in categorical:
        labels = ordered[name].astype("string")
        seen = levels.get(name) if levels and name in levels else None
        seen = seen if seen is not None else sorted(labels.dropna().unique().tolist())
        for level in seen:
            hits = (labels == level).fillna(False).to_numpy(dtype=float)
            out[f"{name}_share_{level}"] = np.bincount(units, hits, n_units) / length
        missing = labels.isna().to_numpy(dtype=float)
        out[f"{name}_share_missing"] = np.bincount(units, missing, n_units) / length
    features = pd.DataFrame(out)
    for name in features.columns[1:]:
        features[name] = pd.array(features[name].to_numpy(dtype=float), dtype="Float64")
    return features


def _lag1(x: np.ndarray, units: np.ndarray, same_unit: np.ndarray, n_units: int) -> np.ndarray:
    """Pearson correlation of (x_{t-1}, x_t) pairs within each unit."""
    a, b = np.r_[np.nan, x[:-1]], x
    ok = same_unit & ~np.isnan(a) & ~np.isnan(b)
    a, b, u = a[ok], b[ok], units[ok]
    n = np.bincount(u, minlength=n_units).astype(float)
    sa, sb = np.bincount(u, a, n_units), np.bincount(u, b, n_units)
    saa, sbb = np.bincount(u, a * a, n_units), np.bincount(u, b * b, n_units)
    sab = np.bincount(u, a * b, n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sab - sa * sb / n
        var_a, var_b = saa - sa * sa / n, sbb - sb * sb / n
        r = cov / np.sqrt(var_a * var_b)
    valid = (n >= 3) & (var_a > 1e-12 * np.maximum(saa, 1)) & (var_b > 1e-12 * np.maximum(sbb, 1))
    return np.where(valid, np.clip(r, -1, 1), np.nan)


def sequence_expectation_frame(
    frame: pd.DataFrame, settings: SequenceSettings, schema: Schema | None = None
) -> pd.DataFrame:
    """Per unit (settings.summary_window): `length` and `<c>_lag1` for each numeric value
    column, Float64, no entity column (its ids differ by design). Build the suite on the
    training table's frame, validate the synthetic table's."""
    numeric, _ = value_columns(frame, settings, schema)
    features = entity_features(
        frame,
        settings.entity_column,
        settings.order_column,
        numeric,
        [],
        window=settings.summary_window,
    )
    return features[["length", *[f"{name}_lag1" for name in numeric]]].reset_index(drop=True)


# -- privacy ------------------------------------------------------------------------------------
def _standardised(features: list[pd.DataFrame]) -> list[np.ndarray]:
    """Feature matrices scaled by the first (training) frame's mean and standard deviation;
    missing features at 0 (the training mean)."""
    train = features[0].iloc[:, 1:].to_numpy(dtype=float, na_value=np.nan)
    center = np.nanmean(train, axis=0)
    spread = np.nanstd(train, axis=0)
    center = np.where(np.isnan(center), 0.0, center)
    spread = np.where(np.isnan(spread) | (spread <= 0), 1.0, spread)
    out = []
    for frame in features:
        x = (frame.iloc[:, 1:].to_numpy(dtype=float, na_value=np.nan) - center) / spread
        out.append(np.nan_to_num(x, nan=0.0))
    return out


def _distances(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(queries x reference) Euclidean distances / sqrt(features), computed from the
    differences (exact zeros for copies; units are entities or windows, not rows)."""
    return cdist(queries, reference) / math.sqrt(max(queries.shape[1], 1))


def sequence_privacy_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    settings: SequenceSettings,
    policy: PrivacyPolicy,
    *,
    seed: int = 0,
    schema: Schema | None = None,
) -> Report:
    """Distance-based disclosure figures on units (see the module docstring), judged
    against `policy` (dcr_share_max, membership_auc_max, ims_check)."""
    numeric, categorical = value_columns(train, settings, schema)
    levels = {name: sorted(train[name].astype("string").dropna().unique()) for name in categorical}
    features = [
        entity_features(
            frame,
            settings.entity_column,
            settings.order_column,
            numeric,
            categorical,
            window=settings.summary_window,
            levels=levels,
        )
        for frame in (train, holdout, synthetic)
    ]
    for label, table in zip(("training", "holdout", "synthetic"), features, strict=True):
        if len(table) < 1:
            raise DataError(f"sequence privacy: the {label} table has no entity with 2 rows")
    x_train, x_holdout, x_synthetic = _standardised(features)
    entities = {
        label: int(table[settings.entity_column].nunique())
        for label, table in zip(("train", "holdout", "synthetic"), features, strict=True)
    }
    rng = np.random.default_rng(seed)
    size = min(len(x_train), len(x_holdout))
    to_train_all = _distances(x_synthetic, x_train)
    draws = 1 if len(x_train) == len(x_holdout) else REFERENCE_DRAWS
    shares = []
    for _ in range(draws):
        train_pick = rng.choice(len(x_train), size, replace=False)
        holdout_pick = rng.choice(len(x_holdout), size, replace=False)
        to_train = to_train_all[:, train_pick].min(1)
        to_holdout = _distances(x_synthetic, x_holdout[holdout_pick]).min(1)
        shares.append(float((to_train < to_holdout).mean() + 0.5 * (to_train == to_holdout).mean()))
    dcr_share = float(np.mean(shares))
    n_effective = max(1, min(entities["synthetic"], entities["holdout"]))
    ims = float((to_train_all.min(1) < IDENTICAL).mean())
    holdout_to_train = _distances(x_holdout, x_train).min(1)
    ims_holdout = float((holdout_to_train < IDENTICAL).mean())
    train_to_synthetic = to_train_all.min(0)
    holdout_to_synthetic = _distances(x_holdout, x_synthetic).min(1)
    labels = np.r_[np.ones(len(x_train)), np.zeros(len(x_holdout))]
    membership_auc = float(roc_auc_score(labels, -np.r_[train_to_synthetic, holdout_to_synthetic]))
    auc_low = auc_ci_low(membership_auc, entities["train"], entities["holdout"])
    dcr_low, dcr_high = share_interval(dcr_share, n_effective, "wilson")
    metrics = {
        "dcr_share": dcr_share,
        "dcr_share_ci_low": dcr_low,
        "dcr_share_ci_high": dcr_high,
        "ims": ims,
        "ims_holdout": ims_holdout,
        "ims_holdout_upper": wilson_upper(ims_holdout, entities["holdout"]),
        "membership_auc": membership_auc,
        "membership_auc_ci_low": auc_low,
        "dcr_train_median": float(np.median(to_train_all.min(1))),
        "dcr_holdout_median": float(np.median(_distances(x_synthetic, x_holdout).min(1))),
    }
    failures = judge_distance_figures(
        metrics,
        policy,
        closer="synthetic entities sit closer to training entities than to unseen real ones",
        tells="the synthetic entities tell training entities from unseen ones",
        show_ci=True,
    )
    if policy.ims_check and ims > metrics["ims_holdout_upper"]:
        failures.append(
            f"identical entity share {ims:.3f} > {metrics['ims_holdout_upper']:.3f} (the "
            "holdout's 95% upper bound): synthetic entities repeat training entities' summaries"
        )
    details = {
        "unit": "entity" if settings.summary_window is None else f"{settings.summary_window} rows",
        "holdout": settings.holdout,
        "units": {"train": len(x_train), "holdout": len(x_holdout), "synthetic": len(x_synthetic)},
        "entities": entities,
        "n_effective": n_effective,
        "reference_draws": draws,
        "features": list(features[0].columns[1:]),
        "note": (
            "intervals count entities; with few holdout entities only large effects are "
            "significant"
            + (
                "; holdout: time holds out each entity's last rows, so this measures "
                "memorisation of a time span, not of an entity"
                if settings.holdout == "time"
                else ""
            )
        ),
    }
    return Report(
        name="privacy", passed=not failures, metrics=metrics, details=details, failures=failures
    )


# -- fidelity -----------------------------------------------------------------------------------
def pooled_acf(
    frame: pd.DataFrame, settings: SequenceSettings, column: str, lags: int
) -> np.ndarray:
    """ACF at lags 1..`lags` of `column`, pooled over entities: values centred by each
    entity's mean and scaled by the pooled variance; pairs with a missing value skipped."""
    ordered = _sorted(frame, settings.entity_column, settings.order_column)
    entity = pd.factorize(ordered[settings.entity_column], sort=False)[0]
    x = _numbers(ordered[column])
    present = ~np.isnan(x)
    count = np.bincount(entity, weights=present)
    mean = np.bincount(entity, weights=np.where(present, x, 0.0)) / np.maximum(count, 1)
    z = np.where(present, x - mean[entity], np.nan)
    variance = np.nanmean(z * z) if present.any() else np.nan
    out = np.full(lags, np.nan)
    if not variance or np.isnan(variance) or variance <= 0:
        return out
    for lag in range(1, lags + 1):
        if lag >= len(z):
            break
        same = entity[lag:] == entity[:-lag]
        products = (z[lag:] * z[:-lag])[same]
        products = products[~np.isnan(products)]
        if len(products):
            out[lag - 1] = products.mean() / variance
    return out


def _within_correlation(frame: pd.DataFrame, settings: SequenceSettings, numeric: list[str]):
    """Pearson correlations between numeric columns on values centred by entity means."""
    ordered = _sorted(frame, settings.entity_column, settings.order_column)
    values = pd.DataFrame({name: _numbers(ordered[name]) for name in numeric})
    centred = values - values.groupby(ordered[settings.entity_column].to_numpy()).transform("mean")
    return centred.corr().to_numpy()


def _sample_rows(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(values) <= MAX_FIDELITY_ROWS:
        return values
    return values[rng.choice(len(values), MAX_FIDELITY_ROWS, replace=False)]


def sequence_fidelity_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    settings: SequenceSettings,
    *,
    seed: int = 0,
    schema: Schema | None = None,
) -> Report:
    """Non-blocking figures (see the module docstring): `acf_distance.<c>`, `ks.<c>`,
    `tvd.<c>`, their means, `correlation_difference`, `length_ks`; each `*_holdout` figure
    is the same comparison for the real holdout."""
    numeric, categorical = value_columns(train, settings, schema)
    rng = np.random.default_rng(seed)
    metrics: dict[str, float] = {}
    acf = {}
    for name in numeric:
        real = pooled_acf(train, settings, name, settings.acf_lags)
        acf[name] = real
        for label, other in (("", synthetic), ("_holdout", holdout)):
            difference = np.abs(real - pooled_acf(other, settings, name, settings.acf_lags))
            finite = difference[~np.isnan(difference)]  # NaN: a constant column, no ACF
            metrics[f"acf_distance{label}.{name}"] = (
                float(finite.mean()) if len(finite) else float("nan")
            )
        for label, other in (("", synthetic), ("_holdout", holdout)):
            a = _numbers(train[name])
            b = _numbers(other[name])
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            statistic = ks_2samp(_sample_rows(a, rng), _sample_rows(b, rng)).statistic
            metrics[f"ks{label}.{name}"] = float(statistic) if len(a) and len(b) else float("nan")
    for name in categorical:
        real = train[name].astype("string").fillna("\x00missing").value_counts(normalize=True)
        for label, other in (("", synthetic), ("_holdout", holdout)):
            shares = other[name].astype("string").fillna("\x00missing").value_counts(normalize=True)
            both = real.index.union(shares.index)
            tvd = 0.5 * np.abs(
                real.reindex(both, fill_value=0) - shares.reindex(both, fill_value=0)
            )
            metrics[f"tvd{label}.{name}"] = float(tvd.sum())
    for label in ("", "_holdout"):
        for prefix in ("acf_distance", "ks", "tvd"):
            values = [v for k, v in metrics.items() if k.startswith(f"{prefix}{label}.")]
            if values:
                metrics[f"{prefix}{label}_mean"] = float(np.nanmean(values))
    if len(numeric) >= 2:
        real = _within_correlation(train, settings, numeric)
        upper = np.triu_indices(len(numeric), 1)
        for label, other in (("", synthetic), ("_holdout", holdout)):
            difference = np.abs(real - _within_correlation(other, settings, numeric))[upper]
            metrics[f"correlation_difference{label}"] = float(np.nanmean(difference))
    real_lengths = train.groupby(settings.entity_column).size().to_numpy()
    for label, other in (("", synthetic), ("_holdout", holdout)):
        other_lengths = other.groupby(settings.entity_column).size().to_numpy()
        metrics[f"length_ks{label}"] = float(ks_2samp(real_lengths, other_lengths).statistic)
    details = {
        "acf_lags": settings.acf_lags,
        "acf_train": {name: [float(v) for v in values] for name, values in acf.items()},
        "numeric": numeric,
        "categorical": categorical,
        "reference": "the *_holdout figures compare the real holdout with the same training data",
    }
    return Report(name="fidelity", passed=True, metrics=metrics, details=details, blocking=False)


def acf_plot(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    settings: SequenceSettings,
    path: Path,
    *,
    schema: Schema | None = None,
    max_columns: int = 12,
) -> Path:
    """A PNG at `path`: per numeric column (at most `max_columns`), the pooled ACF of the
    real (training) and synthetic entities at lags 1..settings.acf_lags."""
    numeric, _ = value_columns(train, settings, schema)
    numeric = numeric[:max_columns]
    if not numeric:
        raise DataError("acf_plot: the table has no numeric value column")
    columns = min(4, len(numeric))
    rows = math.ceil(len(numeric) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    lags = np.arange(1, settings.acf_lags + 1)
    for axis, name in zip(axes.flat, numeric, strict=False):
        axis.plot(lags, pooled_acf(train, settings, name, settings.acf_lags), label="real")
        axis.plot(lags, pooled_acf(synthetic, settings, name, settings.acf_lags), label="synthetic")
        axis.axhline(0.0, color="grey", linewidth=0.5)
        axis.set_title(name, fontsize=9)
        axis.set_ylim(-1.05, 1.05)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(numeric) :]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.supxlabel("lag (rows)", fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
