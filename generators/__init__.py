"""Generative models behind one interface. A plain library: no Prefect, MLflow or GX here.

The public names below are loaded on first use (PEP 562), so that `import generators.errors`
or `generators.data.schema` does not import torch and every model through the registry.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generators.base import Generator, resolve_device, seeded
    from generators.data.schema import Column, Schema, infer_schema
    from generators.errors import ConfigError, DataError, NotFittedError, SynthpipeError
    from generators.registry import (
        REGISTRY,
        TABLE_GENERATORS,
        generator_class,
        load_generator,
        make_generator,
    )

_HOMES = {
    "Generator": "generators.base",
    "resolve_device": "generators.base",
    "seeded": "generators.base",
    "ConfigError": "generators.errors",
    "DataError": "generators.errors",
    "NotFittedError": "generators.errors",
    "SynthpipeError": "generators.errors",
    "REGISTRY": "generators.registry",
    "TABLE_GENERATORS": "generators.registry",
    "generator_class": "generators.registry",
    "load_generator": "generators.registry",
    "make_generator": "generators.registry",
    "Column": "generators.data.schema",
    "Schema": "generators.data.schema",
    "infer_schema": "generators.data.schema",
}

__all__ = [
    "REGISTRY",
    "Column",
    "ConfigError",
    "DataError",
    "Generator",
    "NotFittedError",
    "Schema",
    "SynthpipeError",
    "TABLE_GENERATORS",
    "generator_class",
    "infer_schema",
    "load_generator",
    "make_generator",
    "resolve_device",
    "seeded",
]


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'generators' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
