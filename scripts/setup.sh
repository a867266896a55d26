#!/usr/bin/env bash
# Set up synthpipe in ./.venv: torch first (so pip never picks a build you did not choose),
# then synthpipe with its pinned dependencies and the dev tools. Safe to run again.
#
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu   bash scripts/setup.sh   # CPU-only, small
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 bash scripts/setup.sh   # a given CUDA
# Without TORCH_INDEX_URL, pip's configured index decides: PyPI's Linux wheel is the CUDA
# build (several GB); a machine with a local CPU wheel (a find-links folder) uses that.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" install -q "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
  else
    "${PIP[@]}" install -q "torch==$TORCH_VERSION"
  fi
fi
"${PIP[@]}" install -q -e ".[dev]"
.venv/bin/python -c "import torch; print(f'torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
