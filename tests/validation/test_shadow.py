"""The shadow-model membership attack (validation/shadow.py) and the gate's calibration:
"DCR passes, data leaks" (a good sample with ten near-copies of outliers planted in it)
passes the DCR share and is quarantined, flip10 is quarantined, and a fresh real sample
passes, in a seed sweep on slices of the shipped Adult file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import infer_schema, normalize_dtypes
from generators.errors import DataError
from generators.registry import make_generator
from tests.conftest import read_adult
from tests.validation.leaks import disjoint_split, flip10, flip_cells, plant_outliers
from validation.membership import roc_auc
from validation.privacy import (
    PrivacyPolicy,
    auc_ci_low,
    judge_distance_figures,
    privacy_metrics,
    privacy_report,
)
from validation.shadow import (
    ShadowPolicy,
    assign_shadows,
    closeness,
    out_z_scores,
    shadow_failures,
    shadow_membership_attack,
    train_shadows,
)

SWEEP_SEEDS = range(20)
TRAIN, HOLDOUT = 600, 800
PLANTED = 10
ALPHA = ShadowPolicy().alpha


@pytest.fixture(scope="module")
def adult():
    frame = normalize_dtypes(read_adult(6000))
    return frame, infer_schema(frame)


def _split(frame: pd.DataFrame, seed: int):
    return disjoint_split(frame, seed, TRAIN, HOLDOUT)


def _real_sample_shadows():
    """The shadow of a release that is a sample of real rows: a sample of its own rows."""
    return make_generator("copy", device="cpu")


def _dcr_failures(train, holdout, synthetic, schema) -> list[str]:
    metrics, details = privacy_metrics(train, holdout, synthetic, schema, seed=0)
    sizes = details["sample_sizes"]
    metrics["membership_auc_ci_low"] = auc_ci_low(
        metrics["membership_auc"], sizes["train"], sizes["holdout"]
    )
    failures = judge_distance_figures(metrics, PrivacyPolicy(), closer="", tells="")
    return [line for line in failures if line.startswith("DCR share")]


def test_each_target_is_in_exactly_half_the_shadows():
    inside = assign_shadows(300, 8, np.random.default_rng(0))
    assert inside.shape == (8, 300)
    assert (inside.sum(axis=0) == 4).all()
    # shared across targets, not one fixed half: shadows differ in which targets they hold
    assert len({tuple(row) for row in inside}) == 8


def test_out_z_scores_on_known_features():
    # two targets, four shadows; target 0 is in shadows 0 and 1, target 1 in 2 and 3
    inside = np.array([[True, False], [True, False], [False, True], [False, True]])
    features = np.array([[9.0, 1.0], [9.0, 3.0], [1.0, 9.0], [3.0, 9.0]])
    released = np.array([4.0, 2.0])
    # out-means 2 and 2; residuals -1, 1, -1, 1: pooled variance 4 / (1 + 1) = 2
    expected = (released - 2.0) / (np.sqrt(2.0) * np.sqrt(1 + 1 / 2))
    np.testing.assert_allclose(out_z_scores(features, inside, released), expected)


def test_same_inputs_and_seed_give_the_same_figures(adult):
    frame, schema = adult
    train, holdout, fresh = _split(frame, 0)
    policy = ShadowPolicy(n_shadows=4, targets=20)
    first = shadow_membership_attack(
        train, holdout, fresh, schema, _real_sample_shadows, seed=3, policy=policy
    )
    again = shadow_membership_attack(
        train, holdout, fresh, schema, _real_sample_shadows, seed=3, policy=policy
    )
    assert first.as_dict() == again.as_dict()
    # and the shadows of a sample of real rows do move towards their training rows
    assert first.shadow_in_out_auc > 0.8


@pytest.mark.slow
def test_planted_outliers_and_flip10_are_quarantined_and_fresh_samples_pass(adult):
    frame, schema = adult
    fresh_quarantined, fresh_dcr_failed, planted_shadow_auc = [], [], []
    for seed in SWEEP_SEEDS:
        train, holdout, fresh = _split(frame, seed)
        shadows = train_shadows(
            train, holdout, schema, _real_sample_shadows, seed=seed, synthetic_rows=TRAIN
        )
        planted = plant_outliers(fresh, train, schema, PLANTED, seed)
        # DCR passes: ten rows in 600 barely move the share of rows closer to training rows,
        # so the distance judge says of the planted release what it says of the fresh one
        fresh_dcr_failed.append(bool(_dcr_failures(train, holdout, fresh, schema)))
        assert bool(_dcr_failures(train, holdout, planted, schema)) == fresh_dcr_failed[-1], seed
        planted_attack = shadows.attack(planted)
        # ... and the data leaks: the planted near-copies are found among the outliers
        assert shadow_failures(planted_attack, ALPHA), (seed, planted_attack.results)
        # (at 1% FPR: a fresh sample can hold an exact duplicate of a real row, which is as
        # close as a copy, so the 0.1% threshold is sometimes such a non-member)
        assert planted_attack.results["outliers"].tpr_at_fpr["0.01"] >= 0.8 * PLANTED / 50
        planted_shadow_auc.append(planted_attack.results["random"].auc)
        assert shadow_failures(shadows.attack(flip10(train, seed)), ALPHA), seed
        fresh_quarantined.append(bool(shadow_failures(shadows.attack(fresh), ALPHA)))
    # The README's false-quarantine rate: at most 1 in 20 at the default policy.
    assert sum(fresh_quarantined) <= 1, fresh_quarantined
    # ... and the DCR judge passes the fresh (so the planted) releases but for its own
    # sampling noise at 600 rows (its Wald interval ignores which real rows were drawn as
    # references: 2 of these 20 fresh samples cross 0.55 "significantly").
    assert sum(fresh_dcr_failed) <= len(SWEEP_SEEDS) // 4, fresh_dcr_failed
    # The planted rows are outliers only: random targets see an honest sample.
    assert 0.4 < np.mean(planted_shadow_auc) < 0.6, planted_shadow_auc


@pytest.mark.slow
def test_shadows_of_another_kind_still_find_the_planted_rows_and_pass_fresh_ones(adult):
    # The shadows need not match the release (here a Gaussian mixture, cheap, against real
    # rows): members and non-members share the mismatch, and the gate compares only them.
    frame, schema = adult

    def gmm_shadows():
        return make_generator("gmm", {"max_components": 8, "max_iter": 20}, device="cpu")

    for seed in range(3):
        train, holdout, fresh = _split(frame, seed)
        shadows = train_shadows(
            train, holdout, schema, gmm_shadows, seed=seed, synthetic_rows=TRAIN
        )
        assert shadow_failures(
            shadows.attack(plant_outliers(fresh, train, schema, PLANTED, seed)), ALPHA
        )
        assert not shadow_failures(shadows.attack(fresh), ALPHA), seed


def test_the_privacy_report_runs_the_attack_and_a_copy_fails_it(adult):
    frame, schema = adult
    train, holdout, _ = _split(frame, 0)
    policy = PrivacyPolicy(attacks=False, shadow=ShadowPolicy(n_shadows=4, targets=20))
    report = privacy_report(train, holdout, train, schema, policy, make_shadow=_real_sample_shadows)
    assert report.metrics["shadow_mia.random.tpr_at_fpr_0.001"] > 0.9
    assert report.metrics["shadow_mia.outliers.auc_p_value"] < 1e-6
    assert any(line.startswith("shadow-model membership attack") for line in report.failures)
    assert report.details["shadow_mia"]["n_shadows"] == 4


def test_without_a_generator_or_when_off_the_attack_is_skipped_and_says_why(adult):
    frame, schema = adult
    train, holdout, fresh = _split(frame, 0)
    off = PrivacyPolicy(attacks=False, shadow=ShadowPolicy(enabled=False))
    for policy, make_shadow, reason in (
        (off, _real_sample_shadows, "privacy.shadow.enabled is false"),
        (PrivacyPolicy(attacks=False), None, "no generator"),
    ):
        report = privacy_report(train, holdout, fresh, schema, policy, make_shadow=make_shadow)
        assert not [key for key in report.metrics if key.startswith("shadow_mia")]
        assert reason in report.details["shadow_mia"]["skipped"]


def test_a_shadow_that_cannot_be_trained_skips_the_attack_and_says_why(adult):
    frame, schema = adult
    train, holdout, fresh = _split(frame, 0)

    class Unfittable:
        def fit(self, rows, schema, *, seed):
            raise DataError(f"cannot fit on {len(rows)} rows")

    report = privacy_report(
        train, holdout, fresh, schema, PrivacyPolicy(attacks=False), make_shadow=Unfittable
    )
    assert "could not be trained: cannot fit on" in report.details["shadow_mia"]["skipped"]
    assert not [key for key in report.metrics if key.startswith("shadow_mia")]


@pytest.mark.slow
def test_each_targets_own_baseline_finds_leaks_at_outliers_that_raw_closeness_misses(adult):
    # 30% of every row's cells replaced: outliers' copies are still nearer to them than any
    # honest release comes, but outliers are far from everything, so against all controls
    # their raw closeness ranks low; against their own out-shadows they stand out.
    frame, schema = adult
    for seed in range(3):
        train, holdout, _ = _split(frame, seed)
        shadows = train_shadows(
            train, holdout, schema, _real_sample_shadows, seed=seed, synthetic_rows=TRAIN
        )
        release = flip_cells(train, 0.3, seed)
        attack = shadows.attack(release)
        assert shadow_failures(attack, ALPHA), seed
        encoder = shadows.encoder
        raw = closeness(shadows.x_targets, encoder.transform(release), encoder.search)
        n = shadows.n_targets
        raw_auc = roc_auc(raw[:n], raw[2 * n :])
        assert attack.results["outliers"].auc > raw_auc + 0.15, (seed, raw_auc)
