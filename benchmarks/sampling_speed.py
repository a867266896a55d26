"""Fit and sampling speed of one generator on Adult, at a chosen number of torch threads.

Fits on the training split of `configs/adult.yaml` (as the flow splits it), samples 1,000
rows to warm up, then times three samples of `--rows` rows. Run it on an idle machine: other
processes spinning on the same cores slow torch down several times over.

    python benchmarks/sampling_speed.py                                  # autoregressive, 2 threads
    python benchmarks/sampling_speed.py --generator gmm --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flows.config import load_config  # noqa: E402
from flows.modalities import modality_of  # noqa: E402
from generators.data.split import split_holdout  # noqa: E402
from generators.registry import make_generator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="autoregressive")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "adult.yaml")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    frame, schema = modality_of(config).read(config.data)
    train, _ = split_holdout(frame, config.data.holdout_fraction, config.seed, config.data.target)
    generator = make_generator(args.generator, device="cpu")
    started = time.perf_counter()
    generator.fit(train, schema, seed=config.seed)
    fit_seconds = time.perf_counter() - started
    generator.sample(1_000, seed=0)
    print(
        f"{args.generator}, {args.threads} torch thread(s), load average {os.getloadavg()[0]:.2f}"
    )
    print(f"fit {fit_seconds:.1f} s on {len(train)} rows")
    for seed in range(3):
        started = time.perf_counter()
        generator.sample(args.rows, seed=seed)
        seconds = time.perf_counter() - started
        print(f"sample {args.rows} rows: {seconds:.2f} s = {args.rows / seconds:,.0f} rows/s")


if __name__ == "__main__":
    main()
