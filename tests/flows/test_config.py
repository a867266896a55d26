"""The run config: strict keys, key paths in errors, overrides, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.config import apply_override, load_config, parse_config
from generators.errors import ConfigError
from tests.conftest import REPO

MINIMAL = {"name": "demo", "data": {"path": "table.csv"}}


def test_minimal_config_gets_documented_defaults():
    config = parse_config(MINIMAL)
    assert config.generator.name == "gaussian_copula"
    assert config.data.holdout_fraction == 0.2
    assert config.sample.rows is None and config.sample_seed == config.seed == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({**MINIMAL, "data": {"path": "x", "pth": 1}}, "data.pth: unknown key"),
        ({**MINIMAL, "nmae": "x"}, "nmae: unknown key"),
        ({"data": {"path": "x"}}, "name: required key is missing"),
        ({**MINIMAL, "sample": {"rows": 0}}, "sample.rows: Input should be greater than 0"),
        ({**MINIMAL, "sample": {"rows": "many"}}, "sample.rows"),
        ({**MINIMAL, "data": {"path": "x", "holdout_fraction": 1.5}}, "data.holdout_fraction"),
        ({**MINIMAL, "data": {"path": "x", "schema": {"a": "blob"}}}, "data.schema.a"),
        ({**MINIMAL, "generator": {"name": "nope"}}, "generator.name: unknown generator 'nope'"),
        ({**MINIMAL, "generator": {"device": "tpu"}}, "generator.device"),
        (
            {**MINIMAL, "generator": {"name": "ctgan", "params": {"epochs": "x"}}},
            "generator.params.epochs",
        ),
        (
            {**MINIMAL, "generator": {"name": "ctgan", "params": {"epoch": 3}}},
            "generator.params.epoch: unknown parameter",
        ),
        ({**MINIMAL, "name": "has spaces"}, "name:"),
        # A name cannot lead the run folder out of output.dir.
        ({**MINIMAL, "name": "../../etc"}, "name: String should match pattern"),
        ({**MINIMAL, "name": "a/b"}, "name: String should match pattern"),
        ({**MINIMAL, "name": ".hidden"}, "name: String should match pattern"),
        ({**MINIMAL, "validation": {"on_failure": "ignore"}}, "validation.on_failure"),
        ({**MINIMAL, "validation": {"sigmas": 0}}, "validation.sigmas"),
        ({**MINIMAL, "seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({**MINIMAL, "privacy": {"dp": {"epsilon": 1}}}, "privacy.dp: generator 'gaussian_copula'"),
        ({**MINIMAL, "privacy": {"dp": {"epsilon": -1}, "generator": 1}}, "privacy.dp.epsilon"),
    ],
)
def test_invalid_configs_name_the_key(raw, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)  # one line for the CLI


def test_dp_budget_is_accepted_for_a_generator_that_supports_it():
    config = parse_config(
        {**MINIMAL, "generator": {"name": "vae"}, "privacy": {"dp": {"epsilon": 3}}}
    )
    assert config.privacy.dp.epsilon == 3 and config.privacy.dp.delta == 1e-5


def test_overrides_are_parsed_as_yaml_values():
    raw = {"name": "demo", "data": {"path": "x"}}
    apply_override(raw, "generator.name=ctgan")
    apply_override(raw, "sample.rows=1000")
    apply_override(raw, "generator.params.generator_dim=[64, 64]")
    apply_override(raw, "data.target=income")
    config = parse_config(raw)
    assert config.sample.rows == 1000
    assert config.generator.params["generator_dim"] == [64, 64]
    assert config.data.target == "income"


@pytest.mark.parametrize("override", ["sample.rows", "=3", "a..b=1", "name.inner=1"])
def test_malformed_overrides_are_config_errors(override):
    with pytest.raises(ConfigError, match="--set"):
        apply_override({"name": "demo", "data": {"path": "x"}}, override)


def test_load_config_resolves_data_path_against_the_config_folder(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "demo", "data": {"path": "../data/t.csv"}}))
    config = load_config(path, ["sample.rows=5"])
    assert config.data.path == str((tmp_path / "data" / "t.csv").resolve())
    assert config.sample.rows == 5


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listed)


def test_digest_and_flat_params_follow_the_config():
    first, second = parse_config(MINIMAL), parse_config(MINIMAL)
    assert first.digest() == second.digest()
    changed = parse_config({**MINIMAL, "seed": 1})
    assert changed.digest() != first.digest()
    flat = first.flat()
    assert flat["data.path"] == "table.csv" and flat["generator.name"] == "gaussian_copula"
    assert flat["data.holdout_fraction"] == "0.2"


def test_every_shipped_config_is_valid():
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert len(configs) >= 5
    for path in configs:
        config = load_config(path)
        assert config.name and config.generator.name
    adult = load_config(REPO / "configs" / "adult.yaml")
    assert Path(adult.data.path).is_file()  # the demo's data ships in the repo


@pytest.mark.parametrize("key", ["uri", "fallback_uri"])
def test_a_password_in_a_tracking_uri_is_refused_and_never_echoed(key):
    raw = {**MINIMAL, "tracking": {key: "https://alice:hunter2@mlflow.example.com"}}
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert f"tracking.{key}: holds a password" in str(error.value)
    assert "MLFLOW_TRACKING_PASSWORD" in str(error.value)  # says where credentials go
    assert "hunter2" not in str(error.value)


def test_table_protections_are_on_by_default_and_refused_elsewhere_only_when_set():
    privacy = parse_config(MINIMAL).privacy
    assert privacy.rare_category_min_count == 5 and privacy.clip_extremes
    text = {**MINIMAL, "data": {"path": "x.txt", "modality": "text"}, "generator": {"name": "hmm"}}
    assert parse_config(text).privacy.clip_extremes  # a default: not applied to text, not refused
    for key, value in (("rare_category_min_count", 5), ("clip_extremes", True)):
        with pytest.raises(ConfigError, match=f"privacy.{key}: applies to tables only"):
            parse_config({**text, "privacy": {key: value}})
    off = parse_config({**text, "privacy": {"clip_extremes": False, "rare_category_min_count": 0}})
    assert not off.privacy.clip_extremes
