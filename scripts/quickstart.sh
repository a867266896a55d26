#!/usr/bin/env bash
# One command from a fresh clone: set up, then run the Adult demo on embedded defaults
# (Prefect's ephemeral local server, MLflow in ./mlflow.db, output in ./outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/synthpipe run configs/adult.yaml "$@"
