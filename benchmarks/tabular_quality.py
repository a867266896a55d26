"""Quality, privacy, speed and memory of tabular generators side by side, on one machine.

Data: a run config's table (default: configs/adult.yaml, the shipped Adult file), split
into train and holdout exactly as the `synthesize` flow splits it (seeded, stratified on
data.target). Each generator runs in its own process, so its peak RSS is its own:

  fit            generator.fit(train) at the generator's default parameters (or --set)
  sample         100,000 rows (--sample-rows), timed: rows per second
  quality        SDMetrics 0.32 QualityReport of train vs synthetic (as many synthetic rows
                 as training rows): overall score, column shapes, column pair trends
  DCR share      validation.privacy.privacy_metrics(train, holdout, synthetic); 0.5 = no
                 memorisation, 1.0 = a copy of the training rows

The real holdout, scored against the training rows, is the ceiling row.

    python benchmarks/tabular_quality.py                                  # project + copula
    python benchmarks/tabular_quality.py --generators autoregressive vae
    python benchmarks/tabular_quality.py --generators autoregressive tvae ctgan   # SDV: slow
    python benchmarks/tabular_quality.py --set autoregressive.epochs=5

Writes benchmarks/results/tabular_quality.md (and .json beside it) and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flows.config import load_config  # noqa: E402
from flows.modalities import modality_of  # noqa: E402
from generators.data.schema import Schema  # noqa: E402
from generators.data.split import split_holdout  # noqa: E402
from generators.registry import TABLE_GENERATORS, make_generator  # noqa: E402

# The project's own tabular generators, and SDV's fastest as the anchor. TVAE and CTGAN at
# SDV's defaults take 338 s and 2,263 s on a 2-core CPU: ask for them by name.
DEFAULT_GENERATORS = ["autoregressive", "gmm", "vae", "gan", "gaussian_copula"]
RESULTS = REPO / "benchmarks" / "results"
_SDTYPES = {
    "numeric": "numerical",
    "categorical": "categorical",
    "boolean": "boolean",
    "datetime": "datetime",
}


def load_split(config_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, Schema, dict]:
    """(train, holdout, schema, data description), as the synthesize flow makes them."""
    config = load_config(config_path)
    data = config.data
    frame, schema = modality_of(config).read(data)
    train, holdout = split_holdout(frame, data.holdout_fraction, config.seed, data.target)
    about = {"config": str(config_path), "name": config.name, "seed": config.seed}
    return train.reset_index(drop=True), holdout.reset_index(drop=True), schema, about


def quality(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict[str, float]:
    """SDMetrics QualityReport: overall score, column shapes, column pair trends."""
    from sdmetrics.reports.single_table import QualityReport

    measured = [c for c in schema.columns if c.kind in _SDTYPES]
    metadata = {"columns": {c.name: {"sdtype": _SDTYPES[c.kind]} for c in measured}}
    names = [c.name for c in measured]
    report = QualityReport()
    report.generate(
        schema.to_model_frame(real[names]),
        schema.to_model_frame(synthetic[names]),
        metadata,
        verbose=False,
    )
    properties = report.get_properties().set_index("Property")["Score"]
    return {
        "quality": float(report.get_score()),
        "column_shapes": float(properties["Column Shapes"]),
        "column_pair_trends": float(properties["Column Pair Trends"]),
    }


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(
    name: str, config_path: Path, params: dict, sample_rows: int, seed: int, threads: int | None
) -> dict:
    """Fit, sample, score one generator (in this process)."""
    import warnings

    from validation.privacy import privacy_metrics

    warnings.simplefilter("ignore")
    if threads:
        torch.set_num_threads(threads)
    train, holdout, schema, _ = load_split(config_path)
    rss_before = _rss_mib()
    generator = make_generator(name, params, device="auto")
    started = time.perf_counter()
    generator.fit(train, schema, seed=seed)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    synthetic = generator.sample(sample_rows, seed=seed + 1)
    sample_seconds = time.perf_counter() - started
    peak = _rss_mib()
    scored = synthetic.iloc[: len(train)].reset_index(drop=True)
    figures = quality(train, scored, schema)
    privacy, _ = privacy_metrics(train, holdout, scored, schema, seed=seed)
    return {
        "generator": name,
        **figures,
        "dcr_share": privacy["dcr_share"],
        "fit_seconds": fit_seconds,
        "epochs": len(generator.losses_) or None,
        "sample_rows_per_second": sample_rows / sample_seconds,
        "peak_rss_mib": peak,
        "rss_before_fit_mib": rss_before,
        "torch_threads": torch.get_num_threads(),
        "params": params,
    }


def run_in_subprocess(name: str, args: argparse.Namespace, params: dict) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--config",
        str(args.config),
        "--sample-rows",
        str(args.sample_rows),
        "--seed",
        str(args.seed),
        "--params-json",
        json.dumps(params),
        *(["--threads", str(args.threads)] if args.threads else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"{name}: failed: {tail[0]}", file=sys.stderr)
        return {"generator": name, "error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    import os

    return (
        f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )


def _cell(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown(rows: list[dict], about: dict, train_rows: int, sample_rows: int) -> str:
    lines = [
        f"Data: `{about['config']}` ({train_rows:,} training rows, seed {about['seed']}); "
        f"{_today()}; {machine()}.",
        "",
        "| generator | quality | column shapes | pair trends | DCR share | fit s | epochs "
        f"| sample rows/s ({sample_rows:,}) | peak RSS MiB | torch threads |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['generator']} | failed: {row['error'][:80]} ||||||||")
            continue
        lines.append(
            f"| {row['generator']} | {_cell(row['quality'])} | {_cell(row['column_shapes'])} "
            f"| {_cell(row['column_pair_trends'])} | {_cell(row.get('dcr_share'))} "
            f"| {_cell(row.get('fit_seconds'), 1)} | {_cell(row.get('epochs'))} "
            f"| {_cell(row.get('sample_rows_per_second'), 0)} "
            f"| {_cell(row.get('peak_rss_mib'), 0)} | {_cell(row.get('torch_threads'))} |"
        )
    return "\n".join(lines) + "\n"


def _today() -> str:
    return datetime.date.today().isoformat()


def _parse_sets(sets: list[str]) -> dict[str, dict]:
    """`name.key=value` (value read as YAML) -> {name: {key: value}}."""
    out: dict[str, dict] = {}
    for item in sets:
        key, _, value = item.partition("=")
        name, _, param = key.partition(".")
        if not param or not _:
            raise SystemExit(f"--set {item!r}: expected GENERATOR.PARAM=VALUE")
        out.setdefault(name, {})[param] = yaml.safe_load(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "adult.yaml")
    parser.add_argument("--generators", nargs="+", default=None)
    parser.add_argument("--sample-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="GENERATOR.PARAM=VALUE")
    parser.add_argument("--output", type=Path, default=RESULTS / "tabular_quality.md")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per generator (default: torch's own, one per core); on a CPU "
        "shared with other jobs, 1 avoids threads spinning against them",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--params-json", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        params = json.loads(args.params_json)
        result = run_one(
            args.worker, args.config, params, args.sample_rows, args.seed, args.threads
        )
        print(json.dumps(result))
        return

    names = args.generators or [n for n in DEFAULT_GENERATORS if n in TABLE_GENERATORS]
    unknown = [n for n in names if n not in TABLE_GENERATORS]
    if unknown:
        raise SystemExit(
            f"unknown generator(s) {unknown}; known: {', '.join(sorted(TABLE_GENERATORS))}"
        )
    sets = _parse_sets(args.set)
    train, holdout, schema, about = load_split(args.config)

    rows = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows.append(run_in_subprocess(name, args, sets.get(name, {})))
    ceiling = {"generator": "real holdout (ceiling)", **quality(train, holdout, schema)}
    rows.append(ceiling)

    table = markdown(rows, about, len(train), args.sample_rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(f"# Tabular generators on {about['name']}\n\n{table}")
    args.output.with_suffix(".json").write_text(
        json.dumps({"date": _today(), "machine": machine(), "about": about, "rows": rows}, indent=2)
    )
    print(table)


if __name__ == "__main__":
    main()
