"""An autoregressive generator over discretised columns (in the spirit of TabularARGN,
Tiwald et al. 2025, and MADE, Germain et al. 2015), in PyTorch.

Each row becomes one token per column (`generators.table.encoding.TokenEncoder`: categories;
point masses and quantile intervals for numbers and datetimes; a missing token). The model
factorises a row's probability in column order,

    p(x) = p(x_1) p(x_2 | x_1) ... p(x_n | x_1..x_{n-1}),

with one small network per column j (a "head"): the embeddings of columns < j, concatenated,
go through `layers` fully connected layers of `width` units to column j's logits. Training
computes every head in one pass: the first layer is a single matrix over all columns'
embeddings with a block mask (head j sees only the blocks of columns < j), the later layers
are batched matrix products over heads. Sampling runs the heads in order on a whole batch
(100k rows per shard), one pass per column, each head reading only its prefix of the
embeddings: no per-row Python and nothing recomputed.

Conditional sampling is native and exact when the conditioned columns are categorical or
boolean and are the first columns of the model's order (`first_columns` puts a target
there): their tokens are fixed and the later heads draw p(x_k+1.. | x_1..x_k) as usual.
Other conditions fall back to rejection sampling (see generators/sampling/conditions.py).

Memorisation is held off by dropout, early stopping on a validation split of the training
rows (the best epoch's weights are kept), and bins of at least `min_bin_rows` rows.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from generators.base import Generator, Params, resolve_device
from generators.data.schema import Schema
from generators.data.streaming import ParquetSource
from generators.errors import ConfigError
from generators.table.batches import encoded_chunks, minibatches
from generators.table.encoding import TokenEncoder, fit_private_token_encoder

WEIGHTS_FILE = "autoregressive.pt"
STATE_FILE = "autoregressive.json"
_PAD_LOGIT = -1e9  # logit of the padding past a column's vocabulary: probability 0
_SAMPLE_BLOCK_ROWS = 8192


class AutoregressiveParams(Params):
    # Defaults fit Adult (26k rows, 15 columns) in well under a minute on a 2-core CPU.
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(512, ge=1)
    width: int = Field(64, ge=1)  # hidden units per column head
    layers: int = Field(1, ge=1)  # hidden layers per column head
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    # Tokens per numeric/datetime column (point masses + quantile intervals); each bin holds
    # at least min_bin_rows training rows.
    n_bins: int = Field(50, ge=1)
    min_bin_rows: int = Field(10, ge=1)
    # Values are drawn inside a bin by interpolating up to this many within-bin quantiles
    # (each sub-interval holding at least min_bin_rows rows), so a wide tail bin is filled
    # as the real rows fill it; 1 = uniformly.
    bin_quantiles: int = Field(20, ge=1)
    # Model a numeric/datetime column that is almost always >= an earlier one and much
    # narrower as a difference from it (a dropoff after its pickup); detected from the data.
    differences: bool = True
    # Share of the training rows held out to stop early; no split below 20 rows.
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    # Stop when the validation loss has not improved for this many epochs; 0 = never.
    early_stopping_patience: int = Field(5, ge=0)
    # Stop after the first epoch that ends past this many seconds; None = no limit. Note a
    # time limit makes the number of epochs, and so the model, depend on the machine.
    time_limit_s: float | None = Field(None, gt=0)
    # Columns to model first, in this order (the rest keep the table's order). Conditional
    # sampling on a prefix of the order is exact, so put a column you condition or
    # rebalance on here (e.g. [income]).
    first_columns: list[str] = []


class _ColumnHeads(nn.Module):
    """One MLP per column over the tokens of the columns before it.

    tokens (batch, n_columns) -> logits (batch, n_columns, max vocabulary).

    The first layer reads one-hot tokens, so it is a table: row (column i, token t) holds
    that token's contribution to every head's first hidden layer, and a head's input is the
    sum of the rows of the tokens before it (`embedding_bag`; MADE's one-hot input layer
    without the multiplications). Entries of column i for heads j <= i are masked to zero.
    """

    def __init__(self, vocab_sizes: list[int], width: int, layers: int, dropout: float):
        super().__init__()
        n = len(vocab_sizes)
        self.vocab_sizes, self.width = list(vocab_sizes), width
        v_max = max(vocab_sizes)
        offsets = torch.tensor([0, *np.cumsum(vocab_sizes)[:-1].tolist()])
        self.register_buffer("offsets", offsets, persistent=False)
        column_of_row = torch.arange(n).repeat_interleave(torch.tensor(vocab_sizes))
        head_of_unit = torch.arange(n).repeat_interleave(width)
        mask = (column_of_row[:, None] < head_of_unit[None, :]).float()  # (sum V, n*width)
        self.register_buffer("mask", mask, persistent=False)
        # Head j sums j rows: scale so its pre-activation's spread does not grow with j.
        bound = 1 / math.sqrt(max(n - 1, 1))
        self.first = nn.Parameter(torch.empty(sum(vocab_sizes), n * width).uniform_(-bound, bound))
        self.first_bias = nn.Parameter(torch.zeros(n, 1, width))
        self.hidden = nn.ParameterList(
            [nn.Parameter(_uniform(n, width, width)) for _ in range(layers - 1)]
        )
        self.hidden_bias = nn.ParameterList(
            [nn.Parameter(torch.zeros(n, 1, width)) for _ in range(layers - 1)]
        )
        self.out = nn.Parameter(_uniform(n, width, v_max))
        self.out_bias = nn.Parameter(torch.zeros(n, 1, v_max))
        padding = torch.arange(v_max)[None, :] >= torch.tensor(vocab_sizes)[:, None]
        self.register_buffer("padding", padding[:, None, :] * _PAD_LOGIT, persistent=False)
        self.dropout_rate = dropout
        self.per_sample_gradients = False

    def ready_for_opacus(self) -> None:
        """Make the module one Opacus' functorch mode can take (its per-sample gradients
        are torch.func.vmap over the forward): the buffers become plain attributes (Opacus
        refuses a trainable layer with buffers; they are not saved anyway) and the first
        layer sums `embedding` rows (embedding_bag has no vmap rule: a per-row loop).
        Move the module to its device first: plain attributes do not follow `.to`."""
        for name in ("offsets", "mask", "padding"):
            setattr(self, name, self._buffers.pop(name))
        self.per_sample_gradients = True

    @torch.no_grad()
    def start_at_marginals(self, tokens: torch.Tensor, noise=None) -> None:
        """Set each head's output bias to its column's log frequencies (add-1/2 smoothed):
        training then starts from independent marginals and learns the dependencies,
        rather than spending its first hundreds of steps on the marginals. With `noise`
        (epsilon, numpy rng), under DP: Laplace-noised counts, epsilon-DP in all (each
        row adds one count per column: epsilon / columns each, simple composition)."""
        for j, size in enumerate(self.vocab_sizes):
            counts = torch.bincount(tokens[:, j], minlength=size).double()
            if noise is not None:
                epsilon, rng = noise
                scale = len(self.vocab_sizes) / epsilon
                laplace = torch.from_numpy(rng.laplace(scale=scale, size=size))
                counts = (counts + laplace).clamp(min=0)
            counts = counts + 0.5
            self.out_bias[j, 0, :size] = torch.log(counts / counts.sum()).float()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, n = tokens.shape
        # Dropout on the inputs: each (row, column) token is left out of the later heads'
        # sums with probability `dropout` (a mask of batch x columns; dropout on the hidden
        # units costs a random number per unit, half of a CPU training step).
        keep = None
        if self.training and self.dropout_rate > 0:
            keep = (torch.rand(batch, n, device=tokens.device) >= self.dropout_rate).float()
            keep /= 1 - self.dropout_rate
        if self.per_sample_gradients:  # under DP-SGD: see ready_for_opacus
            h = nn.functional.embedding(tokens + self.offsets, self.first * self.mask).sum(1)
        else:
            h = nn.functional.embedding_bag(
                tokens + self.offsets, self.first * self.mask, mode="sum", per_sample_weights=keep
            )
        h = h.reshape(batch, n, self.width).transpose(0, 1) + self.first_bias
        h = torch.relu(h)  # (n, B, width): heads lead, for batched matmuls
        for weight, bias in zip(self.hidden, self.hidden_bias, strict=True):
            h = torch.relu(torch.baddbmm(bias, h, weight))
        logits = torch.baddbmm(self.out_bias + self.padding, h, self.out)  # (n, B, v_max)
        return logits.transpose(0, 1)

    @torch.no_grad()
    def sample(
        self, n_rows: int, device: torch.device, fixed: dict[int, int] | None = None
    ) -> torch.Tensor:
        """Draw (n_rows, n_columns) tokens, column by column, from the global torch RNG;
        `fixed` {column index: token} sets those columns instead of drawing them (exact
        conditioning when the fixed columns are a prefix)."""
        # All uniforms first, so the draw does not depend on the block size below.
        uniforms = torch.rand(n_rows, len(self.vocab_sizes)).to(device)
        tables = [
            self.first[: self.offsets[j], j * self.width : (j + 1) * self.width].contiguous()
            for j in range(len(self.vocab_sizes))
        ]
        # Blocks of rows small enough for the (rows, width) activations to stay in cache.
        block = _SAMPLE_BLOCK_ROWS if device.type == "cpu" else n_rows
        return torch.cat(
            [self._sample_block(u, tables, fixed or {}) for u in uniforms.split(block)], dim=0
        )

    def _sample_block(
        self, uniforms: torch.Tensor, tables: list[torch.Tensor], fixed: dict[int, int]
    ) -> torch.Tensor:
        n_rows, n = uniforms.shape
        uniforms = uniforms.t().contiguous()  # (n, rows): column j's uniforms contiguous
        rows = torch.empty(n_rows, n, dtype=torch.long, device=uniforms.device)  # token + offset
        for j, size in enumerate(self.vocab_sizes):
            if j in fixed:
                rows[:, j] = fixed[j] + self.offsets[j]
                continue
            if j == 0:
                h = self.first_bias[0].expand(n_rows, -1).clamp(min=0)
            else:  # head j sums the table rows of the tokens of columns < j
                h = nn.functional.embedding_bag(rows[:, :j], tables[j], mode="sum")
                h = h.add_(self.first_bias[j]).relu_()
            for weight, bias in zip(self.hidden, self.hidden_bias, strict=True):
                h = torch.addmm(bias[j], h, weight[j]).relu_()
            logits = torch.addmm(self.out_bias[j, :, :size], h, self.out[j, :, :size])
            # Inverse-CDF draw: the first token whose cumulative probability reaches u.
            # (softmax is one fused pass, 2.5x faster than max-exp-sum by hand; a binary
            # search 3x faster than counting with a comparison.)
            cumulative = torch.softmax(logits, dim=1).cumsum_(dim=1)
            tokens = torch.searchsorted(cumulative, uniforms[j][:, None])[:, 0]
            tokens = tokens.clamp_(max=size - 1)
            rows[:, j] = tokens + self.offsets[j]
        return rows - self.offsets


def _uniform(heads: int, fan_in: int, fan_out: int) -> torch.Tensor:
    """nn.Linear's default initialisation, for a stack of per-head weights."""
    bound = 1 / math.sqrt(fan_in)
    return torch.empty(heads, fan_in, fan_out).uniform_(-bound, bound)


class AutoregressiveGenerator(Generator):
    """Autoregressive model over discretised columns; one pass per column to sample."""

    name = "autoregressive"
    Params = AutoregressiveParams
    resumable = True  # without DP
    supports_dp = True
    supports_conditions = True
    supports_streaming = True

    def _ordered_schema(self, data: pd.DataFrame) -> Schema:
        """The schema with `first_columns` moved to the front, in their order."""
        params: AutoregressiveParams = self.params  # type: ignore[assignment]
        assert self.schema_ is not None
        first = params.first_columns
        where = "generator.params (autoregressive).first_columns"
        if len(set(first)) != len(first):
            raise ConfigError(f"{where}: names a column twice: {first}")
        unknown = [name for name in first if name not in data.columns]
        if unknown:
            raise ConfigError(
                f"{where}: {unknown} are not columns the model learns; columns: "
                f"{', '.join(data.columns)}"
            )
        rank = {name: i for i, name in enumerate(first)}
        columns = sorted(self.schema_.columns, key=lambda c: rank.get(c.name, len(first)))
        return Schema(tuple(columns), self.schema_.arrow_schema)

    def _fit(self, data: pd.DataFrame) -> None:
        self.dp_details_: dict | None = None  # how the DP fit spent its budget, under dp
        if self.dp_ is not None:
            self._fit_private(data)
            return
        params: AutoregressiveParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        self.encoder_ = self._new_encoder(data)
        tokens = torch.from_numpy(self.encoder_.transform(data))
        order = torch.randperm(len(tokens))
        n_validation = (
            int(round(params.validation_fraction * len(tokens))) if len(tokens) >= 20 else 0
        )
        validation = tokens[order[:n_validation]].to(device)
        train = tokens[order[n_validation:]].to(device)
        self.model_ = self._new_model()
        self.model_.start_at_marginals(train)
        self.model_.to(device)

        def epoch_batches(epoch: int) -> Iterator[torch.Tensor]:
            for batch in torch.randperm(len(train), device=device).split(params.batch_size):
                yield train[batch]

        self._train(epoch_batches, validation, device)

    def _fit_private(self, data: pd.DataFrame) -> None:
        """Fit under the `dp` budget, the unit of privacy a row: the encoder's value sets,
        ranges and bins by DP mechanisms (or a public domain) from half of `encoder_share`
        of epsilon (and all of that share of delta), the heads' starting marginals from
        Laplace-noised counts with the other half, then DP-SGD with the rest (Opacus, RDP
        accountant, Poisson sampling of each row into a batch with probability
        batch_size / rows, per-row gradients clipped to max_grad_norm, the configured
        epochs). Simple composition: `epsilon_spent_` is the sum of the three. No
        validation split, early stopping, time limit or dropout (each would read the rows
        outside the accounting, or, for dropout, differ between Opacus' per-sample
        recomputation and the step), and no checkpoints (the accountant would have to
        resume too: a DP fit starts afresh)."""
        from opacus import PrivacyEngine

        params: AutoregressiveParams = self.params  # type: ignore[assignment]
        budget = self.dp_
        device = torch.device(resolve_device(self.device))
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        self.encoder_ = TokenEncoder(params.n_bins, params.min_bin_rows, 1, False)
        # encoder_share x epsilon: half for the encoder's statistics, half for the noisy
        # marginals the heads start at.
        spent = fit_private_token_encoder(
            self.encoder_,
            data,
            self._ordered_schema(data),
            budget.encoder_share * budget.epsilon / 2,
            budget.encoder_share * budget.delta,
            budget.public_domain,
            rng,
        )
        marginals_epsilon = budget.encoder_share * budget.epsilon / 2
        before_sgd = spent["epsilon"] + marginals_epsilon
        sgd_epsilon, sgd_delta = budget.epsilon - before_sgd, budget.delta - spent["delta"]
        tokens = torch.from_numpy(self.encoder_.transform(data))
        model = self._new_model(dropout=0.0)
        model.start_at_marginals(tokens, noise=(marginals_epsilon, rng))
        model.to(device).ready_for_opacus()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
        )
        shuffle = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,))))
        loader = DataLoader(
            TensorDataset(tokens), batch_size=min(params.batch_size, len(tokens)), generator=shuffle
        )
        engine = PrivacyEngine(accountant="rdp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus warns about its secure-RNG option
            private, optimizer, loader = engine.make_private_with_epsilon(
                module=model,
                optimizer=optimizer,
                data_loader=loader,  # replaced by Poisson sampling
                target_epsilon=sgd_epsilon,
                target_delta=sgd_delta,
                epochs=params.epochs,
                max_grad_norm=budget.max_grad_norm,
                grad_sample_mode="functorch",
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Opacus' backward-hook notices
            for _ in tqdm(range(params.epochs), desc=f"training {self.name} (DP)", unit="epoch"):
                private.train()
                for (batch,) in loader:
                    if len(batch) == 0:  # Poisson sampling can draw an empty batch
                        continue
                    loss = self._loss(batch.to(device), private)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                # The raw loss is a statistic of the rows outside the accounting: only
                # epsilon is recorded.
                epsilon = before_sgd + engine.get_epsilon(sgd_delta)
                self.losses_.append({"epsilon": float(epsilon)})
        self.epsilon_spent_ = before_sgd + float(engine.get_epsilon(sgd_delta))
        self.dp_details_ = {
            "unit": "row",
            "sampling": f"Poisson, each row in a batch with probability "
            f"{loader.sample_rate:.6g} (expected batch {loader.sample_rate * len(tokens):.0f})",
            "epsilon_encoder": spent["epsilon"],
            "epsilon_marginals": marginals_epsilon,
            "epsilon_sgd": self.epsilon_spent_ - before_sgd,
            "delta_encoder": spent["delta"],
            "delta_sgd": sgd_delta,
            "composition": "simple: epsilon_encoder + epsilon_marginals + epsilon_sgd, "
            "delta_encoder + delta_sgd",
            "columns": spent["columns"],
        }
        # A clean module (no Opacus hooks or per-sample gradients) with the trained weights.
        self.model_ = self._new_model()
        self.model_.load_state_dict({k: v.detach() for k, v in model.state_dict().items()})
        self.model_.to(device).eval()

    def _fit_stream(
        self, source: ParquetSource, sample_rows: int, chunk_rows: int, sample_seed: int
    ) -> None:
        """Train on passes over `source` in bounded memory. What differs from `fit`:

        - the token bins (quantiles, point masses, within-bin quantiles; min_bin_rows
          counted in the sample) and the categories are fitted on a seeded uniform sample
          of `sample_rows` rows (all rows when there are fewer); a category missing from
          the sample (rarer than about 1 in `sample_rows`) maps to its column's token 0, as
          unseen categories do in `transform`;
        - the validation set is the sample's first `validation_fraction` share (a uniform
          subsample: the sample comes in random order), left out of training, so it is at
          most validation_fraction x sample_rows rows rather than that share of all rows;
        - the heads start at the marginals of the sample's training rows;
        - minibatches are shuffled within `chunk_rows`-row chunks that the source's shuffle
          buffer mixes from several row groups, not over the whole table.
        """
        params: AutoregressiveParams = self.params  # type: ignore[assignment]
        self.dp_details_ = None  # never under DP (Opacus' Poisson sampling needs the table)
        device = torch.device(resolve_device(self.device))
        stream_seed = int(np.random.randint(2**31))
        rows = source.sample_row_numbers(sample_rows, sample_seed)
        sample = source.read_rows(rows)
        self.encoder_ = self._new_encoder(sample)
        tokens = torch.from_numpy(self.encoder_.transform(sample))
        del sample
        n_validation = (
            int(round(params.validation_fraction * len(tokens))) if len(tokens) >= 20 else 0
        )
        validation = tokens[:n_validation].to(device)
        train = source.excluding(rows[:n_validation])
        self.model_ = self._new_model()
        self.model_.start_at_marginals(tokens[n_validation:])
        self.model_.to(device)

        def encode(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
            return self.encoder_.transform(frame)

        def epoch_batches(epoch: int) -> Iterator[torch.Tensor]:
            chunks = encoded_chunks(train, chunk_rows, stream_seed, epoch, encode)
            for batch in minibatches(chunks, params.batch_size):
                yield batch.to(device)

        self._train(epoch_batches, validation, device)

    def _new_encoder(self, data: pd.DataFrame) -> TokenEncoder:
        params: AutoregressiveParams = self.params  # type: ignore[assignment]
        return TokenEncoder(
            params.n_bins, params.min_bin_rows, params.bin_quantiles, params.differences
        ).fit(data, self._ordered_schema(data))

    def _train(self, epoch_batches, validation: torch.Tensor, device: torch.device) -> None:
        """Epochs over `epoch_batches(epoch)` (token minibatches), early stopping on the
        validation loss when there is a validation set (the best epoch's weights are kept),
        a checkpoint after every epoch."""
        params: AutoregressiveParams = self.params  # type: ignore[assignment]
        optimizer = torch.optim.AdamW(
            self.model_.parameters(),
            lr=params.learning_rate,
            weight_decay=params.weight_decay,
            fused=True,  # one kernel for all parameters: a third of a CPU step otherwise
        )
        started = time.perf_counter()
        best, best_state, stale, first_epoch = float("inf"), None, 0, 0
        resumed = self._load_checkpoint(device)
        if resumed is not None:
            first_epoch, state = resumed
            self.model_.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            best, best_state, stale = state["best"], state["best_model"], state["stale"]
            started -= state["elapsed_s"]
        for epoch_index in tqdm(
            range(first_epoch, params.epochs),
            desc=f"training {self.name}",
            unit="epoch",
            initial=first_epoch,
            total=params.epochs,
        ):
            self.model_.train()
            total, rows = 0.0, 0
            for batch in epoch_batches(epoch_index):
                loss = self._loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                rows += len(batch)
            epoch = {"train": total / rows}
            if len(validation):
                epoch["validation"] = self._evaluate(validation)
                if epoch["validation"] < best:
                    best, stale = epoch["validation"], 0
                    best_state = {
                        k: v.detach().clone() for k, v in self.model_.state_dict().items()
                    }
                else:
                    stale += 1
            self.losses_.append(epoch)
            self._save_checkpoint(
                epoch_index + 1,
                {
                    "model": self.model_.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "best": best,
                    "best_model": best_state,
                    "stale": stale,
                    "elapsed_s": time.perf_counter() - started,
                },
            )
            if params.early_stopping_patience and stale >= params.early_stopping_patience:
                break
            if (
                params.time_limit_s is not None
                and time.perf_counter() - started > params.time_limit_s
            ):
                break
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.model_.eval()

    def _loss(self, tokens: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        """Negative log-likelihood of whole rows in nats, averaged over the rows (Opacus
        expects a mean); `model` defaults to the fitted one."""
        logits = (model or self.model_)(tokens)
        nll = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1), reduction="sum"
        )
        return nll / len(tokens)

    @torch.no_grad()
    def _evaluate(self, tokens: torch.Tensor) -> float:
        self.model_.eval()
        params: AutoregressiveParams = self.params  # type: ignore[assignment]
        total = sum(
            float(self._loss(batch)) * len(batch) for batch in tokens.split(params.batch_size * 8)
        )
        return total / len(tokens)

    def _new_model(self, dropout: float | None = None) -> _ColumnHeads:
        params: AutoregressiveParams = self.params  # type: ignore[assignment]
        return _ColumnHeads(
            self.encoder_.vocab_sizes,
            params.width,
            params.layers,
            params.dropout if dropout is None else dropout,
        )

    def _sample(self, n: int) -> pd.DataFrame:
        device = next(self.model_.parameters()).device
        tokens = self.model_.sample(n, device).cpu().numpy()
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        return self.encoder_.inverse(tokens, rng)

    def _prefix_tokens(self, values: dict[str, Any]) -> dict[int, int] | None:
        """{column index: token} when `values` fix exactly the first len(values) columns of
        the model's order and all of them are categories it has seen; else None."""
        entries = self.encoder_.columns[: len(values)]
        if {entry["name"] for entry in entries} != set(values):
            return None
        fixed = {}
        for j, entry in enumerate(entries):
            if entry["kind"] != "categorical":
                return None
            label = str(values[entry["name"]])
            if label not in entry["categories"]:
                return None
            fixed[j] = entry["categories"].index(label)
        return fixed

    def _conditions_natively(self, values: dict[str, Any]) -> bool:
        return self._prefix_tokens(values) is not None

    def _sample_conditioned(self, n: int, values: dict[str, Any]) -> pd.DataFrame:
        fixed = self._prefix_tokens(values)
        assert fixed is not None
        device = next(self.model_.parameters()).device
        tokens = self.model_.sample(n, device, fixed).cpu().numpy()
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        return self.encoder_.inverse(tokens, rng)

    def _save(self, path: Path) -> None:
        torch.save(self.model_.state_dict(), path / WEIGHTS_FILE)
        state = {"encoder": self.encoder_.state()}
        if getattr(self, "dp_details_", None) is not None:  # only under DP: files unchanged
            state["dp"] = {"epsilon_spent": self.epsilon_spent_, **self.dp_details_}
        (path / STATE_FILE).write_text(json.dumps(state))

    def _load(self, path: Path) -> None:
        state = json.loads((path / STATE_FILE).read_text())
        self.encoder_ = TokenEncoder.from_state(state["encoder"])
        if "dp" in state:
            details = dict(state["dp"])
            self.epsilon_spent_ = details.pop("epsilon_spent")
            self.dp_details_ = details
        self.model_ = self._new_model()
        # weights_only: never unpickle code from a model file; map to CPU so a GPU-trained
        # model loads anywhere, then move to the GPU when one is asked for and present.
        weights = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.model_.load_state_dict(weights)
        if self.device != "cpu" and torch.cuda.is_available():
            self.model_.to("cuda")
        self.model_.eval()
