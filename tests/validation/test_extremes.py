"""Extreme values and rare categories: the privacy report's measure (`privacy.extremes.*`)
and the default protections before training (`TableModality.protect`).

The table: an Adult slice whose training rows hold one singular extreme, an hours_per_week
of 100 times the column's maximum, which only one real person would have."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from flows.modalities import MODALITIES
from generators import infer_schema, make_generator
from generators.data.schema import normalize_dtypes
from generators.data.split import split_holdout
from tests.conftest import read_adult
from validation.privacy import (
    PrivacyPolicy,
    extreme_exposures,
    judge_extremes,
    privacy_report,
)
from validation.protection import RARE_PLACEHOLDER

COLUMN = "hours_per_week"
SYNTHETIC_ROWS = 10_000  # enough rows that 1-in-1,000 rates are told apart
TINY = {"autoregressive": {"epochs": 10}, "gmm": {}}
SEEDS = [0, 1, 2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def extreme_table():
    """(train with one singular extreme, holdout, schema, the extreme value)."""
    frame = normalize_dtypes(read_adult(2000))
    train, holdout = split_holdout(frame, 0.25, seed=0, target="income")
    train = train.reset_index(drop=True)
    extreme = int(train[COLUMN].max()) * 100
    train.loc[5, COLUMN] = extreme
    return train, holdout.reset_index(drop=True), infer_schema(train), extreme


def _fit_and_sample(name, train, schema, seed, policy):
    model_train, model_schema, _ = MODALITIES["table"].protect(train, schema, policy, seed=seed)
    generator = make_generator(name, TINY[name]).fit(model_train, model_schema, seed=seed)
    return generator.sample(SYNTHETIC_ROWS, seed=seed)


def _fresh_sample_bound(exposure) -> int:
    """The most rows near the extreme that a fresh sample of this size holds at the real
    rows' rate, at 99.9%: tolerance from the data, not a hard-coded count."""
    return int(binom.ppf(0.999, exposure.synthetic_total, exposure.baseline))


def test_the_extreme_is_measured_as_one_singular_training_row(extreme_table):
    train, holdout, schema, extreme = extreme_table
    exposure = extreme_exposures(train, holdout, train, schema)["singular"][COLUMN]
    # Exactly the planted row: the rest of hours_per_week lies within the holdout's range
    # or is shared by other rows.
    assert exposure.train_share == pytest.approx(1 / len(train))
    assert exposure.holdout_share == 0.0
    assert exposure.synthetic_rows == 1  # the training rows themselves hold it once


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["autoregressive", "gmm"])
def test_default_protection_keeps_a_generator_from_spreading_a_singular_extreme(
    extreme_table, name, seed
):
    train, holdout, schema, extreme = extreme_table
    synthetic = _fit_and_sample(name, train, schema, seed, PrivacyPolicy())
    exposure = extreme_exposures(train, holdout, synthetic, schema)["singular"][COLUMN]
    assert exposure.synthetic_rows <= _fresh_sample_bound(exposure)
    # Clipped before training: nothing on the way out to the extreme either.
    assert synthetic[COLUMN].max() < extreme / 10


@pytest.mark.parametrize("seed", SEEDS)
def test_the_measure_flags_an_unprotected_run_that_spreads_the_extreme(extreme_table, seed):
    train, holdout, schema, _ = extreme_table
    unprotected = PrivacyPolicy(clip_extremes=False, rare_category_min_count=0)
    synthetic = _fit_and_sample("autoregressive", train, schema, seed, unprotected)
    exposures = extreme_exposures(train, holdout, synthetic, schema)
    exposure = exposures["singular"][COLUMN]
    assert exposure.synthetic_rows > _fresh_sample_bound(exposure)
    _, failures = judge_extremes(exposures, PrivacyPolicy())
    assert any(line.startswith(f"column '{COLUMN}'") for line in failures), failures


def test_a_generator_that_plants_copies_of_the_extreme_fails_the_privacy_report(extreme_table):
    train, holdout, schema, extreme = extreme_table
    # Real unseen rows (the holdout, resampled), 2% of them given the extreme value.
    synthetic = holdout.sample(2000, replace=True, random_state=0).reset_index(drop=True)
    synthetic.loc[: len(synthetic) // 50 - 1, COLUMN] = extreme
    report = privacy_report(train, holdout, synthetic, schema, PrivacyPolicy(attacks=False))
    assert report.metrics[f"extremes.{COLUMN}.share"] == pytest.approx(0.02)
    assert report.metrics[f"extremes.{COLUMN}.train_share"] == pytest.approx(1 / len(train))
    assert any(line.startswith(f"column '{COLUMN}'") for line in report.failures)
    low, high = (report.metrics[f"extremes.singular_share_ci_{end}"] for end in ("low", "high"))
    assert low <= report.metrics["extremes.singular_share"] <= high
    # The same run with the gate switched off only reports.
    quiet = privacy_report(
        train, holdout, synthetic, schema, PrivacyPolicy(attacks=False, extremes_check=False)
    )
    assert not any(line.startswith("column '") for line in quiet.failures)


@pytest.mark.parametrize("seed", range(5))
def test_fresh_real_samples_pass_the_extremes_gate(seed):
    """Real rows the generator never saw, used as the synthetic table, in a sweep over
    splits of Adult: Adult's own singular extremes and rare categories (fnlwgt's tail, a
    native country seen once) are carried no more often than real rows carry them."""
    frame = normalize_dtypes(read_adult(9000)).sample(frac=1, random_state=seed)
    train, holdout, fresh = frame.iloc[:4000], frame.iloc[4000:5000], frame.iloc[5000:]
    schema = infer_schema(frame)
    exposures = extreme_exposures(train, holdout, fresh, schema)
    assert len(exposures["singular"]) > 1 and len(exposures["rare"]) > 1  # something to test
    _, failures = judge_extremes(exposures, PrivacyPolicy())
    assert failures == []


def test_rare_categories_are_merged_by_default(extreme_table):
    train, _, schema, _ = extreme_table
    counts = train["native_country"].value_counts()
    rare = counts[counts < 5].index
    assert len(rare) > 0
    model_train, model_schema, protection = MODALITIES["table"].protect(
        train, schema, PrivacyPolicy(), seed=0
    )
    assert not model_train["native_country"].isin(rare).any()
    merged_rows = int(train["native_country"].isin(rare).sum())
    assert (model_train["native_country"] == RARE_PLACEHOLDER).sum() == merged_rows
    assert protection.merged["native_country"] == merged_rows
    assert RARE_PLACEHOLDER in model_schema["native_country"].categories
    # Common categories are left as they were.
    common = ~train["native_country"].isin(rare)
    pd.testing.assert_series_equal(
        model_train["native_country"][common], train["native_country"][common]
    )


def test_protections_can_be_turned_off(extreme_table):
    train, _, schema, _ = extreme_table
    off = PrivacyPolicy(clip_extremes=False, rare_category_min_count=0)
    model_train, model_schema, protection = MODALITIES["table"].protect(train, schema, off, seed=0)
    pd.testing.assert_frame_equal(model_train, train)
    assert model_schema == schema
    assert protection.merged == {} and protection.clipped == {}


def test_the_extreme_is_clipped_to_a_value_other_real_rows_hold(extreme_table):
    """The bound is a value of the column that other real rows hold, not the extreme."""
    train, holdout, schema, extreme = extreme_table
    model_train, _, protection = MODALITIES["table"].protect(train, schema, PrivacyPolicy(), seed=0)
    assert protection.clipped[COLUMN] >= 1
    assert model_train[COLUMN].max() < extreme
    assert np.isin(model_train[COLUMN].max(), train[COLUMN].drop(5).to_numpy())
