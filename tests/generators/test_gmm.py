"""The latent-class mixture: its EM against scikit-learn's, BIC, and what it reproduces."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.mixture import GaussianMixture

from generators.data.schema import infer_schema, normalize_dtypes
from generators.table.gmm import GaussianMixtureGenerator, Mixture, MixtureData, m_step, run_em

FLOOR = 1e-6


def _numeric_only(x: np.ndarray, dtype: torch.dtype) -> MixtureData:
    rows = len(x)
    return MixtureData(
        numbers=torch.as_tensor(x, dtype=dtype),
        observed=torch.ones(x.shape, dtype=dtype),
        onehot=torch.zeros(rows, 0, dtype=dtype),
        part_of=torch.zeros(0, dtype=torch.long),
        n_parts=0,
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_em_reaches_scikit_learns_log_likelihood_from_the_same_start(dtype) -> None:
    # Three overlapping clusters in 3 dimensions: EM has real work to do from a poor start.
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, -1.0], [-1.5, 2.5, 1.0]])
    scales = np.array([[1.0, 0.5, 1.5], [0.7, 1.2, 0.8], [1.3, 0.9, 0.6]])
    labels = rng.choice(3, size=3000, p=[0.5, 0.3, 0.2])
    x = centres[labels] + scales[labels] * rng.normal(size=(3000, 3))
    weights = np.full(3, 1 / 3)
    means = x[rng.choice(len(x), 3, replace=False)]
    variances = np.tile(x.var(0), (3, 1))

    reference = GaussianMixture(
        3,
        covariance_type="diag",
        weights_init=weights,
        means_init=means,
        precisions_init=1 / variances,
        reg_covar=FLOOR,
        tol=1e-4,
        max_iter=500,
    ).fit(x)
    reference_ll = reference.score(x) * len(x)

    data = _numeric_only(x, dtype)
    start = Mixture(
        torch.as_tensor(weights, dtype=dtype),
        torch.as_tensor(means, dtype=dtype),
        torch.as_tensor(variances, dtype=dtype),
        torch.zeros(3, 0, dtype=dtype),
    )
    mixture, history = run_em(
        data, start, max_iter=500, tol=1e-4, variance_floor=FLOOR, smoothing=0.0
    )
    ours = history[-1] * len(x)
    start_ll = history[0] * len(x)

    assert reference.converged_
    # The start is far from the optimum (so a 1% tolerance is not met by doing nothing) ...
    assert abs(start_ll - reference_ll) > 0.05 * abs(reference_ll)
    # ... and our EM ends where scikit-learn's does.
    assert abs(ours - reference_ll) <= 0.01 * abs(reference_ll), (ours, reference_ll)
    order = np.argsort(mixture.means[:, 0].numpy())
    np.testing.assert_allclose(
        mixture.means.double().numpy()[order],
        reference.means_[np.argsort(reference.means_[:, 0])],
        atol=0.05,
    )
    # The history is the model's own: the last entry is the returned mixture's likelihood.
    final = float(mixture.e_step(data)[0].mean())
    assert final == pytest.approx(history[-1], rel=1e-5)


def _clusters(k: int, rows: int, seed: int) -> pd.DataFrame:
    """k well-separated 2-d Gaussian clusters (centres 12 standard deviations apart)."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(k) / k
    centres = 12.0 * np.column_stack([np.cos(angles), np.sin(angles)]) * max(1.0, k / 4)
    labels = rng.integers(k, size=rows)
    x = centres[labels] + rng.normal(size=(rows, 2))
    return normalize_dtypes(pd.DataFrame({"a": x[:, 0], "b": x[:, 1]}))


@pytest.mark.parametrize("true_k", [1, 3, 4])
def test_bic_picks_the_number_of_well_separated_clusters(true_k: int) -> None:
    frame = _clusters(true_k, 900, seed=true_k)
    generator = GaussianMixtureGenerator(device="cpu", numeric_scale="standard", max_components=8)
    generator.fit(frame, infer_schema(frame), seed=0)
    assert generator.n_components_ == true_k, generator.bic_
    assert len(generator.bic_) > 2  # a real choice among several candidates


def _latent_classes(rows: int, seed: int) -> pd.DataFrame:
    """A hidden class drives a categorical, a numeric and the numeric's missingness."""
    rng = np.random.default_rng(seed)
    hidden = rng.choice(3, size=rows, p=[0.5, 0.3, 0.2])
    kind = np.array(["basic", "plus", "premium"])[
        np.where(rng.random(rows) < 0.9, hidden, rng.integers(3, size=rows))
    ]
    spend = np.array([20.0, 60.0, 150.0])[hidden] * rng.lognormal(0.0, 0.2, rows)
    visits = rng.poisson(np.array([2.0, 5.0, 9.0])[hidden]).astype(float)
    visits[rng.random(rows) < np.array([0.02, 0.1, 0.3])[hidden]] = np.nan
    return normalize_dtypes(
        pd.DataFrame(
            {
                "kind": pd.array(kind, dtype="string"),
                "spend": spend,
                "visits": pd.array(visits, dtype="Float64").astype("Int64"),
            }
        )
    )


def _group_means(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby("kind")["spend"].mean()


def _missing_shares(frame: pd.DataFrame) -> pd.Series:
    return frame["visits"].isna().groupby(frame["kind"]).mean()


def test_a_categorical_numeric_dependency_is_reproduced() -> None:
    rows = 3000
    real = _latent_classes(rows, seed=1)
    generator = GaussianMixtureGenerator(device="cpu", max_components=8)
    generator.fit(real, infer_schema(real), seed=0)
    sample = generator.sample(rows, seed=2)

    # Tolerance from the data: how much the same statistics vary between two real tables
    # of this size (fresh draws of the generating process), times 4.
    fresh = [_latent_classes(rows, seed=s) for s in range(10, 30)]
    mean_tol = 4 * np.sqrt(2) * pd.concat([_group_means(f) for f in fresh], axis=1).std(axis=1)
    share_tol = 4 * np.sqrt(2) * pd.concat([_missing_shares(f) for f in fresh], axis=1).std(axis=1)

    real_means, synthetic_means = _group_means(real), _group_means(sample)
    assert real_means.max() > 2 * real_means.min()  # precondition: a strong dependency
    for kind, mean in real_means.items():
        assert abs(synthetic_means[kind] - mean) <= mean_tol[kind], (kind, synthetic_means, mean)
    # Missingness depends on the class too, and follows it.
    real_shares, synthetic_shares = _missing_shares(real), _missing_shares(sample)
    for kind, share in real_shares.items():
        assert abs(synthetic_shares[kind] - share) <= share_tol[kind], (kind, synthetic_shares)


def test_category_shares_are_exact_up_to_the_smoothing(mixed_frame_shared, mixed_schema) -> None:
    """After an M-step the mixture's category shares are the real shares, moved only by the
    Dirichlet pseudo-counts: by at most K * smoothing * categories / rows."""
    frame = mixed_frame_shared.drop(columns=["customer_id"])
    schema = infer_schema(frame)
    generator = GaussianMixtureGenerator(device="cpu", max_components=8)
    generator.fit(frame, schema, seed=0)
    n = 20_000
    sample = generator.sample(n, seed=1)
    real = frame["region"].fillna("<NA>").value_counts(normalize=True)
    synthetic = sample["region"].fillna("<NA>").value_counts(normalize=True)
    bias = generator.n_components_ * 0.1 * len(real) / len(frame)
    for level, p in real.items():
        tolerance = 4 * math.sqrt(p * (1 - p) / n) + bias
        assert abs(synthetic.get(level, 0.0) - p) <= tolerance, (level, p, synthetic.get(level))


def test_m_step_keeps_category_shares_exactly_without_smoothing() -> None:
    rng = np.random.default_rng(0)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(rng.integers(4, size=500)), 4).double()
    data = MixtureData(
        numbers=torch.zeros(500, 0, dtype=torch.float64),
        observed=torch.zeros(500, 0, dtype=torch.float64),
        onehot=onehot,
        part_of=torch.zeros(4, dtype=torch.long),
        n_parts=1,
    )
    resp = torch.softmax(torch.as_tensor(rng.normal(size=(500, 5))), dim=1)
    mixture = m_step(data, resp, variance_floor=1e-3, smoothing=0.0)
    shares = mixture.weights @ mixture.log_probs.exp()
    torch.testing.assert_close(shares, onehot.mean(0))


def test_constant_columns_come_back_constant() -> None:
    rng = np.random.default_rng(3)
    frame = normalize_dtypes(
        pd.DataFrame(
            {
                "x": rng.normal(size=300),
                "fixed": np.full(300, 7),
                "label": pd.array(["only"] * 300, dtype="string"),
                "flag": pd.array([True] * 300, dtype="boolean"),
            }
        )
    )
    generator = GaussianMixtureGenerator(device="cpu", max_components=4)
    sample = generator.fit(frame, infer_schema(frame), seed=0).sample(500, seed=0)
    assert (sample["fixed"] == 7).all()
    assert (sample["label"] == "only").all()
    assert sample["flag"].all()
    assert sample["x"].std() > 0


def test_losses_record_each_iteration_and_bic_covers_the_grid(mixed_frame_shared) -> None:
    frame = mixed_frame_shared.drop(columns=["customer_id"])
    generator = GaussianMixtureGenerator(device="cpu", max_components=4, max_iter=7, tol=1e-12)
    generator.fit(frame, infer_schema(frame), seed=0)
    # max_iter E/M rounds, plus the likelihood of the final mixture.
    assert len(generator.losses_) == 8
    assert all(set(row) == {"neg_log_likelihood"} for row in generator.losses_)
    assert generator.losses_[-1]["neg_log_likelihood"] < generator.losses_[0]["neg_log_likelihood"]
    assert set(generator.bic_) >= {1, 2, 4}
    assert generator.n_components_ == min(generator.bic_, key=generator.bic_.__getitem__)
