"""The table modality's privacy wiring: the shadow attack's generators are the run's own,
with cheap settings (validation/shadow.py is tested in tests/validation/test_shadow.py)."""

from __future__ import annotations

import pytest

from flows.config import parse_config
from flows.modalities.table import shadow_factory
from generators.errors import ConfigError
from generators.table.autoregressive import AutoregressiveGenerator
from generators.table.gmm import GaussianMixtureGenerator


def _config(generator: dict, **privacy):
    raw = {"name": "t", "data": {"path": "x.csv"}, "generator": generator, "privacy": privacy}
    return parse_config(raw)


def test_shadows_are_the_runs_generator_with_epochs_capped():
    config = _config(
        {"name": "autoregressive", "device": "cpu", "params": {"epochs": 40, "width": 16}},
        shadow={"max_epochs": 4},
    )
    shadow = shadow_factory(config)()
    assert isinstance(shadow, AutoregressiveGenerator) and shadow.schema_ is None
    assert (shadow.params.epochs, shadow.params.width, shadow.device) == (4, 16, "cpu")
    # a fresh generator each call: shadows never share fitted state
    assert shadow_factory(config)() is not shadow


def test_unset_iterations_are_capped_and_fewer_are_kept():
    capped = _config({"name": "gmm"}, shadow={"max_epochs": 3})
    assert shadow_factory(capped)().params.max_iter == 3  # the default, 200, capped
    fewer = _config({"name": "autoregressive", "params": {"epochs": 2}})
    assert shadow_factory(fewer)().params.epochs == 2
    assert isinstance(shadow_factory(capped)(), GaussianMixtureGenerator)


def test_unknown_shadow_keys_are_config_errors():
    with pytest.raises(ConfigError, match=r"privacy\.shadow\.n_shadow"):
        _config({"name": "gmm"}, shadow={"n_shadow": 4})
