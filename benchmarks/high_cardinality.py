"""What a run costs on a table with one high-cardinality categorical column.

    .venv/bin/python benchmarks/high_cardinality.py [--rows 20000] [--categories 100 1000 15000]
        [--generator autoregressive] [--out benchmarks/results/high_cardinality.txt]

For each category count C it writes a table of `--rows` rows (a `city` column with C
categories, every one present, plus two numbers and a 5-category column), runs
`synthpipe run` on it in a fresh process with the config's defaults (privacy gate,
expectations, fidelity on) and prints the stage times the run logged to MLflow, its wall
time and its peak resident memory (the child's ru_maxrss). Torch uses 2 threads. Run it
alone: other processes on the machine slow every stage (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["ingest_seconds", "fit_seconds", "sample_seconds", "total_seconds"]


def write_table(path: Path, rows: int, categories: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    names = np.array([f"c{i:06d}" for i in range(categories)])
    city = np.concatenate([names, rng.choice(names, rows - categories)])
    frame = pd.DataFrame(
        {
            "city": city,
            "age": rng.integers(18, 90, rows),
            "income": rng.lognormal(10, 1, rows).round(2),
            "group": rng.choice(list("abcde"), rows),
        }
    )
    frame.sample(frac=1, random_state=seed).to_csv(path, index=False)


def run_once(folder: Path, rows: int, categories: int, generator: str) -> dict[str, float]:
    table = folder / f"table_{categories}.csv"
    write_table(table, rows, categories)
    config = {
        "name": f"cardinality_{categories}",
        "data": {"path": str(table)},
        "generator": {"name": generator},
        "output": {"dir": str(folder / "out")},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db", "experiment": "cardinality"},
    }
    config_file = folder / f"config_{categories}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    log = folder / f"run_{categories}.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", str(config_file)],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)},
        )
        # wait4: this child's own peak memory (kilobytes on Linux).
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):  # 3: quarantined, a finished run all the same
        raise SystemExit(f"C={categories}: run failed\n{log.read_text()[-3000:]}")
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{folder}/mlflow.db")
    experiment = client.get_experiment_by_name("cardinality")
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    figures = {stage: run.data.metrics.get(stage, float("nan")) for stage in STAGES}
    figures["checks_seconds"] = figures["total_seconds"] - sum(figures[s] for s in STAGES[:3])
    figures["wall_seconds"] = wall
    figures["peak_rss_gb"] = usage.ru_maxrss / 1e6
    figures["status"] = "published" if code == 0 else "quarantined"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--categories", type=int, nargs="+", default=[100, 1000, 15_000])
    parser.add_argument("--generator", default="autoregressive")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores); rows: {args.rows}")
    header = "categories  fit_s  sample_s  checks_s  total_s  wall_s  peak_rss_gb  status"
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for categories in sorted(args.categories):
            f = run_once(Path(tmp), args.rows, categories, args.generator)
            print(
                f"{categories:>10}  {f['fit_seconds']:5.0f}  {f['sample_seconds']:8.1f}  "
                f"{f['checks_seconds']:8.0f}  {f['total_seconds']:7.0f}  {f['wall_seconds']:6.0f}"
                f"  {f['peak_rss_gb']:11.2f}  {f['status']}",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
