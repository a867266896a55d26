"""A conditional tabular GAN (the CTGAN recipe of Xu et al., 2019), written for speed.

Rows are encoded by `generators.table.encoding.TabularEncoder` (quantile-normal numerics with
missing indicators, one-hot categoricals), with tied values spread over their quantile
interval (`generators.table.dequantize`), so every continuous column is a smooth N(0, 1)-like
target and decoding puts point masses (capital_gain = 0) back exactly.

The recipe, as in CTGAN:
- training by sampling: each row of a batch gets a condition, one category of one
  categorical column (column uniformly, category with probability proportional to the log
  of its frequency, so rare categories are trained on), and the real rows of the batch are
  drawn among those with that category. The generator sees the condition and is also
  penalised by the cross-entropy between its logits for that column and the condition.
- Wasserstein loss with gradient penalty, PacGAN (the discriminator judges `pac` rows at
  once, which counters mode collapse), residual generator blocks with batch norm, a
  LeakyReLU/dropout discriminator.
- heads: linear for continuous values, Gumbel-softmax over each categorical span and over
  each missing indicator (as the two-way choice present/missing).
At sampling, conditions follow the categories' real frequencies.

Written for speed: every span operation is one gather/softmax/scatter over a padded
(spans x widest span) index computed once, and condition and row sampling are table
lookups, so no Python loop over columns or rows runs in the training step. On Adult, on
a 2-core CPU shared with other jobs and one torch thread, an epoch took 4-6 s (SDV's
CTGAN: about 7.5 s on an idle one); the network's matrix products are nearly all of it.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn
from tqdm.auto import tqdm

from generators.base import MAX_TRIES_FACTOR, Generator, Params, resolve_device
from generators.data.streaming import ParquetSource
from generators.data.values import as_labels
from generators.errors import DataError
from generators.table.batches import encoded_chunks
from generators.table.dequantize import spread_ties
from generators.table.encoding import TabularEncoder

ENCODER_FILE = "encoder.json"
WEIGHTS_FILE = "gan.pt"
STATE_FILE = "gan_state.json"


class GANParams(Params):
    epochs: int = Field(300, ge=1)
    batch_size: int = Field(500, ge=1)  # rounded down to a multiple of pac
    embedding_dim: int = Field(128, ge=1)  # the generator's noise dimension
    generator_dim: tuple[int, ...] = (256, 256)
    discriminator_dim: tuple[int, ...] = (256, 256)
    generator_lr: float = Field(2e-4, gt=0)
    discriminator_lr: float = Field(2e-4, gt=0)
    generator_decay: float = Field(1e-6, ge=0)
    discriminator_decay: float = Field(0.0, ge=0)
    discriminator_steps: int = Field(1, ge=1)
    pac: int = Field(10, ge=1)
    gradient_penalty: float = Field(10.0, ge=0)
    gumbel_tau: float = Field(0.2, gt=0)
    # Stop after this many seconds of training (whole epochs), None = run all epochs. A time
    # limit makes the number of epochs, and so the model, depend on the machine's speed.
    max_seconds: float | None = Field(None, gt=0)


class _Residual(nn.Module):
    """Linear -> batch norm -> ReLU, concatenated with its input (CTGAN's generator block)."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.linear = nn.Linear(inputs, outputs)
        self.norm = nn.BatchNorm1d(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.relu(self.norm(self.linear(x))), x], dim=1)


class _Generator(nn.Module):
    def __init__(self, inputs: int, hidden: tuple[int, ...], outputs: int):
        super().__init__()
        blocks, width = [], inputs
        for size in hidden:
            blocks.append(_Residual(width, size))
            width += size
        self.net = nn.Sequential(*blocks, nn.Linear(width, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Discriminator(nn.Module):
    """Scores groups of `pac` rows: (batch, width) -> (batch / pac, 1)."""

    def __init__(self, width: int, hidden: tuple[int, ...], pac: int):
        super().__init__()
        layers: list[nn.Module] = []
        size = width * pac
        for h in hidden:
            layers += [nn.Linear(size, h), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
            size = h
        layers.append(nn.Linear(size, 1))
        self.net = nn.Sequential(*layers)
        self.pac = pac

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, x.shape[1] * self.pac))


class _Layout:
    """Index tensors for the spans of the encoded matrix, computed once.

    groups: (n_groups, widest) indices into the generator output with one extra constant-0
    column appended (index `width`): a categorical span's columns, or a missing indicator
    as [indicator, constant 0] (the logits of missing and present); padding points at the
    constant column and is masked. cond_columns: (cond_width,) the output column of each
    condition position (categorical spans only); cond_spans: (n_cond_spans, widest) the
    condition positions of each categorical span, padded with -1.
    """

    def __init__(self, encoder: TabularEncoder):
        width = encoder.width
        groups: list[list[int]] = []
        cond_group: list[int] = []  # group index of each categorical span
        for span in encoder.spans:
            if span.kind == "categorical":
                cond_group.append(len(groups))
                groups.append(list(range(span.start, span.stop)))
            elif span.kind == "missing":
                groups.append([span.start, width])
        widest = max((len(g) for g in groups), default=1)
        index = torch.full((len(groups), widest), width, dtype=torch.long)
        valid = torch.zeros((len(groups), widest), dtype=torch.bool)
        for i, group in enumerate(groups):
            index[i, : len(group)] = torch.tensor(group)
            valid[i, : len(group)] = True
        self.width = width
        self.group_index, self.group_valid = index, valid
        self.writable = valid & (index != width)  # entries that are real output columns
        self.continuous = torch.tensor(
            [s.start for s in encoder.spans if s.kind == "continuous"], dtype=torch.long
        )
        self.cond_group = torch.tensor(cond_group, dtype=torch.long)
        categorical = [s for s in encoder.spans if s.kind == "categorical"]
        self.cond_columns = torch.tensor(
            [c for s in categorical for c in range(s.start, s.stop)], dtype=torch.long
        )
        sizes = [s.stop - s.start for s in categorical]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) if sizes else []
        self.cond_offsets = torch.tensor(offsets, dtype=torch.long)
        self.cond_width = int(sum(sizes))

    def to(self, device: torch.device) -> _Layout:
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def activate(self, raw: torch.Tensor, tau: float) -> torch.Tensor:
        """Generator output (batch, width) -> rows as the discriminator sees them: continuous
        values as they are, each span replaced by its Gumbel-softmax (one gather, one
        softmax over the padded spans, one scatter)."""
        if len(self.group_index) == 0:
            return raw
        logits = self._group_logits(raw)  # (batch, groups, widest)
        gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-20)))
        soft = torch.softmax((logits + gumbel) / tau, dim=-1)
        out = raw.clone()
        out[:, self.group_index[self.writable]] = soft[:, self.writable]
        return out

    def _group_logits(self, raw: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([raw, raw.new_zeros(len(raw), 1)], dim=1)
        logits = padded[:, self.group_index]
        return logits.masked_fill(~self.group_valid, float("-inf"))

    def condition_loss(self, raw: torch.Tensor, span: torch.Tensor, category: torch.Tensor):
        """Cross-entropy of the generator's logits for each row's conditioned span."""
        logits = self._group_logits(raw)[torch.arange(len(raw)), self.cond_group[span]]
        return nn.functional.cross_entropy(logits, category)


class _Conditions:
    """Draws conditions: a categorical span uniformly, then one of its categories with
    probability proportional to log(1 + count) in training (CTGAN's log-frequency, so rare
    categories are trained on) or to its count when sampling (the real frequencies).

    counts: (cond_width,) how many training rows hold each condition position.
    """

    def __init__(self, counts: torch.Tensor, layout: _Layout):
        self.layout, self.counts = layout, counts
        self.n_spans = len(layout.cond_offsets)
        if self.n_spans == 0:
            return
        sizes = torch.diff(layout.cond_offsets, append=counts.new_tensor([len(counts)]).long())
        widest = int(sizes.max())
        in_span = torch.arange(widest, device=counts.device)[None, :] < sizes[:, None]
        position = layout.cond_offsets[:, None] + torch.arange(widest, device=counts.device)
        span_counts = torch.where(in_span, counts[position.clamp(max=len(counts) - 1)], 0.0)
        self.train_probs = torch.log1p(span_counts)  # (n_spans, widest), 0 on padding
        self.real_probs = span_counts
        self._position = torch.where(in_span, position, -1)
        self.span_weights: torch.Tensor | None = None  # None: every span can be drawn

    def restricted(self, present: torch.Tensor) -> _Conditions:
        """These conditions with training draws limited to the positions where `present`
        (cond_width,) is True: the categories a chunk of rows holds. A span none of whose
        categories is present is not drawn. With every counted category present (`fit`),
        the draws are exactly the unrestricted ones."""
        if self.n_spans == 0:
            return self
        out = copy.copy(self)
        mask = present[self._position.clamp(min=0)] & (self._position >= 0)
        out.train_probs = torch.where(mask, self.train_probs, 0.0)
        possible = out.train_probs.sum(1) > 0
        out.span_weights = None if bool(possible.all()) else possible.float()
        return out

    def draw(self, n: int, training: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(condition one-hots (n, cond_width), span (n,), category within the span (n,))."""
        device = self.counts.device
        if training and self.span_weights is not None:
            span = torch.multinomial(self.span_weights, n, replacement=True)
        else:
            span = torch.randint(self.n_spans, (n,), device=device)
        probs = (self.train_probs if training else self.real_probs)[span]
        category = torch.multinomial(probs, 1).squeeze(1)
        cond = torch.zeros(n, self.layout.cond_width, device=device)
        cond[torch.arange(n, device=device), self.layout.cond_offsets[span] + category] = 1.0
        return cond, span, category


class _RowsByCondition:
    """Random training rows holding given conditions, by table lookup.

    The rows holding each condition position are stored contiguously in `rows` (a row once
    per categorical span), starting at `first[position]`, `count[position]` of them.
    """

    def __init__(self, matrix: torch.Tensor, layout: _Layout):
        onehot = matrix[:, layout.cond_columns]  # (rows, cond_width)
        row_of, position_of = torch.nonzero(onehot > 0, as_tuple=True)
        self.rows = row_of[torch.argsort(position_of, stable=True)]
        self.count = onehot.sum(0).long()
        self.first = torch.cumsum(self.count, 0) - self.count

    def draw(self, cond: torch.Tensor) -> torch.Tensor:
        """(n,) the index of a random training row holding each row's condition."""
        position = cond.argmax(1)
        offset = (torch.rand(len(cond), device=cond.device) * self.count[position]).long()
        return self.rows[self.first[position] + offset]


class ConditionalGANGenerator(Generator):
    """A conditional tabular GAN (CTGAN recipe: training by sampling, WGAN-GP, PacGAN)."""

    name = "gan"
    Params = GANParams
    supports_streaming = True
    supports_conditions = True  # one categorical/boolean column, by the conditional vector

    def _build(self, device: torch.device, condition_counts: torch.Tensor) -> None:
        params: GANParams = self.params  # type: ignore[assignment]
        self.layout_ = _Layout(self.encoder_).to(device)
        self.conditions_ = _Conditions(condition_counts.to(device), self.layout_)
        self.generator_ = _Generator(
            params.embedding_dim + self.layout_.cond_width,
            params.generator_dim,
            self.encoder_.width,
        ).to(device)

    def _fit(self, data: pd.DataFrame) -> None:
        params: GANParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        self.encoder_ = TabularEncoder().fit(data, self.schema_)
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        matrix = torch.from_numpy(self._encode(data, rng))
        self._build(device, matrix[:, _Layout(self.encoder_).cond_columns].sum(0))
        matrix = matrix.to(device)
        rows = _RowsByCondition(matrix, self.layout_)
        batch = max(params.pac, params.batch_size // params.pac * params.pac)
        steps = max(1, len(matrix) // batch)
        self._train(lambda epoch: [(matrix, rows, steps)], device)

    def _fit_stream(
        self, source: ParquetSource, sample_rows: int, chunk_rows: int, sample_seed: int
    ) -> None:
        """Train on passes over `source` in bounded memory. What differs from `fit`:

        - the encoding (quantile knots, categories) is fitted on a seeded uniform sample of
          `sample_rows` rows (all rows when there are fewer); a category missing from the
          sample (rarer than about 1 in `sample_rows`) encodes as all zeros and is never
          drawn. The condition frequencies are the exact counts over all rows (one pass
          over the categorical columns only).
        - "training by sampling" draws each batch's real rows from the current chunk of
          `chunk_rows` rows (mixed from several row groups by the source's shuffle buffer)
          rather than from the whole table, and conditions only among the categories that
          chunk holds; an epoch runs about as many steps as `fit`'s, rows / batch.
        - ties are spread afresh for every chunk of every epoch (seeded by epoch and chunk).
        """
        params: GANParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        stream_seed = int(np.random.randint(2**31))
        sample = source.sample(sample_rows, sample_seed)
        self.encoder_ = TabularEncoder().fit(sample, self.schema_)
        del sample
        self._build(device, self._condition_counts(source, chunk_rows))
        batch = max(params.pac, params.batch_size // params.pac * params.pac)

        def epoch_chunks(epoch: int) -> Iterator[tuple[torch.Tensor, _RowsByCondition, int]]:
            seen = done = 0
            previous = None
            for chunk in encoded_chunks(source, chunk_rows, stream_seed, epoch, self._encode):
                chunk = chunk.to(device)
                seen += len(chunk)
                steps = seen // batch - done  # the epoch's steps so far: rows seen // batch
                rows = chunk
                if steps > 0 and len(chunk) < batch and previous is not None:
                    # A chunk shorter than a batch (a pass's last few rows) must not supply
                    # a whole step's real rows and conditions alone: the chunk before it
                    # joins (at most two chunks are ever held).
                    rows = torch.cat([previous, chunk])
                if steps > 0:
                    done += steps
                    yield rows, _RowsByCondition(rows, self.layout_), steps
                previous = chunk
            if done == 0:  # fewer rows than a batch: one step on the last chunk, as fit does
                yield chunk, _RowsByCondition(chunk, self.layout_), 1

        self._train(epoch_chunks, device)

    def _condition_counts(self, source: ParquetSource, chunk_rows: int) -> torch.Tensor:
        """(cond_width,) rows holding each category of each categorical column, counted in
        one pass over those columns (categories the encoder never saw are not counted)."""
        entries = [entry for entry in self.encoder_.columns if entry["kind"] == "categorical"]
        counts = [np.zeros(len(entry["categories"]), dtype=np.int64) for entry in entries]
        if entries:
            names = [entry["name"] for entry in entries]
            for frame in source.select(names).scan(chunk_rows):
                for entry, count in zip(entries, counts, strict=True):
                    codes = pd.Categorical(
                        as_labels(frame[entry["name"]]), categories=entry["categories"]
                    ).codes.astype(np.int64)
                    count += np.bincount(codes[codes >= 0], minlength=len(count))
        return torch.from_numpy(np.concatenate([np.zeros(0), *counts]).astype(np.float32))

    def _encode(self, data: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """Rows -> the float32 matrix the discriminator sees (ties spread with `rng`)."""
        return spread_ties(self.encoder_, data, self.encoder_.transform(data), rng)

    def _train(self, epoch_chunks, device: torch.device) -> None:
        """Epochs of WGAN-GP steps. `epoch_chunks(epoch)` gives the epoch's (encoded rows,
        their _RowsByCondition, steps to run on them): the whole table once in memory, a
        pass of chunks when streaming. Real rows for a step are drawn from its chunk, with
        conditions among the categories the chunk holds."""
        params: GANParams = self.params  # type: ignore[assignment]
        layout, generator = self.layout_, self.generator_
        discriminator = _Discriminator(
            self.encoder_.width + layout.cond_width, params.discriminator_dim, params.pac
        ).to(device)
        optimizer_g = torch.optim.Adam(
            generator.parameters(),
            lr=params.generator_lr,
            betas=(0.5, 0.9),
            weight_decay=params.generator_decay,
        )
        optimizer_d = torch.optim.Adam(
            discriminator.parameters(),
            lr=params.discriminator_lr,
            betas=(0.5, 0.9),
            weight_decay=params.discriminator_decay,
        )
        batch = max(params.pac, params.batch_size // params.pac * params.pac)
        started = time.monotonic()
        for epoch in tqdm(range(params.epochs), desc=f"training {self.name}", unit="epoch"):
            totals = torch.zeros(2, device=device)
            steps_run = 0
            for matrix, rows, steps in epoch_chunks(epoch):
                conditions = self.conditions_.restricted(rows.count > 0)
                for _ in range(steps):
                    for _ in range(params.discriminator_steps):
                        loss_d = self._discriminator_step(
                            matrix, rows, conditions, discriminator, optimizer_d, batch
                        )
                    loss_g = self._generator_step(discriminator, optimizer_g, batch)
                    totals += torch.stack([loss_g, loss_d])
                steps_run += steps
            generator_loss, discriminator_loss = (totals / steps_run).tolist()
            self.losses_.append({"generator": generator_loss, "discriminator": discriminator_loss})
            if params.max_seconds is not None and time.monotonic() - started > params.max_seconds:
                break
        self.generator_ = generator.cpu().eval()
        self.layout_ = layout.to(torch.device("cpu"))
        self.conditions_ = _Conditions(self.conditions_.counts.cpu(), self.layout_)

    def _noise(self, n: int, training: bool, conditions: _Conditions | None = None):
        params: GANParams = self.params  # type: ignore[assignment]
        device = self.layout_.cond_offsets.device
        z = torch.randn(n, params.embedding_dim, device=device)
        if self.layout_.cond_width == 0:
            empty = torch.zeros(n, 0, device=device)
            return z, empty, None, None
        cond, span, category = (conditions or self.conditions_).draw(n, training)
        return torch.cat([z, cond], dim=1), cond, span, category

    def _discriminator_step(
        self, matrix, rows, conditions, discriminator, optimizer, batch
    ) -> torch.Tensor:
        params: GANParams = self.params  # type: ignore[assignment]
        inputs, cond, _, _ = self._noise(batch, training=True, conditions=conditions)
        if cond.shape[1]:
            # Real rows holding the same conditions, in another order, so real and fake pac
            # groups do not share their condition combinations.
            shuffled = cond[torch.randperm(batch, device=cond.device)]
            real = torch.cat([matrix[rows.draw(shuffled)], shuffled], dim=1)
        else:
            real = matrix[torch.randint(len(matrix), (batch,), device=matrix.device)]
        with torch.no_grad():
            fake = self.layout_.activate(self.generator_(inputs), params.gumbel_tau)
        fake = torch.cat([fake, cond], dim=1)
        loss = discriminator(fake).mean() - discriminator(real).mean()
        if params.gradient_penalty:
            loss = loss + params.gradient_penalty * self._gradient_penalty(
                discriminator, real, fake
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def _gradient_penalty(self, discriminator, real, fake) -> torch.Tensor:
        """(|grad D| - 1)^2 at points between real and fake, per pac group (WGAN-GP)."""
        pac = discriminator.pac
        alpha = torch.rand(len(real) // pac, 1, 1, device=real.device)
        alpha = alpha.expand(-1, pac, real.shape[1]).reshape(real.shape)
        between = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (gradient,) = torch.autograd.grad(discriminator(between).sum(), between, create_graph=True)
        norm = gradient.reshape(-1, pac * real.shape[1]).norm(2, dim=1)
        return ((norm - 1) ** 2).mean()

    def _generator_step(self, discriminator, optimizer, batch) -> torch.Tensor:
        params: GANParams = self.params  # type: ignore[assignment]
        inputs, cond, span, category = self._noise(batch, training=True)
        raw = self.generator_(inputs)
        fake = torch.cat([self.layout_.activate(raw, params.gumbel_tau), cond], dim=1)
        loss = -discriminator(fake).mean()
        if span is not None:
            loss = loss + self.layout_.condition_loss(raw, span, category)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def _sample(self, n: int, position: int | None = None) -> pd.DataFrame:
        """`n` rows; with `position`, the conditional vector is fixed to that one-hot (a
        category of one column) instead of drawn at the real frequencies."""
        inputs, _, _, _ = self._noise(n, training=False)
        if position is not None:
            width = self.layout_.cond_width
            inputs[:, -width:] = 0.0
            inputs[:, inputs.shape[1] - width + position] = 1.0
        raw = self.generator_(inputs)
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        # Continuous outputs are normal scores; span outputs are logits, which the encoder
        # samples categories and missingness from.
        return self.encoder_.inverse(raw.numpy().astype(np.float64), rng)

    # -- conditions: CTGAN's conditional vector ---------------------------------------------
    def _condition_position(self, values: dict) -> int | None:
        """The conditional-vector position of a single categorical or boolean condition
        (checked values: categories as labels, booleans as bools); None otherwise."""
        if len(values) != 1:
            return None
        ((name, value),) = values.items()
        offset = 0
        for entry in self.encoder_.columns:  # cond positions follow the categorical spans
            if entry["kind"] != "categorical":
                continue
            if entry["name"] == name:
                label = str(value)
                categories = entry["categories"]
                return offset + categories.index(label) if label in categories else None
            offset += len(entry["categories"])
        return None

    def _conditions_natively(self, values: dict) -> bool:
        return self._condition_position(values) is not None

    def _sample_conditioned(self, n: int, values: dict) -> pd.DataFrame:
        """Rows generated with the condition's one-hot as the conditional vector (what the
        generator was trained to honour: a real row of that category was the discriminator's
        match), keeping those whose decoded category is the condition; the rest, which the
        decoder's sampling of the category's logits lets through, are drawn again. Bounded
        like rejection sampling, with an error naming the condition and its rate."""
        position = self._condition_position(values)
        ((name, value),) = values.items()
        label, limit = str(value), max(MAX_TRIES_FACTOR * n, 10_000)
        kept: list[pd.DataFrame] = []
        have = drawn = 0
        while have < n:
            if drawn >= limit:
                raise DataError(
                    f"sample.conditions: {name} = {value!r}: only {have} of {drawn} rows "
                    f"generated for it matched (rate {have / drawn:.4f}); the gan has not "
                    "learned this category: train longer, or condition another generator"
                )
            rows = min(limit - drawn, max(2 * (n - have), 1024))
            frame = self._sample(rows, position)
            drawn += rows
            match = frame[frame[name].pipe(as_labels) == label]
            kept.append(match)
            have += len(match)
        return pd.concat(kept, ignore_index=True).head(n)

    def _save(self, path: Path) -> None:
        self.encoder_.save(path / ENCODER_FILE)
        state = {"generator": self.generator_.state_dict(), "counts": self.conditions_.counts}
        torch.save(state, path / WEIGHTS_FILE)
        (path / STATE_FILE).write_text(json.dumps({"epochs_run": len(self.losses_)}))

    def _load(self, path: Path) -> None:
        self.encoder_ = TabularEncoder.load(path / ENCODER_FILE)
        # weights_only: never unpickle code from a model file; map to CPU so a GPU-trained
        # model loads anywhere.
        state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self._build(torch.device("cpu"), state["counts"])
        self.generator_.load_state_dict(state["generator"])
        self.generator_.eval()
