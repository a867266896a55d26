"""A conditional convolutional VAE for images of any size (Kingma and Welling, 2014).

The encoder and decoder are `generators.image.dcgan`'s down and up stacks without batch norm
(so each image's code depends on that image alone): strided convolutions from the padded
canvas to a diagonal Gaussian posterior q(z | x, y) over `latent_dim` dimensions, and
transposed convolutions from (z, label embedding) back to pixel logits, cropped to H x W.
When the data has labels, a learned label embedding enters the encoder as extra input
channels and the decoder beside z, so sampling honours the label asked for.

Likelihood on pixels in [0, 1]:
- `bernoulli`: binary cross-entropy on the grey levels (the usual MNIST choice);
- `gaussian`: a Gaussian around the sigmoid of the logits with one standard deviation per
  channel, the batch's maximum-likelihood one (the optimal-sigma VAE of Rybkin et al.,
  2021), so the weight of reconstruction against KL follows from the data, not a guess.
Samples are decoder means (pixel probabilities), z ~ N(0, I).

Losses per epoch, per image in nats: `reconstruction` (-log p(x | z)), `kl`
(KL(q(z | x, y) || N(0, I))) and `elbo` (-(reconstruction + kl): higher is better).
Mixed precision on CUDA only; CPU runs in float32, deterministic for a given seed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Literal

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

WEIGHTS_FILE = "conv_vae.pt"
LOG_SIGMA_RANGE = (-6.0, 2.0)  # the Gaussian likelihood's log std, clamped


class ConvVAEParams(Params):
    # Defaults: recognisable MNIST digits on a CPU in minutes. Measured on t10k, one thread
    # of a loaded 2-core CPU: 10 epochs in 300 s, ELBO -103 nats, and a classifier of real
    # digits gives 83% of samples the label drawn for them (92% on held-out real digits).
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    latent_dim: int = Field(16, ge=1)
    width: int = Field(32, ge=1)  # channels of the finest stage; doubling per coarser stage
    label_dim: int = Field(16, ge=1)  # label embedding size (at most the number of classes)
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    learning_rate: float = Field(1e-3, gt=0)
    kl_weight: float = Field(1.0, gt=0)  # beta of a beta-VAE; 1 is the ELBO
    snapshot_every: int = Field(5, ge=0)  # keep 100 samples every this many epochs (0: never)
    max_seconds: float | None = Field(None, gt=0)  # stop after the epoch that passes this


class _ConvVAE(nn.Module):
    def __init__(self, plan: CanvasPlan, params: ConvVAEParams, n_classes: int) -> None:
        super().__init__()
        self.encoder_embed = label_embedding(n_classes, params.label_dim)
        self.decoder_embed = label_embedding(n_classes, params.label_dim)
        label_width = self.encoder_embed.embedding_dim if self.encoder_embed is not None else 0
        self.down = DownStack(plan, label_width, params.width, batch_norm=False)
        self.posterior = nn.Linear(self.down.features, 2 * params.latent_dim)
        self.up = UpStack(plan, params.latent_dim + label_width, params.width, batch_norm=False)
        # The Gaussian likelihood's log std per channel, as last fitted (a record: samples
        # are the decoder's means); zeros under bernoulli.
        self.register_buffer("log_sigma", torch.zeros(plan.channels))

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None):
        """Images (n, C, H, W), codes (n,) -> posterior mean and log variance (n, latent)."""
        maps = self.encoder_embed(labels) if self.encoder_embed is not None else None
        mean, log_var = self.posterior(self.down(images, maps)).chunk(2, dim=1)
        return mean, log_var.clamp(-12, 8)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Codes (n, latent), label codes (n,) -> pixel logits (n, C, H, W)."""
        if self.decoder_embed is not None:
            z = torch.cat([z, self.decoder_embed(labels).to(z.dtype)], dim=1)
        return self.up(z)


def reconstruction_nll(logits: torch.Tensor, images: torch.Tensor, likelihood: str):
    """-log p(x | z) per image (n,), summed over pixels, in float32, and the Gaussian
    likelihood's log std per channel (C,) (zeros under bernoulli).

    The Gaussian's standard deviation is the one that maximises the batch's likelihood,
    the root mean squared error per channel (the "optimal sigma" of Rybkin et al.), held
    constant in the gradient: a learned sigma starting at 1 lets the KL term win before
    the decoder learns anything, and the posterior collapses.
    """
    logits = logits.float()
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
        return nll.flatten(1).sum(1), torch.zeros(images.shape[1], device=images.device)
    error = images - torch.sigmoid(logits)
    with torch.no_grad():
        log_sigma = 0.5 * error.square().mean(dim=(0, 2, 3)).log()
        log_sigma = log_sigma.clamp(*LOG_SIGMA_RANGE)
    z = error / log_sigma.exp()[None, :, None, None]
    nll = 0.5 * z.square() + log_sigma[None, :, None, None] + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(1), log_sigma


class ConvVAEGenerator(ImageGenerator):
    """A conditional convolutional VAE; see the module docstring."""

    name = "conv_vae"
    resumable = True  # every epoch is checkpointed when fit has a checkpoint_dir
    Params = ConvVAEParams

    def _build(self, device: torch.device) -> None:
        self.plan_ = CanvasPlan.for_shape(self.image_shape_)
        self.model_ = _ConvVAE(self.plan_, self.params, self.n_classes).to(device)

    def _fit_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        params: ConvVAEParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        self._build(device)
        model = self.model_
        optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
        amp, scaler = mixed_precision(device)
        batch, steps = training_batches(len(images), params.batch_size)
        images = images.to(device)
        labels = labels.to(device) if labels is not None else None
        fixed_noise = torch.randn(SNAPSHOT_IMAGES, params.latent_dim).to(device)
        fixed_labels = (
            torch.arange(SNAPSHOT_IMAGES, device=device) % self.n_classes
            if labels is not None
            else None
        )
        self.snapshots_: list[tuple[int, np.ndarray]] = []
        first_epoch = 0
        resumed = self._load_checkpoint(device)
        if resumed is not None:
            first_epoch, state = resumed
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
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
                with amp:
                    mean, log_var = model.encode(real, condition)
                    mean, log_var = mean.float(), log_var.float()
                    # reparameterisation: z = mean + std * eps, eps ~ N(0, I)
                    z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
                    logits = model.decode(z, condition)
                reconstruction, log_sigma = reconstruction_nll(logits, real, params.likelihood)
                kl = 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(1)
                loss = (reconstruction + params.kl_weight * kl).mean()
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                model.log_sigma.copy_(log_sigma)
                totals += torch.stack([reconstruction.mean().detach(), kl.mean().detach()])
            reconstruction_loss, kl_loss = (totals / steps).tolist()
            self.losses_.append(
                {
                    "elbo": -(reconstruction_loss + kl_loss),
                    "reconstruction": reconstruction_loss,
                    "kl": kl_loss,
                }
            )
            out_of_time = (
                params.max_seconds is not None and time.monotonic() - started > params.max_seconds
            )
            last = epoch == params.epochs or out_of_time
            if params.snapshot_every and (epoch % params.snapshot_every == 0 or last):
                with torch.no_grad(), amp:
                    means = torch.sigmoid(model.decode(fixed_noise, fixed_labels))
                self.snapshots_.append((epoch, to_uint8_images(means)))
            self._save_checkpoint(
                epoch,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "snapshots": snapshots_to_state(self.snapshots_),
                },
            )
            if out_of_time:
                break
        model.eval()

    @torch.no_grad()
    def _sample_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        device = self.model_.log_sigma.device
        return decode_in_batches(self.model_.decode, n, self.params.latent_dim, labels, device)

    def _save_model(self, path: Path) -> None:
        torch.save(self.model_.state_dict(), path / WEIGHTS_FILE)

    def _load_model(self, path: Path) -> None:
        device = sampling_device(self.device)
        self._build(device)
        load_weights(self.model_, path / WEIGHTS_FILE, device)
        self.snapshots_ = []
