"""Write the golden saved models and golden runs (see tests/golden.py).

Run it only at a commit whose behaviour is the reference (it overwrites the fixtures):
    .venv/bin/python scripts/make_golden.py [--models] [--runs]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: E402,F401  (offline, telemetry-off defaults before Prefect or MLflow load)
from tests.golden import GOLDEN_RUNS, SAVED_MODELS, build_saved_models, write_golden_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", action="store_true", help="only the saved models")
    parser.add_argument("--runs", action="store_true", help="only the golden runs")
    parser.add_argument(
        "--add-missing",
        action="store_true",
        help="only saved models of generators registered since (keeps every existing fixture)",
    )
    args = parser.parse_args()
    both = not (args.models or args.runs or args.add_missing)
    if args.add_missing:
        for modality, name in build_saved_models(only_missing=True):
            print(f"saved {modality}/{name}")
    if args.models or both:
        shutil.rmtree(SAVED_MODELS, ignore_errors=True)
        for modality, name in build_saved_models():
            print(f"saved {modality}/{name}")
    if args.runs or both:
        GOLDEN_RUNS.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            from prefect.testing.utilities import prefect_test_harness

            with prefect_test_harness():
                write_golden_runs(GOLDEN_RUNS, Path(scratch))
        print(f"wrote {sorted(p.name for p in GOLDEN_RUNS.iterdir())}")


if __name__ == "__main__":
    main()
