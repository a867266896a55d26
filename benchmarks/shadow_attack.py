"""Cost of the shadow-model membership attack, and what it says of a real generator.

    python benchmarks/shadow_attack.py          # both parts; prints and writes
                                                # benchmarks/results/shadow_attack.json

cost      the whole shipped Adult file split as a run splits it (20% holdout): the attack
          with the default privacy.shadow settings (8 shadows, ~1000 rows each, 5 epochs),
          shadows of the autoregressive model and of gaussian_copula; wall and CPU seconds
          (CPU counts every thread). The release is a bootstrap of the training rows: the
          cost does not depend on what the release holds.
release   the autoregressive model (15 epochs, width 32) fitted on 4,000 Adult rows, its
          4,000 sampled rows attacked with shadows of the same model at 3 epochs, per seed:
          an honest generator should pass (no p-value below alpha / 6).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generators.data.schema import infer_schema, normalize_dtypes  # noqa: E402
from generators.data.split import split_holdout  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from tests.conftest import read_adult  # noqa: E402
from validation.shadow import ShadowPolicy, shadow_failures, shadow_membership_attack  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "shadow_attack.json"


def cost() -> list[dict]:
    frame = normalize_dtypes(read_adult(None))
    schema = infer_schema(frame)
    train, holdout = split_holdout(frame, 0.2, 0, "income")
    release = train.sample(len(train), random_state=0, replace=True).reset_index(drop=True)
    rows = []
    for name, params in (("autoregressive", {"epochs": 5}), ("gaussian_copula", {})):
        wall, cpu = time.perf_counter(), time.process_time()
        attack = shadow_membership_attack(
            train,
            holdout,
            release,
            schema,
            lambda n=name, p=params: make_generator(n, p, "cpu"),
            seed=0,
        )
        rows.append(
            {
                "case": "cost",
                "shadows_of": name,
                "train_rows": len(train),
                "holdout_rows": len(holdout),
                "shadow_rows": attack.shadow_rows,
                "synthetic_rows": attack.synthetic_rows,
                "wall_seconds": round(time.perf_counter() - wall, 1),
                "cpu_seconds": round(time.process_time() - cpu, 1),
            }
        )
        print(rows[-1], flush=True)
    return rows


def release(seeds: int = 3) -> list[dict]:
    frame = normalize_dtypes(read_adult(9000))
    schema = infer_schema(frame)
    rows = []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(frame))
        train = frame.iloc[order[:4000]].reset_index(drop=True)
        holdout = frame.iloc[order[4000:5000]].reset_index(drop=True)
        model = make_generator("autoregressive", {"epochs": 15, "width": 32}, "cpu")
        synthetic = model.fit(train, schema, seed=seed).sample(4000, seed=seed + 100)
        attack = shadow_membership_attack(
            train,
            holdout,
            synthetic,
            schema,
            lambda: make_generator("autoregressive", {"epochs": 3, "width": 32}, "cpu"),
            seed=seed,
        )
        row = {"case": "release", "seed": seed, "in_out_auc": attack.shadow_in_out_auc}
        for name, result in attack.results.items():
            row[f"{name}_auc"] = round(result.auc, 3)
            row[f"{name}_tpr_at_0.001"] = round(result.tpr_at_fpr["0.001"], 3)
            row[f"{name}_min_p"] = float(f"{result.min_p_value:.2g}")
        row["quarantined"] = bool(shadow_failures(attack, ShadowPolicy().alpha))
        rows.append(row)
        print(row, flush=True)
    return rows


if __name__ == "__main__":
    torch.set_num_threads(2)
    results = cost() + release()
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
