"""Disclosure risk of a synthetic table, measured against a real holdout the generator never saw.

Plain functions of (train, holdout, synthetic, schema). Distances are the mixed-type
distance of `validation.distance` (range-scaled numerics, 0/1 categoricals, missing vs
present = 1). Each figure names the definition it follows:

- dcr_share (mostlyai-qa's DCR share): share of synthetic rows closer to the training rows
  than to the holdout rows, ties counted half, with train and holdout subsampled to the
  same size. 0.5 = no memorisation; a copy of the training data gives 1.0.
- ims / ims_holdout (SDMetrics-style identical match share): share of synthetic rows that
  equal a training row exactly, against the same share for the holdout rows (real data
  has duplicates too, so the holdout's share is the baseline).
- nndr_p05_train / nndr_p05_holdout (mostlyai-qa's NNDR): 5th percentile of nearest over
  second-nearest neighbour distance, synthetic->train and synthetic->holdout; lower on
  train than holdout means synthetic rows sit unusually close to specific training rows.
- dcr_baseline_protection (SDMetrics' DCRBaselineProtection): median synthetic->train DCR
  over median uniform-random->train DCR, capped at 1. 1 = as far from real rows as noise.
- attacks (anonymeter, Giomi et al. 2023; re-implemented in validation/attacks.py and
  compared with anonymeter by benchmarks/anonymeter_check.py): singling-out (univariate and
  multivariate), linkability and attribute-inference risks with 95% intervals.
- membership_auc: a distance-based membership attack; score a real row by minus its
  distance to the nearest synthetic row, and take the ROC AUC of telling training rows
  from holdout rows. 0.5 = no signal.

Above `max_rows` rows the nearest-neighbour work runs on a seeded subsample; the report
records the sample sizes and a 95% interval for the DCR share.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

from generators.base import DPBudget, Generator
from generators.baselines import UniformGenerator
from generators.data.schema import Schema
from generators.data.values import MISSING, as_float
from generators.errors import DataError, SynthpipeError
from validation.attacks import RiskEstimate, inference_risk, linkability_risk, singling_out_risk
from validation.distance import DistanceEncoder, nearest_neighbors
from validation.membership import (
    MEMBERSHIP_ALPHA,
    MIN_HOLDOUT_ROWS,
    density_membership_attack,
    membership_failures,
)
from validation.protection import neighbour_counts, value_radius
from validation.report import Report
from validation.shadow import ShadowPolicy, shadow_failures, shadow_membership_attack
from validation.text import TextPrivacy

MIN_ROWS_FOR_PRIVACY = 10
# Which published definition each figure follows; stored in every privacy report.
DEFINITIONS = {
    "dcr_share": "mostlyai-qa DCR share (equal-size train/holdout samples, ties count half)",
    "ims": "identical match share (SDMetrics-style), baseline: the holdout's own share",
    "nndr_p05_train": "mostlyai-qa NNDR, 5th percentile, synthetic->train",
    "nndr_p05_holdout": "mostlyai-qa NNDR, 5th percentile, synthetic->holdout",
    "dcr_baseline_protection": "SDMetrics DCRBaselineProtection (vs uniform noise, capped at 1)",
    "membership_auc": "distance-based membership inference, ROC AUC train vs holdout",
    "singling_out_*": "anonymeter SinglingOutEvaluator (Giomi et al., PETS 2023)",
    "linkability": "anonymeter LinkabilityEvaluator",
    "inference_*": "anonymeter InferenceEvaluator",
}
Z95 = 1.959964


def privacy_metrics(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    max_rows: int = 10_000,
    seed: int = 0,
    device: str | None = None,
) -> tuple[dict[str, float], dict]:
    """All distance-based figures above. Returns (metrics, details with sample sizes)."""
    for label, frame in (("training", train), ("holdout", holdout), ("synthetic", synthetic)):
        if len(frame) < MIN_ROWS_FOR_PRIVACY:
            raise DataError(
                f"the {label} table has {len(frame)} rows; privacy checks need at least "
                f"{MIN_ROWS_FOR_PRIVACY} (use more data or a larger data.holdout_fraction)"
            )
    encoder = DistanceEncoder.fit(train, schema)
    if encoder.n_columns == 0:
        raise DataError(
            "no numeric, datetime, categorical or boolean column to measure distances on"
        )
    rng = np.random.default_rng(seed)
    size = min(len(train), len(holdout), max_rows)
    train_sample = subsample(train, size, rng)
    holdout_sample = subsample(holdout, size, rng)
    synthetic_sample = subsample(synthetic, min(len(synthetic), max_rows), rng)

    x_train = encoder.transform(train_sample)
    x_holdout = encoder.transform(holdout_sample)
    x_synthetic = encoder.transform(synthetic_sample)
    search = encoder.search

    syn_to_train, _ = nearest_neighbors(x_synthetic, x_train, 2, **search, device=device)
    syn_to_holdout, _ = nearest_neighbors(x_synthetic, x_holdout, 2, **search, device=device)
    closer = (syn_to_train[:, 0] < syn_to_holdout[:, 0]).mean()
    ties = (syn_to_train[:, 0] == syn_to_holdout[:, 0]).mean()
    dcr_share = float(closer + 0.5 * ties)
    n_syn = len(synthetic_sample)
    # The share varies with the synthetic rows and with which real rows were drawn as the
    # references; counting only the smaller of the two keeps the interval honest for tiny
    # holdouts (where the reference draw dominates).
    dcr_low, dcr_high = share_interval(dcr_share, min(n_syn, size), "wald")

    measured = Schema(tuple(c for c in schema.columns if c.kind != "text"), schema.arrow_schema)
    uniform = UniformGenerator().fit(train[measured.names], measured, seed=seed)
    random_rows = uniform.sample(len(synthetic_sample), seed=seed)
    random_to_train, _ = nearest_neighbors(
        encoder.transform(random_rows), x_train, 1, **search, device=device
    )
    median_random = float(np.median(random_to_train[:, 0]))
    baseline_protection = (
        min(1.0, float(np.median(syn_to_train[:, 0])) / median_random) if median_random > 0 else 1.0
    )

    # Membership: members are training rows, non-members holdout rows, equal numbers.
    train_to_syn, _ = nearest_neighbors(x_train, x_synthetic, 1, **search, device=device)
    holdout_to_syn, _ = nearest_neighbors(x_holdout, x_synthetic, 1, **search, device=device)
    labels = np.r_[np.ones(len(x_train)), np.zeros(len(x_holdout))]
    scores = -np.r_[train_to_syn[:, 0], holdout_to_syn[:, 0]]
    membership_auc = float(roc_auc_score(labels, scores))

    ims, ims_holdout = identical_match_shares(train, holdout, synthetic, schema)
    metrics = {
        "dcr_share": dcr_share,
        "dcr_share_ci_low": dcr_low,
        "dcr_share_ci_high": dcr_high,
        "ims": ims,
        "ims_holdout": ims_holdout,
        "nndr_p05_train": float(np.percentile(_ratio(syn_to_train), 5)),
        "nndr_p05_holdout": float(np.percentile(_ratio(syn_to_holdout), 5)),
        "dcr_baseline_protection": baseline_protection,
        "membership_auc": membership_auc,
    }
    details = {
        "distance": "Euclidean over range-scaled numerics and 0/1 categoricals",
        "definitions": DEFINITIONS,
        "sample_sizes": {
            "train": len(train_sample),
            "holdout": len(holdout_sample),
            "synthetic": n_syn,
        },
        "subsampled": bool(size < min(len(train), len(holdout)) or n_syn < len(synthetic)),
        "dcr_train_median": float(np.median(syn_to_train[:, 0])),
        "dcr_holdout_median": float(np.median(syn_to_holdout[:, 0])),
        "dcr_random_median": median_random,
    }
    return metrics, details


def identical_match_shares(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
) -> tuple[float, float]:
    """(share of synthetic rows equal to some training row, same share for holdout rows).

    Exact equality over the modelled columns (identifiers and free text excluded), missing
    equal to missing; computed on all rows by hashing, no subsampling.
    """
    columns = [c.name for c in schema.columns if c.kind not in ("id", "text")]
    train_hashes = set(_row_hashes(train[columns]))
    synthetic_hashes = _row_hashes(synthetic[columns])
    holdout_hashes = _row_hashes(holdout[columns])
    return (
        float(np.isin(synthetic_hashes, list(train_hashes)).mean()),
        float(np.isin(holdout_hashes, list(train_hashes)).mean()),
    )


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    normalised = frame.astype("string").fillna(MISSING)
    return pd.util.hash_pandas_object(normalised, index=False).to_numpy()


def subsample(frame: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """`size` rows of `frame` drawn without replacement, in their order (all when fewer)."""
    if len(frame) <= size:
        return frame.reset_index(drop=True)
    return frame.iloc[np.sort(rng.choice(len(frame), size, replace=False))].reset_index(drop=True)


def _ratio(distances: np.ndarray) -> np.ndarray:
    nearest, second = distances[:, 0], distances[:, 1]
    return np.where(second > 0, nearest / np.where(second > 0, second, 1.0), 0.0)


# -- extreme values and rare categories ---------------------------------------------------
# A category seen at most this many times in training is rare (merged by default below 5).
RARE_CATEGORY_MAX_COUNT = 4
# The extremes gate's false-alarm budget per run, shared over the columns it tests.
EXTREMES_ALPHA = 0.001


@dataclass(frozen=True)
class Exposure:
    """How many rows carry a singular extreme value (numeric) or a rare category of one
    column, or of any column. `train_share` is what a copy of the training rows gives, and
    `holdout_share` what a fresh real sample gives; the gate compares the synthetic share
    with the larger of the two (`baseline`)."""

    synthetic_rows: int
    synthetic_total: int
    train_share: float
    holdout_share: float

    @property
    def share(self) -> float:
        return self.synthetic_rows / max(self.synthetic_total, 1)

    @property
    def baseline(self) -> float:
        return max(self.train_share, self.holdout_share)

    @property
    def p_value(self) -> float:
        """P(at least `synthetic_rows` of `synthetic_total`) for rows drawn at the baseline rate."""
        if self.baseline <= 0:
            return 1.0 if self.synthetic_rows == 0 else 0.0
        return float(binom.sf(self.synthetic_rows - 1, self.synthetic_total, self.baseline))

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}share": self.share,
            f"{prefix}train_share": self.train_share,
            f"{prefix}holdout_share": self.holdout_share,
            f"{prefix}p_value": self.p_value,
        }


def singular_extreme_flags(
    train: pd.Series, holdout: pd.Series, synthetic: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row flags (train, holdout, synthetic) of one numeric column's singular extremes.

    A training value is a singular extreme when it lies beyond the holdout's range and no
    other training row is within `value_radius` of it (1% of the column's 1st-99th
    percentile spread, at least one grid step). Its neighbourhood reaches half-way to the
    nearest other training value (at least the radius). A synthetic row is flagged when its
    value is beyond the holdout's range and inside a neighbourhood; a holdout row (never
    beyond its own range) when inside one; a training row when it is the extreme itself.
    """
    train_values, holdout_values = as_float(train), as_float(holdout)
    synthetic_values = as_float(synthetic)
    flags = (np.zeros(len(train), bool), np.zeros(len(holdout), bool))
    present, seen = train_values[~np.isnan(train_values)], holdout_values[~np.isnan(holdout_values)]
    if len(present) < 2 or len(seen) == 0:
        return *flags, np.zeros(len(synthetic), bool)
    low, high = float(seen.min()), float(seen.max())
    ordered = np.sort(present)
    radius = value_radius(ordered)
    alone = neighbour_counts(ordered, ordered, radius) == 1
    singular = alone & ((ordered < low) | (ordered > high))
    points = ordered[singular]
    gaps = np.diff(ordered)
    nearest_other = np.minimum(np.r_[np.inf, gaps], np.r_[gaps, np.inf])[singular]
    half_widths = np.maximum(radius, nearest_other / 2)

    def near(values: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(values), bool)
        if len(points) == 0:
            return hit
        index = np.searchsorted(points, values)
        for candidate in (index - 1, index):  # the points either side of each value
            candidate = np.clip(candidate, 0, len(points) - 1)
            hit |= np.abs(values - points[candidate]) <= half_widths[candidate]
        return hit & ~np.isnan(values)

    beyond = (synthetic_values < low) | (synthetic_values > high)
    train_flags = np.isin(train_values, points) & ~np.isnan(train_values)
    return train_flags, near(holdout_values), near(synthetic_values) & beyond


def rare_category_flags(
    train: pd.Series, holdout: pd.Series, synthetic: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row flags (train, holdout, synthetic) of one categorical column's rare categories:
    those seen at most RARE_CATEGORY_MAX_COUNT times in the training rows."""
    counts = train.dropna().astype("string").value_counts()
    rare = set(counts[counts <= RARE_CATEGORY_MAX_COUNT].index)

    def carries(values: pd.Series) -> np.ndarray:
        return values.astype("string").isin(rare).fillna(False).to_numpy(dtype=bool)

    return carries(train), carries(holdout), carries(synthetic)


def extreme_exposures(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
) -> dict[str, dict[str, Exposure]]:
    """{"singular": ..., "rare": ...}: each maps a column name (numeric columns for
    singular extremes, categorical ones for rare categories) to its `Exposure`, for the
    columns with anything to expose, plus "all" (rows exposed in any of those columns)."""
    found = {}
    for group, kind, flag in (
        ("singular", "numeric", singular_extreme_flags),
        ("rare", "categorical", rare_category_flags),
    ):
        exposures, any_rows = {}, [np.zeros(len(f), bool) for f in (train, holdout, synthetic)]
        for name in schema.names_of(kind):
            rows = flag(train[name], holdout[name], synthetic[name])
            if not rows[0].any():
                continue
            any_rows = [a | b for a, b in zip(any_rows, rows, strict=True)]
            exposures[name] = _exposure(*rows)
        exposures["all"] = _exposure(*any_rows)
        found[group] = exposures
    return found


def _percent(share: float) -> str:
    return f"{100 * share:.2g}%"  # 4.9%, 0.0038%: a rate of one row in 26,000 stays visible


def _exposure(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray) -> Exposure:
    return Exposure(
        int(synthetic.sum()),
        len(synthetic),
        float(train.mean()) if len(train) else 0.0,
        float(holdout.mean()) if len(holdout) else 0.0,
    )


def judge_extremes(
    exposures: dict[str, dict[str, Exposure]], policy: PrivacyPolicy
) -> tuple[dict[str, float], list[str]]:
    """Metrics `extremes.*` and the gate's failures.

    A column fails when its synthetic share is above `extreme_share_ratio_max` times its
    baseline (the larger of the training and holdout shares) and the excess is significant:
    its binomial p-value at the baseline rate is below EXTREMES_ALPHA divided by the number
    of columns tested (Bonferroni), so an honest release fails it in at most 0.1% of runs.
    """
    metrics, failures = {}, []
    tested = sum(len(columns) - 1 for columns in exposures.values())
    what = {
        "singular": "a singular extreme value (beyond the holdout's range, near one training row)",
        "rare": f"a category seen at most {RARE_CATEGORY_MAX_COUNT} times in training",
    }
    fix = {  # what protects a table run (on by default; not available for a stream)
        "singular": "clip them before training (privacy.clip_extremes)",
        "rare": "merge them before training (privacy.rare_category_min_count)",
    }
    for group, columns in exposures.items():
        overall = columns["all"]
        low, high = share_interval(overall.share, overall.synthetic_total, "wilson")
        metrics.update(overall.metrics(f"extremes.{group}_"))
        metrics[f"extremes.{group}_share_ci_low"] = low
        metrics[f"extremes.{group}_share_ci_high"] = high
        for name, exposure in columns.items():
            if name == "all":
                continue
            metrics.update(exposure.metrics(f"extremes.{name}."))
            excess = exposure.share > policy.extreme_share_ratio_max * exposure.baseline
            if policy.extremes_check and excess and exposure.p_value < EXTREMES_ALPHA / tested:
                failures.append(
                    f"column '{name}': {_percent(exposure.share)} of synthetic rows carry "
                    f"{what[group]}, {exposure.share / exposure.baseline:.1f}x the real rows' "
                    f"{_percent(exposure.baseline)} (p = {exposure.p_value:.1g}): the generator "
                    f"reproduces rare real values; {fix[group]}"
                )
    return metrics, failures


# `privacy.dp`: the generators' DP budget itself (one model, one set of defaults).
DPSettings = DPBudget


class PrivacyPolicy(BaseModel):
    """`privacy:` in the run config: what to measure, the thresholds, and the protections.

    Defaults pass a good generator on Adult and fail a copy of the training data. The DCR
    share and membership AUC fail only when over their limit and significantly above 0.5
    (their 95% interval excludes it), so small tables are not quarantined by noise.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_rows: int = Field(10_000, ge=100, description="rows per table in nearest-neighbour work")
    dcr_share_max: float = Field(0.55, gt=0, le=1)
    membership_auc_max: float = Field(0.6, gt=0, le=1)
    ims_check: bool = Field(True, description="fail when IMS exceeds the holdout's 95% upper bound")
    extremes_check: bool = Field(
        True,
        description="fail when a column's synthetic rows carry singular extreme values or rare "
        "categories significantly more often than extreme_share_ratio_max x the real rate",
    )
    extreme_share_ratio_max: float = Field(
        2.0, gt=1, description="the largest ratio to the real rows' share that passes"
    )
    near_duplicate_quantile: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="images: nearer to a training image than this quantile "
        "of unseen real images' distances counts as a near-duplicate",
    )
    near_duplicate_share_max: float = Field(
        0.05, gt=0, le=1, description="images: the largest near-duplicate share that passes"
    )
    text: TextPrivacy = Field(
        default_factory=TextPrivacy, description="text runs: memorisation, duplicates, PII"
    )
    override_gate: bool = Field(False, description="publish even when a check fails (recorded)")
    # Protections before training (tables; both on by default, see validation/protection.py).
    rare_category_min_count: int = Field(
        5,
        ge=0,
        description="merge categories seen fewer times than this into '(rare)' before "
        "training; 0 or 1 = off",
    )
    clip_extremes: bool = Field(
        True,
        description="clip numeric tail values beyond a noisy extreme_quantile that fewer than "
        "extreme_min_rows rows are near (a singular extreme; a shared top-code is kept)",
    )
    extreme_quantile: float = Field(
        0.99, ge=0.5, lt=1, description="clip only beyond this quantile (and 1 - it), with noise"
    )
    extreme_min_rows: int = Field(
        5, ge=2, description="a tail value this many rows share (within 1% of the spread) is kept"
    )
    similarity_filter_quantile: float | None = Field(
        None,
        gt=0,
        lt=0.5,
        description="drop synthetic rows closer to a training row than this quantile of "
        "holdout->train distances, and sample more; null = off",
    )
    dp: DPSettings | None = Field(None, description="train with DP-SGD under this budget")
    attacks: bool = Field(True, description="run the anonymeter-style attacks")
    n_attacks: int = Field(500, ge=10, description="target rows per attack (capped at the holdout)")
    attack_risk_max: float = Field(0.1, gt=0, le=1)
    quasi_identifiers: list[str] = Field(
        default_factory=list, description="columns an attacker knows; default: every usable one"
    )
    secrets: list[str] = Field(
        default_factory=list, description="columns inferred from the others; default: data.target"
    )
    shadow: ShadowPolicy = Field(
        default_factory=ShadowPolicy,
        description="tables: the shadow-model membership attack (cheap shadows of the run's "
        "generator on holdout rows, with and without each target)",
    )


def check_policy_columns(policy: PrivacyPolicy, schema: Schema) -> None:
    """Fail before training when the policy names columns the table does not have."""
    for key in ("quasi_identifiers", "secrets"):
        named = getattr(policy, key)
        missing = [name for name in named if name not in schema.names]
        if missing:
            raise DataError(
                f"privacy.{key}: column(s) {missing} are not in the table; "
                f"columns are {schema.names}"
            )
        unusable = [name for name in named if schema[name].kind in ("id", "text")]
        if unusable:
            raise DataError(
                f"privacy.{key}: column(s) {unusable} are identifiers or free text, which the "
                "attacks do not use; list other columns"
            )


def attack_risks(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    policy: PrivacyPolicy,
    *,
    secrets: list[str],
    seed: int = 0,
) -> tuple[dict[str, RiskEstimate], dict[str, list[str]]]:
    """The anonymeter-style attacks: (risk by name, the attacks' caveats by name).

    Singling out (univariate and multivariate) always; linkability between two halves of
    the quasi-identifiers (alternating, so both halves mix kinds); inference of each secret
    from the quasi-identifiers. Caveats (e.g. "attack no better than baseline") go into
    the report rather than onto the console.
    """
    usable = [c.name for c in schema.columns if c.kind not in ("id", "text")]
    quasi = policy.quasi_identifiers or usable
    frames = (train, holdout, synthetic, schema)
    common = {"n_attacks": policy.n_attacks, "seed": seed}
    attacks = {"singling_out_univariate": partial(singling_out_risk, *frames, **common)}
    if len(usable) >= 2:  # a multivariate predicate combines up to three columns
        attacks["singling_out_multivariate"] = partial(
            singling_out_risk, *frames, mode="multivariate", n_cols=min(3, len(usable)), **common
        )
    if len(quasi) >= 2:
        halves = (quasi[0::2], quasi[1::2])
        attacks["linkability"] = partial(linkability_risk, *frames, aux_columns=halves, **common)
    for secret in secrets:
        aux = [name for name in quasi if name != secret]
        if aux:
            attacks[f"inference_{secret}"] = partial(
                inference_risk, *frames, secret=secret, aux_columns=aux, **common
            )
    risks, notes = {}, {}
    for name, attack in attacks.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            risks[name] = attack()
        notes[name] = [str(w.message) for w in caught]
    return risks, notes


def privacy_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    policy: PrivacyPolicy,
    *,
    seed: int = 0,
    target: str | None = None,
    make_shadow: Callable[[], Generator] | None = None,
) -> Report:
    """Measure, then judge against the policy; every failed rule is one readable line.

    `target` (data.target) is the default secret of the inference attack. `make_shadow`
    returns a new unfitted generator of the release's kind with cheap settings: with it
    (and privacy.shadow.enabled), the shadow-model attack runs too.
    """
    metrics, details = privacy_metrics(
        train, holdout, synthetic, schema, max_rows=policy.max_rows, seed=seed
    )
    risks = {}
    if policy.attacks:
        secrets = policy.secrets or ([target] if target in schema.names else [])
        risks, notes = attack_risks(
            train, holdout, synthetic, schema, policy, secrets=secrets, seed=seed
        )
    for name, risk in risks.items():
        metrics.update(
            {
                f"{name}.risk": risk.risk,
                f"{name}.ci_low": risk.ci_low,
                f"{name}.ci_high": risk.ci_high,
            }
        )
        details[name] = {**risk.to_dict(), "notes": notes[name]}
    sizes = details["sample_sizes"]
    metrics["membership_auc_ci_low"] = auc_ci_low(
        metrics["membership_auc"], sizes["train"], sizes["holdout"]
    )
    failures = judge_distance_figures(
        metrics,
        policy,
        closer="synthetic rows sit closer to training rows than to unseen real rows",
        tells="the synthetic data tells training rows from unseen ones",
    )
    ims_bound = wilson_upper(metrics["ims_holdout"], len(holdout))
    metrics["ims_holdout_upper"] = ims_bound
    if policy.ims_check and metrics["ims"] > ims_bound:
        failures.append(
            f"identical match share {metrics['ims']:.4f} > {ims_bound:.4f} (the holdout's "
            "95% upper bound): the synthetic data repeats training rows"
        )
    # Extreme values and rare categories: reproduced no more often than real rows hold them.
    exposures = extreme_exposures(train, holdout, synthetic, schema)
    extreme_metrics, extreme_failures = judge_extremes(exposures, policy)
    metrics.update(extreme_metrics)
    failures += extreme_failures
    details["extremes"] = {
        "definition": "singular: beyond the holdout's range and near one training row only; "
        f"rare: a category seen <= {RARE_CATEGORY_MAX_COUNT} times in training",
        "columns": {group: sorted(set(cols) - {"all"}) for group, cols in exposures.items()},
        "alpha": EXTREMES_ALPHA,
        "ratio_max": policy.extreme_share_ratio_max,
    }
    # Attack risks gate on the point estimate when it is significant (CI above 0): at typical
    # holdout sizes the upper bounds are too wide to gate on (see validation/attacks.py).
    for name, risk in risks.items():
        if risk.risk > policy.attack_risk_max and risk.ci_low > 0:
            failures.append(
                f"{name.replace('_', ' ')} risk {risk.risk:.3f} (95% CI {risk.ci_low:.3f}-"
                f"{risk.ci_high:.3f}) > {policy.attack_risk_max}"
            )
    # Density-ratio membership inference (validation/membership.py): gated on exact null
    # p-values, so an honest release is quarantined by it at most MEMBERSHIP_ALPHA of runs.
    if len(holdout) >= MIN_HOLDOUT_ROWS:
        attacked = density_membership_attack(
            train, holdout, synthetic, schema, seed=seed, max_rows=min(policy.max_rows, 5000)
        )
        for result in attacked.values():
            metrics.update(result.as_metrics("density_mia"))
        details["density_mia"] = {name: r.as_dict() for name, r in attacked.items()}
        details["density_mia"]["alpha"] = MEMBERSHIP_ALPHA
        failures += membership_failures(attacked)
    else:
        details["density_mia"] = {
            "skipped": f"needs {MIN_HOLDOUT_ROWS} holdout rows, got {len(holdout)}"
        }
    failures += shadow_attack_figures(
        train, holdout, synthetic, schema, policy, make_shadow, seed, metrics, details
    )
    return Report(
        name="privacy", passed=not failures, metrics=metrics, details=details, failures=failures
    )


def shadow_attack_figures(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    policy: PrivacyPolicy,
    make_shadow: Callable[[], Generator] | None,
    seed: int,
    metrics: dict[str, float],
    details: dict,
) -> list[str]:
    """The shadow-model attack (validation/shadow.py) into `metrics` (privacy.shadow_mia.*)
    and `details`; returns its gate failures. Gated on null p-values below alpha / 6, so
    an honest release is quarantined by it in at most privacy.shadow.alpha of runs."""
    skipped = None
    if not policy.shadow.enabled:
        skipped = "privacy.shadow.enabled is false"
    elif make_shadow is None:
        skipped = "no generator to train shadows of (the caller passed none)"
    elif len(holdout) < MIN_HOLDOUT_ROWS:
        skipped = f"needs {MIN_HOLDOUT_ROWS} holdout rows, got {len(holdout)}"
    if skipped is not None:
        details["shadow_mia"] = {"skipped": skipped}
        return []
    try:
        attack = shadow_membership_attack(
            train,
            holdout,
            synthetic,
            schema,
            make_shadow,
            seed=seed,
            policy=policy.shadow,
            max_synthetic_rows=min(policy.max_rows, 5000),
        )
    except SynthpipeError as error:
        # A generator that cannot fit a shadow's few rows: the release's other checks still
        # judge it, and the report says this one did not run, and why.
        details["shadow_mia"] = {"skipped": f"a shadow generator could not be trained: {error}"}
        return []
    metrics.update(attack.as_metrics("shadow_mia"))
    details["shadow_mia"] = {**attack.as_dict(), "alpha": policy.shadow.alpha}
    return shadow_failures(attack, policy.shadow.alpha)


def share_interval(share: float, n: int, method: Literal["wald", "wilson"]) -> tuple[float, float]:
    """The 95% interval of a share observed on `n` units: Wald (clipped to [0, 1], its
    variance floored at 1e-12) or Wilson. Tables and images use Wald and sequences Wilson,
    as they always have; aligning them would change published figures."""
    if method == "wilson":
        return wilson_lower(share, n), wilson_upper(share, n)
    half_width = Z95 * math.sqrt(max(share * (1 - share), 1e-12) / n)
    return max(0.0, share - half_width), min(1.0, share + half_width)


def auc_ci_low(auc: float, n_positive: int, n_negative: int) -> float:
    """The lower end of a ROC AUC's 95% interval (Hanley & McNeil standard error)."""
    return auc - Z95 * hanley_mcneil_se(auc, n_positive, n_negative)


def judge_distance_figures(
    metrics: dict[str, float],
    policy: PrivacyPolicy,
    *,
    closer: str,
    tells: str,
    show_ci: bool = False,
) -> list[str]:
    """The failures of the distance-based gate, from figures each modality measured its
    own way: `dcr_share` with `dcr_share_ci_low`, `membership_auc` with
    `membership_auc_ci_low`. A figure fails only when it is over its limit AND its 95%
    interval excludes the no-signal value (0.5): on small tables sampling noise alone
    crosses the limits. `closer` and `tells` end the two messages (what sits closer to
    what; what tells what apart); `show_ci` adds the DCR share's interval."""
    failures = []
    dcr_share, dcr_low = metrics["dcr_share"], metrics["dcr_share_ci_low"]
    if dcr_share > policy.dcr_share_max and dcr_low > 0.5:
        ci = f" (95% CI from {dcr_low:.3f})" if show_ci else ""
        failures.append(f"DCR share {dcr_share:.3f} > {policy.dcr_share_max}{ci}: {closer}")
    auc = metrics["membership_auc"]
    if auc > policy.membership_auc_max and metrics["membership_auc_ci_low"] > 0.5:
        failures.append(f"membership AUC {auc:.3f} > {policy.membership_auc_max}: {tells}")
    return failures


def hanley_mcneil_se(auc: float, n_positive: int, n_negative: int) -> float:
    """Standard error of a ROC AUC (Hanley & McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_positive - 1) * (q1 - auc * auc) + (n_negative - 1) * (q2 - auc * auc)
    ) / max(n_positive * n_negative, 1)
    return math.sqrt(max(variance, 0.0))


def wilson_lower(share: float, n: int) -> float:
    """Lower end of the 95% Wilson score interval for a proportion observed on n trials."""
    return 1.0 - wilson_upper(1.0 - share, n)


def wilson_upper(share: float, n: int, z: float = Z95) -> float:
    """Upper end of the Wilson score interval for a proportion observed on n trials."""
    if n <= 0:
        return 1.0
    centre = share + z * z / (2 * n)
    margin = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return min(1.0, (centre + margin) / (1 + z * z / n))
