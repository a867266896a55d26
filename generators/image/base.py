"""`ImageGenerator`, the base of image generators: the image table to tensors and back."""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from generators.base import Generator
from generators.image.data import LABEL_COLUMN, frame_to_pixels, images_to_frame

_LABELS_STATE = "labels.json"


# -- the generators' base ----------------------------------------------------------------
class ImageGenerator(Generator):
    """Base of image generators: decodes the image table to tensors and encodes samples back.

    Subclasses implement `_fit_images(images, labels)` on a float tensor (N, C, H, W) in
    [0, 1] and integer label codes (N,) (None without labels), and `_sample_images(labels)`
    returning a float tensor (n, C, H, W) in [0, 1] for the label codes asked for (the base
    draws them from the training labels' frequencies). A generator that cannot condition on
    the label must still honour it (e.g. fit one model per class).
    """

    modality: ClassVar[str] = "image"

    def _fit(self, data: pd.DataFrame) -> None:
        pixels = frame_to_pixels(data)
        self.image_shape_ = tuple(int(v) for v in pixels.shape[1:])  # (H, W, C)
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)
        self.label_names_: list[str] = []
        self.label_probs_: list[float] = []
        codes = None
        if LABEL_COLUMN in data.columns:
            labels = data[LABEL_COLUMN].astype("string").fillna("")
            names, inverse = np.unique(labels.to_numpy(dtype=str), return_inverse=True)
            self.label_names_ = names.tolist()
            self.label_probs_ = (np.bincount(inverse) / len(inverse)).tolist()
            codes = torch.from_numpy(inverse.astype(np.int64))
        self._fit_images(images, codes)

    def _sample(self, n: int) -> pd.DataFrame:
        codes = None
        if self.label_names_:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
            codes = torch.from_numpy(
                rng.choice(len(self.label_names_), size=n, p=self.label_probs_).astype(np.int64)
            )
        with torch.no_grad():
            images = self._sample_images(n, codes)
        pixels = images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)
        labels = None if codes is None else np.asarray(self.label_names_)[codes.numpy()]
        return images_to_frame(pixels.cpu().numpy(), labels)

    @property
    def n_classes(self) -> int:
        return len(self.label_names_)

    def _save(self, path: Path) -> None:
        state = {
            "image_shape": list(self.image_shape_),
            "label_names": self.label_names_,
            "label_probs": self.label_probs_,
        }
        (path / _LABELS_STATE).write_text(json.dumps(state))
        self._save_model(path)

    def _load(self, path: Path) -> None:
        state = json.loads((path / _LABELS_STATE).read_text())
        self.image_shape_ = tuple(state["image_shape"])
        self.label_names_ = state["label_names"]
        self.label_probs_ = state["label_probs"]
        self._load_model(path)

    @abstractmethod
    def _fit_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        """Learn from images (N, C, H, W) float in [0, 1] and label codes (N,) or None."""

    @abstractmethod
    def _sample_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """n images (n, C, H, W) float in [0, 1], for label codes (n,) when given."""

    @abstractmethod
    def _save_model(self, path: Path) -> None: ...

    @abstractmethod
    def _load_model(self, path: Path) -> None: ...
