#!/usr/bin/env bash
# The GPU checks, in one run on a machine with CUDA: the `gpu`-marked tests, then
# benchmarks/gpu_speed.py (CPU vs CUDA). Logs and JSON go to $OUT (default /tmp/gpu_check).
#
#   bash benchmarks/gpu_check.sh
#
# On a bare machine whose Python has torch but not all of synthpipe's dependencies, put
# wheels in .whl/ (installed to /tmp/site) and data in .gpu/data (copied to ../shared/data).
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
PYTHON=${PYTHON:-python3}
if [ -d .whl ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  # synthpipe is tested on pandas 2.x: take the carried one where the machine has another.
  if ! "$PYTHON" -c "import pandas, sys; sys.exit(pandas.__version__[0] != '2')"; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/pandas/*.whl
  fi
  export PYTHONPATH=/tmp/site
fi
if [ -d .gpu/data ] && [ ! -d ../shared/data ]; then
  mkdir -p ../shared && cp -rL .gpu/data ../shared/
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
"$PYTHON" -c "import numpy, pandas, pyarrow, torch, pydantic; print('numpy', numpy.__version__, 'pandas', pandas.__version__, 'pyarrow', pyarrow.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
timeout "${TEST_SECONDS:-170}" "$PYTHON" -m pytest -p no:cacheprovider -q -m gpu -rfEs \
  tests/test_gpu.py tests/generators/test_image_generators.py 2>&1 | tee "$OUT/gpu_tests.log"
timeout "${SPEED_SECONDS:-270}" "$PYTHON" benchmarks/gpu_speed.py --json "$OUT/gpu_speed.json" 2>&1 \
  | tee "$OUT/gpu_speed.log"
