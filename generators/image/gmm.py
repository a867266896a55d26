"""The simple baseline for images: PCA, then a Gaussian mixture per class.

Images (N, C, H, W) are flattened to N x D pixels and projected on their first
`pca_components` principal components (scikit-learn's PCA); a Gaussian mixture (scikit-
learn's GaussianMixture, `mixture_components` components, fewer for a class with few
images) is fitted on the scores of each class when the data has labels, or on all of them
when it has none, so a sample of a given label comes from that label's own mixture.
Sampling draws a component, a Gaussian score, decodes it through the PCA basis and clips
the pixels to [0, 1].

State is arrays and JSON (an .npz read with allow_pickle=False), never a pickle. Sampling
is seeded by torch's global generator (drawn on the CPU) and runs on the sampling device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from generators.base import Params
from generators.image.base import ImageGenerator
from generators.models.conv import SAMPLE_BATCH, sampling_device

ARRAYS_FILE = "image_gmm.npz"
STATE_FILE = "image_gmm.json"
MIN_IMAGES_PER_COMPONENT = 20  # a class with fewer images per component gets fewer


class ImageGMMParams(Params):
    # 40 components keep about 80% of MNIST's pixel variance; 10 full-covariance
    # components per class fit in about 6 s on t10k (one thread of a loaded 2-core CPU)
    # and a classifier of real digits gives 94% of samples the label drawn for them.
    pca_components: int = Field(40, ge=1)
    # Per class, at most images / 20. 5, not more: on MNIST t10k (8,000 training images) 10
    # components per class fail the privacy gate (DCR share 0.553, 95% CI above 0.5), 5
    # pass it (0.519), as do 3 (0.530) and diagonal covariances (0.516).
    mixture_components: int = Field(5, ge=1)
    covariance_type: Literal["full", "diag", "tied", "spherical"] = "full"
    reg_covar: float = Field(1e-3, gt=0)  # added to covariance diagonals (in PCA units)
    max_iter: int = Field(200, ge=1)
    n_init: int = Field(1, ge=1)


class ImageGMMGenerator(ImageGenerator):
    """PCA plus a Gaussian mixture per class; see the module docstring."""

    name = "gmm"
    modality: ClassVar[str] = "image"
    Params = ImageGMMParams

    def _fit_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        params: ImageGMMParams = self.params  # type: ignore[assignment]
        pixels = images.flatten(1).double().numpy()  # (N, D), D = C * H * W
        n, width = pixels.shape
        k = min(params.pca_components, width, n)
        # Seeds for scikit-learn from NumPy's global RNG, which fit has seeded.
        pca = PCA(n_components=k, random_state=int(np.random.randint(2**31)))
        scores = pca.fit_transform(pixels)  # (N, k)
        codes = labels.numpy() if labels is not None else np.zeros(n, dtype=np.int64)
        classes = max(self.n_classes, 1)
        weights, means, cholesky, component_class = [], [], [], []
        for label in range(classes):
            rows = scores[codes == label]
            m = max(1, min(params.mixture_components, len(rows) // MIN_IMAGES_PER_COMPONENT))
            m = min(m, len(rows))
            mixture = GaussianMixture(
                n_components=m,
                covariance_type=params.covariance_type,
                reg_covar=params.reg_covar,
                max_iter=params.max_iter,
                n_init=params.n_init,
                random_state=int(np.random.randint(2**31)),
            ).fit(rows)
            covariances = _full_covariances(mixture, k)  # (m, k, k)
            weights.append(mixture.weights_)
            means.append(mixture.means_)
            cholesky.append(np.linalg.cholesky(covariances))
            component_class.append(np.full(m, label))
        self.pca_mean_ = pca.mean_.astype(np.float32)  # (D,)
        self.pca_basis_ = pca.components_.astype(np.float32)  # (k, D)
        self.weights_ = np.concatenate(weights).astype(np.float64)  # (M,), sums to 1 per class
        self.means_ = np.concatenate(means).astype(np.float32)  # (M, k)
        self.cholesky_ = np.concatenate(cholesky).astype(np.float32)  # (M, k, k) lower
        self.component_class_ = np.concatenate(component_class).astype(np.int64)  # (M,)
        self.explained_variance_ = float(pca.explained_variance_ratio_.sum())

    @torch.no_grad()
    def _sample_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        device = sampling_device(self.device)
        classes = max(self.n_classes, 1)
        # (classes, M): each class's component weights, zero elsewhere.
        by_class = np.zeros((classes, len(self.weights_)))
        by_class[self.component_class_, np.arange(len(self.weights_))] = self.weights_
        by_class = torch.from_numpy(by_class)
        codes = labels if labels is not None else torch.zeros(n, dtype=torch.int64)
        mean, basis = torch.from_numpy(self.pca_mean_), torch.from_numpy(self.pca_basis_)
        means, cholesky = torch.from_numpy(self.means_), torch.from_numpy(self.cholesky_)
        mean, basis = mean.to(device), basis.to(device)
        means, cholesky = means.to(device), cholesky.to(device)
        height, width, channels = self.image_shape_
        batches = []
        for start in range(0, n, SAMPLE_BATCH):
            rows = codes[start : start + SAMPLE_BATCH]
            # Drawn on the CPU: the same seed gives the same draws on any device.
            component = torch.multinomial(by_class[rows], 1).squeeze(1)  # (b,)
            noise = torch.randn(len(rows), self.means_.shape[1])  # (b, k)
            component, noise = component.to(device), noise.to(device)
            scores = means[component] + torch.einsum("bij,bj->bi", cholesky[component], noise)
            pixels = scores @ basis + mean  # (b, D)
            batches.append(pixels.clamp(0, 1).view(-1, channels, height, width).cpu())
        return torch.cat(batches)

    def _save_model(self, path: Path) -> None:
        np.savez(
            path / ARRAYS_FILE,
            pca_mean=self.pca_mean_,
            pca_basis=self.pca_basis_,
            weights=self.weights_,
            means=self.means_,
            cholesky=self.cholesky_,
            component_class=self.component_class_,
        )
        (path / STATE_FILE).write_text(json.dumps({"explained_variance": self.explained_variance_}))

    def _load_model(self, path: Path) -> None:
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as arrays:
            self.pca_mean_ = arrays["pca_mean"]
            self.pca_basis_ = arrays["pca_basis"]
            self.weights_ = arrays["weights"]
            self.means_ = arrays["means"]
            self.cholesky_ = arrays["cholesky"]
            self.component_class_ = arrays["component_class"]
        self.explained_variance_ = json.loads((path / STATE_FILE).read_text())["explained_variance"]


def _full_covariances(mixture: GaussianMixture, k: int) -> np.ndarray:
    """The mixture's covariances as (m, k, k) full matrices, whatever covariance_type."""
    m, covariances = mixture.n_components, mixture.covariances_
    if mixture.covariance_type == "full":
        return covariances
    if mixture.covariance_type == "tied":
        return np.broadcast_to(covariances, (m, k, k)).copy()
    if mixture.covariance_type == "diag":
        return np.stack([np.diag(row) for row in covariances])
    return np.stack([np.eye(k) * value for value in covariances])  # spherical
