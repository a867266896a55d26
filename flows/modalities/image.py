"""Images: a table with an `image` column of PNG bytes (see generators.image.data).

Privacy and fidelity on pixels (validation.images); expectations on per-image figures;
the preview leaves the bytes out (the sample grids in plots/ are the preview).
"""

from __future__ import annotations

import hashlib

import pandas as pd

from flows.modalities.base import PREVIEW_ROWS, Modality, feature_schema
from flows.run_folder import EPOCHS_DIR, PREVIEW_FILE
from generators.image.data import (
    IMAGE_COLUMN,
    LABEL_COLUMN,
    frame_to_pixels,
    image_grid,
    image_schema,
    read_images,
)
from validation.images import image_features, image_fidelity_report, image_privacy_report


class ImageModality(Modality):
    name = "image"
    downstream = False

    def read(self, data):
        frame = read_images(data.path, data.images)
        return frame, image_schema(frame)

    def check_schema(self, privacy, schema) -> None:
        pass

    def after_fit(self, generator, folder) -> None:
        # Image generators keep sample grids of every few epochs: logged with the plots.
        for epoch, pixels in getattr(generator, "snapshots_", []):
            image_grid(pixels, folder.plots / EPOCHS_DIR / f"epoch_{epoch:03d}.png")

    def rows_digest(self, frame: pd.DataFrame) -> str:
        """Image cells count by their bytes."""
        hashable = frame.drop(columns=[IMAGE_COLUMN], errors="ignore")
        digest = hashlib.sha256(str(pd.util.hash_pandas_object(hashable).sum()).encode())
        for cell in frame.get(IMAGE_COLUMN, []):
            digest.update(cell["bytes"] if isinstance(cell, dict) else bytes(cell))
        return digest.hexdigest()

    def check_privacy(self, train, holdout, synthetic, schema, config):
        return image_privacy_report(train, holdout, synthetic, config.privacy, seed=config.seed)

    def expectation_tables(self, train, synthetic, schema):
        # Images are checked through per-image figures (shape, pixel statistics).
        train_figures, synthetic_figures = image_features(train), image_features(synthetic)
        return train_figures, feature_schema(train_figures, LABEL_COLUMN), synthetic_figures

    def check_fidelity(self, train, holdout, synthetic, schema, config, folder, fitted):
        report = image_fidelity_report(
            train,
            holdout,
            synthetic,
            seed=config.seed,
            max_rows=min(config.validation.max_rows, 5000),
        )
        if config.validation.plots:
            plots = folder.plots
            written = [
                image_grid(frame_to_pixels(synthetic.head(100)), plots / "synthetic_grid.png"),
                image_grid(frame_to_pixels(train.head(100)), plots / "real_grid.png"),
            ]
            report.details["plots"] = [folder.relative(path) for path in written]
        return report

    def write_preview(self, synthetic, run_dir) -> None:
        # Image bytes are no preview: the grid in plots/ is.
        preview = synthetic.head(PREVIEW_ROWS).drop(columns=[IMAGE_COLUMN], errors="ignore")
        preview.to_csv(run_dir / PREVIEW_FILE, index=False)
