"""Calibration baselines, as SDGym has them: `copy` (worst case for privacy; for tables and
images) and `uniform` (worst case for fidelity).

Users calibrate a privacy policy against them (a copy must fail it), and the tests use
them as known-bad inputs to the gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from generators.base import Generator
from generators.image.base import ImageGenerator

TRAINING_ROWS_FILE = "training_rows.parquet"
SPEC_FILE = "uniform_spec.json"


class CopyGenerator(Generator):
    """Returns real training rows (without replacement while it can). Never publish this."""

    name = "copy"

    def _fit(self, data: pd.DataFrame) -> None:
        self.rows_ = data.reset_index(drop=True)

    def _sample(self, n: int) -> pd.DataFrame:
        replace = n > len(self.rows_)
        picks = np.random.choice(len(self.rows_), size=n, replace=replace)
        return self.rows_.iloc[picks].reset_index(drop=True)

    def _save(self, path: Path) -> None:
        self.rows_.to_parquet(path / TRAINING_ROWS_FILE, index=False)

    def _load(self, path: Path) -> None:
        self.rows_ = self.schema_.conform_subset(
            pq.read_table(path / TRAINING_ROWS_FILE).to_pandas()
        )


class TextCopyGenerator(CopyGenerator):
    """Returns real training documents. Never publish this."""

    modality = "text"


class UniformGenerator(Generator):
    """Each column drawn independently and uniformly within its training range or category set.

    Missing values appear at each column's training rate.
    """

    name = "uniform"

    def _fit(self, data: pd.DataFrame) -> None:
        self.spec_ = {}
        for name in data.columns:
            kind = self.schema_[name].kind
            present = data[name].dropna()
            entry: dict = {"missing_rate": float(data[name].isna().mean())}
            if kind in ("numeric", "datetime"):
                as_numbers = (
                    present.astype("int64") if kind == "datetime" else present.astype("float64")
                )
                entry.update(low=float(as_numbers.min()), high=float(as_numbers.max()))
            else:
                entry["choices"] = sorted(present.astype(str).unique().tolist())
            self.spec_[name] = entry

    def _sample(self, n: int) -> pd.DataFrame:
        out = {}
        for name, entry in self.spec_.items():
            kind = self.schema_[name].kind
            if kind in ("numeric", "datetime"):
                drawn = pd.Series(np.random.uniform(entry["low"], entry["high"], n))
                if kind == "datetime":
                    drawn = pd.to_datetime(drawn.round().astype("int64"))
            else:
                choices = np.array(entry["choices"], dtype=object)
                if len(choices) == 0:  # every training value was missing
                    out[name] = pd.Series([None] * n, dtype=object)
                    continue
                drawn = pd.Series(choices[np.random.randint(0, len(choices), n)], dtype=object)
                if kind == "boolean":
                    drawn = drawn.map({"True": True, "False": False})
            out[name] = drawn.mask(np.random.random(n) < entry["missing_rate"])
        return pd.DataFrame(out)

    def _save(self, path: Path) -> None:
        (path / SPEC_FILE).write_text(json.dumps(self.spec_))

    def _load(self, path: Path) -> None:
        self.spec_ = json.loads((path / SPEC_FILE).read_text())


class ImageCopyGenerator(ImageGenerator):
    """Returns real training images of the labels asked for. Never publish this."""

    name = "copy"

    def _fit_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.images_ = images
        self.labels_ = labels

    def _sample_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            return self.images_[torch.randint(len(self.images_), (n,))]
        picks = torch.empty(n, dtype=torch.long)
        for code in labels.unique():
            wanted = labels == code
            pool = torch.nonzero(self.labels_ == code).flatten()
            picks[wanted] = pool[torch.randint(len(pool), (int(wanted.sum()),))]
        return self.images_[picks]

    def _save_model(self, path: Path) -> None:
        state = {"images": self.images_}
        if self.labels_ is not None:
            state["labels"] = self.labels_
        torch.save(state, path / "images.pt")

    def _load_model(self, path: Path) -> None:
        state = torch.load(path / "images.pt", weights_only=True)
        self.images_, self.labels_ = state["images"], state.get("labels")
