"""Peak memory and time of training the VAE in memory versus streamed from Parquet.

Data: the shipped Adult file (15 columns) bootstrapped to N rows with jitter on the numeric
columns (`nn_search.adult_like`), written once to Parquet in row groups of 131,072 rows.

Cases, each in its own process so its peak RSS (ru_maxrss) is its own:
  imports   import torch, pandas, pyarrow and synthpipe's generators: the floor under the rest
  read      read_table of the whole file into a frame (what the flow does today)
  memory    read_table, infer_schema, then vae.fit for --epochs epochs (in memory)
  stream    ParquetSource: schema from a 100k-row sample, then vae.fit_stream for --epochs
            epochs (sample of 100k rows, chunks of 65,536 rows, shuffle buffer of 4 chunks)

    python benchmarks/streaming_memory.py                   # 2,000,000 rows, 1 epoch
    python benchmarks/streaming_memory.py --rows 500000     # smaller
    python benchmarks/streaming_memory.py --cases stream --keep /tmp/adult.parquet
    python benchmarks/streaming_memory.py --params '{"latent_prior": "normal"}' --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

ROW_GROUP_ROWS = 131_072
CASES = ("imports", "read", "memory", "stream")


def write(path: Path, rows: int) -> None:
    import pyarrow.parquet as pq
    from nn_search import adult_like

    frame, schema = adult_like(rows, seed=1)
    pq.write_table(schema.to_arrow(frame), path, row_group_size=ROW_GROUP_ROWS)


def _time_phases() -> dict[str, float]:
    """Seconds spent in the VAE's training epochs and in fitting its latent mixture,
    filled in as they run (the rest of a fit is reading, schema and encoding)."""
    from generators.table.vae import TabularVAEGenerator

    phases: dict[str, float] = {}
    for method, label in (("_train", "train_s"), ("_fit_latent_mixture", "mixture_s")):
        original = getattr(TabularVAEGenerator, method)

        def timed(self, *args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                phases[_label] = round(time.perf_counter() - started, 1)

        setattr(TabularVAEGenerator, method, timed)
    return phases


def run_case(case: str, path: Path, epochs: int, extra_params: dict, device: str) -> dict:
    import torch

    from generators.data.schema import infer_schema
    from generators.data.streaming import ParquetSource
    from generators.data.tables import read_table
    from generators.registry import make_generator

    torch.set_num_threads(1)
    params = {"epochs": epochs, **extra_params}
    phases = _time_phases()
    started = time.perf_counter()
    extra: dict = {}
    if case == "read":
        frame, _ = read_table(str(path))
        extra["frame_mib"] = round(frame.memory_usage(deep=True).sum() / 2**20)
    elif case == "memory":
        frame, arrow_schema = read_table(str(path))
        schema = infer_schema(frame, arrow_schema=arrow_schema)
        vae = make_generator("vae", params, device=device).fit(frame, schema, seed=0)
        extra["loss"] = round(vae.losses_[-1]["loss"], 3)
    elif case == "stream":
        source = ParquetSource(path)
        schema = infer_schema(source.sample(100_000, seed=0), arrow_schema=source.arrow_schema)
        vae = make_generator("vae", params, device=device).fit_stream(source, schema, seed=0)
        extra["loss"] = round(vae.losses_[-1]["loss"], 3)
    seconds = time.perf_counter() - started
    extra.update(phases)
    return {
        "case": case,
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "device": device,
        **extra,
    }


def child(*arguments: str) -> dict:
    """Run this script with `arguments` in a fresh process; its printed JSON result."""
    done = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        return {"failed": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    # The parent imports nothing heavy and holds no data: on Linux a child's ru_maxrss
    # starts from what its parent held when it was forked.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--keep", type=Path, help="write (or reuse) the Parquet file here")
    parser.add_argument(
        "--params",
        default="{}",
        help='more vae parameters as JSON, e.g. \'{"latent_prior": "normal"}\'',
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # a child process runs one case
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case == "write":
        write(args.path, args.rows)
        print(json.dumps({}))
        return
    if args.case:
        print(
            json.dumps(
                run_case(args.case, args.path, args.epochs, json.loads(args.params), args.device)
            )
        )
        return

    folder = tempfile.TemporaryDirectory()
    path = args.keep or Path(folder.name) / "adult_like.parquet"
    if not path.exists():
        started = time.perf_counter()
        result = child("--case", "write", "--path", str(path), "--rows", str(args.rows))
        if "failed" in result:
            sys.exit(f"writing the data failed: {result['failed']}")
        print(f"wrote {args.rows:,} rows to {path} in {time.perf_counter() - started:.0f} s")
    import pyarrow.parquet as pq  # small; the parent reads only the footer

    rows = pq.ParquetFile(path).metadata.num_rows
    size_mib = path.stat().st_size / 2**20
    print(
        f"{rows:,} rows, {size_mib:.1f} MiB of Parquet in row groups of {ROW_GROUP_ROWS:,}; "
        f"vae for {args.epochs} epoch(s) with {args.params} on {args.device}, one torch thread"
    )
    print(f"{'case':<8} {'seconds':>8} {'peak RSS MiB':>13}  notes")
    for case in args.cases:
        result = child(
            "--case",
            case,
            "--path",
            str(path),
            "--epochs",
            str(args.epochs),
            "--params",
            args.params,
            "--device",
            args.device,
        )
        if "failed" in result:
            print(f"{case:<8} failed: {result['failed']}")
            continue
        notes = {k: v for k, v in result.items() if k not in ("case", "seconds", "peak_rss_mib")}
        print(f"{case:<8} {result['seconds']:>8} {result['peak_rss_mib']:>13}  {notes}", flush=True)


if __name__ == "__main__":
    main()
