"""Boltzmann machines: our RBM against scikit-learn's BernoulliRBM, and rbm/dbn/dbm on Adult.

1. Binarised MNIST t10k (../shared/data/mnist_t10k, pixels > 127): our RBM and
   scikit-learn's BernoulliRBM at equal hidden units, epochs, learning rate and batch size
   (scikit-learn's default 10); ours also at batch 100. Fit seconds and the mean exact
   pseudo-log-likelihood (PLL) per image, computed for both models by the same function
   (`generators.boltzmann.pseudo_log_likelihood`), next to scikit-learn's own one-bit
   estimate (`score_samples`). Skipped, with a note, where ../shared is absent.
2. Adult (configs/adult.yaml's split): rbm, dbn and dbm at their defaults except
   `--epochs`; fit and sample seconds and SDMetrics' quality score of as many synthetic
   rows as training rows (`validation.fidelity.sdmetrics_quality`).

    python benchmarks/boltzmann.py                   # both parts
    python benchmarks/boltzmann.py --skip-adult --mnist-rows 2000

One torch thread by default (--threads); scikit-learn uses its BLAS threads.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from generators.boltzmann import (  # noqa: E402
    RBM,
    RBMParams,
    TrainingSettings,
    VisibleLayout,
    train_rbm,
)
from generators.registry import make_generator  # noqa: E402

MNIST = REPO.parent / "shared" / "data" / "mnist_t10k"


def read_mnist(rows: int) -> np.ndarray:
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as file:
        raw = np.frombuffer(file.read(), dtype=np.uint8, offset=16)
    return (raw.reshape(-1, 784)[:rows] > 127).astype(np.float32)


def exact_pll(weight: np.ndarray, visible: np.ndarray, hidden: np.ndarray, data) -> float:
    rbm = RBM(VisibleLayout.binary(len(visible)), weight.shape[1])
    rbm.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
    rbm.visible_bias.copy_(torch.as_tensor(visible, dtype=torch.float32))
    rbm.hidden_bias.copy_(torch.as_tensor(hidden, dtype=torch.float32))
    return float(rbm.pseudo_log_likelihood(torch.from_numpy(data)).mean())


def mnist_part(args) -> list[str]:
    from sklearn.neural_network import BernoulliRBM

    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        return [f"MNIST: {MNIST} is absent; part 1 skipped."]
    data = read_mnist(args.mnist_rows)
    lines = [
        f"Binarised MNIST t10k, {len(data):,} images x 784 pixels; {args.hidden} hidden units, "
        f"{args.mnist_epochs} epochs, learning rate {args.learning_rate}.",
        "",
        "| model | batch | fit s | exact PLL / image | sklearn score_samples |",
        "|---|---:|---:|---:|---:|",
    ]
    started = time.perf_counter()
    oracle = BernoulliRBM(
        n_components=args.hidden,
        learning_rate=args.learning_rate,
        batch_size=10,
        n_iter=args.mnist_epochs,
        random_state=0,
    ).fit(data)
    seconds = time.perf_counter() - started
    pll = exact_pll(oracle.components_.T, oracle.intercept_visible_, oracle.intercept_hidden_, data)
    score = float(oracle.score_samples(data).mean())
    lines.append(f"| scikit-learn BernoulliRBM | 10 | {seconds:.1f} | {pll:.2f} | {score:.2f} |")
    for batch in (10, 100):
        torch.manual_seed(0)
        tensor = torch.from_numpy(data)
        rbm = RBM(VisibleLayout.binary(784), args.hidden)
        settings = TrainingSettings(
            RBMParams(epochs=args.mnist_epochs, batch_size=batch, learning_rate=args.learning_rate)
        )
        started = time.perf_counter()
        train_rbm(rbm, tensor, settings, tensor[:100])
        seconds = time.perf_counter() - started
        pll = float(rbm.pseudo_log_likelihood(tensor).mean())
        lines.append(f"| ours (PCD-1, torch) | {batch} | {seconds:.1f} | {pll:.2f} | — |")
    return lines


def adult_part(args) -> list[str]:
    from tabular_quality import load_split

    from validation.fidelity import sdmetrics_quality

    train, _, schema, _ = load_split(REPO / "configs" / "adult.yaml")
    columns = [c.name for c in schema.columns if c.kind != "id"]
    lines = [
        f"Adult, {len(train):,} training rows; defaults except epochs = {args.epochs}.",
        "",
        "| generator | fit s | sample s | quality | column shapes | pair trends |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in args.generators:
        generator = make_generator(name, {"epochs": args.epochs}, device="auto")
        started = time.perf_counter()
        generator.fit(train, schema, seed=0)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        synthetic = generator.sample(len(train), seed=1)
        sample_seconds = time.perf_counter() - started
        scores, _ = sdmetrics_quality(train, synthetic, schema, columns)
        lines.append(
            f"| {name} | {fit_seconds:.1f} | {sample_seconds:.1f} | {scores['quality']:.3f} | "
            f"{scores['column_shapes']:.3f} | {scores['column_pair_trends']:.3f} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-rows", type=int, default=10_000)
    parser.add_argument("--mnist-epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=10, help="Adult epochs per model")
    parser.add_argument("--generators", nargs="+", default=["rbm", "dbn", "dbm"])
    # One torch thread: on a small shared CPU torch's pool spins against other processes
    # (measured here: an epoch of 2,000 MNIST images at batch 10 took 12.7 s on 2 threads,
    # 0.55 s on 1).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--skip-adult", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}\n")
    if not args.skip_mnist:
        print("\n".join(mnist_part(args)) + "\n", flush=True)
    if not args.skip_adult:
        print("\n".join(adult_part(args)))


if __name__ == "__main__":
    main()
