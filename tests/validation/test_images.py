"""Image privacy, features and fidelity on scikit-learn's bundled digits (no download)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.data.split import split_holdout
from generators.image.data import images_to_frame
from tests.generators.test_images import digits
from validation.images import (
    frechet_distance,
    image_features,
    image_fidelity_report,
    image_privacy_report,
)
from validation.privacy import PrivacyPolicy


@pytest.fixture(scope="module")
def real():
    """(train, holdout, fresh): three disjoint sets of real digits, labels kept."""
    pixels, labels = digits(1797)
    frame = images_to_frame(pixels, labels)
    train, rest = split_holdout(frame, 0.4, seed=0, target="label")
    holdout, fresh = split_holdout(rest, 0.5, seed=1, target="label")
    return train, holdout, fresh


def test_unseen_real_images_pass_and_copies_fail(real):
    train, holdout, fresh = real
    policy = PrivacyPolicy()
    unseen = image_privacy_report(train, holdout, fresh, policy, seed=0)
    assert unseen.passed, unseen.failures
    assert 0.4 < unseen.metrics["dcr_share"] < 0.6
    copies = image_privacy_report(train, holdout, train.sample(300, random_state=0), policy)
    assert not copies.passed
    text = " ".join(copies.failures)
    assert "DCR share" in text and "near-duplicate share" in text and "exact copy" in text
    assert copies.metrics["exact_copy_share"] == 1.0


def test_lightly_noised_copies_are_near_duplicates(real):
    train, holdout, _ = real
    from generators.image.data import frame_to_pixels

    pixels = frame_to_pixels(train.head(300)).astype(int)
    rng = np.random.default_rng(0)
    noised = np.clip(pixels + rng.integers(-3, 4, pixels.shape), 0, 255).astype(np.uint8)
    report = image_privacy_report(
        train, holdout, images_to_frame(noised, train["label"].head(300)), PrivacyPolicy()
    )
    assert report.metrics["exact_copy_share"] == 0.0
    assert report.metrics["near_duplicate_share"] > 0.9
    assert any("near-duplicate" in line for line in report.failures)


def test_features_describe_each_image_and_flag_corrupt_bytes(real):
    train, _, _ = real
    frame = train.head(5).copy()
    cells = frame["image"].tolist()
    cells[2] = {"bytes": b"not a png", "path": None}
    frame["image"] = cells
    features = image_features(frame)
    assert features["png_valid"].tolist() == [True, True, False, True, True]
    assert features.loc[0, ["height", "width", "channels"]].tolist() == [8, 8, 1]
    assert pd.isna(features.loc[2, "pixel_mean"])
    assert features["label"].tolist() == frame["label"].tolist()


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(4.0, rel=0.01)


def test_fidelity_ranks_real_images_above_noise_and_wrong_labels(real):
    train, holdout, fresh = real
    good = image_fidelity_report(train, holdout, fresh, seed=0, epochs=8)
    noise = images_to_frame(
        np.random.default_rng(0).integers(0, 256, (len(fresh), 8, 8, 1), dtype=np.uint8),
        fresh["label"],
    )
    bad = image_fidelity_report(train, holdout, noise, seed=0, epochs=8)
    shuffled = fresh.copy()
    shuffled["label"] = fresh["label"].sample(frac=1, random_state=0).to_numpy()
    mislabelled = image_fidelity_report(train, holdout, shuffled, seed=0, epochs=8)
    # Real unseen digits sit at the reference distance; noise far beyond it.
    reference = good.metrics["frechet_distance_reference"]
    assert good.metrics["frechet_distance"] < 2 * reference + 1e-9
    assert bad.metrics["frechet_distance"] > 10 * good.metrics["frechet_distance"]
    # The classifier reads real digits (10 classes: chance is 0.1) ...
    assert good.metrics["label_accuracy_synthetic"] > 0.8
    # ... and shuffled labels drop to about chance.
    assert mislabelled.metrics["label_accuracy_synthetic"] < 0.3
    assert not good.blocking
