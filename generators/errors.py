"""Errors a user can act on. The CLI prints them as one line and exits non-zero.

Anything else that escapes is a bug and keeps its traceback.
"""


class SynthpipeError(Exception):
    """Base class: the message says what was expected, what was found, where, and what to do."""


class ConfigError(SynthpipeError):
    """A run config (or a generator's parameters) is invalid."""


class DataError(SynthpipeError):
    """Input data cannot be used as it is."""


class NotFittedError(SynthpipeError):
    """A generator was asked to sample or save before `fit`."""
