"""Generators by modality and the name a config uses. Explicit dicts; no import-time discovery.

A name may mean one model family in several modalities (`gmm`, `rbm` for tables and for
images); `data.modality` picks which.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generators.base import GENERATOR_FILE, Generator
from generators.baselines import (
    CopyGenerator,
    ImageCopyGenerator,
    TextCopyGenerator,
    UniformGenerator,
)
from generators.errors import ConfigError, DataError
from generators.image.boltzmann import ImageDBMGenerator, ImageDBNGenerator, ImageRBMGenerator
from generators.image.conv_vae import ConvVAEGenerator
from generators.image.dcgan import DCGANGenerator
from generators.image.gmm import ImageGMMGenerator
from generators.sequence.hmm import SequenceHMMGenerator
from generators.sequence.par import PARGenerator
from generators.table.autoregressive import AutoregressiveGenerator
from generators.table.boltzmann import DBMGenerator, DBNGenerator, RBMGenerator
from generators.table.gan import ConditionalGANGenerator
from generators.table.gmm import GaussianMixtureGenerator
from generators.table.sdv import (
    CopulaGANGenerator,
    CTGANGenerator,
    GaussianCopulaGenerator,
    TVAEGenerator,
)
from generators.table.vae import TabularVAEGenerator
from generators.text.char_lm import CharLMGenerator
from generators.text.hmm import HMMGenerator
from generators.text.lda import LDAGenerator

TABLE_GENERATORS: dict[str, type[Generator]] = {
    cls.name: cls
    for cls in (
        GaussianCopulaGenerator,
        CTGANGenerator,
        TVAEGenerator,
        CopulaGANGenerator,
        CopyGenerator,
        UniformGenerator,
        TabularVAEGenerator,
        ConditionalGANGenerator,
        GaussianMixtureGenerator,
        AutoregressiveGenerator,
        RBMGenerator,
        DBNGenerator,
        DBMGenerator,
    )
}
# The old name of TABLE_GENERATORS (table generators only), kept for callers.
REGISTRY = TABLE_GENERATORS


IMAGE_GENERATORS: dict[str, type[Generator]] = {
    cls.name: cls
    for cls in (
        DCGANGenerator,
        ConvVAEGenerator,
        ImageGMMGenerator,
        ImageRBMGenerator,
        ImageDBNGenerator,
        ImageDBMGenerator,
        ImageCopyGenerator,
    )
}
TEXT_GENERATORS: dict[str, type[Generator]] = {
    cls.name: cls for cls in (HMMGenerator, LDAGenerator, CharLMGenerator, TextCopyGenerator)
}
SEQUENCE_GENERATORS: dict[str, type[Generator]] = {
    cls.name: cls for cls in (SequenceHMMGenerator, PARGenerator)
}
BY_MODALITY: dict[str, dict[str, type[Generator]]] = {
    "table": TABLE_GENERATORS,
    "image": IMAGE_GENERATORS,
    "text": TEXT_GENERATORS,
    "sequence": SEQUENCE_GENERATORS,
}


def generator_class(name: str, modality: str = "table") -> type[Generator]:
    known = BY_MODALITY.get(modality, {})
    if name in known:
        return known[name]
    elsewhere = [m for m, generators in BY_MODALITY.items() if name in generators]
    hint = f" ('{name}' generates {' and '.join(elsewhere)} data)" if elsewhere else ""
    raise ConfigError(
        f"generator.name: unknown generator '{name}' for {modality} data{hint}; known: "
        f"{', '.join(sorted(known)) or 'none'}"
    )


def all_generators() -> list[type[Generator]]:
    """Every registered class, tables first."""
    return [cls for generators in BY_MODALITY.values() for cls in generators.values()]


def make_generator(
    name: str,
    params: dict[str, Any] | None = None,
    device: str = "auto",
    modality: str = "table",
    **context: Any,
) -> Generator:
    """A new, unfitted generator: `params` are its hyperparameters; `context` is what its
    modality gives every one of its generators (sequences: `sequence=SequenceSettings`)."""
    return generator_class(name, modality)(device=device, **context, **(params or {}))


def load_generator(
    path: Path,
    *,
    expected: type[Generator] | None = None,
    allow_pickle: bool = False,
) -> Generator:
    """Load a saved generator.

    The folder's `generator.json` names its class, but the folder may have been edited, so
    it never chooses a loader that runs code on its own: `expected` (the class the caller
    knows from elsewhere: the run's config or its MLflow params) must match it when given,
    and a class that unpickles (`unpickles_on_load`) loads only with `allow_pickle=True`.
    """
    meta_file = Path(path) / GENERATOR_FILE
    if not meta_file.is_file():
        raise DataError(f"{path}: not a saved generator (no {GENERATOR_FILE})")
    try:
        meta = json.loads(meta_file.read_text())
        name, modality = meta["name"], meta.get("modality", "table")
    except (ValueError, TypeError, KeyError) as error:
        raise DataError(
            f"{meta_file}: not a generator description ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:160]}); re-train or re-save the model"
        ) from None
    if expected is not None and (name, modality) != (expected.name, expected.modality):
        raise DataError(
            f"{path}: the folder says it holds a {modality} '{name}' generator, but its run "
            f"trained a {expected.modality} '{expected.name}'; the model files were changed "
            "after training and were not loaded"
        )
    cls = generator_class(str(name), str(modality))
    return cls.load(path, allow_pickle=allow_pickle)
