"""The shared tabular encoder and the torch VAE, including DP-SGD training with Opacus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from generators import make_generator
from generators.base import DPBudget
from generators.data.schema import infer_schema, normalize_dtypes
from generators.errors import ConfigError
from generators.registry import load_generator
from generators.table.encoding import TabularEncoder


def test_encoder_round_trips_categories_and_keeps_numeric_ranks(model_frame_shared, model_schema):
    encoder = TabularEncoder().fit(model_frame_shared, model_schema)
    matrix = encoder.transform(model_frame_shared)
    assert matrix.shape == (len(model_frame_shared), encoder.width)
    # Feed the encoding back as "logits": one-hot * 50 makes the softmax all but certain.
    logits = matrix.copy()
    for span in encoder.spans:
        if span.kind == "categorical":
            logits[:, span.start : span.stop] = matrix[:, span.start : span.stop] * 50 - 25
        if span.kind == "missing":
            logits[:, span.start] = matrix[:, span.start] * 50 - 25
    decoded = encoder.inverse(logits, np.random.default_rng(0))
    region = model_frame_shared["region"].astype(object).where(model_frame_shared["region"].notna())
    assert decoded["region"].equals(pd.Series(region.tolist(), dtype=object))
    assert decoded["age"].isna().equals(model_frame_shared["age"].isna())
    # The quantile map is piecewise linear and inverted exactly; only the clipping of ranks
    # to [1e-6, 1 - 1e-6] and the float32 matrix (rank error < 1e-6) move a value: at most
    # 2e-6 of a rank, times the steepest stretch between knots.
    income = model_frame_shared["income"].astype(float)
    knots = np.asarray(next(c for c in encoder.columns if c["name"] == "income")["knots"])
    bound = 2e-6 * (len(knots) - 1) * np.diff(knots).max()
    assert np.abs(decoded["income"] - income).max() <= bound


def test_vae_learns_category_shares(model_frame_shared, model_schema):
    vae = make_generator(
        "vae", {"epochs": 60, "batch_size": 64, "latent_dim": 8, "hidden_dims": (64,)}, device="cpu"
    )
    synthetic = vae.fit(model_frame_shared, model_schema, seed=0).sample(4000, seed=1)
    real = model_frame_shared["region"].value_counts(normalize=True, dropna=False)
    fake = synthetic["region"].value_counts(normalize=True, dropna=False)
    real, fake = real.align(fake, fill_value=0.0)
    # Sampling error of both shares (400 real rows, 4,000 synthetic), four standard errors,
    # plus 0.05 for what a one-layer model trained for 60 epochs of 400 rows still misses.
    p = real.clip(0.01, 0.99)
    standard_error = np.sqrt(p * (1 - p) / len(model_frame_shared)) + np.sqrt(p * (1 - p) / 4000)
    assert ((fake - real).abs() < 4 * standard_error + 0.05).all()
    losses = [row["loss"] for row in vae.losses_]
    assert losses[-1] < losses[0]


def test_dp_training_spends_at_most_the_budget_and_reports_it(
    model_frame_shared, model_schema, tmp_path
):
    vae = make_generator(
        "vae", {"epochs": 2, "batch_size": 50, "latent_dim": 4, "hidden_dims": (16,)}, device="cpu"
    )
    vae.fit(model_frame_shared, model_schema, seed=0, dp=DPBudget(epsilon=2.0, delta=1e-5))
    assert 0 < vae.epsilon_spent_ <= 2.0 + 1e-6
    epsilons = [row["epsilon"] for row in vae.losses_]
    assert epsilons == sorted(epsilons)  # spent budget only grows, epoch by epoch
    vae.save(tmp_path / "vae")
    loaded = load_generator(tmp_path / "vae")
    assert loaded.epsilon_spent_ == vae.epsilon_spent_
    assert loaded.sample(50, seed=3).equals(vae.sample(50, seed=3))


def test_generators_without_dp_refuse_a_budget(model_frame_shared, model_schema):
    generator = make_generator("gaussian_copula")
    with pytest.raises(ConfigError, match="cannot train under DP-SGD"):
        generator.fit(model_frame_shared, model_schema, dp=DPBudget(epsilon=1.0))


def test_a_failed_fit_leaves_the_generator_unfitted(model_frame_shared, model_schema, monkeypatch):
    from generators.errors import NotFittedError
    from generators.table.vae import TabularVAEGenerator

    def broken(self, data):
        raise RuntimeError("out of memory")

    vae = make_generator("vae", {"epochs": 1}, device="cpu")
    monkeypatch.setattr(TabularVAEGenerator, "_fit", broken)
    with pytest.raises(RuntimeError):
        vae.fit(model_frame_shared, model_schema)
    with pytest.raises(NotFittedError):
        vae.sample(5, seed=0)


TINY = {"epochs": 30, "batch_size": 64, "latent_dim": 8, "hidden_dims": (32,)}


def test_the_latent_mixture_has_at_most_one_component_per_100_rows(
    model_frame_shared, model_schema
):
    vae = make_generator("vae", TINY, device="cpu").fit(model_frame_shared, model_schema, seed=0)
    weights = vae.model_.prior_weights
    used = int((weights > 0).sum())
    assert 1 <= used <= len(model_frame_shared) // 100
    assert float(weights.sum()) == pytest.approx(1.0)
    # Each kept component holds at least 10 rows' weight; unused ones are N(0, I) with 0.
    assert float(weights[weights > 0].min()) * len(model_frame_shared) >= 10
    # The mixture sits where the posterior means are, not at N(0, I)'s origin and scale.
    assert not torch.allclose(vae.model_.prior_scales[:used], torch.ones(1))
    # Training held out a validation split, and the best epoch's weights were kept.
    assert all(set(epoch) == {"loss", "validation"} for epoch in vae.losses_)


def test_under_dp_the_prior_stays_standard_normal_and_nothing_is_held_out(
    model_frame_shared, model_schema
):
    vae = make_generator("vae", {**TINY, "epochs": 2}, device="cpu")
    vae.fit(model_frame_shared, model_schema, seed=0, dp=DPBudget(epsilon=2.0))
    assert torch.equal(vae.model_.prior_means, torch.zeros_like(vae.model_.prior_means))
    assert torch.equal(vae.model_.prior_scales, torch.ones_like(vae.model_.prior_scales))
    assert all(set(epoch) == {"epsilon"} for epoch in vae.losses_)


def test_a_point_mass_keeps_its_exact_value_and_about_its_share():
    """60% of `gain` is exactly 0: spread over its quantile interval for training, it decodes
    back to exactly 0, and at about its real share (no invented small gains)."""
    rng = np.random.default_rng(4)
    rows = 1000
    gain = np.where(rng.random(rows) < 0.6, 0, np.round(rng.lognormal(8, 1, rows)))
    frame = normalize_dtypes(
        pd.DataFrame(
            {
                "gain": pd.array(gain.astype(np.int64), dtype="Int64"),
                "group": pd.array(rng.choice(["a", "b"], rows), dtype="string"),
            }
        )
    )
    vae = make_generator("vae", {**TINY, "epochs": 60}, device="cpu")
    sample = vae.fit(frame, infer_schema(frame), seed=1).sample(4000, seed=2)
    synthetic = sample["gain"].astype(float)
    real_share = float((frame["gain"] == 0).mean())
    # Sampling noise of both shares (four standard errors), plus 0.05 for a small model.
    noise = 4 * np.sqrt(real_share * (1 - real_share) * (1 / rows + 1 / 4000))
    assert abs(float((synthetic == 0).mean()) - real_share) <= noise + 0.05
    # No spread of small gains around the spike: a sample between 0 and the real rows'
    # smallest positive value can only come from the one interpolated knot step after the
    # tie, a sliver of the rank scale.
    positive = frame["gain"][frame["gain"] > 0].astype(float)
    assert float(((synthetic > 0) & (synthetic < positive.min())).mean()) <= 0.01


def test_a_normal_prior_is_available_and_round_trips(model_frame_shared, model_schema, tmp_path):
    vae = make_generator("vae", {**TINY, "epochs": 3, "latent_prior": "normal"}, device="cpu")
    vae.fit(model_frame_shared, model_schema, seed=0)
    assert torch.equal(vae.model_.prior_scales, torch.ones_like(vae.model_.prior_scales))
    vae.save(tmp_path / "vae")
    loaded = load_generator(tmp_path / "vae")
    pd.testing.assert_frame_equal(loaded.sample(60, seed=4), vae.sample(60, seed=4))
