"""Time and peak memory of the privacy checks' nearest-neighbour work at scale.

Data: the shipped Adult file (15 columns, 125 distance features) bootstrapped to N rows
with jitter on the numeric columns, for train, holdout and synthetic alike.

Cases, each in its own process so its peak RSS is its own:
  exact N        nearest_neighbors, N synthetic rows x N training rows, k=2, no subsampling
  metrics N      privacy_metrics on N-row train/holdout/synthetic with the default max_rows
                 (subsampled above it; the report says so)

    python benchmarks/nn_search.py                      # exact 10k, 100k; metrics 100k, 1M
    python benchmarks/nn_search.py exact 20000          # one case
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generators.data.schema import infer_schema  # noqa: E402
from generators.data.tables import read_table  # noqa: E402
from tests.conftest import ADULT_COLUMNS  # noqa: E402

DEFAULT_CASES = [
    ("exact", 10_000),
    ("exact", 100_000),
    ("metrics", 100_000),
    ("metrics", 1_000_000),
]


def adult_like(rows: int, seed: int):
    frame, arrow_schema = read_table(
        str(REPO / "data" / "adult" / "adult.data.gz"),
        columns=ADULT_COLUMNS,
        separator=", ",
        na_values=["?"],
    )
    schema = infer_schema(frame, arrow_schema=arrow_schema)
    rng = np.random.default_rng(seed)
    out = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    for name in schema.names_of("numeric"):
        spread = float(frame[name].std())
        jitter = rng.normal(0, 0.05 * spread, rows).round()
        out[name] = (out[name].astype("float64") + jitter).clip(lower=0).round().astype("Int64")
    return out, schema


def run_case(kind: str, rows: int) -> dict:
    from validation.distance import DistanceEncoder, nearest_neighbors
    from validation.privacy import PrivacyPolicy, privacy_metrics

    train, schema = adult_like(rows, seed=1)
    other, _ = adult_like(rows, seed=2)
    started = time.perf_counter()
    if kind == "exact":
        encoder = DistanceEncoder.fit(train, schema)
        x_train, x_other = encoder.transform(train), encoder.transform(other)
        nearest_neighbors(x_other, x_train, 2, **encoder.search)
        extra = {"features": int(x_train.shape[1])}
    else:
        holdout, _ = adult_like(rows, seed=3)
        max_rows = PrivacyPolicy().max_rows
        _, details = privacy_metrics(train, holdout, other, schema, max_rows=max_rows)
        extra = {"max_rows": max_rows, "sample_sizes": details["sample_sizes"]}
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "case": kind,
        "rows": rows,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak_mib),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        **extra,
    }


def main() -> None:
    if len(sys.argv) == 3:
        print(json.dumps(run_case(sys.argv[1], int(sys.argv[2]))))
        return
    print(f"{'case':<8} {'rows':>10} {'seconds':>9} {'peak RSS MiB':>13}  notes")
    for kind, rows in DEFAULT_CASES:
        done = subprocess.run(
            [sys.executable, __file__, kind, str(rows)], capture_output=True, text=True
        )
        if done.returncode != 0:
            print(f"{kind:<8} {rows:>10} failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        notes = {
            k: v for k, v in result.items() if k not in ("case", "rows", "seconds", "peak_rss_mib")
        }
        print(f"{kind:<8} {rows:>10} {result['seconds']:>9} {result['peak_rss_mib']:>13}  {notes}")


if __name__ == "__main__":
    main()
