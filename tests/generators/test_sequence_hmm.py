"""The sequence HMM: the sequence contract, hmmlearn's GaussianHMM as the oracle, learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hmmlearn.hmm import GaussianHMM

from generators.data.schema import infer_schema
from generators.errors import ConfigError, NotFittedError
from generators.sequence.data import (
    SequenceSettings,
    check_sequences,
    entity_lengths,
    sequence_schema,
)
from generators.sequence.hmm import (
    SequenceHMMGenerator,
    SequenceHMMState,
    baum_welch_sequences,
    encoded_numeric,
    sequence_log_likelihood,
)
from tests.generators.test_sequences import SETTINGS, make_sequence_frame

TINY = {"n_states": 4, "n_iter": 15}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_sequence_frame()


@pytest.fixture(scope="module")
def fitted(frame) -> SequenceHMMGenerator:
    return SequenceHMMGenerator(sequence=SETTINGS, **TINY).fit(frame, infer_schema(frame), seed=0)


def lag1_by_entity(frame: pd.DataFrame, column: str, entity: str = "sensor") -> np.ndarray:
    """Lag-1 autocorrelation of `column` within each entity (pairs with both values)."""
    out = []
    for _, group in frame.groupby(entity, sort=False):
        x = group[column].to_numpy(dtype="float64", na_value=np.nan)
        a, b = x[:-1], x[1:]
        ok = ~np.isnan(a) & ~np.isnan(b)
        out.append(np.corrcoef(a[ok], b[ok])[0, 1])
    return np.asarray(out)


# -- the contract ---------------------------------------------------------------------------------
def test_schema_kept_and_entities_new(fitted, frame):
    synthetic = fitted.sample(7, seed=1)
    assert list(synthetic.columns) == list(frame.columns)
    assert synthetic.dtypes.astype(str).tolist() == frame.dtypes.astype(str).tolist()
    assert synthetic.sensor.nunique() == 7
    assert set(synthetic.sensor).isdisjoint(frame.sensor)
    assert set(synthetic["mode"].dropna()) <= set(frame["mode"].dropna())
    # Whole table passes the same checks as real input, and is already in their order.
    pd.testing.assert_frame_equal(check_sequences(synthetic, SETTINGS), synthetic)


def test_order_is_monotonic_at_the_real_cadence(fitted, frame):
    synthetic = fitted.sample(7, seed=1)
    steps = synthetic.groupby("sensor").time.diff().dropna()
    assert (steps == pd.Timedelta(hours=1)).all()
    starts = set(frame.groupby("sensor").time.min())
    assert set(synthetic.groupby("sensor").time.min()) <= starts
    lengths = set(entity_lengths(frame, "sensor").tolist())
    assert set(entity_lengths(synthetic, "sensor").tolist()) <= lengths
    fixed = fitted.sample(3, seed=1, length=200)  # past the last real time: not clipped
    assert entity_lengths(fixed, "sensor").tolist() == [200] * 3
    assert (fixed.groupby("sensor").time.diff().dropna() == pd.Timedelta(hours=1)).all()


def test_seeded_and_saved(fitted, tmp_path):
    first = fitted.sample(5, seed=11)
    pd.testing.assert_frame_equal(first, fitted.sample(5, seed=11))
    assert not first.level.equals(fitted.sample(5, seed=12).level)
    fitted.save(tmp_path / "model")
    loaded = SequenceHMMGenerator.load(tmp_path / "model")
    assert loaded.sequence == fitted.sequence
    pd.testing.assert_frame_equal(loaded.sample(5, seed=11), first)
    frame = make_sequence_frame(n_entities=3, seed=9)
    assert loaded.log_likelihood(frame) == pytest.approx(fitted.log_likelihood(frame), rel=1e-12)


def test_refit_is_reproducible(frame):
    schema = infer_schema(frame)
    a = SequenceHMMGenerator(sequence=SETTINGS, **TINY).fit(frame, schema, seed=4)
    b = SequenceHMMGenerator(sequence=SETTINGS, **TINY).fit(frame, schema, seed=4)
    assert a.losses_ == b.losses_
    pd.testing.assert_frame_equal(a.sample(3, seed=0), b.sample(3, seed=0))


def test_errors_before_fit_and_without_settings(frame):
    with pytest.raises(NotFittedError):
        SequenceHMMGenerator(sequence=SETTINGS).sample(3, seed=0)
    with pytest.raises(ConfigError, match="data.sequence"):
        SequenceHMMGenerator().fit(frame, infer_schema(frame))
    with pytest.raises(ConfigError, match="unknown parameter"):
        SequenceHMMGenerator(sequence=SETTINGS, n_state=3)


def test_integer_entities_and_steps():
    frame = make_sequence_frame(n_entities=5, seed=2)
    frame = frame.assign(
        sensor=frame.sensor.str[1:].astype("Int64") + 100,
        step=frame.groupby("sensor").cumcount().astype("Int64") * 10,
    ).drop(columns="time")
    settings = SequenceSettings(entity_column="sensor", order_column="step", max_length=16)
    model = SequenceHMMGenerator(sequence=settings, **TINY).fit(frame, infer_schema(frame))
    synthetic = model.sample(4, seed=0)
    assert synthetic.sensor.dtype == "Int64" and synthetic.step.dtype == "Int64"
    assert synthetic.sensor.min() > frame.sensor.max()
    assert (synthetic.groupby("sensor").step.diff().dropna() == 10).all()


@pytest.mark.parametrize("missing", ["state", "rate"])
def test_missing_values_come_back_at_their_rate(frame, missing):
    model = SequenceHMMGenerator(sequence=SETTINGS, missing=missing, **TINY)
    synthetic = model.fit(frame, infer_schema(frame), seed=0).sample(40, seed=0)
    for column in ("level", "mode"):
        real = frame[column].isna().mean()
        # Binomial spread of the synthetic share, x4, plus the real share's own.
        band = 4 * np.sqrt(real * (1 - real) * (1 / len(synthetic) + 1 / len(frame)))
        assert abs(synthetic[column].isna().mean() - real) < band, column
    assert synthetic.temp.notna().all()


# -- hmmlearn as the oracle -----------------------------------------------------------------------
def _planted_gaussian(seed: int = 0):
    rng = np.random.default_rng(seed)
    means = np.array([[-2.0, 0.0], [0.0, 2.0], [2.0, -1.0]])
    transition = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    lengths = rng.integers(30, 60, 20)
    sequences = []
    for length in lengths:
        state, rows = rng.integers(3), []
        for _ in range(length):
            rows.append(means[state] + rng.normal(0.0, 0.7, 2))
            state = rng.choice(3, p=transition[state])
        sequences.append(np.array(rows))
    return np.concatenate(sequences), lengths


def test_baum_welch_matches_hmmlearn():
    x, lengths = _planted_gaussian()
    rng = np.random.default_rng(1)
    start = np.full(3, 1 / 3)
    transition = np.full((3, 3), 0.2) + 0.4 * np.eye(3)
    transition /= transition.sum(1, keepdims=True)
    means = x[rng.choice(len(x), 3, replace=False)]
    variances = np.tile(x.var(0), (3, 1))
    reference = GaussianHMM(
        3, covariance_type="diag", n_iter=10, tol=-np.inf, init_params="", params="stmc"
    )
    reference.startprob_, reference.transmat_ = start, transition
    reference.means_, reference.covars_ = means, variances
    reference.fit(x, lengths)
    rows = encoded_numeric(x, lengths, autoregressive=False)
    state = SequenceHMMState.gaussian(start, transition, means, variances)
    fitted, history = baum_welch_sequences(state, rows, lengths, n_iter=10, batch_rows=256)
    ours = sequence_log_likelihood(fitted, rows, lengths)
    expected = reference.score(x, lengths)
    assert ours == pytest.approx(expected, rel=0.01)  # the bar; in fact ~1e-12
    assert ours == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(history, list(reference.monitor_.history)[-len(history) :], 1e-9)
    np.testing.assert_allclose(fitted.means.numpy(), reference.means_, atol=1e-8)
    np.testing.assert_allclose(fitted.variances.numpy(), reference._covars_, rtol=1e-8)


def test_generator_likelihood_matches_hmmlearn_in_data_units():
    """The fitted generator's parameters, moved back to the data's units, score the table
    as hmmlearn scores it (standardisation and its Jacobian are right)."""
    x, lengths = _planted_gaussian(seed=2)
    x = x * np.array([5.0, 0.1]) + np.array([100.0, -3.0])
    entity = np.repeat(np.arange(len(lengths)), lengths)
    step = np.concatenate([np.arange(n) for n in lengths])
    frame = pd.DataFrame({"unit": entity, "t": step, "a": x[:, 0], "b": x[:, 1]})
    settings = SequenceSettings(entity_column="unit", order_column="t", max_length=None)
    model = SequenceHMMGenerator(sequence=settings, emission="gaussian", n_states=3, n_iter=5)
    model.fit(frame, infer_schema(frame), seed=0)
    scales = np.asarray(model.encoding_.scales)
    centers = np.asarray(model.encoding_.centers)
    reference = GaussianHMM(3, covariance_type="diag", init_params="")
    reference.startprob_ = model.state_.log_start.exp().numpy()
    reference.transmat_ = model.state_.log_transition.exp().numpy()
    reference.means_ = model.state_.means.numpy() * scales + centers
    reference.covars_ = model.state_.variances.numpy() * scales**2
    expected = reference.score(x, lengths)
    assert model.log_likelihood(frame) == pytest.approx(expected, rel=1e-9)


# -- learning ------------------------------------------------------------------------------------
def test_reproduces_a_planted_lag1_autocorrelation():
    """The planted AR(1) (phi 0.9) keeps its lag-1 autocorrelation in synthetic entities;
    the same rows shuffled in time within each entity (what a row-by-row table generator
    gives) do not. Tolerance: 4 standard errors of the mean per-entity lag-1, from the
    real entities' spread, for the real and the synthetic mean."""
    torch.manual_seed(0)
    frame = make_sequence_frame(n_entities=16, length=100, seed=3)
    model = SequenceHMMGenerator(sequence=SETTINGS, n_states=6, n_iter=30)
    synthetic = model.fit(frame, infer_schema(frame), seed=0).sample(32, seed=1)
    real = lag1_by_entity(frame, "level")
    tolerance = 4 * real.std(ddof=1) * np.sqrt(1 / len(real) + 1 / 32)
    rng = np.random.default_rng(0)
    shuffled = frame.groupby("sensor", group_keys=False).apply(
        lambda g: g.assign(level=rng.permutation(g.level.to_numpy()))
    )
    assert abs(lag1_by_entity(synthetic, "level").mean() - real.mean()) < tolerance
    assert abs(lag1_by_entity(shuffled, "level").mean() - real.mean()) > 5 * tolerance

    # Within-sequence cross-column correlation survives too (level and temp share the AR(1)).
    def correlation(f):
        both = f[["level", "temp"]].astype("float64").dropna()
        return np.corrcoef(both.level, both.temp)[0, 1]

    assert correlation(synthetic) == pytest.approx(correlation(frame), abs=0.1)


def _within_sequence_correlation(frame: pd.DataFrame) -> float:
    """Pearson correlation of level and temp after removing each sensor's means."""
    rows = frame[["sensor", "level", "temp"]].dropna()
    centred = rows[["level", "temp"]] - rows.groupby("sensor")[["level", "temp"]].transform("mean")
    return float(centred["level"].corr(centred["temp"]))


def test_correlated_noise_gives_back_the_columns_co_movement():
    """level and temp share one latent signal (real within-sequence correlation ~0.94).
    With columns independent given the state, 3 states carry only part of it; the states'
    residual correlation on the sampling noise must close at least half of that gap, and
    the independent model must show the gap (else the data would not test anything)."""
    frame = make_sequence_frame(n_entities=30, length=120, seed=2)
    schema = sequence_schema(infer_schema(frame), SETTINGS)
    real = _within_sequence_correlation(frame)
    errors = {}
    for correlated in (False, True):
        generator = SequenceHMMGenerator(
            device="cpu", sequence=SETTINGS, n_states=3, n_iter=15, correlated_noise=correlated
        ).fit(frame, schema, seed=0)
        errors[correlated] = abs(_within_sequence_correlation(generator.sample(30, seed=1)) - real)
    assert errors[False] > 0.1, errors
    assert errors[True] < errors[False] / 2, errors
