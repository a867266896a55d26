"""The convolutional building blocks the image DCGAN (`generators/image/dcgan.py`) and the image
VAE (`conv_vae.py`) share; the DCGAN's recipe follows.

Any size: the network works on a padded canvas whose sides are multiples of 2**stages,
where `stages` (1-4 stride-2 convolutions) follows from the smaller side, so a 28x28 MNIST
digit is built 7x7 -> 14x14 -> 28x28, an 8x8 one 2x2 -> 4x4 -> 8x8 and a 64x64 one from
4x4 in four steps. The generator draws the
whole canvas and crops its centre back to H x W; the discriminator zero-pads the H x W
image (real or fake alike) onto the canvas, so padding is never something to learn.

Conditional on the label when the data has labels: a learned label embedding is
concatenated to the noise, and broadcast as extra input channels of the discriminator.

The recipe: transposed convolutions with batch norm and ReLU up, strided convolutions with
LeakyReLU down (batch norm after the first), Adam(lr 2e-4, beta1 0.5), the non-saturating
loss with one-sided label smoothing. Mixed precision (bfloat16, or float16 with a gradient
scaler on older GPUs) on CUDA only; CPU runs in float32, deterministic for a given seed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from generators.errors import DataError

SAMPLE_BATCH = 1024  # images drawn per forward pass when sampling
SNAPSHOT_IMAGES = 100  # images per progress snapshot (a 10 x 10 grid)
MAX_STAGES = 4


# -- shared convolutional machinery (dcgan and conv_vae) --------------------------------
@dataclass(frozen=True)
class CanvasPlan:
    """How an H x W x C image maps onto the padded canvas the networks work on."""

    height: int
    width: int
    channels: int
    stages: int  # stride-2 (de)convolutions between the canvas and its coarsest grid

    @classmethod
    def for_shape(cls, image_shape: tuple[int, int, int]) -> CanvasPlan:
        """The fewest stages that bring the smaller side to 7 cells or fewer (28 -> 7,
        32 -> 4, 64 -> 4), at least 2 from 8 pixels up (8 -> 2) so small images still get
        two layers each way, at most 4."""
        height, width, channels = image_shape
        side, stages = min(height, width), 1
        while stages < MAX_STAGES and -(-side // 2**stages) > 7:
            stages += 1
        if side >= 8:
            stages = max(stages, 2)
        return cls(height, width, channels, stages)

    @property
    def scale(self) -> int:
        return 2**self.stages

    @property
    def coarse(self) -> tuple[int, int]:
        """(h, w) of the coarsest grid: the padded sides divided by 2**stages."""
        return -(-self.height // self.scale), -(-self.width // self.scale)

    @property
    def canvas(self) -> tuple[int, int]:
        h, w = self.coarse
        return h * self.scale, w * self.scale

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) -> (n, C, canvas_h, canvas_w), zeros around the centred image."""
        (top, bottom), (left, right) = self._margins()
        return F.pad(images, (left, right, top, bottom))

    def crop(self, canvas: torch.Tensor) -> torch.Tensor:
        """(n, C, canvas_h, canvas_w) -> (n, C, H, W), the centre."""
        (top, _), (left, _) = self._margins()
        return canvas[:, :, top : top + self.height, left : left + self.width]

    def _margins(self) -> tuple[tuple[int, int], tuple[int, int]]:
        canvas_h, canvas_w = self.canvas
        top, left = (canvas_h - self.height) // 2, (canvas_w - self.width) // 2
        return (top, canvas_h - self.height - top), (left, canvas_w - self.width - left)


def stage_channels(width: int, stages: int) -> list[int]:
    """Channels from the finest stage to the coarsest: width, 2 width, 4 width, ..."""
    return [width * 2**i for i in range(stages)]


class UpStack(nn.Module):
    """(noise [+ label embedding]) (n, d) -> pixel logits (n, C, H, W).

    Linear to the coarsest grid (n, c_max, h, w), then `stages` transposed convolutions
    (kernel 4, stride 2) doubling the grid and halving the channels, the last to C; the
    canvas is cropped to H x W.
    """

    def __init__(self, plan: CanvasPlan, in_features: int, width: int, batch_norm: bool) -> None:
        super().__init__()
        self.plan = plan
        channels = stage_channels(width, plan.stages)[::-1]  # coarse -> fine
        h, w = plan.coarse
        self.grid = (channels[0], h, w)
        self.project = nn.Linear(in_features, channels[0] * h * w, bias=not batch_norm)
        self.project_norm = nn.BatchNorm1d(channels[0] * h * w) if batch_norm else nn.Identity()
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels, channels[1:], strict=False):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batch_norm))
            layers.append(nn.BatchNorm2d(c_out) if batch_norm else nn.Identity())
            layers.append(nn.ReLU())
        layers.append(nn.ConvTranspose2d(channels[-1], plan.channels, 4, 2, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.project_norm(self.project(inputs)))
        return self.plan.crop(self.layers(hidden.view(-1, *self.grid)))


class DownStack(nn.Module):
    """Images (n, C, H, W) [+ label maps] -> features (n, c_max * h * w).

    The image is padded onto the canvas, label maps (n, e) broadcast over it as e extra
    channels, then `stages` strided convolutions (kernel 4, stride 2) with LeakyReLU; batch
    norm after all but the first when `batch_norm`.
    """

    def __init__(self, plan: CanvasPlan, label_dim: int, width: int, batch_norm: bool) -> None:
        super().__init__()
        self.plan = plan
        channels = stage_channels(width, plan.stages)
        layers: list[nn.Module] = [nn.Conv2d(plan.channels + label_dim, channels[0], 4, 2, 1)]
        layers.append(nn.LeakyReLU(0.2))
        for c_in, c_out in zip(channels, channels[1:], strict=False):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm))
            layers.append(nn.BatchNorm2d(c_out) if batch_norm else nn.Identity())
            layers.append(nn.LeakyReLU(0.2))
        self.layers = nn.Sequential(*layers)
        h, w = plan.coarse
        self.features = channels[-1] * h * w

    def forward(self, images: torch.Tensor, label_maps: torch.Tensor | None) -> torch.Tensor:
        canvas = self.plan.pad(images)
        if label_maps is not None:
            maps = label_maps[:, :, None, None].expand(-1, -1, *canvas.shape[2:])
            canvas = torch.cat([canvas, maps.to(canvas.dtype)], dim=1)
        return self.layers(canvas).flatten(1)


def label_embedding(n_classes: int, label_dim: int) -> nn.Embedding | None:
    """A learned embedding of the label codes, at most one dimension per class; None
    without labels."""
    return nn.Embedding(n_classes, min(label_dim, n_classes)) if n_classes else None


def mixed_precision(device: torch.device) -> tuple[contextlib.AbstractContextManager, object]:
    """(autocast context, gradient scaler) for `device`: bfloat16 autocast on CUDA (float16
    with a scaler where bfloat16 is missing); on the CPU a no-op context and a disabled
    scaler, so CPU training stays float32 and deterministic."""
    if device.type != "cuda":
        return contextlib.nullcontext(), torch.amp.GradScaler("cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return torch.autocast("cuda", dtype=dtype), scaler


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return mixed_precision(device)[0]


def sampling_device(device: str) -> torch.device:
    """Where a fitted or loaded model samples: CUDA when asked for and present, else CPU
    (a model trained with device 'cuda' still loads and samples on a CPU-only machine)."""
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def decode_in_batches(
    decode, n: int, latent_dim: int, labels: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    """(n, C, H, W) images in [0, 1] from `decode(noise, labels)` -> logits, SAMPLE_BATCH
    at a time. Noise ~ N(0, I) is drawn on the CPU: the same seed gives the same noise on
    any device."""
    amp = autocast(device)
    batches = []
    for start in range(0, n, SAMPLE_BATCH):
        rows = min(SAMPLE_BATCH, n - start)
        noise = torch.randn(rows, latent_dim).to(device)
        condition = labels[start : start + rows].to(device) if labels is not None else None
        with amp:
            batches.append(torch.sigmoid(decode(noise, condition)).float().cpu())
    return torch.cat(batches)


def load_weights(module: nn.Module, file: Path, device: torch.device) -> None:
    """Load a state dict saved by torch.save into `module`, in eval mode. weights_only: a
    model file holds tensors only and never runs code when loaded."""
    module.load_state_dict(torch.load(file, map_location=device, weights_only=True))
    module.eval()


def snapshots_to_state(snapshots: list[tuple[int, np.ndarray]]) -> list:
    """Snapshot grids as (epoch, tensor) pairs a weights-only checkpoint can hold."""
    return [(epoch, torch.from_numpy(images)) for epoch, images in snapshots]


def snapshots_from_state(state: list) -> list[tuple[int, np.ndarray]]:
    return [(int(epoch), images.cpu().numpy()) for epoch, images in state]


def training_batches(n: int, batch_size: int) -> tuple[int, int]:
    """(batch size, batches per epoch): full batches only (batch norm needs two or more
    rows, and equal batches keep the loss scale steady); one batch of all when n is small."""
    if n < 2:
        raise DataError(f"image generators need at least 2 training images, got {n}")
    batch = min(batch_size, n)
    return batch, n // batch


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(n, C, H, W) floats in [0, 1] -> uint8 (n, H, W, C), as the image table stores them."""
    pixels = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()
