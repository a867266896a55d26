"""Embedded defaults set before Prefect or MLflow is imported: offline, quiet, local.

Each is a default only (`setdefault`): a user's environment wins.
"""

import os

DEFAULTS = {
    # No telemetry or analytics from any of the three: these machines have no internet
    # and nothing may hang on it.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    # The ephemeral Prefect server migrates a fresh SQLite database on its first start,
    # which takes longer than Prefect's 20 s default on a small machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # Tasks return DataFrames in-process; nothing needs persisting by Prefect.
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    # MLflow draws a download progress bar for every artifact it copies; noise in job logs.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def apply() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
