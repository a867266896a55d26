"""Tables: the user's columns with their types; the `Modality` base is their behaviour."""

from __future__ import annotations

import pandas as pd

from flows.modalities.base import Modality
from generators.data.schema import Schema
from validation.privacy import PrivacyPolicy
from validation.protection import Protection, clip_extremes, merge_rare_categories


class TableModality(Modality):
    name = "table"

    def protect(
        self, train: pd.DataFrame, schema: Schema, privacy: PrivacyPolicy, *, seed: int
    ) -> tuple[pd.DataFrame, Schema, Protection]:
        """PII masking as every modality, then (both on by default) rare categories merged
        (privacy.rare_category_min_count) and isolated tail values clipped
        (privacy.clip_extremes), seeded by `seed`."""
        train, schema, protection = super().protect(train, schema, privacy, seed=seed)
        if privacy.rare_category_min_count > 1:
            train, schema, protection.merged = merge_rare_categories(
                train, schema, privacy.rare_category_min_count
            )
        if privacy.clip_extremes:
            train, schema, protection.clipped, protection.bounds = clip_extremes(
                train, schema, privacy.extreme_quantile, privacy.extreme_min_rows, seed
            )
        return train, schema, protection
