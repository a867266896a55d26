"""dcgan, conv_vae and the image gmm on scikit-learn's bundled 8x8 digits (no download).

Each generator is fitted once per module with tiny settings on the first 1,200 digits;
the contract (columns, dtypes, PNG round trip, shapes, labels), seeded reproducibility,
save/load identity and a learning check run against that fit. The learning check uses a
logistic regression trained on the same real digits: conditional samples must be
classified as the label they were drawn for far more often than chance (threshold derived
below), and their mean pixel must lie in a band around the real one.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from generators.errors import DataError, NotFittedError
from generators.image.conv_vae import ConvVAEGenerator
from generators.image.data import IMAGE_COLUMN, frame_to_pixels, image_schema, images_to_frame
from generators.image.dcgan import DCGANGenerator
from generators.image.gmm import ImageGMMGenerator
from generators.models.conv import CanvasPlan
from tests.generators.test_images import digits

TRAIN_ROWS = 1200
SAMPLE_ROWS = 500
# Tiny settings: each fit takes seconds on one CPU thread, yet learns the digits (see
# test_conditional_samples_look_like_their_label for what "learns" means here).
SETTINGS = {
    "gmm": (ImageGMMGenerator, {"pca_components": 20, "mixture_components": 3}),
    "conv_vae": (
        ConvVAEGenerator,
        {"epochs": 15, "width": 16, "likelihood": "gaussian", "snapshot_every": 5},
    ),
    "dcgan": (
        DCGANGenerator,
        {"epochs": 15, "width": 16, "batch_size": 32, "snapshot_every": 5},
    ),
}
# Smaller still, for the tests that must fit more than once.
QUICK = {
    "gmm": {"pca_components": 5, "mixture_components": 2},
    "conv_vae": {"epochs": 2, "width": 4, "batch_size": 32},
    "dcgan": {"epochs": 2, "width": 4, "batch_size": 32},
}
LOSS_KEYS = {
    "gmm": None,
    "conv_vae": {"elbo", "reconstruction", "kl"},
    "dcgan": {"generator", "discriminator"},
}


@pytest.fixture(scope="module")
def real():
    """Train frame and schema, held-out real digits and a classifier of real digits."""
    pixels, labels = digits(1797)
    frame = images_to_frame(pixels[:TRAIN_ROWS], labels[:TRAIN_ROWS])
    flat = pixels.reshape(len(pixels), -1) / 255.0
    classifier = LogisticRegression(max_iter=2000).fit(flat[:TRAIN_ROWS], labels[:TRAIN_ROWS])
    holdout_accuracy = classifier.score(flat[TRAIN_ROWS:], labels[TRAIN_ROWS:])
    return {
        "frame": frame,
        "schema": image_schema(frame),
        "pixels": pixels[:TRAIN_ROWS],
        "labels": labels[:TRAIN_ROWS],
        "classifier": classifier,
        "holdout_accuracy": holdout_accuracy,
    }


@pytest.fixture(scope="module", params=list(SETTINGS))
def fitted(request, real):
    cls, params = SETTINGS[request.param]
    generator = cls(device="cpu", **params).fit(real["frame"], real["schema"], seed=0)
    return request.param, generator


@pytest.fixture(scope="module")
def samples(fitted):
    name, generator = fitted
    return name, generator.sample(SAMPLE_ROWS, seed=11)


def quick(name: str, real, rows: int = 200, seed: int = 0, frame=None):
    cls = SETTINGS[name][0]
    frame = real["frame"].iloc[:rows] if frame is None else frame
    return cls(device="cpu", **QUICK[name]).fit(frame, image_schema(frame), seed=seed)


def image_bytes(frame: pd.DataFrame) -> list[bytes]:
    return [cell["bytes"] for cell in frame[IMAGE_COLUMN]]


# -- contract ----------------------------------------------------------------------------
def test_samples_keep_the_input_columns_and_dtypes(real, samples):
    _, synthetic = samples
    assert list(synthetic.columns) == list(real["frame"].columns)
    assert synthetic.dtypes.to_dict() == real["frame"].dtypes.to_dict()
    assert len(synthetic) == SAMPLE_ROWS
    assert synthetic[["height", "width", "channels"]].drop_duplicates().values.tolist() == [
        [8, 8, 1]
    ]
    assert all(cell["path"] is None for cell in synthetic[IMAGE_COLUMN])


def test_every_sample_decodes_with_the_training_shape_and_round_trips(samples):
    _, synthetic = samples
    pixels = frame_to_pixels(synthetic)
    assert pixels.shape == (SAMPLE_ROWS, 8, 8, 1) and pixels.dtype == np.uint8
    again = images_to_frame(pixels, synthetic["label"].to_numpy())
    assert image_bytes(again) == image_bytes(synthetic)
    assert again["label"].tolist() == synthetic["label"].tolist()


def test_labels_drawn_are_the_training_labels(real, samples):
    _, synthetic = samples
    assert set(synthetic["label"]) == {str(v) for v in real["labels"]}


def test_losses_and_snapshots_are_recorded(fitted):
    name, generator = fitted
    keys = LOSS_KEYS[name]
    if keys is None:
        assert generator.losses_ == []
        return
    params = SETTINGS[name][1]
    assert len(generator.losses_) == params["epochs"]
    assert all(set(epoch) == keys for epoch in generator.losses_)
    assert np.isfinite([v for epoch in generator.losses_ for v in epoch.values()]).all()
    epochs = [epoch for epoch, _ in generator.snapshots_]
    assert epochs == list(range(5, params["epochs"] + 1, 5))
    assert all(grid.shape == (100, 8, 8, 1) for _, grid in generator.snapshots_)


def test_sampling_before_fit_fails():
    for cls, params in SETTINGS.values():
        with pytest.raises(NotFittedError):
            cls(**params).sample(3, seed=0)


# -- seeds, save and load ---------------------------------------------------------------
@pytest.mark.parametrize("name", list(SETTINGS))
def test_same_seed_same_bytes_other_seed_other_images(name, real):
    first = quick(name, real, seed=3)
    second = quick(name, real, seed=3)
    assert image_bytes(first.sample(30, seed=5)) == image_bytes(second.sample(30, seed=5))
    assert image_bytes(first.sample(30, seed=5)) != image_bytes(first.sample(30, seed=6))
    if name != "gmm":  # the gmm's fit seed only starts EM, which may find the same optimum
        other = quick(name, real, seed=4)
        assert image_bytes(other.sample(30, seed=5)) != image_bytes(first.sample(30, seed=5))


def test_save_and_load_give_identical_samples(fitted, tmp_path):
    name, generator = fitted
    generator.save(tmp_path / name)
    loaded = type(generator).load(tmp_path / name)
    before, after = generator.sample(64, seed=9), loaded.sample(64, seed=9)
    assert image_bytes(before) == image_bytes(after)
    assert before["label"].tolist() == after["label"].tolist()
    assert loaded.losses_ == generator.losses_
    # State files are tensors, arrays and JSON: nothing in the folder is a pickle.
    assert not [p for p in (tmp_path / name).iterdir() if p.suffix in (".pkl", ".pickle")]


@pytest.mark.parametrize("name", ["dcgan", "conv_vae"])
def test_a_model_saved_for_cuda_loads_and_samples_on_a_cpu(name, real, tmp_path, monkeypatch):
    generator = quick(name, real, rows=64)
    generator.save(tmp_path)
    meta = json.loads((tmp_path / "generator.json").read_text())
    (tmp_path / "generator.json").write_text(json.dumps({**meta, "device": "cuda"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = type(generator).load(tmp_path)
    assert image_bytes(loaded.sample(8, seed=1)) == image_bytes(generator.sample(8, seed=1))


# -- other shapes and no labels ----------------------------------------------------------
@pytest.mark.parametrize("name", list(SETTINGS))
def test_unlabelled_rgb_images_of_odd_size(name):
    rng = np.random.default_rng(0)
    # 5 x 11 RGB: neither side a multiple of 4, so the networks pad and crop.
    pixels = (rng.random((48, 5, 11, 3)) * 255).astype(np.uint8)
    pixels[:, :, :5] //= 4  # a darker left part the models can pick up
    frame = images_to_frame(pixels)
    generator = SETTINGS[name][0](device="cpu", **QUICK[name]).fit(
        frame, image_schema(frame), seed=0
    )
    synthetic = generator.sample(7, seed=0)
    assert list(synthetic.columns) == ["image", "height", "width", "channels"]
    assert frame_to_pixels(synthetic).shape == (7, 5, 11, 3)


def test_canvas_plan_covers_any_size():
    for side in (1, 3, 8, 13, 28, 32, 64, 100):
        plan = CanvasPlan.for_shape((side, side + 3, 1))
        canvas_h, canvas_w = plan.canvas
        assert canvas_h >= side and canvas_w >= side + 3
        assert canvas_h % plan.scale == 0 and canvas_w % plan.scale == 0
        images = torch.rand(2, 1, side, side + 3)
        assert torch.equal(plan.crop(plan.pad(images)), images)
    assert CanvasPlan.for_shape((28, 28, 1)).coarse == (7, 7)  # MNIST: 7 -> 14 -> 28


def test_a_single_image_is_refused_by_the_networks():
    frame = images_to_frame(np.zeros((1, 8, 8, 1), np.uint8))
    for cls in (DCGANGenerator, ConvVAEGenerator):
        with pytest.raises(DataError, match="at least 2 training images"):
            cls(device="cpu", epochs=1).fit(frame, image_schema(frame))


# -- learning ---------------------------------------------------------------------------
def label_accuracy(real, synthetic: pd.DataFrame) -> float:
    """Share of samples the classifier of real digits assigns the label drawn for them."""
    flat = frame_to_pixels(synthetic).reshape(len(synthetic), -1) / 255.0
    predicted = real["classifier"].predict(flat).astype(str)
    return float((predicted == synthetic["label"].to_numpy(dtype=str)).mean())


def accuracy_threshold(real) -> float:
    """Halfway from chance to the classifier's accuracy on held-out real digits.

    Chance is the largest class share (about 0.10); the ceiling, the accuracy on held-out
    real digits, is about 0.92. A generator that ignored the label, or drew noise, would
    score near chance: with 500 samples the binomial standard deviation there is about
    0.013, so the threshold (about 0.51) is more than 30 standard deviations above it,
    and still asks for samples at least half as recognisable as real digits.
    """
    chance = np.bincount(real["labels"]).max() / len(real["labels"])
    return (chance + real["holdout_accuracy"]) / 2


def test_conditional_samples_look_like_their_label(real, samples):
    """A classifier of real digits recognises the label each sample was drawn for."""
    name, synthetic = samples
    accuracy, threshold = label_accuracy(real, synthetic), accuracy_threshold(real)
    assert accuracy > threshold, f"{name}: accuracy {accuracy:.3f} <= {threshold:.3f}"


def test_pixel_mean_is_near_the_real_mean(real, samples):
    """Tolerance: 4 standard errors of a mean of 500 real images' means (sampling noise)
    plus 10% of the real mean (the model error we accept from tiny settings)."""
    name, synthetic = samples
    real_means = real["pixels"].reshape(len(real["pixels"]), -1).mean(1) / 255.0
    tolerance = 4 * real_means.std() / np.sqrt(SAMPLE_ROWS) + 0.1 * real_means.mean()
    synthetic_mean = frame_to_pixels(synthetic).mean() / 255.0
    assert abs(synthetic_mean - real_means.mean()) < tolerance, name
    # ... and the samples are not one image repeated: pixels vary across samples.
    assert frame_to_pixels(synthetic).reshape(SAMPLE_ROWS, -1).std(0).mean() > 10


# -- GPU ---------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(SETTINGS))
def test_fits_and_samples_on_cuda_with_mixed_precision(name, real, tmp_path):
    cls, params = SETTINGS[name]
    generator = cls(device="cuda", **params).fit(real["frame"], real["schema"], seed=0)
    synthetic = generator.sample(SAMPLE_ROWS, seed=1)
    assert frame_to_pixels(synthetic).shape == (SAMPLE_ROWS, 8, 8, 1)
    accuracy, threshold = label_accuracy(real, synthetic), accuracy_threshold(real)
    assert accuracy > threshold, f"{name} on CUDA: accuracy {accuracy:.3f} <= {threshold:.3f}"
    generator.save(tmp_path)
    loaded = cls.load(tmp_path)
    assert frame_to_pixels(loaded.sample(16, seed=2)).shape == (16, 8, 8, 1)
