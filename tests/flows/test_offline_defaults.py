"""Telemetry of Prefect, MLflow and Great Expectations is off unless the user turns it on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from flows._env import DEFAULTS
from tests.conftest import REPO

TELEMETRY_OFF = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
}


def _environment_after_import(extra: dict[str, str]) -> dict[str, str]:
    """os.environ of a fresh interpreter once synthpipe's CLI module is imported."""
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF}
    env.update(extra)
    script = "import json, os, flows.cli; print(json.dumps(dict(os.environ)))"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_importing_synthpipe_turns_every_telemetry_off():
    assert TELEMETRY_OFF.items() <= DEFAULTS.items()
    seen = _environment_after_import({})
    for key, value in TELEMETRY_OFF.items():
        assert seen[key] == value, key


def test_a_users_own_setting_wins():
    seen = _environment_after_import({"DO_NOT_TRACK": "false"})
    assert seen["DO_NOT_TRACK"] == "false"
