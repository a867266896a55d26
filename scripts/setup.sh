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

# Headless Chromium (Debian's `chromium`) for the tests that open the release certificate and
# the Data Docs page in a real browser, offline. Installed with apt-get when this runs as root
# or with password-less sudo (CI containers): about 35 s the first time (apt-get update ~2 s,
# the package and 25 dependencies ~32 s on a 2-core machine), nothing once it is there.
# Elsewhere those tests skip, saying so. SYNTHPIPE_NO_CHROMIUM=1 leaves it out.
if [ -z "${SYNTHPIPE_NO_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  APT=()
  if [ "$(id -u)" = 0 ]; then
    APT=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    APT=(sudo -n apt-get)
  fi
  if [ ${#APT[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    if ! { "${APT[@]}" update -q >/dev/null &&
      "${APT[@]}" install -y -q --no-install-recommends chromium >/dev/null; }; then
      echo "warning: could not install chromium with apt-get; the browser tests will skip" >&2
    fi
  else
    echo "note: chromium is not installed and apt-get cannot run here (needs root or" \
      "password-less sudo); the browser tests will skip" >&2
  fi
fi
