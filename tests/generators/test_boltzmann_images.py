"""Image RBM, DBN and DBM: the image table contract, seeded reproducibility, save/load,
labels honoured through clamped label units, PLL improving, and scikit-learn's
BernoulliRBM as the oracle on binarised MNIST."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from generators.image.boltzmann import ImageDBMGenerator, ImageDBNGenerator, ImageRBMGenerator
from generators.image.data import (
    ImageSettings,
    frame_to_pixels,
    image_schema,
    images_to_frame,
    read_images,
)
from generators.models.boltzmann import RBM, VisibleLayout

# Small enough for a 2-core CPU: all of scikit-learn's 1,797 8x8 digits, a few seconds a fit.
_SAMPLING = {"device": "cpu", "n_chains": 200, "burn_in": 200, "thinning": 5}
MODELS = {
    "rbm": (ImageRBMGenerator, {"n_hidden": 64, "epochs": 20, "batch_size": 20}),
    "rbm_gaussian": (
        ImageRBMGenerator,
        {"n_hidden": 64, "epochs": 20, "batch_size": 20, "pixels": "gaussian"},
    ),
    "dbn": (ImageDBNGenerator, {"hidden_sizes": (64, 32), "epochs": 20, "batch_size": 20}),
    "dbm": (
        ImageDBMGenerator,
        {"hidden_sizes": (64, 32), "epochs": 10, "pretrain_epochs": 10, "batch_size": 20},
    ),
}
N_SAMPLES = 500


def all_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as uint8 (N, 8, 8, 1) and their labels (no download)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.clip(data.images * 16, 0, 255).astype(np.uint8)[..., None], data.target


@pytest.fixture(scope="module")
def digit_table() -> pd.DataFrame:
    return images_to_frame(*all_digits())


@pytest.fixture(scope="module")
def fitted(digit_table) -> dict:
    """Each model fitted once on the labelled digits (seed 0), with a sample (seed 1)."""
    schema = image_schema(digit_table)
    out = {}
    for key, (cls, params) in MODELS.items():
        generator = cls(**_SAMPLING, **params).fit(digit_table, schema, seed=0)
        out[key] = (generator, generator.sample(N_SAMPLES, seed=1))
    return out


@pytest.fixture(scope="module")
def classifier() -> tuple[LogisticRegression, float]:
    """A digit classifier on real digits and its accuracy on real digits it never saw."""
    pixels, labels = all_digits()
    flat = pixels.reshape(len(pixels), -1) / 255.0
    model = LogisticRegression(max_iter=2000).fit(flat[:1200], labels[:1200])
    return model, float(model.score(flat[1200:], labels[1200:]))


@pytest.mark.parametrize("key", list(MODELS))
def test_samples_keep_the_image_table_contract(key, fitted, digit_table) -> None:
    generator, sample = fitted[key]
    schema = image_schema(digit_table)
    assert list(sample.columns) == list(digit_table.columns)
    assert sample.dtypes.to_dict() == digit_table.dtypes.to_dict()
    assert len(sample) == N_SAMPLES
    assert frame_to_pixels(sample).shape == (N_SAMPLES, 8, 8, 1)
    assert (sample[["height", "width", "channels"]] == [8, 8, 1]).all().all()
    assert set(sample["label"]) <= set(schema["label"].categories)
    assert generator.n_classes == 10


def test_unlabelled_images_and_seeded_reproducibility(digit_table) -> None:
    table = digit_table.drop(columns="label")
    schema = image_schema(table)
    params = {**_SAMPLING, "n_hidden": 16, "epochs": 2}
    first = ImageRBMGenerator(**params).fit(table, schema, seed=3)
    again = ImageRBMGenerator(**params).fit(table, schema, seed=3)
    assert torch.equal(first.rbm_.weight, again.rbm_.weight)
    assert first.losses_ == again.losses_
    sample = first.sample(50, seed=4)
    assert list(sample.columns) == ["image", "height", "width", "channels"]
    pd.testing.assert_frame_equal(sample, again.sample(50, seed=4))
    assert not sample.equals(first.sample(50, seed=5))


@pytest.mark.parametrize("key", list(MODELS))
def test_save_and_load_give_the_same_samples(key, fitted, tmp_path) -> None:
    generator, _ = fitted[key]
    generator.save(tmp_path)
    loaded = type(generator).load(tmp_path)
    assert loaded.losses_ == generator.losses_
    pd.testing.assert_frame_equal(loaded.sample(60, seed=7), generator.sample(60, seed=7))


@pytest.mark.parametrize("key", list(MODELS))
def test_samples_honour_the_label(key, fitted, classifier) -> None:
    """A classifier trained on real digits reads the asked-for label off the samples.

    If the samples ignored their labels, the share classified as their own label would be
    sum_k q_k r_k <= max_k q_k = p0 (q: the asked-for labels' shares, r: the predictions'),
    so anything above p0 + 5 binomial standard errors is no accident. Binary models must
    also reach half the classifier's accuracy on real digits: recognisably the digit.
    """
    generator, sample = fitted[key]
    model, real_accuracy = classifier
    pixels = frame_to_pixels(sample).reshape(len(sample), -1) / 255.0
    asked = sample["label"].astype(int).to_numpy()
    accuracy = float((model.predict(pixels) == asked).mean())
    p0 = float(np.bincount(asked).max() / len(asked))
    assert accuracy > p0 + 5 * math.sqrt(p0 * (1 - p0) / len(asked)), (accuracy, p0)
    if generator.params.pixels == "binary":
        assert accuracy >= 0.5 * real_accuracy, (accuracy, real_accuracy)


@pytest.mark.parametrize("key", list(MODELS))
def test_losses_are_reported_per_epoch_and_the_pll_improves(key, fitted) -> None:
    generator, _ = fitted[key]
    losses = pd.DataFrame(generator.losses_)
    assert np.isfinite(losses.fillna(0).to_numpy()).all()
    # The bottom machine's own losses: layer1 of a DBN, the DBM after pre-training.
    prefix = {"dbn": "layer1."}.get(key, "")
    series = losses.filter(regex=f"^{prefix.replace('.', '[.]')}[a-z_]+$").dropna()
    pll = series[f"{prefix}pseudo_log_likelihood"]
    error = series[f"{prefix}reconstruction_error"]
    assert len(series) == generator.params.epochs
    assert pll.iloc[-1] > pll.iloc[0], pll.tolist()
    assert error.iloc[-1] < error.iloc[0], error.tolist()


@pytest.mark.shared_data
def test_pll_at_least_scikit_learns_on_mnist(shared_data) -> None:
    """Our image RBM and scikit-learn's BernoulliRBM with the same hidden units, epochs,
    batch size and learning rate on the same binarised MNIST images, both scored by the
    same exact pseudo-log-likelihood (scikit-learn's `score_samples` flips one random bit
    per image: an unbiased but noisy estimate of it, checked here against the exact one)."""
    from sklearn.neural_network import BernoulliRBM

    folder = shared_data / "mnist_t10k"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    table = read_images(folder, ImageSettings(max_images=1000)).drop(columns="label")
    binary = (frame_to_pixels(table).reshape(len(table), -1) > 127).astype(np.float32)
    settings = {"n_hidden": 32, "epochs": 5, "batch_size": 10, "learning_rate": 0.05}
    ours = ImageRBMGenerator(device="cpu", **settings).fit(table, image_schema(table), seed=0)
    oracle = BernoulliRBM(
        n_components=32, learning_rate=0.05, batch_size=10, n_iter=5, random_state=0
    ).fit(binary)

    data = torch.from_numpy(binary)
    our_pll = ours.rbm_.pseudo_log_likelihood(data).numpy()
    as_ours = RBM(VisibleLayout.binary(784), 32)
    as_ours.weight.copy_(torch.from_numpy(oracle.components_.T.copy()))
    as_ours.visible_bias.copy_(torch.from_numpy(oracle.intercept_visible_))
    as_ours.hidden_bias.copy_(torch.from_numpy(oracle.intercept_hidden_))
    oracle_pll = as_ours.pseudo_log_likelihood(data).numpy()
    # Both means are over the same 1,000 images: 3 standard errors of the per-image
    # difference is what the choice of images alone could move the comparison by.
    tolerance = 3 * (our_pll - oracle_pll).std() / math.sqrt(len(data))
    assert our_pll.mean() >= oracle_pll.mean() - tolerance, (
        our_pll.mean(),
        oracle_pll.mean(),
        tolerance,
    )
    scores = oracle.score_samples(binary)
    assert abs(oracle_pll.mean() - scores.mean()) <= 4 * scores.std() / math.sqrt(len(data))
