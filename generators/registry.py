"""Generators by the name a config uses. One explicit dict; no import-time discovery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generators.autoregressive import AutoregressiveGenerator
from generators.base import GENERATOR_FILE, Generator
from generators.baseline import CopyGenerator, UniformGenerator
from generators.boltzmann import DBMGenerator, DBNGenerator, RBMGenerator
from generators.errors import ConfigError, DataError
from generators.gan import ConditionalGANGenerator
from generators.gmm import GaussianMixtureGenerator
from generators.sdv import (
    CopulaGANGenerator,
    CTGANGenerator,
    GaussianCopulaGenerator,
    TVAEGenerator,
)
from generators.vae import TabularVAEGenerator

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


def generator_class(name: str) -> type[Generator]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"generator.name: unknown generator '{name}'; known: {', '.join(sorted(REGISTRY))}"
        ) from None


def make_generator(
    name: str, params: dict[str, Any] | None = None, device: str = "auto"
) -> Generator:
    return generator_class(name)(device=device, **(params or {}))


def load_generator(path: Path) -> Generator:
    """Load any saved generator; its folder says which class it is."""
    meta_file = Path(path) / GENERATOR_FILE
    if not meta_file.is_file():
        raise DataError(f"{path}: not a saved generator (no {GENERATOR_FILE})")
    name = json.loads(meta_file.read_text())["name"]
    return generator_class(name).load(path)
