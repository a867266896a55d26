"""A variational autoencoder for tables (in the spirit of TVAE, Xu et al. 2019), in PyTorch.

Rows are encoded by `generators.encoding.TabularEncoder` (quantile-normal numerics with
missing indicators, one-hot categoricals). The decoder outputs, per span, a mean for each
continuous value and logits for each categorical and missing span; the loss is their
Gaussian / cross-entropy / Bernoulli reconstruction terms plus the KL term. Sampling draws
z ~ N(0, I), decodes, adds the learned output noise to continuous values and samples
categories from their softmax.

Trains on CUDA when present, and can train under differential privacy: with a `dp`
budget, DP-SGD through Opacus (per-sample gradient clipping and Gaussian noise calibrated
so the whole run spends at most epsilon at the given delta, with Poisson batch sampling);
the epsilon actually spent is reported as `epsilon_spent_`. The budget covers the network's
training; the encoding under DP uses only each column's range and category set, which are
taken as public (see `_fit`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from generators.base import Generator, Params, resolve_device
from generators.encoding import TabularEncoder

ENCODER_FILE = "encoder.json"
WEIGHTS_FILE = "vae.pt"
STATE_FILE = "vae_state.json"


class VAEParams(Params):
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(500, ge=2)
    latent_dim: int = Field(64, ge=1)
    hidden_dims: tuple[int, ...] = (256, 256)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    # Stop when the epoch loss has not improved by 0.1% for this many epochs; 0 = never.
    early_stopping_patience: int = Field(10, ge=0)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for inputs, outputs in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(inputs, outputs), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class _VAE(nn.Module):
    def __init__(self, width: int, latent_dim: int, hidden: tuple[int, ...], n_continuous: int):
        super().__init__()
        self.encoder = _mlp([width, *hidden, 2 * latent_dim])  # -> (mu, log variance)
        self.decoder = _mlp([latent_dim, *reversed(hidden), width])
        # One learned output scale per continuous column (TVAE's sigma). A bias-only linear
        # layer rather than a bare Parameter, so Opacus can compute its per-sample gradients.
        self.log_sigma = nn.Linear(1, max(n_continuous, 1))
        nn.init.zeros_(self.log_sigma.weight)
        nn.init.constant_(self.log_sigma.bias, -1.0)
        self.log_sigma.weight.requires_grad_(False)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x: (batch, width) -> reconstruction (batch, width), mu and log_var (batch, latent),
        log_sigma (batch, n_continuous)."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        log_sigma = self.log_sigma(torch.ones(len(x), 1, device=x.device))
        return self.decoder(z), mu, log_var, log_sigma


class TabularVAEGenerator(Generator):
    """A tabular VAE in PyTorch; GPU when present; can train under DP-SGD (Opacus)."""

    name = "vae"
    Params = VAEParams
    supports_dp = True

    def _fit(self, data: pd.DataFrame) -> None:
        params: VAEParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        # Under DP only the network is trained privately; the encoding is fitted on the data
        # directly, so it keeps to what DP synthesizers usually treat as public: each numeric
        # column's min and max (no quantiles) and the category sets (merge rare ones with
        # privacy.rare_category_min_count).
        n_quantiles = 2 if self.dp_ is not None else 1000
        self.encoder_ = TabularEncoder(n_quantiles).fit(data, self.schema_)
        matrix = torch.from_numpy(self.encoder_.transform(data))
        self._index_spans()
        self.model_ = _VAE(
            self.encoder_.width, params.latent_dim, params.hidden_dims, len(self._continuous)
        ).to(device)
        optimizer = torch.optim.Adam(
            self.model_.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
        )
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,))))
        loader = DataLoader(
            TensorDataset(matrix),
            batch_size=min(params.batch_size, len(matrix)),
            shuffle=True,
            drop_last=False,
            generator=generator,
        )
        model, engine = self.model_, None
        if self.dp_ is not None:
            model, optimizer, loader, engine = self._make_private(model, optimizer, loader)
        with warnings.catch_warnings():
            # Opacus' hooks fire torch's "full backward hook" notice on every step.
            warnings.simplefilter("ignore", UserWarning)
            self._train(model, optimizer, loader, engine, device)
        if engine is not None:
            self.epsilon_spent_ = float(engine.get_epsilon(self.dp_.delta))
        self.model_ = self.model_.cpu().eval()

    def _train(self, model, optimizer, loader, engine, device) -> None:
        """Epochs of minibatch training, recording losses (and epsilon under DP) per epoch."""
        params: VAEParams = self.params  # type: ignore[assignment]
        best, stale = float("inf"), 0
        for _ in tqdm(range(params.epochs), desc=f"training {self.name}", unit="epoch"):
            model.train()
            total, rows = 0.0, 0
            for (batch,) in loader:
                if len(batch) == 0:  # Poisson sampling can draw an empty batch
                    continue
                batch = batch.to(device)
                loss = self._loss(batch, *model(batch))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss) * len(batch)
                rows += len(batch)
            epoch_loss = total / max(rows, 1)
            if engine is not None:
                # Under DP the raw loss is a statistic of the private data outside the
                # accounting: neither logged nor used to stop early; only epsilon is reported.
                self.losses_.append({"epsilon": float(engine.get_epsilon(self.dp_.delta))})
                continue
            self.losses_.append({"loss": epoch_loss})
            if params.early_stopping_patience:
                stale = 0 if epoch_loss < best * (1 - 1e-3) - 1e-9 else stale + 1
                best = min(best, epoch_loss)
                if stale >= params.early_stopping_patience:
                    break

    def _make_private(self, model, optimizer, loader):
        from opacus import PrivacyEngine

        params: VAEParams = self.params  # type: ignore[assignment]
        engine = PrivacyEngine(accountant="rdp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus warns about its secure-RNG option
            model, optimizer, loader = engine.make_private_with_epsilon(
                module=model,
                optimizer=optimizer,
                data_loader=loader,
                target_epsilon=self.dp_.epsilon,
                target_delta=self.dp_.delta,
                epochs=params.epochs,
                max_grad_norm=self.dp_.max_grad_norm,
            )
        return model, optimizer, loader, engine

    def _index_spans(self) -> None:
        spans = self.encoder_.spans
        self._continuous = [s.start for s in spans if s.kind == "continuous"]
        self._missing = [s.start for s in spans if s.kind == "missing"]
        self._categorical = [(s.start, s.stop) for s in spans if s.kind == "categorical"]

    def _loss(self, x, reconstruction, mu, log_var, log_sigma) -> torch.Tensor:
        """Per-row negative ELBO, averaged over the batch (Opacus expects a mean)."""
        loss = torch.zeros(len(x), device=x.device)
        if self._continuous:
            index = torch.tensor(self._continuous, device=x.device)
            error = (x[:, index] - reconstruction[:, index]) * torch.exp(-log_sigma)
            loss = loss + (0.5 * error**2 + log_sigma).sum(1)
        if self._missing:
            index = torch.tensor(self._missing, device=x.device)
            loss = loss + nn.functional.binary_cross_entropy_with_logits(
                reconstruction[:, index], x[:, index], reduction="none"
            ).sum(1)
        for start, stop in self._categorical:
            target = x[:, start:stop]
            log_probs = torch.log_softmax(reconstruction[:, start:stop], dim=1)
            loss = loss - (target * log_probs).sum(1)
        kl = -0.5 * (1 + log_var - mu**2 - log_var.exp()).sum(1)
        return (loss + kl).mean()

    @torch.no_grad()
    def _sample(self, n: int) -> pd.DataFrame:
        z = torch.randn(n, self.model_.latent_dim)
        output = self.model_.decoder(z)
        if self._continuous:
            index = torch.tensor(self._continuous)
            noise = torch.randn(n, len(index)) * torch.exp(self.model_.log_sigma.bias)
            output[:, index] = output[:, index] + noise
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        return self.encoder_.inverse(output.numpy(), rng)

    def _save(self, path: Path) -> None:
        self.encoder_.save(path / ENCODER_FILE)
        torch.save(self.model_.state_dict(), path / WEIGHTS_FILE)
        state = {"epsilon_spent": getattr(self, "epsilon_spent_", None)}
        (path / STATE_FILE).write_text(json.dumps(state))

    def _load(self, path: Path) -> None:
        params: VAEParams = self.params  # type: ignore[assignment]
        self.encoder_ = TabularEncoder.load(path / ENCODER_FILE)
        self._index_spans()
        self.model_ = _VAE(
            self.encoder_.width, params.latent_dim, params.hidden_dims, len(self._continuous)
        )
        # weights_only: never unpickle code from a model file; map to CPU so a GPU-trained
        # model loads anywhere.
        state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.model_.load_state_dict(state)
        self.model_.eval()
        self.epsilon_spent_ = json.loads((path / STATE_FILE).read_text())["epsilon_spent"]
