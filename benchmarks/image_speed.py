"""Images per second of training and of sampling for dcgan, conv_vae and the image gmm.

Reads MNIST t10k from ../shared/data/mnist_t10k (scikit-learn's bundled 8x8 digits where
../shared is absent), fits each generator with its default parameters except `--epochs`,
then times sampling `--sample-rows` images twice: the model alone (the float tensor the
network or mixture returns) and the whole image table (with PNG encoding, as `sample`
returns it). On the CPU, and on CUDA when torch sees a GPU (mixed precision there).

Training images/s counts every pass over the data (images x epochs run; the gmm makes one
pass, its PCA and EM, per fit). Run it on an idle machine: other processes on the same
cores slow torch down several times over.

    python benchmarks/image_speed.py                          # all three, 1 epoch, CPU (+CUDA)
    python benchmarks/image_speed.py --epochs 3 --rows 2000 --threads 2 --devices cpu
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generators.base import seeded  # noqa: E402
from generators.image.conv_vae import ConvVAEGenerator  # noqa: E402
from generators.image.data import ImageSettings, image_schema, images_to_frame, read_images  # noqa: E402
from generators.image.dcgan import DCGANGenerator  # noqa: E402
from generators.image.gmm import ImageGMMGenerator  # noqa: E402

MNIST = REPO.parent / "shared" / "data" / "mnist_t10k"
GENERATORS = {"dcgan": DCGANGenerator, "conv_vae": ConvVAEGenerator, "gmm": ImageGMMGenerator}


def load_images(path: Path, rows: int | None):
    """The image table: MNIST t10k when present, else scikit-learn's 8x8 digits."""
    if path.exists():
        return read_images(path, ImageSettings(max_images=rows)), str(path)
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = np.clip(data.images * 16, 0, 255).astype(np.uint8)[..., None][:rows]
    return images_to_frame(pixels, data.target[: len(pixels)]), "sklearn digits (8x8)"


def measure(name: str, device: str, frame, epochs: int, sample_rows: int) -> dict:
    cls = GENERATORS[name]
    params = {} if name == "gmm" else {"epochs": epochs, "snapshot_every": 0}
    generator = cls(device=device, **params)
    started = time.perf_counter()
    generator.fit(frame, image_schema(frame), seed=0)
    fit_seconds = time.perf_counter() - started
    passes = max(len(generator.losses_), 1)
    generator.sample(min(256, sample_rows), seed=0)  # warm up (CUDA kernels, allocator)
    labels = None
    if generator.label_names_:
        labels = torch.arange(sample_rows) % generator.n_classes
    started = time.perf_counter()
    with seeded(1), torch.no_grad():
        generator._sample_images(sample_rows, labels)  # returns a CPU tensor: synchronised
    tensor_seconds = time.perf_counter() - started
    started = time.perf_counter()
    generator.sample(sample_rows, seed=1)
    table_seconds = time.perf_counter() - started
    return {
        "generator": name,
        "device": device,
        "images": len(frame),
        "epochs": passes if name != "gmm" else None,
        "fit_s": round(fit_seconds, 2),
        "train_images_per_s": round(len(frame) * passes / fit_seconds, 1),
        "sample_tensor_images_per_s": round(sample_rows / tensor_seconds, 1),
        "sample_table_images_per_s": round(sample_rows / table_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--rows", type=int, default=None, help="training images (default all)")
    parser.add_argument("--epochs", type=int, default=1, help="for dcgan and conv_vae")
    parser.add_argument("--sample-rows", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=GENERATORS)
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--devices", nargs="+", default=default_devices, choices=["cpu", "cuda"])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frame, source = load_images(args.data, args.rows)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(
        f"data {source}: {len(frame)} images; torch {torch.__version__}, "
        f"{args.threads} CPU thread(s), GPU {gpu}, load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'generator':<9} {'device':<6} {'epochs':>6} {'fit s':>8} {'train img/s':>12} "
        f"{'sample img/s (model)':>21} {'(table, PNG)':>13}"
    )
    print(header)
    rows = []
    for device in args.devices:
        for name in args.generators:
            row = measure(name, device, frame, args.epochs, args.sample_rows)
            rows.append(row)
            print(
                f"{name:<9} {device:<6} {row['epochs'] or '-':>6} {row['fit_s']:>8.1f} "
                f"{row['train_images_per_s']:>12,.0f} {row['sample_tensor_images_per_s']:>21,.0f} "
                f"{row['sample_table_images_per_s']:>13,.0f}",
                flush=True,
            )
    if args.json is not None:
        args.json.write_text(json.dumps({"source": source, "gpu": gpu, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
