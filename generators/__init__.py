"""Generative models behind one interface. A plain library: no Prefect, MLflow or GX here."""

from generators.base import Generator, resolve_device, seeded
from generators.errors import ConfigError, DataError, NotFittedError, SynthpipeError
from generators.registry import REGISTRY, generator_class, load_generator, make_generator
from generators.schema import Column, Schema, infer_schema

__all__ = [
    "REGISTRY",
    "Column",
    "ConfigError",
    "DataError",
    "Generator",
    "NotFittedError",
    "Schema",
    "SynthpipeError",
    "generator_class",
    "infer_schema",
    "load_generator",
    "make_generator",
    "resolve_device",
    "seeded",
]
