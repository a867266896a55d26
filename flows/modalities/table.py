"""Tables: the user's columns with their types; the `Modality` base is their behaviour, but
for the privacy report, which also attacks the release with shadows of its generator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flows.modalities.base import Modality
from generators.base import Generator
from generators.registry import generator_class
from validation import Report
from validation.privacy import privacy_report
from validation.shadow import ITERATION_PARAMS

if TYPE_CHECKING:
    from flows.config import RunConfig


class TableModality(Modality):
    name = "table"

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
