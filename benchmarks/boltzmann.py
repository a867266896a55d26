"""Boltzmann machines: our RBM against scikit-learn's BernoulliRBM on binarised MNIST, the
image rbm/dbn/dbm on MNIST, and rbm/dbn/dbm on Adult.

1. Binarised MNIST t10k (../shared/data/mnist_t10k, pixels > 127): our RBM (`train_rbm`)
   and scikit-learn's BernoulliRBM at equal hidden units, epochs, learning rate and batch
   size (scikit-learn's default 10, and 100), on 1 and 2 CPU threads (torch's
   `set_num_threads`, scikit-learn's BLAS through threadpoolctl), and ours on CUDA when
   torch sees a GPU. Fit seconds are the median of `--repeats` runs, ours and scikit-learn's
   interleaved so both see the same machine load, as wall-clock and as process CPU time
   (on a shared machine the CPU time is the steadier figure). Ours includes its per-epoch
   monitoring (exact PLL and reconstruction error of 100 images); scikit-learn monitors
   nothing. Quality: the mean exact pseudo-log-likelihood (PLL) per image of all the
   images, computed for both models by the same function, next to scikit-learn's own
   one-random-bit estimate (`score_samples`).
2. The image generators (`ImageRBMGenerator`, `ImageDBNGenerator`, `ImageDBMGenerator`) on
   the first `--image-rows` labelled MNIST t10k images as the image table (binary pixels,
   label units), defaults except `--image-epochs`: fit and sample seconds, the bottom
   machine's last PLL of pixels and labels, and how well a logistic-regression digit
   classifier (trained on the same images; its accuracy on the remaining t10k images is
   printed) reads the asked-for label off 1,000 samples: its accuracy, and its mean
   probability for that label.
3. Adult (configs/adult.yaml's split): rbm, dbn and dbm at their defaults except
   `--epochs`; fit and sample seconds and SDMetrics' quality score of as many synthetic
   rows as training rows (`validation.fidelity.sdmetrics_quality`).

Parts 1-2 are skipped, with a note, where ../shared is absent.

    python benchmarks/boltzmann.py                   # all three parts
    python benchmarks/boltzmann.py --skip-adult --skip-images --mnist-rows 2000
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from generators.image.boltzmann import ImageDBMGenerator, ImageDBNGenerator, ImageRBMGenerator  # noqa: E402
from generators.models.boltzmann import RBM, TrainingSettings, VisibleLayout, train_rbm  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from generators.table.boltzmann import RBMParams  # noqa: E402

MNIST = REPO.parent / "shared" / "data" / "mnist_t10k"
MONITOR_ROWS = 100


def read_mnist(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (rows, 784) and labels (rows,) of t10k."""
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as file:
        images = np.frombuffer(file.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(MNIST / "t10k-labels-idx1-ubyte.gz") as file:
        labels = np.frombuffer(file.read(), dtype=np.uint8, offset=8)
    return images[:rows], labels[:rows]


def exact_pll(weight: np.ndarray, visible: np.ndarray, hidden: np.ndarray, data) -> float:
    rbm = RBM(VisibleLayout.binary(len(visible)), weight.shape[1])
    rbm.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
    rbm.visible_bias.copy_(torch.as_tensor(visible, dtype=torch.float32))
    rbm.hidden_bias.copy_(torch.as_tensor(hidden, dtype=torch.float32))
    return float(rbm.pseudo_log_likelihood(torch.from_numpy(data)).mean())


def timed(function, *args, **kwargs) -> tuple[float, float, object]:
    """(wall s, process CPU s, result) of function(*args, **kwargs)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def fit_sklearn(data: np.ndarray, args, batch: int):
    from sklearn.neural_network import BernoulliRBM

    return BernoulliRBM(
        n_components=args.hidden,
        learning_rate=args.learning_rate,
        batch_size=batch,
        n_iter=args.mnist_epochs,
        random_state=0,
    ).fit(data)


def fit_ours(data: np.ndarray, args, batch: int, device: str = "cpu") -> RBM:
    torch.manual_seed(0)
    tensor = torch.from_numpy(data).to(device)
    rbm = RBM(VisibleLayout.binary(784), args.hidden).to(device)
    settings = TrainingSettings(
        RBMParams(epochs=args.mnist_epochs, batch_size=batch, learning_rate=args.learning_rate)
    )
    train_rbm(rbm, tensor, settings, tensor[:MONITOR_ROWS])
    if device == "cuda":
        torch.cuda.synchronize()
    return rbm.cpu()


def mnist_part(args) -> list[str]:
    from threadpoolctl import threadpool_limits

    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        return [f"MNIST: {MNIST} is absent; part 1 skipped."]
    data = (read_mnist(args.mnist_rows)[0] > 127).astype(np.float32)
    lines = [
        f"Binarised MNIST t10k, {len(data):,} images x 784 pixels; {args.hidden} hidden units, "
        f"{args.mnist_epochs} epochs, learning rate {args.learning_rate}; median of "
        f"{args.repeats} fits.",
        "",
        "| model | device | threads | batch | fit s (wall) | fit s (CPU) | exact PLL / image "
        "| sklearn score_samples |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for threads in args.thread_counts:
        torch.set_num_threads(threads)
        for batch in args.batch_sizes:
            runs: dict[str, list] = {"sklearn": [], "ours": []}
            with threadpool_limits(limits=threads):
                fit_sklearn(data[:500], args, batch)  # warm-up: first calls, thread pools
                fit_ours(data[:500], args, batch)
                for _ in range(args.repeats):
                    runs["sklearn"].append(timed(fit_sklearn, data, args, batch))
                    runs["ours"].append(timed(fit_ours, data, args, batch))
            oracle, ours = runs["sklearn"][-1][2], runs["ours"][-1][2]
            pll = exact_pll(
                oracle.components_.T, oracle.intercept_visible_, oracle.intercept_hidden_, data
            )
            score = float(oracle.score_samples(data).mean())
            our_pll = float(ours.pseudo_log_likelihood(torch.from_numpy(data)).mean())
            for name, label, value, extra in (
                ("sklearn", "scikit-learn BernoulliRBM", pll, f"{score:.2f}"),
                ("ours", "ours (PCD-1, torch)", our_pll, "—"),
            ):
                wall = statistics.median(r[0] for r in runs[name])
                cpu = statistics.median(r[1] for r in runs[name])
                lines.append(
                    f"| {label} | CPU | {threads} | {batch} | {wall:.2f} | {cpu:.2f} | "
                    f"{value:.2f} | {extra} |"
                )
                print(lines[-1], flush=True)
    torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        fit_ours(data[:1000], args, 100, "cuda")  # warm-up: CUDA context, kernels
        for batch in (*args.batch_sizes, 1000):
            wall, _, rbm = timed(fit_ours, data, args, batch, "cuda")
            pll = float(rbm.pseudo_log_likelihood(torch.from_numpy(data)).mean())
            lines.append(
                f"| ours (PCD-1, torch) | {name} | — | {batch} | {wall:.2f} | — | {pll:.2f} | — |"
            )
            print(lines[-1], flush=True)
    else:
        lines.append("(no CUDA device: GPU rows not measured)")
    return lines


def images_part(args) -> list[str]:
    from sklearn.linear_model import LogisticRegression

    from generators.image.data import frame_to_pixels, image_schema, images_to_frame

    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        return [f"MNIST: {MNIST} is absent; part 2 skipped."]
    images, labels = read_mnist(10_000)
    rows = args.image_rows
    table = images_to_frame(images[:rows].reshape(-1, 28, 28, 1), labels[:rows])
    schema = image_schema(table)
    classifier = LogisticRegression(max_iter=300).fit(images[:rows] / 255.0, labels[:rows])
    held_out = float(classifier.score(images[rows:] / 255.0, labels[rows:]))
    lines = [
        f"Image generators on the first {rows:,} labelled MNIST t10k images (binary pixels, "
        f"label units), defaults except epochs = {args.image_epochs}; 1,000 samples. The "
        f"digit classifier's accuracy on the other {10_000 - rows:,} real images: "
        f"{held_out:.3f} (chance about 0.11).",
        "",
        "| generator | fit s | sample s | bottom PLL | label accuracy | mean p(label) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    common = {"epochs": args.image_epochs}
    for cls, params in (
        (ImageRBMGenerator, common),
        (ImageDBNGenerator, common),
        (ImageDBMGenerator, {**common, "pretrain_epochs": args.image_epochs}),
    ):
        generator = cls(device="auto", **params)
        wall, _, _ = timed(generator.fit, table, schema, seed=0)
        sample_wall, _, sample = timed(generator.sample, 1000, seed=1)
        pixels = frame_to_pixels(sample).reshape(len(sample), -1) / 255.0
        asked = sample["label"].astype(int).to_numpy()
        probabilities = classifier.predict_proba(pixels)
        accuracy = float((probabilities.argmax(1) == asked).mean())
        confidence = float(probabilities[np.arange(len(asked)), asked].mean())
        # The bottom machine's PLL of the pixels and labels: the DBN's first RBM (its top
        # RBM scores features), the DBM's own (h2 at its mean-field value).
        key = "layer1.pseudo_log_likelihood" if cls.name == "dbn" else "pseudo_log_likelihood"
        last = [e[key] for e in generator.losses_ if key in e][-1]
        lines.append(
            f"| {cls.__name__} ({cls.name}) | {wall:.1f} | {sample_wall:.1f} | {last:.1f} | "
            f"{accuracy:.3f} | {confidence:.3f} |"
        )
        print(lines[-1], flush=True)
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
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--thread-counts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-rows", type=int, default=8_000)
    parser.add_argument("--image-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10, help="Adult epochs per model")
    parser.add_argument("--generators", nargs="+", default=["rbm", "dbn", "dbm"])
    # Torch threads outside part 1's own 1-and-2 sweep. One: on a small shared CPU torch's
    # pool spins against other processes.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--skip-adult", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(
        f"torch {torch.__version__}; {device}; {len(__import__('os').sched_getaffinity(0))} CPUs\n"
    )
    if not args.skip_mnist:
        mnist_part(args)
        print(flush=True)
    if not args.skip_images:
        images_part(args)
        print(flush=True)
    if not args.skip_adult:
        print("\n".join(adult_part(args)))


if __name__ == "__main__":
    main()
