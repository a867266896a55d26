"""Privacy, expectations and fidelity for image tables (see generators.image.data for the contract).

- `image_privacy_report`: nearest-neighbour distances on pixels (root-mean-square pixel
  difference in [0, 1]), as `validation.privacy` does for rows: the DCR share, a
  distance-based membership AUC, the exact-copy share against the holdout's own, and a
  near-duplicate share: synthetic images closer to a training image than the
  `near_duplicate_quantile` of holdout->train nearest distances (so real unseen images
  score that quantile by construction).
- `image_features`: one row of descriptive figures per image (shape, PNG validity, pixel
  mean and standard deviation, label), on which the flow builds the Great Expectations
  suite with `validation.expectations`, as for any table.
- `image_fidelity_report`: a Fréchet distance on the features of a small classifier trained
  here on the real training images (no pretrained Inception weights can be downloaded, so
  this is not FID and its scale is not comparable across datasets; the reference is the
  holdout's own distance), and label consistency: the accuracy of that classifier on
  conditional samples against its accuracy on the holdout. Without labels, the features
  are a PCA of the training pixels and there is no label consistency.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from generators.errors import DataError
from generators.image.data import IMAGE_COLUMN, LABEL_COLUMN, decode_image, frame_to_pixels
from validation.distance import nearest_neighbors
from validation.privacy import (
    Z95,
    PrivacyPolicy,
    auc_ci_low,
    judge_distance_figures,
    share_interval,
    subsample,
    wilson_upper,
)
from validation.report import Report

MIN_IMAGES = 10
FEATURE_DIM = 64
PCA_COMPONENTS = 32


def _vectors(frame: pd.DataFrame) -> np.ndarray:
    """Pixels as float32 rows (N, H*W*C) in [0, 1]."""
    pixels = frame_to_pixels(frame)
    return pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0


def image_privacy_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    policy: PrivacyPolicy,
    *,
    seed: int = 0,
) -> Report:
    """Memorisation checks of synthetic images against the real holdout; the privacy gate."""
    for label, frame in (("training", train), ("holdout", holdout), ("synthetic", synthetic)):
        if len(frame) < MIN_IMAGES:
            raise DataError(
                f"the {label} set has {len(frame)} images; privacy checks need at least "
                f"{MIN_IMAGES} (use more data or a larger data.holdout_fraction)"
            )
    rng = np.random.default_rng(seed)
    size = min(len(train), len(holdout), policy.max_rows)
    x_train = _vectors(subsample(train, size, rng))
    # Copies and near-copies are searched among all training images (up to max_rows), not
    # only the equal-size sample the DCR share needs.
    x_train_all = _vectors(subsample(train, policy.max_rows, rng))
    x_holdout = _vectors(subsample(holdout, size, rng))
    x_synthetic = _vectors(subsample(synthetic, min(len(synthetic), policy.max_rows), rng))
    if x_synthetic.shape[1] != x_train.shape[1]:
        raise DataError(
            f"synthetic images have {x_synthetic.shape[1]} values each but real ones "
            f"{x_train.shape[1]}: the generator changed the image shape"
        )
    dims = x_train.shape[1]
    syn_train, _ = nearest_neighbors(x_synthetic, x_train, 1, n_columns=dims)
    syn_holdout, _ = nearest_neighbors(x_synthetic, x_holdout, 1, n_columns=dims)
    syn_train_all, _ = nearest_neighbors(x_synthetic, x_train_all, 1, n_columns=dims)
    holdout_train_all, _ = nearest_neighbors(x_holdout, x_train_all, 1, n_columns=dims)
    closer = (syn_train[:, 0] < syn_holdout[:, 0]).mean()
    ties = (syn_train[:, 0] == syn_holdout[:, 0]).mean()
    dcr_share = float(closer + 0.5 * ties)
    n_effective = min(len(x_synthetic), size)
    dcr_low, dcr_high = share_interval(dcr_share, n_effective, "wald")

    train_syn, _ = nearest_neighbors(x_train, x_synthetic, 1, n_columns=dims)
    holdout_syn, _ = nearest_neighbors(x_holdout, x_synthetic, 1, n_columns=dims)
    members = np.r_[np.ones(len(x_train)), np.zeros(len(x_holdout))]
    membership_auc = float(roc_auc_score(members, -np.r_[train_syn[:, 0], holdout_syn[:, 0]]))

    threshold = float(np.quantile(holdout_train_all[:, 0], policy.near_duplicate_quantile))
    near_share = float((syn_train_all[:, 0] <= threshold).mean())
    copies = float((syn_train_all[:, 0] == 0).mean())
    copies_holdout = float((holdout_train_all[:, 0] == 0).mean())
    metrics = {
        "dcr_share": dcr_share,
        "dcr_share_ci_low": dcr_low,
        "dcr_share_ci_high": dcr_high,
        "membership_auc": membership_auc,
        "near_duplicate_share": near_share,
        "near_duplicate_threshold": threshold,
        "exact_copy_share": copies,
        "exact_copy_share_holdout": copies_holdout,
        "dcr_train_median": float(np.median(syn_train[:, 0])),
        "dcr_holdout_median": float(np.median(syn_holdout[:, 0])),
    }
    metrics["membership_auc_ci_low"] = auc_ci_low(membership_auc, size, size)
    failures = judge_distance_figures(
        metrics,
        policy,
        closer="synthetic images sit closer to training images than to unseen real ones",
        tells="the synthetic images tell training images from unseen ones",
    )
    # Unseen real images fall under the threshold at the quantile's rate; more synthetic
    # ones than the policy allows, significantly, means near-copies.
    near_low = near_share - Z95 * math.sqrt(max(near_share * (1 - near_share), 1e-12) / n_effective)
    if near_share > policy.near_duplicate_share_max and near_low > policy.near_duplicate_quantile:
        failures.append(
            f"near-duplicate share {near_share:.3f} > {policy.near_duplicate_share_max}: "
            f"synthetic images lie within {threshold:.4f} (RMS pixel difference) of a training "
            f"image, closer than {1 - policy.near_duplicate_quantile:.0%} of unseen real images"
        )
    copy_bound = wilson_upper(copies_holdout, len(x_holdout))
    if policy.ims_check and copies > copy_bound:
        failures.append(
            f"exact copy share {copies:.4f} > {copy_bound:.4f} (the holdout's 95% upper "
            "bound): the synthetic set repeats training images"
        )
    details = {
        "distance": "root-mean-square pixel difference, pixels scaled to [0, 1]",
        "sample_sizes": {
            "train": size,
            "train_for_copies": len(x_train_all),
            "holdout": size,
            "synthetic": len(x_synthetic),
        },
    }
    return Report("privacy", not failures, metrics, details, failures)


def image_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Per image: height, width, channels (decoded, not the table's claim), png_valid,
    pixel_mean and pixel_std (0-255), and label when the table has one."""
    rows = []
    for position, cell in enumerate(frame[IMAGE_COLUMN]):
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        try:
            pixels = decode_image(bytes(data), f"row {position}")
        except (DataError, TypeError):
            rows.append((pd.NA, pd.NA, pd.NA, False, np.nan, np.nan))
            continue
        values = pixels.astype(np.float64)
        rows.append((*pixels.shape, True, values.mean(), values.std()))
    out = pd.DataFrame(
        rows, columns=["height", "width", "channels", "png_valid", "pixel_mean", "pixel_std"]
    )
    for name in ("height", "width", "channels"):
        out[name] = out[name].astype("Int64")
    out["png_valid"] = out["png_valid"].astype("boolean")
    for name in ("pixel_mean", "pixel_std"):
        out[name] = out[name].astype("Float64")
    if LABEL_COLUMN in frame.columns:
        out[LABEL_COLUMN] = frame[LABEL_COLUMN].astype("string").reset_index(drop=True)
    return out


# -- fidelity ----------------------------------------------------------------------------
class _SmallClassifier(nn.Module):
    """Two strided convolutions and a FEATURE_DIM-wide layer: features for the Fréchet
    distance, logits for label consistency."""

    def __init__(self, channels: int, height: int, width: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.body(torch.zeros(1, channels, height, width)).shape[1]
        self.features = nn.Sequential(nn.Linear(flat, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(self.body(x))
        return features, self.head(features)


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)


def _train_classifier(
    images: torch.Tensor, labels: torch.Tensor, classes: int, seed: int, epochs: int
) -> _SmallClassifier:
    torch.manual_seed(seed)
    model = _SmallClassifier(images.shape[1], images.shape[2], images.shape[3], classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 128):
            batch = order[start : start + 128]
            loss = nn.functional.cross_entropy(model(images[batch])[1], labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows a and b."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(A B) = tr sqrt(A^1/2 B A^1/2), whose argument is symmetric PSD: eigh is stable
    # where sqrtm of A B is not (dead ReLU features give singular covariances).
    half_a = _psd_sqrt(cov_a)
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(half_a @ cov_b @ half_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def image_fidelity_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    seed: int = 0,
    max_rows: int = 5000,
    epochs: int = 3,
) -> Report:
    """Fréchet distance (synthetic vs holdout, against train vs holdout as the reference)
    and label consistency. Informational: never blocks a run."""
    rng = np.random.default_rng(seed)
    train_s = subsample(train, max_rows, rng)
    holdout_s = subsample(holdout, max_rows, rng)
    synthetic_s = subsample(synthetic, max_rows, rng)
    x_train, x_holdout, x_synthetic = (
        _tensor(frame_to_pixels(f)) for f in (train_s, holdout_s, synthetic_s)
    )
    metrics: dict[str, float] = {}
    details: dict = {}
    labelled = LABEL_COLUMN in train.columns and train[LABEL_COLUMN].nunique() > 1
    if labelled:
        names = sorted(train_s[LABEL_COLUMN].dropna().astype(str).unique())
        codes = {name: i for i, name in enumerate(names)}

        def encode(frame: pd.DataFrame) -> torch.Tensor:
            return torch.tensor(
                [codes.get(str(v), -1) for v in frame[LABEL_COLUMN]], dtype=torch.long
            )

        y_train = encode(train_s)
        known = y_train >= 0
        model = _train_classifier(x_train[known], y_train[known], len(names), seed, epochs)
        with torch.no_grad():
            outputs = {
                key: model(x)
                for key, x in (
                    ("train", x_train),
                    ("holdout", x_holdout),
                    ("synthetic", x_synthetic),
                )
            }
        features = {key: value[0].numpy().astype(np.float64) for key, value in outputs.items()}
        for key, frame in (("holdout", holdout_s), ("synthetic", synthetic_s)):
            truth = encode(frame)
            predicted = outputs[key][1].argmax(1)
            metrics[f"label_accuracy_{key}"] = float((predicted == truth).float().mean())
        details["features"] = f"a small CNN classifier trained here ({epochs} epochs)"
    else:
        flat = x_train.reshape(len(x_train), -1).numpy().astype(np.float64)
        mean = flat.mean(0)
        _, _, components = np.linalg.svd(flat - mean, full_matrices=False)
        basis = components[:PCA_COMPONENTS].T
        features = {
            key: (x.reshape(len(x), -1).numpy().astype(np.float64) - mean) @ basis
            for key, x in (("train", x_train), ("holdout", x_holdout), ("synthetic", x_synthetic))
        }
        details["features"] = f"PCA of training pixels ({PCA_COMPONENTS} components; no labels)"
    size = min(len(features["train"]), len(features["synthetic"]))
    metrics["frechet_distance"] = frechet_distance(features["synthetic"], features["holdout"])
    # The reference: real training images (as many as synthetic ones) against the holdout.
    metrics["frechet_distance_reference"] = frechet_distance(
        features["train"][:size], features["holdout"]
    )
    metrics["pixel_mean_difference"] = float(
        abs(x_synthetic.mean().item() - x_holdout.mean().item())
    )
    details["note"] = (
        "not FID: no pretrained Inception weights can be downloaded here; compare "
        "frechet_distance with frechet_distance_reference from the same run"
    )
    return Report("fidelity", True, metrics, details, blocking=False)
