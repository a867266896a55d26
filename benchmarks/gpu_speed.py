"""Fit and sampling speed of every torch generator on the CPU and on CUDA, same settings.

Each case is a run config of configs/ (its data, as the flow reads it, and its generator
parameters) with a short training budget (fewer epochs / iterations / steps, the same on
both devices), so the two rows of a case do the same work:

    fit s         generator.fit on the config's data (tables: the flow's training split)
    sample s      generator.sample(--rows of the case), after a small warm-up sample
    units/s       rows (tables), images, documents or sequence rows per second of sampling

Cases whose data is absent (../shared/data missing) are skipped with a note. Run it on an
idle machine; `--threads` sets torch's CPU threads (default: every core).

    python benchmarks/gpu_speed.py                         # every case, cpu and cuda
    python benchmarks/gpu_speed.py --cases adult_vae --devices cuda
"""

from __future__ import annotations

import argparse
import json
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
from generators.registry import generator_class  # noqa: E402

# config -> (budget overrides, rows to sample). Budgets keep a CPU row within a minute.
CASES: dict[str, tuple[dict, int]] = {
    "adult": ({"epochs": 3}, 100_000),  # autoregressive
    "adult_vae": ({"epochs": 3}, 100_000),
    "adult_gan": ({"epochs": 3}, 100_000),
    "adult_gmm": ({"n_components": 32, "max_components": None}, 100_000),
    "adult_rbm": ({"epochs": 3, "burn_in": 100}, 20_000),
    "mnist_dcgan": ({"epochs": 1}, 10_000),
    "mnist_conv_vae": ({"epochs": 1}, 10_000),
    "mnist_rbm": ({"epochs": 1}, 2_000),
    "tiny_shakespeare_hmm": ({"n_iter": 3}, 500),
    "tiny_shakespeare_lda": ({"max_iter": 2}, 100),
    "tiny_shakespeare_char_lm": ({"max_steps": 100}, 500),
    "beijing_hmm": ({"n_iter": 3}, 0),  # 0: as many sequences as the training data
}


def _training_data(config):
    frame, schema = modality_of(config).read(config.data)
    if config.data.modality == "table":
        frame, _ = split_holdout(
            frame, config.data.holdout_fraction, config.seed, config.data.target
        )
    return frame, schema


def _generator(config, overrides: dict, device: str):
    cls = generator_class(config.generator.name, config.data.modality)
    params = {**config.generator.params, **overrides}
    params = {k: v for k, v in params.items() if k in cls.Params.model_fields and v is not None}
    if config.data.modality == "sequence":
        return cls(device=device, sequence=config.data.sequence, **params)
    return cls(device=device, **params)


def _synchronized(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_case(name: str, device: str) -> dict:
    config = load_config(REPO / "configs" / f"{name}.yaml")
    overrides, rows = CASES[name]
    frame, schema = _training_data(config)
    generator = _generator(config, overrides, device)
    _synchronized(device)
    started = time.perf_counter()
    generator.fit(frame, schema, seed=0)
    _synchronized(device)
    fit_seconds = time.perf_counter() - started
    generator.sample(min(rows, 100) or 100, seed=1)  # warm-up: kernels, caches
    if config.data.modality == "sequence":
        column = config.data.sequence.entity_column
        rows = rows or frame[column].nunique()
    _synchronized(device)
    started = time.perf_counter()
    synthetic = generator.sample(rows, seed=2)
    _synchronized(device)
    sample_seconds = time.perf_counter() - started
    return {
        "case": name,
        "generator": f"{config.data.modality} {config.generator.name}",
        "device": device,
        "train_units": len(frame),
        "fit_s": round(fit_seconds, 2),
        "sample_units": len(synthetic),
        "sample_s": round(sample_seconds, 3),
        "units_per_s": round(len(synthetic) / sample_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--devices", nargs="+", default=default_devices, choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"torch {torch.__version__}; {args.threads} CPU threads; {gpu}", flush=True)
    print("case | generator | device | train | fit s | sampled | sample s | per s", flush=True)
    results = []
    for name in args.cases:
        for device in args.devices:
            try:
                row = run_case(name, device)
            except Exception as error:  # a missing dataset or a broken case: note, go on
                print(f"{name} | {device} | skipped: {type(error).__name__}: {error}", flush=True)
                continue
            results.append(row)
            print(" | ".join(str(v) for v in row.values()), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
