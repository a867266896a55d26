"""A conditional DCGAN for images of any size (Radford et al., 2016).

Its convolutional machinery (canvas plan, up/down stacks) is `generators.models.conv`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from tqdm.auto import tqdm

from generators.base import Params, resolve_device
from generators.image.base import ImageGenerator
from generators.models.conv import (
    SNAPSHOT_IMAGES,
    CanvasPlan,
    DownStack,
    UpStack,
    decode_in_batches,
    label_embedding,
    load_weights,
    mixed_precision,
    sampling_device,
    snapshots_from_state,
    snapshots_to_state,
    to_uint8_images,
    training_batches,
)

WEIGHTS_FILE = "dcgan.pt"


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
