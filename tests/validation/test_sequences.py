"""Sequence privacy, expectations and fidelity on the generator tests' seeded long table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from generators.data.schema import infer_schema
from generators.sequence.data import split_entities
from generators.sequence.hmm import SequenceHMMGenerator
from tests.generators.test_sequences import SETTINGS, make_sequence_frame
from validation.expectations import build_suite, validate_table
from validation.privacy import PrivacyPolicy
from validation.sequences import (
    acf_plot,
    entity_features,
    pooled_acf,
    sequence_expectation_frame,
    sequence_fidelity_report,
    sequence_privacy_report,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make_sequence_frame(n_entities=30, length=60, seed=8)
    return split_entities(frame, "sensor", 0.3, seed=0)  # 21 train, 9 holdout entities


@pytest.fixture(scope="module")
def synthetic(split) -> pd.DataFrame:
    train, _ = split
    model = SequenceHMMGenerator(sequence=SETTINGS, n_states=6, n_iter=20)
    return model.fit(train, infer_schema(train), seed=0).sample(21, seed=1)


def _copy(train: pd.DataFrame) -> pd.DataFrame:
    """The training entities under new names: what a memorising generator would publish."""
    return train.assign(sensor="copy-" + train.sensor)


def _time_shuffled(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Each entity's rows keep their times but get each other's values (order destroyed)."""
    rng = np.random.default_rng(seed)
    values = [c for c in frame.columns if c not in ("sensor", "time")]
    parts = []
    for _, group in frame.groupby("sensor", sort=False):
        shuffled = group[values].iloc[rng.permutation(len(group))].reset_index(drop=True)
        parts.append(
            pd.concat([group[["sensor", "time"]].reset_index(drop=True), shuffled], axis=1)
        )
    return pd.concat(parts, ignore_index=True)


# -- features --------------------------------------------------------------------------------
def test_entity_features_by_entity_and_window():
    frame = make_sequence_frame(n_entities=3, seed=1)
    features = entity_features(frame, "sensor", "time", ["level", "temp"], ["mode"])
    assert features.sensor.tolist() == ["s00", "s01", "s02"]
    first = frame[frame.sensor == "s00"]
    assert features.length[0] == len(first)
    x = first.level.to_numpy(dtype=float, na_value=np.nan)
    ok = ~np.isnan(x[:-1]) & ~np.isnan(x[1:])
    assert features.level_lag1[0] == pytest.approx(np.corrcoef(x[:-1][ok], x[1:][ok])[0, 1])
    assert features.level_mean[0] == pytest.approx(np.nanmean(x))
    shares = features.filter(like="mode_share_").sum(axis=1).to_numpy(dtype=float)
    np.testing.assert_allclose(shares, 1.0)
    windows = entity_features(frame, "sensor", "time", ["level"], [], window=20)
    assert len(windows) > 3 and (windows.length <= 20).all() and (windows.length >= 2).all()
    assert windows.length.sum() <= len(frame)


# -- privacy ---------------------------------------------------------------------------------
def test_privacy_passes_a_model_and_fails_a_copy(split, synthetic):
    train, holdout = split
    policy = PrivacyPolicy()
    report = sequence_privacy_report(train, holdout, synthetic, SETTINGS, policy, seed=0)
    assert report.passed, report.failures
    assert report.details["entities"] == {"train": 21, "holdout": 9, "synthetic": 21}
    copied = sequence_privacy_report(train, holdout, _copy(train), SETTINGS, policy, seed=0)
    assert not copied.passed
    # Equal-size reference samples (9 of the 21 training entities per draw): a copy's own
    # entity is drawn 9 times in 21, so its share is well above 0.5 but below 1 (and with
    # 9 independent holdout entities its interval still reaches 0.5).
    assert copied.metrics["dcr_share"] > 0.7 and copied.metrics["ims"] == 1.0
    assert copied.metrics["membership_auc"] == 1.0
    assert any("identical entity share" in line for line in copied.failures)
    assert any("membership AUC" in line for line in copied.failures)
    assert report.metrics["ims"] == 0.0


def test_few_holdout_entities_are_reported_not_gated(split):
    """Two held-out entities (Beijing's case): a copy's DCR share is high but its interval
    (2 independent entities) reaches below 0.5, so only the identical-entity rule fails it."""
    train, holdout = split
    two = holdout[holdout.sensor.isin(holdout.sensor.unique()[:2])]
    report = sequence_privacy_report(train, two, _copy(train), SETTINGS, PrivacyPolicy(), seed=0)
    assert report.metrics["dcr_share"] > 0.5 and report.metrics["dcr_share_ci_low"] < 0.5
    assert not any("DCR share" in line for line in report.failures)
    assert any("identical entity share" in line for line in report.failures)


# -- expectations ----------------------------------------------------------------------------
def test_lag1_expectations_pass_real_and_fail_time_shuffled(split):
    train, holdout = split
    real = sequence_expectation_frame(train, SETTINGS)
    assert list(real.columns) == ["length", "level_lag1", "temp_lag1"]
    unseen = sequence_expectation_frame(holdout, SETTINGS)
    suite = build_suite(real, infer_schema(real), batch_rows=len(unseen), seed=0)
    assert validate_table(unseen, suite).report.passed
    shuffled = sequence_expectation_frame(_time_shuffled(holdout), SETTINGS)
    report = validate_table(shuffled, suite).report
    assert not report.passed
    assert any("level_lag1" in line for line in report.failures)
    assert any("temp_lag1" in line for line in report.failures)
    assert not any("'length'" in line for line in report.failures)


# -- fidelity --------------------------------------------------------------------------------
def test_fidelity_ranks_a_model_above_a_time_shuffle(split, synthetic):
    train, holdout = split
    report = sequence_fidelity_report(train, holdout, synthetic, SETTINGS, seed=0)
    shuffled = sequence_fidelity_report(train, holdout, _time_shuffled(train), SETTINGS, seed=0)
    assert not report.blocking
    m, s = report.metrics, shuffled.metrics
    assert m["acf_distance_mean"] < 0.5 * s["acf_distance_mean"]
    # A time shuffle keeps every row: marginals are perfect, order is what it loses.
    assert s["ks_mean"] == pytest.approx(0.0) and s["tvd_mean"] == pytest.approx(0.0)
    for key in ("acf_distance_holdout_mean", "ks_holdout_mean", "correlation_difference_holdout"):
        assert key in m
    assert m["correlation_difference"] < 0.15
    assert m["acf_distance.level"] < 0.15


def test_pooled_acf_of_an_ar1():
    long = make_sequence_frame(n_entities=4, length=2000, seed=2)
    acf = pooled_acf(long, SETTINGS, "level", 3)
    # phi 0.9: 0.9, 0.81, 0.729 (long entities, so the bias of entity-mean centring is small)
    np.testing.assert_allclose(acf, [0.9, 0.81, 0.729], atol=0.04)


def test_acf_plot_writes_a_png(split, synthetic, tmp_path):
    train, _ = split
    path = acf_plot(train, synthetic, SETTINGS, tmp_path / "plots" / "acf.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
