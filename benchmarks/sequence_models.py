"""Sequence models on Beijing air quality: our hmm vs SDV's PAR, and our Baum–Welch vs hmmlearn.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sequence_models.py [--hours 2016]

Reads ../shared/data/beijing_air_quality (skips with a message when absent), keeps the
first `--hours` hours of each of the 12 stations (PAR's sampling is O(T^2) per piece and
slow on a CPU), holds out 2 whole stations, and prints:

1. hmm (autoregressive and gaussian emissions) vs PAR: fit and sample seconds, and the
   sequence fidelity figures against the 10 training stations (ACF distance, KS, TVD,
   within-station correlation difference), with the 2 held-out stations as the reference.
2. Baum–Welch on the numeric columns (gaps filled forward within each station, since
   hmmlearn takes no missing values), same initial parameters: our batched float64 EM vs
   hmmlearn's GaussianHMM, fit seconds and final log-likelihood.
Everything runs on one CPU thread unless CUDA is present (then our models use it).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generators.data.schema import infer_schema  # noqa: E402
from generators.data.tables import read_table  # noqa: E402
from generators.sequence.data import (  # noqa: E402
    SequenceSettings,
    check_sequences,
    entity_lengths,
    split_entities,
)
from generators.sequence.hmm import (  # noqa: E402
    SequenceHMMGenerator,
    SequenceHMMState,
    baum_welch_sequences,
    encoded_numeric,
    sequence_log_likelihood,
)
from generators.sequence.par import PARGenerator  # noqa: E402
from validation.sequences import pooled_acf, sequence_fidelity_report  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "beijing_air_quality"
NUMERIC = ["PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "RAIN", "WSPM"]
FIGURES = ("acf_distance_mean", "ks_mean", "tvd_mean", "correlation_difference", "length_ks")


def load(hours: int) -> tuple[pd.DataFrame, SequenceSettings]:
    settings = SequenceSettings(
        entity_column="station",
        order_column="time",
        order_parts=["year", "month", "day", "hour"],
        max_length=128,
        acf_lags=24,
    )
    frame, _ = read_table(str(DATA / "*.csv.gz"), drop=["No"])
    frame = check_sequences(frame, settings)
    frame = frame.groupby("station", sort=False).head(hours).reset_index(drop=True)
    return frame, settings.model_copy(update={"order_parts": None})


def compare_generators(train, holdout, settings, args) -> list[dict]:
    schema = infer_schema(train)
    rows = []
    states = {"n_states": args.states}
    models = {
        "hmm": ("hmm (autoregressive)", SequenceHMMGenerator, states),
        # EM's own model: columns independent given the state (no correlated_noise).
        "hmm-independent": (
            "hmm (autoregressive, independent noise)",
            SequenceHMMGenerator,
            {**states, "correlated_noise": False},
        ),
        "hmm-gaussian": (
            "hmm (gaussian)",
            SequenceHMMGenerator,
            {**states, "emission": "gaussian"},
        ),
        "par": ("par", PARGenerator, {"epochs": args.par_epochs}),
    }
    models = [models[name] for name in args.models]
    n_entities = train.station.nunique()
    for label, cls, params in models:
        model = cls(sequence=settings, **params)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train, schema, seed=0)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        synthetic = model.sample(n_entities, seed=1)
        sample_s = time.perf_counter() - start
        report = sequence_fidelity_report(train, holdout, synthetic, settings, seed=0)
        rows.append(
            {
                "model": label,
                "fit_s": fit_s,
                "sample_s": sample_s,
                **{name: report.metrics.get(name, np.nan) for name in FIGURES},
                "lag1_PM2.5": pooled_acf(synthetic, settings, "PM2.5", 1)[0],
            }
        )
        if label.startswith("hmm (auto"):
            reference = report.metrics
    rows.append(
        {
            "model": "holdout (real, reference)",
            "fit_s": np.nan,
            "sample_s": np.nan,
            **{name: reference.get(_holdout_key(name), np.nan) for name in FIGURES},
            "lag1_PM2.5": pooled_acf(holdout, settings, "PM2.5", 1)[0],
        }
    )
    rows.append({"model": "train (real)", "lag1_PM2.5": pooled_acf(train, settings, "PM2.5", 1)[0]})
    return rows


def _holdout_key(name: str) -> str:
    if name.endswith("_mean"):
        return name.replace("_mean", "_holdout_mean")
    return f"{name}_holdout"


def compare_hmmlearn(train: pd.DataFrame, args) -> dict:
    from hmmlearn.hmm import GaussianHMM

    filled = train.groupby("station", sort=False)[NUMERIC].transform(lambda c: c.ffill().bfill())
    x = filled.to_numpy(dtype="float64", na_value=np.nan)
    x = (x - x.mean(0)) / x.std(0)
    lengths = entity_lengths(train, "station")
    rng = np.random.default_rng(0)
    k = args.states
    start = np.full(k, 1 / k)
    transition = np.full((k, k), 0.5 / (k - 1)) + np.eye(k) * (0.5 - 0.5 / (k - 1))
    means = x[rng.choice(len(x), k, replace=False)]
    variances = np.tile(x.var(0), (k, 1))
    reference = GaussianHMM(
        k,
        covariance_type="diag",
        n_iter=args.hmm_iter,
        tol=-np.inf,
        init_params="",
        params="stmc",
    )
    reference.startprob_, reference.transmat_ = start, transition
    reference.means_, reference.covars_ = means, variances
    began = time.perf_counter()
    reference.fit(x, lengths)
    hmmlearn_s = time.perf_counter() - began
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = encoded_numeric(x, lengths, autoregressive=False, device=device)
    state = SequenceHMMState.gaussian(start, transition, means, variances, device=device)
    began = time.perf_counter()
    fitted, _ = baum_welch_sequences(state, rows, lengths, n_iter=args.hmm_iter)
    ours_s = time.perf_counter() - began
    # Windows of 128 rows: the same EM on shorter independent pieces (what fit uses).
    windows = np.concatenate([[128] * (n // 128) + ([n % 128] if n % 128 else []) for n in lengths])
    began = time.perf_counter()
    baum_welch_sequences(state, rows, windows, n_iter=args.hmm_iter)
    windowed_s = time.perf_counter() - began
    ours = sequence_log_likelihood(fitted, rows, lengths)
    theirs = reference.score(x, lengths)
    return {
        "rows": len(x),
        "states": k,
        "iterations": args.hmm_iter,
        "hmmlearn_fit_s": hmmlearn_s,
        "ours_fit_s": ours_s,
        "ours_windowed_fit_s": windowed_s,
        "hmmlearn_loglik": theirs,
        "ours_loglik": ours,
        "relative_difference": abs(ours - theirs) / abs(theirs),
        "device": device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, default=2016, help="hours per station (12 weeks)")
    parser.add_argument("--states", type=int, default=8)
    parser.add_argument("--par-epochs", type=int, default=32)
    parser.add_argument("--hmm-iter", type=int, default=20)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["hmm", "hmm-independent", "hmm-gaussian", "par"],
        choices=["hmm", "hmm-independent", "hmm-gaussian", "par"],
        help="the holdout reference row needs 'hmm'",
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (a fresh clone has no ../shared)")
        return
    torch.set_num_threads(1)
    frame, settings = load(args.hours)
    train, holdout = split_entities(frame, "station", 0.2, seed=0)
    print(
        f"Beijing air quality: {frame.station.nunique()} stations x {args.hours} hours; "
        f"train {train.station.nunique()} stations, holdout {holdout.station.nunique()}; "
        f"torch threads {torch.get_num_threads()}, CUDA {torch.cuda.is_available()}"
    )
    rows = compare_generators(train, holdout, settings, args)
    print()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).round(3).to_string(index=False))
    print()
    oracle = compare_hmmlearn(train, args)
    print(pd.Series(oracle).to_string())


if __name__ == "__main__":
    main()
