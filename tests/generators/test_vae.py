"""The shared tabular encoder and the torch VAE, including DP-SGD training with Opacus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators import make_generator
from generators.base import DPBudget
from generators.encoding import TabularEncoder
from generators.errors import ConfigError
from generators.registry import load_generator


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
    from generators.vae import TabularVAEGenerator

    def broken(self, data):
        raise RuntimeError("out of memory")

    vae = make_generator("vae", {"epochs": 1}, device="cpu")
    monkeypatch.setattr(TabularVAEGenerator, "_fit", broken)
    with pytest.raises(RuntimeError):
        vae.fit(model_frame_shared, model_schema)
    with pytest.raises(NotFittedError):
        vae.sample(5, seed=0)
