"""Hostile run configs: a repeated key, a YAML alias bomb and a recursive alias are refused
with one short line naming the file (and the line), before anything runs."""

from __future__ import annotations

import pytest

from flows.cli import EXIT_FAILED, main
from flows.config import apply_override, load_config
from flows.yaml_strict import MAX_NODES
from generators.errors import ConfigError

BASE = "name: run\ndata:\n  path: table.csv\n"


def _bomb(levels: int = 9, width: int = 9) -> str:
    """The classic "billion laughs": `width` aliases of the level below, `levels` deep
    (9 x 9: 9**9 = 387 million strings from under 400 bytes)."""
    text = "a0: &a0 [" + ", ".join(['"lol"'] * width) + "]\n"
    for level in range(1, levels):
        text += f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]\n"
    return text


def _write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_repeated_section_is_refused_naming_both_lines(tmp_path):
    text = BASE + "privacy:\n  dcr_share_max: 0.05\nseed: 1\nprivacy:\n  dcr_share_max: 0.9\n"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    message = str(caught.value)
    assert "config.yaml" in message and "'privacy' is given twice" in message
    assert "line 7" in message and "line 4" in message


def test_a_repeated_nested_key_is_refused(tmp_path):
    text = "name: run\ndata:\n  path: a.csv\n  separator: ';'\n  path: b.csv\n"
    with pytest.raises(ConfigError, match=r"line 5: key 'path' is given twice \(first on line 3\)"):
        load_config(_write(tmp_path, text))


def test_anchors_and_merge_keys_still_work(tmp_path):
    text = (
        "defaults: &defaults\n  epochs: 3\n  batch_size: 100\n"
        "name: run\ndata:\n  path: table.csv\n"
        "generator:\n  name: vae\n  params:\n    <<: *defaults\n    epochs: 4\n"
    )
    # `defaults` is not a config key: the alias worked, and strictness still applies after.
    with pytest.raises(ConfigError, match="defaults: unknown key"):
        load_config(_write(tmp_path, text))
    ok = text.replace("defaults: &defaults\n  epochs: 3\n  batch_size: 100\n", "").replace(
        "    <<: *defaults\n", "    <<: {epochs: 3, batch_size: 100}\n"
    )
    config = load_config(_write(tmp_path, ok))
    assert config.generator.params == {"epochs": 4, "batch_size": 100}


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = _write(tmp_path, BASE + _bomb())
    assert path.stat().st_size < 700
    with pytest.raises(ConfigError, match=f"more than {MAX_NODES:,} values"):
        load_config(path)


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="recursive YAML alias"):
        load_config(_write(tmp_path, BASE + "loop: &loop [1, *loop]\n"))


def test_an_alias_bomb_in_a_set_override_is_refused():
    raw = {"name": "run", "data": {"path": "t.csv"}}
    bomb = "{" + _bomb(7, 9).replace("\n", ", ").rstrip(", ") + "}"
    with pytest.raises(ConfigError, match="--set generator.params"):
        apply_override(raw, f"generator.params={bomb}")


def test_the_cli_reports_a_bomb_in_one_line(tmp_path, capsys):
    code = main(["run", str(_write(tmp_path, BASE + _bomb()))])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == EXIT_FAILED and len(errors) == 1 and "Traceback" not in err
    assert "config.yaml" in errors[0]


JOB_VARIABLES = {
    # case: (the --job-variable item, words the one error line holds)
    "repeated key": ('env={"A": "1", "A": "2"}', ["--job-variable env", "'A' is given twice"]),
    "alias bomb": (
        "env=" + _bomb().replace("\n", ", ").join("{}").replace(", }", "}"),
        ["--job-variable env", "alias"],
    ),
}


@pytest.mark.parametrize("case", sorted(JOB_VARIABLES))
def test_a_hostile_job_variable_is_refused_before_deploying(case, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    item, words = JOB_VARIABLES[case]
    config = _write(tmp_path, BASE)
    code = main(["deploy", str(config), "--job-variable", item])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == EXIT_FAILED and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    for word in words:
        assert word in errors[0], errors[0]
    assert len(errors[0]) < 400  # the bomb's text is never quoted whole


def test_plain_job_variables_still_read_as_yaml_or_text():
    from flows.cli import _job_variables

    variables = _job_variables(["image=registry/synthpipe:1", "env={A: '1'}", "odd=a: b: c"])
    assert variables == {"image": "registry/synthpipe:1", "env": {"A": "1"}, "odd": "a: b: c"}
