"""One `Modality` object per shape of data, chosen once per run by `modality_of(config)`.

Each holds what a run does differently for its modality (read, split, units to sample,
protect, generator context, after-fit files, rows digest, privacy, expectation tables,
fidelity, preview); see `flows.modalities.base.Modality`, whose defaults are the table's.
"""

from __future__ import annotations

from flows.modalities.base import Fitted, Modality, Prepared, Sampled
from flows.modalities.image import ImageModality
from flows.modalities.sequence import SequenceModality
from flows.modalities.table import TableModality
from flows.modalities.text import TextModality

MODALITIES: dict[str, Modality] = {
    cls.name: cls() for cls in (TableModality, ImageModality, TextModality, SequenceModality)
}


def modality_of(config) -> Modality:
    """The Modality of a RunConfig (data.modality)."""
    return MODALITIES[config.data.modality]


__all__ = ["MODALITIES", "Fitted", "Modality", "Prepared", "Sampled", "modality_of"]
