"""Quality of the autoregressive generator under DP-SGD at several epsilons, and without DP.

Data: a run config's table (default: configs/adult.yaml), split into train and holdout as
the `synthesize` flow splits it (`tabular_quality.load_split`). For each epsilon (default
1, 2, 4, 8) and once without DP, one seed: fit `autoregressive` on the training rows
(`privacy.dp`'s defaults: delta 1e-5, max_grad_norm 1, encoder_share 0.1, the part spent
before DP-SGD on the encoder's statistics and the starting marginals; no public
domain unless --public-domain gives a YAML file of {column: {categories | bounds}}), sample
as many rows as the holdout holds, and score them against the holdout with the SDMetrics
QualityReport that benchmarks/tabular_quality.py uses (overall, column shapes, pair
trends). The real training rows scored against the holdout are the ceiling row. Compare
MOSTLY AI's DP TabularARGN on Adult (about 0.94 accuracy at epsilon 2.4 vs 0.98 without;
a different metric) and issue 20's goal: at epsilon 4, within 0.03 of no DP.

    python benchmarks/dp_sweep.py                                  # Adult, 1 2 4 8 + no DP
    python benchmarks/dp_sweep.py --epsilons 4 --set epochs=5 --train-rows 2000   # a smoke run

Writes benchmarks/results/dp_sweep.md (and .json beside it) and prints the table, with
the machine and its load average (the figures are seconds on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from tabular_quality import load_split, machine, quality  # noqa: E402

from generators.base import DPBudget  # noqa: E402
from generators.table.autoregressive import AutoregressiveGenerator  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def run_one(train, holdout, schema, epsilon: float | None, params: dict, domain: dict, seed: int):
    """Fit, sample len(holdout) rows, score against the holdout; one row of the table."""
    dp = None if epsilon is None else DPBudget(epsilon=epsilon, public_domain=domain)
    generator = AutoregressiveGenerator(device="auto", **params)
    started = time.perf_counter()
    generator.fit(train, schema, seed=seed, dp=dp)
    fit_seconds = time.perf_counter() - started
    synthetic = generator.sample(len(holdout), seed=seed + 1)
    details = getattr(generator, "dp_details_", None) or {}
    return {
        "epsilon": epsilon,
        "epsilon_spent": getattr(generator, "epsilon_spent_", None) if dp else None,
        "epsilon_encoder": details.get("epsilon_encoder"),
        "epsilon_marginals": details.get("epsilon_marginals"),
        **quality(holdout, synthetic, schema),
        "fit_seconds": fit_seconds,
        "epochs": len(generator.losses_),
        "columns": details.get("columns"),
    }


def markdown(rows: list[dict], about: str) -> str:
    lines = [
        about,
        "",
        "| epsilon | spent (before SGD) | quality | column shapes | pair trends | vs no DP "
        "| fit s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    plain = next((r["quality"] for r in rows if r["epsilon"] is None and "ceiling" not in r), None)
    for row in rows:
        name = "real train (ceiling)" if "ceiling" in row else row["epsilon"] or "no DP"
        spent = (
            f"{row['epsilon_spent']:.3f} ({row['epsilon_encoder'] + row['epsilon_marginals']:.3f})"
            if row.get("epsilon_spent") is not None
            else "—"
        )
        gap = (
            f"{row['quality'] - plain:+.3f}" if plain is not None and "ceiling" not in row else "—"
        )
        fit = f"{row['fit_seconds']:.0f}" if "fit_seconds" in row else "—"
        lines.append(
            f"| {name} | {spent} | {row['quality']:.3f} | {row['column_shapes']:.3f} "
            f"| {row['column_pair_trends']:.3f} | {gap} | {fit} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "adult.yaml")
    parser.add_argument("--epsilons", type=float, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--set", action="append", default=[], help="autoregressive KEY=VALUE")
    parser.add_argument("--public-domain", type=Path, help="YAML {column: {categories|bounds}}")
    parser.add_argument("--train-rows", type=int, help="use the first N training rows only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "dp_sweep")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    params = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    domain = yaml.safe_load(args.public_domain.read_text()) if args.public_domain else {}
    train, holdout, schema, _ = load_split(args.config)
    if args.train_rows:
        train = train.iloc[: args.train_rows].reset_index(drop=True)
    load_before = os.getloadavg()
    rows = [{"ceiling": True, "epsilon": None, **quality(holdout, train, schema)}]
    for epsilon in [None, *args.epsilons]:
        rows.append(run_one(train, holdout, schema, epsilon, params, domain, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    load_after = os.getloadavg()
    about = (
        f"Data: `{args.config.relative_to(REPO)}` ({len(train):,} training rows, "
        f"{len(holdout):,} holdout rows), autoregressive {params or 'defaults'}, seed "
        f"{args.seed}, public domain: {sorted(domain) or 'none'}; {machine()}; load average "
        f"(1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after."
    )
    table = markdown(rows, about)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table)
    args.out.with_suffix(".json").write_text(json.dumps({"about": about, "rows": rows}, indent=1))
    print(table)


if __name__ == "__main__":
    main()
