"""Shadow-model membership inference (LiRA / TAPAS), scored at low false-positive rates.

The attacker of Carlini et al. ("Membership Inference Attacks From First Principles", IEEE
S&P 2022; LiRA) and Houssiau et al. (TAPAS, 2022), applied to a synthetic table: holding
real rows of the population (the reference data) and the generator's recipe, train small
*shadow* generators of the same kind on reference data with and without each target, and
see how a target's presence in the training rows changes the synthetic rows at it. Then
ask whether the real release looks like a shadow that saw the target.

The feature of a synthetic table at a target row is how close its nearest synthetic row
comes: f = -log(distance + floor), in the privacy distance's space (`validation.distance`).
Each target is in about half the shadows (shared across targets, as in LiRA, so the cost is
n_shadows fits, not two per target); from the shadows without it the attack learns the
target's own "out" distribution (its mean, and a variance pooled over targets: LiRA's
global variance, which is what few shadows afford), and scores the release by

    z(target) = (f_release(target) - mean_out(target)) / sd_out

(LiRA's one-sided "offline" test: how much more synthetic mass sits at the target than a
generator of this kind puts there when it never saw it). A per-target baseline is what a
distance or density attack lacks: an outlier has little synthetic mass near it in any
honest release, so one near-copy of it stands out at once. The shadows *with* the target
tell how far this kind of generator moves towards the rows it trains on (`shadow_in_out_auc`:
0.5 when it does not move at all): the attack's power on this recipe.

Targets, as the attacker would pick them (Stadler et al., USENIX Security 2022): the most
isolated training rows (the largest distance to their k-th nearest row of a separate
isolation reference) and random ones. The non-member controls are the attacker's reference
rows themselves: every one is a target too, in half the shadows like the members, so there
are hundreds of them and a false-positive rate of 0.1% is resolved. The shadows are cheaper
than the release (fewer rows, fewer epochs: the caller's factory decides), so release and
shadow features may differ by a shift common to all targets; members and non-members share
it, and the gate compares them only with each other.

Reported, per member set ("outliers", "random"), against all non-member targets: ROC AUC,
TPR at 1% and 0.1% FPR with bootstrap intervals, and each figure's p-value under the null
"members and non-members score alike" (exact for the TPR; see `validation.membership`).
Against random members that null holds exactly for a release that never saw either; the
outliers are made comparable by their own out-shadow baselines (an honest release puts no
more mass at outliers than the smoother shadows do, so the error is towards passing: their
AUC is below 0.5 on fresh real samples, as the seed-swept tests show). Because the controls
are many, a handful of planted near-copies of outliers is enough: ten among 50 outlier
targets above the highest of 600 controls has p < 1e-10, where rank statistics against the
few outlier controls of a density attack cannot reach p < 1e-4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from generators.base import Generator
from generators.data.schema import Schema
from validation.distance import DistanceEncoder, nearest_neighbors
from validation.membership import (
    DISTANCE_FLOOR,
    FPR_LEVELS,
    ISOLATION_K,
    MIN_HOLDOUT_ROWS,
    AttackResult,
    evaluate,
    roc_auc,
)

# Iteration settings of the generators (epochs, EM or HMM iterations) that the shadows cap.
ITERATION_PARAMS = ("epochs", "max_iter", "n_iter")


class ShadowPolicy(BaseModel):
    """`privacy.shadow:` the shadow-model membership attack on tables (validation/shadow.py).

    On by default: its cost is n_shadows fits of the release's generator on about
    shadow_rows rows with at most max_epochs epochs (on Adult with the autoregressive
    model, about 30 s of CPU time; see README). The gate fails when a p-value of
    the attack is below alpha / 6 (AUC and TPR at 1% and 0.1% FPR, on outlier and on
    random targets): an honest release is quarantined by it in at most alpha of runs
    (exactly for random targets; for outliers while an honest release puts no more mass at
    them than its shadows do, which the seed sweeps measure: 0 of 20 fresh samples).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run the shadow-model attack on tables")
    n_shadows: int = Field(8, ge=2, description="shadow generators; each target is in half")
    targets: int = Field(
        50, ge=5, description="member targets of each kind: the most isolated and random rows"
    )
    shadow_rows: int = Field(
        1000, ge=50, description="about how many reference rows each shadow trains on"
    )
    max_epochs: int = Field(
        5, ge=1, description="cap on the shadows' epochs / iterations (epochs, max_iter, n_iter)"
    )
    alpha: float = Field(
        0.001, gt=0, lt=1, description="the gate's false-quarantine rate bound (Bonferroni)"
    )


@dataclass
class ShadowAttack:
    """The shadow attack on the release: one AttackResult per target set ("outliers",
    "random"), and what the shadows themselves showed.

    shadow_in_out_auc: how well the feature tells the shadows that trained on a target from
    those that did not, over all targets (0.5: this kind of generator does not move towards
    its training rows at all, so there is little for the attack to find).
    """

    results: dict[str, AttackResult]
    shadow_in_out_auc: float
    n_shadows: int
    shadow_rows: int
    synthetic_rows: int

    def as_metrics(self, prefix: str) -> dict[str, float]:
        """Flat figures: <prefix>.<targets>.auc, .tpr_at_fpr_0.01, ... (as AttackResult's),
        and <prefix>.shadow_in_out_auc."""
        out = {f"{prefix}.shadow_in_out_auc": self.shadow_in_out_auc}
        for result in self.results.values():
            out.update(result.as_metrics(prefix))
        return out

    def as_dict(self) -> dict:
        return {
            **{name: asdict(result) for name, result in self.results.items()},
            "shadow_in_out_auc": self.shadow_in_out_auc,
            "n_shadows": self.n_shadows,
            "shadow_rows": self.shadow_rows,
            "synthetic_rows": self.synthetic_rows,
        }


def closeness(targets: np.ndarray, synthetic: np.ndarray, search: dict[str, int]) -> np.ndarray:
    """-log(distance to the nearest synthetic row + floor) at each target: (targets,).
    `search` is the encoder's DistanceEncoder.search."""
    distances, _ = nearest_neighbors(targets, synthetic, 1, **search)
    return -np.log(distances[:, 0] + DISTANCE_FLOOR)


def isolation(rows: np.ndarray, reference: np.ndarray, search: dict[str, int]) -> np.ndarray:
    """Distance of each row to its k-th nearest reference row: (rows,)."""
    k = min(ISOLATION_K, len(reference))
    return nearest_neighbors(rows, reference, k, **search)[0][:, -1]


def assign_shadows(n_targets: int, n_shadows: int, rng: np.random.Generator) -> np.ndarray:
    """(n_shadows, n_targets) booleans: each target in exactly half the shadows (rounded down)."""
    inside = np.zeros((n_shadows, n_targets), dtype=bool)
    for target in range(n_targets):
        inside[rng.permutation(n_shadows)[: n_shadows // 2], target] = True
    return inside


def out_z_scores(features: np.ndarray, inside: np.ndarray, released: np.ndarray) -> np.ndarray:
    """LiRA's offline score of each target: (released - mean of its out-shadows) / sd.

    features, inside: (shadows, targets); released: (targets,). The sd is pooled over all
    targets' out-shadows (each target's own mean taken out, n_out - 1 degrees of freedom
    each), and widened by the error of a mean of n_out shadows.
    """
    out = np.where(inside, np.nan, features)
    n_out = (~inside).sum(axis=0)
    out_mean = np.nanmean(out, axis=0)
    pooled = np.nansum((out - out_mean) ** 2) / max(int(np.sum(n_out - 1)), 1)
    sd = max(float(np.sqrt(pooled)), 1e-9)
    return (released - out_mean) / (sd * np.sqrt(1 + 1 / n_out))


@dataclass
class Shadows:
    """The attacker's trained shadows: what a release is scored against (`attack`).

    x_targets: (targets, features) encodings, the n_targets outlier members first, then the
    n_targets random members, then the non-members; inside: (shadows, targets), which
    shadow trained on which target; features: (shadows, targets), each shadow's closeness
    at each target; synthetic_rows: how many rows each shadow sampled (a release is
    subsampled to as many).
    """

    encoder: DistanceEncoder
    x_targets: np.ndarray
    n_targets: int
    inside: np.ndarray
    features: np.ndarray
    synthetic_rows: int
    seed: int

    def attack(self, synthetic: pd.DataFrame) -> ShadowAttack:
        """Score a release (a frame with the schema's columns, at least synthetic_rows rows)
        at every target, and judge its members against its non-members."""
        if len(synthetic) < self.synthetic_rows:
            raise ValueError(
                f"the shadows sampled {self.synthetic_rows} rows; the release has {len(synthetic)}"
            )
        rng = np.random.default_rng(self.seed)
        picked = np.sort(rng.permutation(len(synthetic))[: self.synthetic_rows])
        released = closeness(
            self.x_targets, self.encoder.transform(synthetic.iloc[picked]), self.encoder.search
        )
        z = out_z_scores(self.features, self.inside, released)
        n = self.n_targets
        parts = (("outliers", slice(0, n)), ("random", slice(n, 2 * n)))
        results = {
            name: evaluate(z[part], z[2 * n :], name, self.seed + offset)
            for offset, (name, part) in enumerate(parts)
        }
        return ShadowAttack(
            results=results,
            shadow_in_out_auc=roc_auc(self.features[self.inside], self.features[~self.inside]),
            n_shadows=len(self.inside),
            shadow_rows=int(self.inside.sum(axis=1).mean()),
            synthetic_rows=self.synthetic_rows,
        )


def train_shadows(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: Schema,
    make_shadow: Callable[[], Generator],
    *,
    seed: int,
    synthetic_rows: int,
    n_shadows: int = 8,
    n_targets: int = 50,
    shadow_rows: int = 1000,
) -> Shadows:
    """Pick the targets and train the shadows from `make_shadow` (see the module docstring).

    train, holdout: frames with the schema's columns. `make_shadow()` returns a new
    unfitted generator of the release's kind, with settings cheap enough to fit n_shadows
    times. The holdout is cut in two: a quarter is the isolation reference (how isolated a
    row is), and up to 2 * shadow_rows of the rest are the attacker's reference rows, each
    of them a non-member target. Member targets: the n_targets most isolated training rows
    ("outliers") and n_targets random others ("random"); at most a quarter of the
    reference rows each. Every target, member or not, is in half the shadows, so each
    shadow trains on about shadow_rows + n_targets rows, and samples synthetic_rows rows.
    Same inputs and seed, same shadows.
    """
    if len(holdout) < MIN_HOLDOUT_ROWS:
        raise ValueError(
            f"the shadow attack needs at least {MIN_HOLDOUT_ROWS} holdout rows, got {len(holdout)}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(holdout))
    isolation_rows = order[: len(order) // 4]
    reference_rows = order[len(order) // 4 :][: 2 * shadow_rows]
    n_targets = min(n_targets, len(reference_rows) // 4, len(train) // 2)

    encoder = DistanceEncoder.fit(train, schema)
    search = encoder.search
    isolation_set = encoder.transform(holdout.iloc[isolation_rows])
    by_isolation = np.argsort(
        -isolation(encoder.transform(train), isolation_set, search), kind="stable"
    )
    outliers, others = by_isolation[:n_targets], by_isolation[n_targets:]
    random_members = others[rng.permutation(len(others))[:n_targets]]
    targets = pd.concat(
        [train.iloc[np.concatenate([outliers, random_members])], holdout.iloc[reference_rows]],
        ignore_index=True,
    )
    x_targets = encoder.transform(targets)

    inside = assign_shadows(len(targets), n_shadows, rng)
    features = np.empty((n_shadows, len(targets)))
    for shadow in range(n_shadows):
        shadow_seed = int(rng.integers(2**31))
        rows = targets[inside[shadow]].reset_index(drop=True)
        generator = make_shadow().fit(rows, schema, seed=shadow_seed)
        fake = generator.sample(synthetic_rows, seed=shadow_seed + 1)
        features[shadow] = closeness(x_targets, encoder.transform(fake), search)
    return Shadows(encoder, x_targets, n_targets, inside, features, synthetic_rows, seed)


def shadow_membership_attack(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    make_shadow: Callable[[], Generator],
    *,
    seed: int,
    policy: ShadowPolicy | None = None,
    max_synthetic_rows: int = 5000,
) -> ShadowAttack:
    """Attack `synthetic` (the release, fitted on `train`) with shadows from `make_shadow`,
    trained as `policy` (default: ShadowPolicy()) says; the release is judged on at most
    max_synthetic_rows of its rows (seeded), and each shadow samples as many."""
    policy = policy or ShadowPolicy()
    shadows = train_shadows(
        train,
        holdout,
        schema,
        make_shadow,
        seed=seed,
        synthetic_rows=min(len(synthetic), max_synthetic_rows),
        n_shadows=policy.n_shadows,
        n_targets=policy.targets,
        shadow_rows=policy.shadow_rows,
    )
    return shadows.attack(synthetic)


def shadow_failures(attack: ShadowAttack, alpha: float) -> list[str]:
    """One readable line per target set whose smallest p-value is below alpha / (the number
    of p-values judged: AUC and TPR at each FPR level, per target set)."""
    results = attack.results
    bound = alpha / sum(1 + len(r.tpr_p_value) for r in results.values())
    failures = []
    for name, result in results.items():
        if result.min_p_value >= bound:
            continue
        rate = str(FPR_LEVELS[-1])
        failures.append(
            f"shadow-model membership attack on {name} targets: AUC {result.auc:.3f}, TPR "
            f"{result.tpr_at_fpr[rate]:.3f} at {float(rate):.1%} FPR (p = "
            f"{result.min_p_value:.1e} < {bound:.1e}): the release holds more synthetic "
            "rows at training rows than generators of its kind that never saw them"
        )
    return failures
