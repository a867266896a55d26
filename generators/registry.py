"""Generators by modality and the name a config uses. Explicit dicts; no import-time discovery.

A name may mean one model family in several modalities (`gmm`, `rbm` for tables and for
images); `data.modality` picks which.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generators.autoregressive import AutoregressiveGenerator
from generators.base import GENERATOR_FILE, Generator
from generators.baseline import (
    CopyGenerator,
    ImageCopyGenerator,
    TextCopyGenerator,
    UniformGenerator,
)
from generators.boltzmann import (
    DBMGenerator,
    DBNGenerator,
    ImageDBMGenerator,
    ImageDBNGenerator,
    ImageRBMGenerator,
    RBMGenerator,
)
from generators.char_lm import CharLMGenerator
from generators.conv_vae import ConvVAEGenerator
from generators.dcgan import DCGANGenerator
from generators.errors import ConfigError, DataError
from generators.gan import ConditionalGANGenerator
from generators.gmm import GaussianMixtureGenerator
from generators.hmm import HMMGenerator
from generators.image_gmm import ImageGMMGenerator
from generators.lda import LDAGenerator
from generators.par import PARGenerator
from generators.sdv import (
    CopulaGANGenerator,
    CTGANGenerator,
    GaussianCopulaGenerator,
    TVAEGenerator,
)
from generators.sequence_hmm import SequenceHMMGenerator
from generators.vae import TabularVAEGenerator

# Table generators by name.
REGISTRY: dict[str, type[Generator]] = {
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
    "table": REGISTRY,
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
    name: str, params: dict[str, Any] | None = None, device: str = "auto", modality: str = "table"
) -> Generator:
    return generator_class(name, modality)(device=device, **(params or {}))


def load_generator(path: Path) -> Generator:
    """Load any saved generator; its folder says which class it is."""
    meta_file = Path(path) / GENERATOR_FILE
    if not meta_file.is_file():
        raise DataError(f"{path}: not a saved generator (no {GENERATOR_FILE})")
    meta = json.loads(meta_file.read_text())
    return generator_class(meta["name"], meta.get("modality", "table")).load(path)
