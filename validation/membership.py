"""Density-ratio membership inference (the DOMIAS idea), scored at low false-positive rates.

DOMIAS (van Breugel et al., "Membership Inference Attacks against Synthetic Data through
Overfitting Detection", AISTATS 2023) calls a record a training member when the synthetic
data is denser around it than the population is:

    score(x) = log p_synthetic(x) - log p_reference(x)

with p_reference fitted on data from the population that the attacker holds. A generator
that generalises makes the two densities agree everywhere, so members and non-members get
the same scores; one that overfits piles synthetic mass on its training rows, outliers
first, because there the population has little mass of its own.

Densities here are nearest-neighbour estimates (Loftsgaarden & Quesenberry, 1965) in the
privacy distance's space (`validation.distance`): p(x) is about 1 / (n r(x)^d), n the
set's size and r the distance to x's nearest row in it, so

    score(x) = d * (log r_reference(x) - log r_synthetic(x)) + log(n_reference / n_synthetic)

and neither d nor the sizes, the same for every target, change the ranking: the score used
is the log ratio of the distances alone. It needs no density model to train, and it runs
in the same chunked torch search as every other distance measure (on the GPU when there is
one).

Evaluation, the way the MIDST challenge (SaTML 2025) scores attacks:
- the holdout is cut in three: the attacker's reference data for the density ratio, a
  second reference set that measures how isolated a row is, and the non-member targets;
  members are training rows;
- targets are either all of them, or the isolated ones (a large distance to their k-th
  nearest isolation-reference row: the records most at risk, Stadler et al., USENIX
  Security 2022), members and non-members picked by the same distance threshold;
- reported: ROC AUC, and the true-positive rate at 1% and 0.1% false-positive rate, each
  with a seeded bootstrap interval. Where the non-members are too few to resolve a
  false-positive rate (fewer than 1 / rate), the threshold is the highest non-member
  score, so the TPR is the one at the smallest rate the data can show, which is stated
  (`fpr_resolution`);
- and, for a gate that quarantines an honest release rarely and by a known rate, each
  figure's p-value under the null "members and non-members score alike" (exact for the
  TPR: a beta-binomial; normal for the AUC).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import betabinom, norm

from generators.data.schema import Schema
from validation.distance import DistanceEncoder, nearest_neighbors

FPR_LEVELS = (0.01, 0.001)
# The gate: quarantine when any of the attack's figures (AUC and TPR at each FPR level, on
# random and on outlier targets) has a p-value below MEMBERSHIP_ALPHA / (their number), so
# an honest release (members and non-members alike) is quarantined by it in at most 0.1%
# of runs (Bonferroni), while copies and 10%-perturbed copies give p < 1e-6.
MEMBERSHIP_ALPHA = 0.001
MIN_HOLDOUT_ROWS = 60
SYNTHETIC_ROWS_PER_TARGET = 4
ISOLATION_K = 5
OUTLIER_SHARE = 0.1  # outliers: the region of the most isolated tenth of the non-members
MIN_OUTLIER_TARGETS = 20
BOOTSTRAP = 200
CONFIDENCE = 0.95
# log(0) guard: an exact copy is at distance 0; distances are in [0, ~1].
DISTANCE_FLOOR = 1e-6


@dataclass
class AttackResult:
    """One attack on one kind of target: members (training rows) vs non-members (holdout).

    auc: ROC AUC of the scores (0.5: no better than a guess; 1: every member above every
    non-member). tpr_at_fpr: {rate: TPR} and its interval; fpr_resolution: 1 / non-members.
    """

    targets: str
    n_members: int
    n_non_members: int
    auc: float
    auc_ci: tuple[float, float]
    tpr_at_fpr: dict[str, float]
    tpr_ci: dict[str, tuple[float, float]]
    fpr_resolution: float
    auc_p_value: float
    tpr_p_value: dict[str, float]

    def as_metrics(self, prefix: str) -> dict[str, float]:
        """Flat figures: <prefix>.<targets>.auc, .auc_ci_low/high, .tpr_at_fpr_0.01, ..."""
        key = f"{prefix}.{self.targets}"
        out = {
            f"{key}.auc": self.auc,
            f"{key}.auc_ci_low": self.auc_ci[0],
            f"{key}.auc_ci_high": self.auc_ci[1],
            f"{key}.fpr_resolution": self.fpr_resolution,
            f"{key}.auc_p_value": self.auc_p_value,
        }
        for rate, tpr in self.tpr_at_fpr.items():
            out[f"{key}.tpr_at_fpr_{rate}"] = tpr
            out[f"{key}.tpr_at_fpr_{rate}_ci_high"] = self.tpr_ci[rate][1]
            out[f"{key}.tpr_at_fpr_{rate}_ci_low"] = self.tpr_ci[rate][0]
            out[f"{key}.tpr_at_fpr_{rate}_p_value"] = self.tpr_p_value[rate]
        return out

    @property
    def min_p_value(self) -> float:
        return min(self.auc_p_value, *self.tpr_p_value.values())

    def as_dict(self) -> dict:
        return asdict(self)


def density_ratio_scores(
    targets: np.ndarray, synthetic: np.ndarray, reference: np.ndarray, search: dict[str, int]
) -> np.ndarray:
    """log r_reference - log r_synthetic at each target (rows x features encodings;
    `search` is the encoder's DistanceEncoder.search)."""
    r_syn, _ = nearest_neighbors(targets, synthetic, 1, **search)
    r_ref, _ = nearest_neighbors(targets, reference, 1, **search)
    return np.log(r_ref[:, 0] + DISTANCE_FLOOR) - np.log(r_syn[:, 0] + DISTANCE_FLOOR)


def roc_auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """P(member score > non-member score) + half the ties (Mann-Whitney)."""
    # Counted by binary search in the sorted non-member scores: the same figure as from
    # average ranks (every term a multiple of 1/2, so exactly), in a fraction of the time;
    # the bootstrap calls this hundreds of times per attack.
    ordered = np.sort(non_members)
    below = np.searchsorted(ordered, members, side="left")
    tied = np.searchsorted(ordered, members, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (len(members) * len(non_members)))


def tpr_at_fpr(members: np.ndarray, non_members: np.ndarray, rate: float) -> float:
    """Share of members scored strictly above the threshold that at most `rate` of the
    non-members exceed (the highest non-member score when they are too few for `rate`)."""
    allowed = math.floor(rate * len(non_members))
    threshold = np.sort(non_members)[::-1][allowed] if allowed < len(non_members) else -np.inf
    return float(np.mean(members > threshold))


def auc_p_value(auc: float, n_members: int, n_non_members: int) -> float:
    """P(an AUC this high or higher) when members and non-members score alike (the
    Mann-Whitney statistic's normal approximation, variance (m + n + 1) / (12 m n))."""
    sd = math.sqrt((n_members + n_non_members + 1) / (12 * n_members * n_non_members))
    return float(norm.sf((auc - 0.5) / sd))


def tpr_p_value(tpr: float, n_members: int, n_non_members: int, rate: float) -> float:
    """P(a TPR at `rate` this high or higher) when members and non-members score alike.

    The threshold is the (a)-th highest of n non-member scores, a = floor(rate n) + 1, so
    under that null the chance p that a member exceeds it is Beta(a, n - a + 1) (an order
    statistic of uniforms), and the count of m members above it is beta-binomial: exact for
    any n, including the few non-members of an outlier region where the bootstrap says
    little.
    """
    above = math.floor(rate * n_non_members) + 1
    if above > n_non_members:
        return 1.0
    count = round(tpr * n_members)
    return float(betabinom.sf(count - 1, n_members, above, n_non_members - above + 1))


def evaluate(members: np.ndarray, non_members: np.ndarray, targets: str, seed: int) -> AttackResult:
    """AUC and TPR at FPR_LEVELS with percentile bootstrap intervals (seeded)."""
    rng = np.random.default_rng(seed)
    alpha = (1 - CONFIDENCE) / 2
    aucs, tprs = [], {str(rate): [] for rate in FPR_LEVELS}
    for _ in range(BOOTSTRAP):
        m = members[rng.integers(0, len(members), len(members))]
        n = non_members[rng.integers(0, len(non_members), len(non_members))]
        aucs.append(roc_auc(m, n))
        for rate in FPR_LEVELS:
            tprs[str(rate)].append(tpr_at_fpr(m, n, rate))

    def interval(values: list[float]) -> tuple[float, float]:
        return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))

    auc = roc_auc(members, non_members)
    tpr = {str(r): tpr_at_fpr(members, non_members, r) for r in FPR_LEVELS}
    m, n = len(members), len(non_members)
    return AttackResult(
        targets=targets,
        n_members=m,
        n_non_members=n,
        auc=auc,
        auc_ci=interval(aucs),
        tpr_at_fpr=tpr,
        tpr_ci={rate: interval(values) for rate, values in tprs.items()},
        fpr_resolution=1.0 / n,
        auc_p_value=auc_p_value(auc, m, n),
        tpr_p_value={str(r): tpr_p_value(tpr[str(r)], m, n, r) for r in FPR_LEVELS},
    )


def density_membership_attack(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    seed: int,
    max_rows: int = 5000,
) -> dict[str, AttackResult]:
    """The density-ratio attack on random and on outlier targets: {"random": ..., "outliers": ...}.

    train, holdout, synthetic: frames with the schema's columns (identifier and text columns
    are left out by the distance); each is subsampled (seeded) to at most max_rows rows
    (the synthetic table to SYNTHETIC_ROWS_PER_TARGET times as many).
    The holdout is cut in three: reference rows that measure how isolated a target is,
    reference rows for the density ratio (kept apart, so that picking isolated targets does
    not raise their scores by itself), and the non-member targets. Outliers are the targets,
    members and non-members alike, whose distance to their k-th nearest isolation-reference
    row exceeds what the most isolated OUTLIER_SHARE of non-members have: the same region of
    the data for both, so a generator that generalises scores them alike. Same inputs and
    seed, same figures.
    """
    if len(holdout) < MIN_HOLDOUT_ROWS:
        raise ValueError(
            f"the density attack needs at least {MIN_HOLDOUT_ROWS} holdout rows, got {len(holdout)}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(holdout))[: 3 * max_rows]
    third = len(order) // 3
    isolation_rows, reference_rows = order[:third], order[third : 2 * third]
    non_member_rows = order[2 * third :]
    member_rows = rng.permutation(len(train))[:max_rows]
    # More synthetic rows than targets: a generator's mass near a member is what is looked
    # for, and a subsample would hide most of it (the ratio's offset does not matter).
    synthetic_rows = rng.permutation(len(synthetic))[: SYNTHETIC_ROWS_PER_TARGET * max_rows]

    encoder = DistanceEncoder.fit(train, schema)
    search = encoder.search
    isolation_set = encoder.transform(holdout.iloc[isolation_rows])
    reference = encoder.transform(holdout.iloc[reference_rows])
    non_members = encoder.transform(holdout.iloc[non_member_rows])
    members = encoder.transform(train.iloc[member_rows])
    fake = encoder.transform(synthetic.iloc[synthetic_rows])

    member_scores = density_ratio_scores(members, fake, reference, search)
    non_member_scores = density_ratio_scores(non_members, fake, reference, search)
    results = {"random": evaluate(member_scores, non_member_scores, "random", seed)}

    k = min(ISOLATION_K, len(isolation_set))
    member_isolation = nearest_neighbors(members, isolation_set, k, **search)[0]
    non_member_isolation = nearest_neighbors(non_members, isolation_set, k, **search)[0]
    member_isolation, non_member_isolation = member_isolation[:, -1], non_member_isolation[:, -1]
    n_outliers = max(MIN_OUTLIER_TARGETS, round(OUTLIER_SHARE * len(non_members)))
    threshold = np.sort(non_member_isolation)[::-1][min(n_outliers, len(non_members)) - 1]
    results["outliers"] = evaluate(
        member_scores[member_isolation >= threshold],
        non_member_scores[non_member_isolation >= threshold],
        "outliers",
        seed + 1,
    )
    return results


def membership_failures(results: dict[str, AttackResult]) -> list[str]:
    """One readable line per target set whose smallest p-value passes the gate's bound."""
    n_tests = sum(1 + len(r.tpr_p_value) for r in results.values())
    bound = MEMBERSHIP_ALPHA / n_tests
    failures = []
    for name, result in results.items():
        if result.min_p_value >= bound:
            continue
        tpr = result.tpr_at_fpr[str(FPR_LEVELS[0])]
        failures.append(
            f"density membership attack on {name} targets: AUC {result.auc:.3f}, TPR "
            f"{tpr:.3f} at {FPR_LEVELS[0]:.0%} FPR (p = {result.min_p_value:.1e} < "
            f"{bound:.1e}): the synthetic data is denser at training rows than at unseen ones"
        )
    return failures
