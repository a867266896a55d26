"""A conditional DCGAN for images of any size (Radford et al., 2016), and the convolutional
building blocks the image VAE shares.

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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from tqdm.auto import tqdm

from generators.base import Params, resolve_device
from generators.errors import DataError
from generators.images import ImageGenerator

WEIGHTS_FILE = "dcgan.pt"
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


# -- the GAN -----------------------------------------------------------------------------
class DCGANParams(Params):
    # Defaults: recognisable MNIST digits on a CPU in minutes; raise epochs and width on a
    # GPU. Measured on t10k, one thread of a loaded 2-core CPU: 8 epochs in 370 s, and a
    # classifier of real digits gives 87% of samples the label drawn for them (92% on
    # held-out real digits).
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    latent_dim: int = Field(64, ge=1)  # the generator's noise dimension
    width: int = Field(32, ge=1)  # channels of the finest stage; doubling per coarser stage
    label_dim: int = Field(16, ge=1)  # label embedding size (at most the number of classes)
    learning_rate: float = Field(2e-4, gt=0)
    discriminator_learning_rate: float | None = Field(None, gt=0)  # default: learning_rate
    beta1: float = Field(0.5, ge=0, lt=1)  # Adam's first-moment decay, DCGAN's 0.5
    label_smoothing: float = Field(0.1, ge=0, lt=0.5)  # real targets are 1 - this
    # Keep `snapshot_images` samples of fixed noise every this many epochs (0: never), for
    # the flow's progress grids.
    snapshot_every: int = Field(5, ge=0)
    max_seconds: float | None = Field(None, gt=0)  # stop after the epoch that passes this


class _Generator(nn.Module):
    def __init__(self, plan: CanvasPlan, params: DCGANParams, n_classes: int) -> None:
        super().__init__()
        self.embed = label_embedding(n_classes, params.label_dim)
        label_width = self.embed.embedding_dim if self.embed is not None else 0
        self.up = UpStack(plan, params.latent_dim + label_width, params.width, batch_norm=True)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Noise (n, latent_dim), label codes (n,) -> pixel logits (n, C, H, W)."""
        if self.embed is not None:
            noise = torch.cat([noise, self.embed(labels).to(noise.dtype)], dim=1)
        return self.up(noise)


class _Discriminator(nn.Module):
    def __init__(self, plan: CanvasPlan, params: DCGANParams, n_classes: int) -> None:
        super().__init__()
        self.embed = label_embedding(n_classes, params.label_dim)
        label_width = self.embed.embedding_dim if self.embed is not None else 0
        self.down = DownStack(plan, label_width, params.width, batch_norm=True)
        self.head = nn.Linear(self.down.features, 1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Images (n, C, H, W), label codes (n,) -> real-vs-fake logits (n,)."""
        maps = self.embed(labels) if self.embed is not None else None
        return self.head(self.down(images, maps)).squeeze(1)


class DCGANGenerator(ImageGenerator):
    """A conditional DCGAN; see the module docstring. Losses per epoch: the generator's and
    the discriminator's mean binary cross-entropies."""

    name = "dcgan"
    resumable = True  # every epoch is checkpointed when fit has a checkpoint_dir
    Params = DCGANParams

    def _build(self, device: torch.device) -> None:
        self.plan_ = CanvasPlan.for_shape(self.image_shape_)
        self.generator_ = _Generator(self.plan_, self.params, self.n_classes).to(device)

    def _fit_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        params: DCGANParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        self._build(device)
        generator = self.generator_
        discriminator = _Discriminator(self.plan_, params, self.n_classes).to(device)
        optimizer_g = torch.optim.Adam(
            generator.parameters(), lr=params.learning_rate, betas=(params.beta1, 0.999)
        )
        optimizer_d = torch.optim.Adam(
            discriminator.parameters(),
            lr=params.discriminator_learning_rate or params.learning_rate,
            betas=(params.beta1, 0.999),
        )
        amp, scaler = mixed_precision(device)
        batch, steps = training_batches(len(images), params.batch_size)
        images = images.to(device)
        labels = labels.to(device) if labels is not None else None
        # Fixed noise and labels (cycling through the classes) for the progress snapshots.
        fixed_noise = torch.randn(SNAPSHOT_IMAGES, params.latent_dim).to(device)
        fixed_labels = (
            torch.arange(SNAPSHOT_IMAGES, device=device) % self.n_classes
            if labels is not None
            else None
        )
        self.snapshots_: list[tuple[int, np.ndarray]] = []
        real_target = torch.full((batch,), 1.0 - params.label_smoothing, device=device)
        fake_target = torch.zeros(batch, device=device)
        first_epoch = 0
        resumed = self._load_checkpoint(device)
        if resumed is not None:
            first_epoch, state = resumed
            generator.load_state_dict(state["generator"])
            discriminator.load_state_dict(state["discriminator"])
            optimizer_g.load_state_dict(state["optimizer_g"])
            optimizer_d.load_state_dict(state["optimizer_d"])
            scaler.load_state_dict(state["scaler"])
            self.snapshots_ = snapshots_from_state(state["snapshots"])
        started = time.monotonic()
        for epoch in tqdm(
            range(first_epoch + 1, params.epochs + 1),
            desc=f"training {self.name}",
            unit="epoch",
            initial=first_epoch,
            total=params.epochs,
        ):
            order = torch.randperm(len(images)).to(device)
            totals = torch.zeros(2, device=device)
            for step in range(steps):
                rows = order[step * batch : (step + 1) * batch]
                real = images[rows]
                condition = labels[rows] if labels is not None else None
                noise = torch.randn(batch, params.latent_dim, device=device)
                # Discriminator: real towards 1 - smoothing, fake towards 0.
                with amp:
                    fake = torch.sigmoid(generator(noise, condition))
                    loss_d = F.binary_cross_entropy_with_logits(
                        discriminator(real, condition).float(), real_target
                    ) + F.binary_cross_entropy_with_logits(
                        discriminator(fake.detach(), condition).float(), fake_target
                    )
                optimizer_d.zero_grad(set_to_none=True)
                scaler.scale(loss_d).backward()
                scaler.step(optimizer_d)
                # Generator: the non-saturating loss, fake towards 1.
                with amp:
                    loss_g = F.binary_cross_entropy_with_logits(
                        discriminator(fake, condition).float(), torch.ones_like(fake_target)
                    )
                optimizer_g.zero_grad(set_to_none=True)
                scaler.scale(loss_g).backward()
                scaler.step(optimizer_g)
                scaler.update()
                totals += torch.stack([loss_g.detach(), loss_d.detach()])
            generator_loss, discriminator_loss = (totals / steps).tolist()
            self.losses_.append({"generator": generator_loss, "discriminator": discriminator_loss})
            out_of_time = (
                params.max_seconds is not None and time.monotonic() - started > params.max_seconds
            )
            last = epoch == params.epochs or out_of_time
            if params.snapshot_every and (epoch % params.snapshot_every == 0 or last):
                self.snapshots_.append((epoch, self._snapshot(fixed_noise, fixed_labels, amp)))
            self._save_checkpoint(
                epoch,
                {
                    "generator": generator.state_dict(),
                    "discriminator": discriminator.state_dict(),
                    "optimizer_g": optimizer_g.state_dict(),
                    "optimizer_d": optimizer_d.state_dict(),
                    "scaler": scaler.state_dict(),
                    "snapshots": snapshots_to_state(self.snapshots_),
                },
            )
            if out_of_time:
                break
        generator.eval()

    @torch.no_grad()
    def _snapshot(self, noise, labels, amp) -> np.ndarray:
        self.generator_.eval()
        with amp:
            images = torch.sigmoid(self.generator_(noise, labels))
        self.generator_.train()
        return to_uint8_images(images)

    @torch.no_grad()
    def _sample_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        device = next(self.generator_.parameters()).device
        return decode_in_batches(self.generator_, n, self.params.latent_dim, labels, device)

    def _save_model(self, path: Path) -> None:
        torch.save(self.generator_.state_dict(), path / WEIGHTS_FILE)

    def _load_model(self, path: Path) -> None:
        device = sampling_device(self.device)
        self._build(device)
        load_weights(self.generator_, path / WEIGHTS_FILE, device)
        self.snapshots_ = []
