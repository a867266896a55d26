"""A variational autoencoder for tables (in the spirit of TVAE, Xu et al. 2019), in PyTorch.

Rows are encoded by `generators.table.encoding.TabularEncoder` (quantile-normal numerics with
missing indicators, one-hot categoricals), with tied values spread over their quantile
interval (`generators.table.dequantize`), so every continuous column is a smooth N(0, 1)-like
target and decoding puts point masses (capital_gain = 0) back exactly. The decoder
outputs, per span, a mean for each continuous value and logits for each categorical and
missing span; the loss is a mixed-type likelihood, one term per column (Gaussian with a
learned scale per continuous column, categorical cross-entropy, Bernoulli for missing
indicators), plus `kl_weight` times the KL term.

Training holds out `validation_fraction` of the rows, anneals the learning rate on a
cosine from `learning_rate` to a hundredth of it over `epochs`, and stops early when the
validation loss stops improving, keeping the best epoch's weights.

Sampling draws z from the latent prior, decodes, adds the learned output noise to
continuous values and samples categories from their softmax. The default
`latent_prior: mixture` replaces N(0, I) by a Gaussian mixture with `latent_components`
diagonal components fitted to the training rows' posterior means after training
(ex-post density estimation, Ghosh et al. 2020): a VAE's aggregate posterior never
covers N(0, I) exactly, and decoding z from the holes in between gives implausible rows.
There is at most one component per 100 training rows (Adult: 26k rows, 30 components),
and one left holding under 10 rows' weight is dropped, so the mixture stores no single
row.

Trains on CUDA when present, and can train under differential privacy: with a `dp`
budget, DP-SGD through Opacus (per-sample gradient clipping and Gaussian noise calibrated
so the whole run spends at most epsilon at the given delta, with Poisson batch sampling);
the epsilon actually spent is reported as `epsilon_spent_`. The budget covers the network's
training; the encoding under DP uses only each column's range and category set, which are
taken as public (see `_fit`). Under DP there is no validation split or early stopping (the
validation loss would be a statistic of the private rows outside the accounting), and the
latent prior is N(0, I) (a mixture fitted to the rows' posterior means would be too).
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from generators.base import Generator, Params, resolve_device
from generators.data.streaming import ParquetSource
from generators.table.batches import encoded_chunks, minibatches
from generators.table.dequantize import spread_ties
from generators.table.encoding import TabularEncoder

ENCODER_FILE = "encoder.json"
WEIGHTS_FILE = "vae.pt"
STATE_FILE = "vae_state.json"


class VAEParams(Params):
    # Defaults measured on Adult (26k rows) on a loaded 2-core CPU, one torch thread: SDMetrics
    # quality 0.96 in about 2 minutes (SDV's TVAE: 0.900 in 338 s); see benchmarks/README.md.
    epochs: int = Field(80, ge=1)
    batch_size: int = Field(500, ge=2)
    latent_dim: int = Field(64, ge=1)
    # 128 units: 0.959 on Adult in 80 epochs, as good as 256 (0.958 in 100) at a third of
    # the time per epoch.
    hidden_dims: tuple[int, ...] = (128, 128)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    # Weight of the KL term (beta-VAE; TVAE's loss_factor = 2 on reconstruction is 0.5):
    # a sharper reconstruction, the prior mismatch it brings being taken up by the latent
    # mixture below (Adult: 0.912 with 1.0 and 10 components, 0.958 with 0.5 and 30).
    kl_weight: float = Field(0.5, gt=0)
    # Share of the training rows held out to stop early; no split below 20 rows or under DP.
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    # Stop when the validation loss (or, without a split, the epoch loss) has not improved
    # by 0.1% for this many epochs; 0 = never.
    early_stopping_patience: int = Field(10, ge=0)
    # "mixture": sample z from a Gaussian mixture fitted to the posterior means after
    # training; "normal": from N(0, I), as a plain VAE (always under DP).
    latent_prior: Literal["normal", "mixture"] = "mixture"
    # At most this many components, and at most one per 100 training rows.
    latent_components: int = Field(30, ge=1)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for inputs, outputs in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(inputs, outputs), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class _VAE(nn.Module):
    def __init__(
        self,
        width: int,
        latent_dim: int,
        hidden: tuple[int, ...],
        n_continuous: int,
        components: int,
    ):
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
        # The latent prior for sampling: mixture weights (components,), means and standard
        # deviations (components, latent). One component at 0 with scale 1 is N(0, I).
        self.register_buffer("prior_weights", torch.ones(components) / components)
        self.register_buffer("prior_means", torch.zeros(components, latent_dim))
        self.register_buffer("prior_scales", torch.ones(components, latent_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x: (batch, width) -> reconstruction (batch, width), mu and log_var (batch, latent),
        log_sigma (batch, n_continuous)."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        log_sigma = self.log_sigma(torch.ones(len(x), 1, device=x.device))
        return self.decoder(z), mu, log_var, log_sigma

    def draw_latent(self, n: int) -> torch.Tensor:
        """(n, latent) draws from the prior mixture, from the global torch RNG."""
        component = torch.multinomial(self.prior_weights, n, replacement=True)
        noise = torch.randn(n, self.latent_dim)
        return self.prior_means[component] + noise * self.prior_scales[component]


class TabularVAEGenerator(Generator):
    """A tabular VAE in PyTorch; GPU when present; can train under DP-SGD (Opacus)."""

    name = "vae"
    Params = VAEParams
    supports_dp = True
    resumable = True  # without DP
    supports_streaming = True

    def _fit(self, data: pd.DataFrame) -> None:
        params: VAEParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        private = self.dp_ is not None
        # Under DP only the network is trained privately; the encoding is fitted on the data
        # directly, so it keeps to what DP synthesizers usually treat as public: each numeric
        # column's min and max (no quantiles) and the category sets (merge rare ones with
        # privacy.rare_category_min_count).
        n_quantiles = 2 if private else 1000
        self.encoder_ = TabularEncoder(n_quantiles).fit(data, self.schema_)
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        matrix = torch.from_numpy(self._encode(data, rng))
        self._index_spans()
        self.model_ = self._new_model().to(device)
        n_validation = 0
        if not private and len(matrix) >= 20:
            n_validation = int(round(params.validation_fraction * len(matrix)))
        order = torch.randperm(len(matrix))
        validation = matrix[order[:n_validation]].to(device)
        train = matrix[order[n_validation:]]
        optimizer = torch.optim.Adam(
            self.model_.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
        )
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,))))
        loader = DataLoader(
            TensorDataset(train),
            batch_size=min(params.batch_size, len(train)),
            shuffle=True,
            drop_last=False,
            generator=generator,
        )
        model, engine = self.model_, None
        if private:
            model, optimizer, loader, engine = self._make_private(model, optimizer, loader)
        with warnings.catch_warnings():
            # Opacus' hooks fire torch's "full backward hook" notice on every step.
            warnings.simplefilter("ignore", UserWarning)
            self._train(
                model,
                optimizer,
                lambda epoch: (batch for (batch,) in loader),
                engine,
                validation,
                device,
                generator,
            )
        if engine is not None:
            self.epsilon_spent_ = float(engine.get_epsilon(self.dp_.delta))
        self.model_ = self.model_.cpu().eval()
        if params.latent_prior == "mixture" and not private:
            self._fit_latent_mixture(matrix)

    def _fit_stream(
        self, source: ParquetSource, sample_rows: int, chunk_rows: int, sample_seed: int
    ) -> None:
        """Train on passes over `source` in bounded memory. What differs from `fit`:

        - the encoding (quantile knots, categories) is fitted on a seeded uniform sample of
          `sample_rows` rows (all rows when there are fewer); a category missing from the
          sample (rarer than about 1 in `sample_rows`) encodes as all zeros and is never
          drawn;
        - the validation set is the sample's first `validation_fraction` share (a uniform
          subsample: the sample comes in random order), left out of training, so it is
          at most validation_fraction x sample_rows rows rather than that share of all rows;
        - ties are spread afresh for every chunk of every epoch (seeded by epoch and chunk),
          rather than once;
        - minibatches are shuffled within `chunk_rows`-row chunks that the source's shuffle
          buffer mixes from several row groups, not over the whole table;
        - the latent mixture is fitted to the sample's posterior means (the one-component-per-
          100-rows and 10-rows-per-component limits apply to the sample).
        No DP (Opacus' Poisson sampling needs the whole table)."""
        params: VAEParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        stream_seed = int(np.random.randint(2**31))
        rows = source.sample_row_numbers(sample_rows, sample_seed)
        sample = source.read_rows(rows)
        self.encoder_ = TabularEncoder().fit(sample, self.schema_)
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        matrix = torch.from_numpy(self._encode(sample, rng))
        del sample
        self._index_spans()
        self.model_ = self._new_model().to(device)
        n_validation = 0
        if len(matrix) >= 20:
            n_validation = int(round(params.validation_fraction * len(matrix)))
        validation = matrix[:n_validation].to(device)
        train = source.excluding(rows[:n_validation])
        optimizer = torch.optim.Adam(
            self.model_.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
        )

        def epoch_batches(epoch: int) -> Iterator[torch.Tensor]:
            chunks = encoded_chunks(train, chunk_rows, stream_seed, epoch, self._encode)
            return minibatches(chunks, params.batch_size)

        self._train(self.model_, optimizer, epoch_batches, None, validation, device, None)
        self.model_ = self.model_.cpu().eval()
        if params.latent_prior == "mixture":
            self._fit_latent_mixture(matrix)

    def _encode(self, data: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """Rows -> the float32 matrix the network trains on (ties spread with `rng`)."""
        return spread_ties(self.encoder_, data, self.encoder_.transform(data), rng)

    def _train(self, model, optimizer, epoch_batches, engine, validation, device, shuffle) -> None:
        """Epochs of minibatch training, recording losses (and epsilon under DP) per epoch;
        without DP, the best epoch's weights (by validation loss when there is a split) are
        kept, and every epoch is checkpointed. `epoch_batches(epoch)` gives the epoch's
        minibatches; `shuffle` is the in-memory loader's torch.Generator (None when
        streaming: a pass's order follows from the seed and the epoch)."""
        params: VAEParams = self.params  # type: ignore[assignment]
        # Cosine annealing from learning_rate to learning_rate / 100 over the planned epochs.
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda epoch: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * epoch / params.epochs)),
        )
        best, best_state, stale, first_epoch = float("inf"), None, 0, 0
        # Under DP, Opacus' accountant would have to resume too: DP fits start afresh.
        resumed = self._load_checkpoint(device) if engine is None else None
        if resumed is not None:
            first_epoch, state = resumed
            self.model_.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            if shuffle is not None:
                shuffle.set_state(state["shuffle"])
            best, best_state, stale = state["best"], state["best_model"], state["stale"]
        for epoch_index in tqdm(
            range(first_epoch, params.epochs),
            desc=f"training {self.name}",
            unit="epoch",
            initial=first_epoch,
            total=params.epochs,
        ):
            model.train()
            total, rows = 0.0, 0
            for batch in epoch_batches(epoch_index):
                if len(batch) == 0:  # Poisson sampling can draw an empty batch
                    continue
                batch = batch.to(device)
                loss = self._loss(batch, *model(batch))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                rows += len(batch)
            schedule.step()
            if engine is not None:
                # Under DP the raw loss is a statistic of the private data outside the
                # accounting: neither logged nor used to stop early; only epsilon is reported.
                self.losses_.append({"epsilon": float(engine.get_epsilon(self.dp_.delta))})
                continue
            epoch = {"loss": total / max(rows, 1)}
            if len(validation):
                epoch["validation"] = self._evaluate(validation)
            self.losses_.append(epoch)
            watched = epoch.get("validation", epoch["loss"])
            # An improvement is 0.1% of the best loss's size (losses can be negative: the
            # Gaussian terms are densities).
            if best == float("inf") or watched < best - 1e-3 * abs(best) - 1e-9:
                best, stale = watched, 0
                best_state = copy.deepcopy(self.model_.state_dict())
            else:
                stale += 1
            self._save_checkpoint(
                epoch_index + 1,
                {
                    "model": self.model_.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "shuffle": shuffle.get_state() if shuffle is not None else None,
                    "best": best,
                    "best_model": best_state,
                    "stale": stale,
                },
            )
            if params.early_stopping_patience and stale >= params.early_stopping_patience:
                break
        if best_state is not None:
            self.model_.load_state_dict(best_state)

    @torch.no_grad()
    def _evaluate(self, matrix: torch.Tensor) -> float:
        """Mean negative ELBO of held-out rows (one z draw per row)."""
        self.model_.eval()
        total = sum(
            float(self._loss(batch, *self.model_(batch))) * len(batch)
            for batch in matrix.split(4096)
        )
        return total / len(matrix)

    @torch.no_grad()
    def _fit_latent_mixture(self, matrix: torch.Tensor) -> None:
        """Fit the sampling prior: a diagonal Gaussian mixture over the posterior means."""
        from sklearn.mixture import GaussianMixture

        params: VAEParams = self.params  # type: ignore[assignment]
        mu = torch.cat([self.model_.encoder(b).chunk(2, dim=1)[0] for b in matrix.split(4096)])
        # Each component should summarise many rows, never one.
        components = int(min(params.latent_components, max(1, len(mu) // 100)))
        mixture = GaussianMixture(
            components,
            covariance_type="diag",
            random_state=int(np.random.randint(2**31)),
            reg_covar=1e-4,
            max_iter=200,
        ).fit(mu.double().numpy())
        # A component that ended up holding under 10 rows' weight is dropped.
        kept = mixture.weights_ * len(mu) >= 10
        kept[np.argmax(mixture.weights_)] = True
        weights = torch.zeros(params.latent_components)
        means = torch.zeros(params.latent_components, params.latent_dim)
        scales = torch.ones(params.latent_components, params.latent_dim)
        weights[: kept.sum()] = torch.from_numpy(mixture.weights_[kept]).float()
        means[: kept.sum()] = torch.from_numpy(mixture.means_[kept]).float()
        scales[: kept.sum()] = torch.from_numpy(np.sqrt(mixture.covariances_[kept])).float()
        self.model_.prior_weights.copy_(weights / weights.sum())
        self.model_.prior_means.copy_(means)
        self.model_.prior_scales.copy_(scales)

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

    def _new_model(self) -> _VAE:
        params: VAEParams = self.params  # type: ignore[assignment]
        return _VAE(
            self.encoder_.width,
            params.latent_dim,
            params.hidden_dims,
            len(self._continuous),
            params.latent_components,
        )

    def _index_spans(self) -> None:
        spans = self.encoder_.spans
        self._continuous = [s.start for s in spans if s.kind == "continuous"]
        self._missing = [s.start for s in spans if s.kind == "missing"]
        self._categorical = [(s.start, s.stop) for s in spans if s.kind == "categorical"]

    def _loss(self, x, reconstruction, mu, log_var, log_sigma) -> torch.Tensor:
        """Per-row negative ELBO (KL weighted by kl_weight), averaged over the batch (Opacus
        expects a mean)."""
        params: VAEParams = self.params  # type: ignore[assignment]
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
        return (loss + params.kl_weight * kl).mean()

    @torch.no_grad()
    def _sample(self, n: int) -> pd.DataFrame:
        z = self.model_.draw_latent(n)
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
        self.encoder_ = TabularEncoder.load(path / ENCODER_FILE)
        self._index_spans()
        self.model_ = self._new_model()
        # weights_only: never unpickle code from a model file; map to CPU so a GPU-trained
        # model loads anywhere.
        state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.model_.load_state_dict(state)
        self.model_.eval()
        self.epsilon_spent_ = json.loads((path / STATE_FILE).read_text())["epsilon_spent"]
