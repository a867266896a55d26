"""Rows/s of sharded sampling to Parquet (the flow's `sample_shards` subflow) by runner and
workers.

    python benchmarks/sharded_sampling.py [--rows 2000000] [--shard-rows 250000]
        [--workers 1 2 4] [--kinds threads processes dask] [--generator autoregressive]

Fits the generator once on the shipped Adult file (data/adult), saves it, then samples
`--rows` rows as parts of `--shard-rows` with each runner kind and worker count, on
Prefect's ephemeral local server. Prints wall seconds and rows/s per setting, and checks
that every setting wrote the same bytes as the first (same seed, same parts).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: E402,F401  (offline, telemetry-off defaults before Prefect loads)
from flows.config import DataConfig, RunnerConfig  # noqa: E402
from flows.modalities import MODALITIES  # noqa: E402
from flows.shards import sample_shards, task_runner  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from tests.conftest import ADULT_COLUMNS, ADULT_FILE  # noqa: E402


def digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for part in sorted(folder.glob("part-*.parquet")):
        sha.update(part.read_bytes())
    return sha.hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--shard-rows", type=int, default=250_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--kinds", nargs="+", default=["threads", "processes", "dask"])
    parser.add_argument("--generator", default="autoregressive")
    args = parser.parse_args()

    data = DataConfig(path=str(ADULT_FILE), columns=ADULT_COLUMNS, separator=", ", na_values=["?"])
    frame, schema = MODALITIES[data.modality].read(data)
    work = Path(tempfile.mkdtemp(prefix="sharded-"))
    started = time.perf_counter()
    generator = make_generator(args.generator, device="cpu").fit(frame, schema, seed=0)
    generator.save(work / "generator")
    fit_seconds = time.perf_counter() - started
    print(f"{args.generator} fitted on {len(frame)} Adult rows in {fit_seconds:.1f} s")
    print(f"{args.rows:,} rows in parts of {args.shard_rows:,}")
    print(f"{'runner':<10} {'workers':>7} {'seconds':>8} {'rows/s':>10}  parts digest")
    reference = None
    for kind in args.kinds:
        for workers in args.workers:
            out = work / f"{kind}-{workers}"
            runner = task_runner(RunnerConfig(kind=kind, workers=workers))
            started = time.perf_counter()
            sample_shards.with_options(task_runner=runner)(
                work / "generator", args.rows, args.shard_rows, 7, schema, out, {}
            )
            seconds = time.perf_counter() - started
            parts = digest(out)
            reference = reference or parts
            same = "same" if parts == reference else "DIFFERENT"
            print(
                f"{kind:<10} {workers:>7} {seconds:>8.1f} {args.rows / seconds:>10,.0f}  "
                f"{parts} ({same})",
                flush=True,
            )
            shutil.rmtree(out)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
