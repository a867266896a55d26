"""Tables: the user's columns with their types; the `Modality` base is their behaviour, but
for the protections before training (rare categories, isolated extremes) and the privacy
report, which also attacks the release with shadows of its generator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from flows.modalities.base import Modality
from generators.base import Generator
from generators.data.schema import Schema
from generators.registry import generator_class
from validation import Report
from validation.privacy import PrivacyPolicy, privacy_report
from validation.protection import Protection, clip_extremes, merge_rare_categories
from validation.shadow import ITERATION_PARAMS

if TYPE_CHECKING:
    from flows.config import RunConfig


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

    def check_privacy(self, train, holdout, synthetic, schema, config: RunConfig) -> Report:
        return privacy_report(
            train,
            holdout,
            synthetic,
            schema,
            config.privacy,
            seed=config.seed,
            target=config.data.target,
            make_shadow=shadow_factory(config),
        )


def shadow_factory(config: RunConfig) -> Callable[[], Generator]:
    """New, unfitted generators of the run's kind for the shadow attack: generator.name and
    generator.params on generator.device, with epochs (or EM / HMM iterations) capped at
    privacy.shadow.max_epochs so that privacy.shadow.n_shadows fits stay cheap. No DP: the
    shadows stand for what this recipe does with a row, as an attacker would train them."""
    cls = generator_class(config.generator.name, "table")
    params = dict(config.generator.params)
    cap = config.privacy.shadow.max_epochs
    for key in ITERATION_PARAMS:
        field = cls.Params.model_fields.get(key)
        if field is not None:
            params[key] = min(params.get(key, field.default), cap)

    def make_shadow() -> Generator:
        return cls(device=config.generator.device, **params)

    return make_shadow
