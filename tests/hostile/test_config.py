"""Property tests of the run config: any YAML mapping or `--set` either parses into a
RunConfig or raises ConfigError, never another exception, and errors name the key path."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.config import RunConfig, apply_override, load_config, parse_config
from generators.errors import ConfigError

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VALID = {"name": "run", "data": {"path": "table.csv"}}
KEYS = [
    "name",
    "seed",
    "data",
    "data.path",
    "data.format",
    "data.columns",
    "data.header",
    "data.separator",
    "data.encoding",
    "data.na_values",
    "data.holdout_fraction",
    "data.schema",
    "data.drop",
    "generator",
    "generator.name",
    "generator.params",
    "generator.device",
    "sample.rows",
    "sample.seed",
    "output.dir",
    "privacy",
    "privacy.dp",
    "validation.sigmas",
    "validation.on_failure",
    "tracking.uri",
    "tracking.experiment",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _set(raw: dict, dotted: str, value) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=4))
def test_any_values_under_known_keys_parse_or_raise_config_error(changes) -> None:
    raw = {"name": "run", "data": {"path": "table.csv"}}
    for key, value in changes.items():
        _set(raw, key, value)
    try:
        config = parse_config(raw)
    except ConfigError as error:
        message = str(error)  # the CLI prints it on one line, whitespace collapsed
        # The message names the key path of (at least) one of the keys that were changed.
        named = [key for key in changes if key.split(".")[0] in message]
        assert named, (changes, message)
        return
    assert isinstance(config, RunConfig)


@SETTINGS
@given(st.dictionaries(st.text(max_size=10), values, max_size=4))
def test_arbitrary_mappings_parse_or_raise_config_error(raw) -> None:
    try:
        parse_config(raw)
    except ConfigError:
        pass


@SETTINGS
@given(
    st.sampled_from(["data", "generator", "sample", "privacy", "validation", "tracking"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
)
def test_unknown_keys_are_named_with_their_path(section, key) -> None:
    raw = {"name": "run", "data": {"path": "table.csv"}}
    raw.setdefault(section, {})[key] = 1
    try:
        parse_config(raw)
    except ConfigError as error:
        assert f"{section}.{key}" in str(error), str(error)


@SETTINGS
@given(st.text(max_size=40))
def test_any_set_override_applies_or_raises_config_error(override) -> None:
    raw = {"name": "run", "data": {"path": "table.csv"}}
    try:
        apply_override(raw, override)
        parse_config(raw)
    except ConfigError:
        pass


@SETTINGS
@given(st.sampled_from(KEYS), values)
def test_set_of_any_yaml_value_under_a_known_key(key, value) -> None:
    raw = {"name": "run", "data": {"path": "table.csv"}}
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    try:
        apply_override(raw, f"{key}={text}")
        parse_config(raw)
    except ConfigError as error:
        assert key.split(".")[0] in str(error), str(error)


# YAML scalars that look like dates but are not valid ones: PyYAML raises ValueError (not a
# YAMLError) while constructing them, which load_config and apply_override do not catch.
IMPOSSIBLE_DATES = ["2001-02-30", "2021-13-01 10:00:00", "!!int 0x", "!!float abc"]


@pytest.mark.parametrize("text", IMPOSSIBLE_DATES)
def test_yaml_values_that_fail_to_construct_are_config_errors(text, tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"name: run\ndata:\n  path: t.csv\nseed: {text}\n")
    with pytest.raises(ConfigError, match="config.yaml"):
        load_config(path)


@pytest.mark.parametrize("text", IMPOSSIBLE_DATES)
def test_set_values_that_fail_to_construct_are_config_errors(text) -> None:
    raw = dict(VALID)
    with pytest.raises(ConfigError, match="seed"):
        apply_override(raw, f"seed={text}")
        parse_config(raw)  # read as text instead, seed must fail naming 'seed'
