"""The density-ratio membership attack (validation/membership.py): near chance for a fresh
sample of the population, and it finds members in a copy and in a 10%-perturbed copy
("flip10"), on random and on outlier targets. Seed-swept on the shipped Adult file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import infer_schema, normalize_dtypes
from tests.conftest import read_adult
from tests.validation.leaks import disjoint_split
from validation.membership import (
    FPR_LEVELS,
    auc_p_value,
    density_membership_attack,
    roc_auc,
    tpr_at_fpr,
    tpr_p_value,
)

SEEDS = range(6)
TRAIN, HOLDOUT = 3000, 1500


@pytest.fixture(scope="module")
def adult():
    frame = normalize_dtypes(read_adult(9000))
    return frame, infer_schema(frame)


def _split(frame: pd.DataFrame, seed: int):
    return disjoint_split(frame, seed, TRAIN, HOLDOUT)


def _flip10(train: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every training row with about 10% of its cells replaced by another row's value."""
    rng = np.random.default_rng(seed)
    flipped = train.copy()
    for column in flipped.columns:
        hit = rng.random(len(flipped)) < 0.1
        donors = rng.integers(0, len(train), hit.sum())
        flipped.loc[hit, column] = train[column].to_numpy()[donors]
    return flipped


def test_auc_and_tpr_at_fpr_on_known_scores():
    members, non_members = np.array([3.0, 2.0, 0.5]), np.array([1.0, 0.0, -1.0, 0.5])
    # pairs: 3 and 2 beat all 4; 0.5 beats 2 and ties 1 -> (4 + 4 + 2.5) / 12
    assert roc_auc(members, non_members) == pytest.approx(10.5 / 12)
    # 4 non-members: 25% may exceed the threshold -> threshold 0.5 (second highest)
    assert tpr_at_fpr(members, non_members, 0.25) == pytest.approx(2 / 3)
    # fewer non-members than 1/rate: the threshold is the highest non-member score
    assert tpr_at_fpr(members, non_members, 0.01) == pytest.approx(2 / 3)


def test_a_fresh_sample_scores_near_chance_across_seeds(adult):
    frame, schema = adult
    p_values = []
    for seed in SEEDS:
        train, holdout, fresh = _split(frame, seed)
        results = density_membership_attack(train, holdout, fresh, schema, seed=seed)
        for result in results.values():
            p_values += [result.auc_p_value, *result.tpr_p_value.values()]
    # 6 seeds x 2 target sets x 3 figures = 36 p-values of a true null: none below 0.001
    # (a chance of about 3.5% that one would be), and about a twentieth below 0.05.
    assert min(p_values) > 0.001, sorted(p_values)[:3]
    assert np.mean(np.array(p_values) < 0.05) <= 0.2, sorted(p_values)[:8]


@pytest.mark.parametrize("seed", SEEDS)
def test_copies_and_flip10_are_found(adult, seed):
    frame, schema = adult
    train, holdout, _ = _split(frame, seed)
    copied = density_membership_attack(train, holdout, train, schema, seed=seed)
    flipped = density_membership_attack(train, holdout, _flip10(train, seed), schema, seed=seed)
    for targets in ("random", "outliers"):
        assert copied[targets].tpr_at_fpr["0.01"] > 0.95
        assert copied[targets].auc_ci[0] > 0.9
        # flip10 keeps 90% of each row: a third of members or more stand out at 1% FPR.
        assert flipped[targets].tpr_ci["0.01"][0] > 0.2, (targets, flipped[targets])
        assert flipped[targets].auc_ci[0] > 0.6
        assert copied[targets].min_p_value < 1e-6 and flipped[targets].min_p_value < 1e-6


def test_null_p_values_are_uniform_on_simulated_scores():
    # Members and non-members from one distribution: each p-value is about uniform, so
    # P(p < 0.05) is about 0.05 (here over 400 draws: within 4 standard errors).
    rng = np.random.default_rng(0)
    small = {"auc": [], "0.01": [], "0.001": []}
    for _ in range(400):
        members, non_members = rng.normal(size=300), rng.normal(size=60)
        small["auc"].append(auc_p_value(roc_auc(members, non_members), 300, 60) < 0.05)
        for rate in FPR_LEVELS:
            tpr = tpr_at_fpr(members, non_members, rate)
            small[str(rate)].append(tpr_p_value(tpr, 300, 60, rate) < 0.05)
    bound = 0.05 + 4 * np.sqrt(0.05 * 0.95 / 400)
    for name, hits in small.items():
        assert np.mean(hits) <= bound, (name, np.mean(hits))
    # and not vacuous: a shifted member distribution is found
    members, non_members = rng.normal(1.0, 1.0, 300), rng.normal(size=60)
    assert tpr_p_value(tpr_at_fpr(members, non_members, 0.01), 300, 60, 0.01) < 1e-3


def test_same_inputs_and_seed_give_the_same_figures(adult):
    frame, schema = adult
    train, holdout, fresh = _split(frame, 0)
    first = density_membership_attack(train, holdout, fresh, schema, seed=4)
    again = density_membership_attack(train, holdout, fresh, schema, seed=4)
    assert {k: v.as_dict() for k, v in first.items()} == {k: v.as_dict() for k, v in again.items()}
