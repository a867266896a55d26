"""A character-level GRU language model, trained from scratch: the text quality option.

Documents become one stream of characters, each document wrapped in a begin (BOS) and an
end (EOS) token; training draws random windows of `context` characters from the stream
and minimises next-character cross-entropy (AdamW, gradient clipping, cosine decay). With
a label column, the label's embedding is added to every input position of its document,
so sampling can be conditioned on a label. A validation slice (the stream's last
`valid_fraction`) is scored every `eval_every` steps and the best weights are kept.

Sampling starts each document at BOS with its label, draws characters with `temperature`
and `top_k` from the global torch RNG (seeded by the caller), and stops at EOS or at
`length_cap` times the document's drawn real length (lengths come from the real
distribution, so the model's own EOS decides where most documents end). Shapes: B
documents, T positions, V characters (+ BOS/EOS), H hidden units.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from pydantic import Field
from torch import nn

from generators.errors import DataError
from generators.text.base import TextGenerator, TextParams
from generators.text.tokens import TokenLevel

SAMPLE_BATCH = 1024  # documents generated side by side


class CharGRU(nn.Module):
    """Embedding -> GRU -> linear head; an optional label embedding is added to the input."""

    def __init__(
        self, n_tokens: int, n_labels: int, embed: int, hidden: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_tokens, embed)
        self.label = nn.Embedding(n_labels, embed) if n_labels > 1 else None
        self.gru = nn.GRU(
            embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.head = nn.Linear(hidden, n_tokens)

    def forward(
        self, tokens: torch.Tensor, labels: torch.Tensor | None, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, T), labels (B, T) or None -> (logits (B, T, V), state (layers, B, H))."""
        x = self.embed(tokens)
        if self.label is not None and labels is not None:
            x = x + self.label(labels)
        out, state = self.gru(x, state)
        return self.head(out), state


class CharLMParams(TextParams):
    level: TokenLevel = "char"
    # Characters seen fewer times than this become the unknown token (never generated).
    max_vocab: int = Field(256, ge=2)
    embed: int = Field(64, ge=1)
    # 256 hidden units learn English spelling on Tiny Shakespeare in a few hundred steps (a few
    # CPU minutes); larger models need a GPU to pay off.
    hidden: int = Field(256, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    context: int = Field(128, ge=2, description="characters per training window")
    batch_size: int = Field(32, ge=1)
    max_steps: int = Field(1000, ge=1)
    max_seconds: float | None = Field(None, gt=0, description="stop training after this long")
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    valid_fraction: float = Field(0.05, ge=0, lt=0.5)
    eval_every: int = Field(100, ge=1)
    temperature: float = Field(0.8, gt=0)
    top_k: int | None = Field(None, ge=1)
    # A sampled document stops at EOS or at this multiple of its drawn real length.
    length_cap: float = Field(2.0, ge=1)


class CharLMGenerator(TextGenerator):
    """Character-level GRU language model; labels condition it when there is a label column."""

    name = "char_lm"
    Params = CharLMParams
    supports_labels = True
    MODEL_FILE = "char_lm.pt"

    # -- data ------------------------------------------------------------------------------
    def _stream(
        self, docs: list[list[int]], labels: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, labels) as one stream: BOS doc EOS BOS doc EOS ..."""
        bos, eos = self.n_tokens_ - 2, self.n_tokens_ - 1
        pieces = [np.asarray([bos, *d, eos], dtype=np.int64) for d in docs]
        codes = labels if labels is not None else np.zeros(len(docs), dtype=np.int64)
        label_stream = np.repeat(codes, [len(p) for p in pieces])
        return torch.as_tensor(np.concatenate(pieces)), torch.as_tensor(label_stream)

    def _windows(self, tokens, labels, starts) -> tuple[torch.Tensor, ...]:
        index = starts[:, None] + torch.arange(self.params.context + 1)[None, :]
        window, window_labels = tokens[index], labels[index]
        device = self.device_
        return (
            window[:, :-1].to(device),
            window[:, 1:].to(device),
            window_labels[:, :-1].to(device),
        )

    def _fit_tokens(self, docs: list[list[int]], labels: np.ndarray | None) -> None:
        p = self.params
        self.n_tokens_ = len(self.tokenizer_) + 2  # + BOS, EOS
        n_labels = max(1, len(self.label_values_))
        tokens, label_stream = self._stream(docs, labels)
        span = p.context + 1
        if len(tokens) < 2 * span:
            raise DataError(
                f"char_lm: the corpus has {len(tokens)} characters, fewer than two training "
                f"windows of {span}; lower generator.params.context"
            )
        n_valid = int(len(tokens) * p.valid_fraction) if p.valid_fraction > 0 else 0
        n_valid = n_valid if n_valid >= span else 0
        train_end = len(tokens) - n_valid
        self.model_ = CharGRU(self.n_tokens_, n_labels, p.embed, p.hidden, p.layers, p.dropout)
        self.model_.to(self.device_)
        optimizer = torch.optim.AdamW(
            self.model_.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / p.max_steps))
        )
        # Fixed validation windows (seeded), tiling the held-out end of the stream.
        valid_starts = torch.arange(train_end, len(tokens) - span + 1, p.context)[:64]
        best = (math.inf, None)
        started = time.monotonic()
        running = []
        for step in range(1, p.max_steps + 1):
            self.model_.train()
            starts = torch.randint(0, train_end - span + 1, (p.batch_size,))
            x, y, lab = self._windows(tokens, label_stream, starts)
            logits, _ = self.model_(x, lab)
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.n_tokens_), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model_.parameters(), p.grad_clip)
            optimizer.step()
            schedule.step()
            running.append(loss.item())
            out_of_time = p.max_seconds is not None and time.monotonic() - started > p.max_seconds
            if step % p.eval_every == 0 or step == p.max_steps or out_of_time:
                record = {"train": float(np.mean(running))}
                running = []
                if len(valid_starts):
                    record["valid"] = self._valid_loss(tokens, label_stream, valid_starts)
                    if record["valid"] < best[0]:
                        state = {k: v.detach().clone() for k, v in self.model_.state_dict().items()}
                        best = (record["valid"], state)
                self.losses_.append(record)
            if out_of_time:
                break
        if best[1] is not None:
            self.model_.load_state_dict(best[1])
        self.model_.eval()

    @torch.no_grad()
    def _valid_loss(self, tokens, labels, starts) -> float:
        self.model_.eval()
        x, y, lab = self._windows(tokens, labels, starts)
        logits, _ = self.model_(x, lab)
        return float(nn.functional.cross_entropy(logits.reshape(-1, self.n_tokens_), y.reshape(-1)))

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, lengths: np.ndarray, labels: np.ndarray | None) -> list[list[int]]:
        p = self.params
        self.model_.eval()
        bos, eos = self.n_tokens_ - 2, self.n_tokens_ - 1
        codes = labels if labels is not None else np.zeros(len(lengths), dtype=np.int64)
        caps = np.maximum(np.ceil(lengths * p.length_cap).astype(np.int64), 1)
        out: list[list[int]] = []
        for begin in range(0, len(lengths), SAMPLE_BATCH):
            cap = caps[begin : begin + SAMPLE_BATCH]
            n = len(cap)
            label = torch.as_tensor(codes[begin : begin + SAMPLE_BATCH], device=self.device_)
            current = torch.full((n, 1), bos, dtype=torch.int64, device=self.device_)
            state = None
            done = torch.zeros(n, dtype=torch.bool, device=self.device_)
            generated = []
            limit = torch.as_tensor(cap, device=self.device_)
            for t in range(int(cap.max())):
                logits, state = self.model_(current, label[:, None], state)
                logits = logits[:, -1] / p.temperature
                logits[:, 0] = -math.inf  # never the unknown token
                logits[:, bos] = -math.inf
                if p.top_k is not None and p.top_k < logits.shape[-1]:
                    kth = torch.topk(logits, p.top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, -math.inf)
                nxt = torch.multinomial(torch.softmax(logits, -1), 1)
                done |= (nxt[:, 0] == eos) | (t + 1 >= limit)
                generated.append(torch.where(done, eos, nxt[:, 0]))
                current = nxt
                if bool(done.all()):
                    break
            rows = torch.stack(generated, 1).cpu().numpy()
            for row in rows:
                ends = np.flatnonzero(row == eos)
                out.append(row[: ends[0] if len(ends) else len(row)].tolist())
        return out

    # -- scoring and state ---------------------------------------------------------------------
    @torch.no_grad()
    def log_likelihood(self, texts: list[str], labels: list | None = None) -> tuple[float, int]:
        """(total log-likelihood in nats of the documents' characters and EOS, tokens scored).

        `labels` (one per document, values of the label column) condition a labelled model;
        without them, a labelled model scores every document under its first label value.
        Documents are scored in length-sorted padded batches."""
        self.model_.eval()
        bos, eos = self.n_tokens_ - 2, self.n_tokens_ - 1
        docs = [[bos, *self.tokenizer_.encode(t), eos] for t in texts]
        lookup = {value: code for code, value in enumerate(self.label_values_)}
        codes = [lookup.get(v, 0) for v in labels] if labels is not None else [0] * len(docs)
        order = np.argsort([len(d) for d in docs], kind="stable")
        total, count = 0.0, 0
        for begin in range(0, len(order), SAMPLE_BATCH):
            index = order[begin : begin + SAMPLE_BATCH]
            width = max(len(docs[i]) for i in index)
            tokens = torch.full((len(index), width), -100, dtype=torch.int64)
            for row, i in enumerate(index):
                tokens[row, : len(docs[i])] = torch.as_tensor(docs[i])
            tokens = tokens.to(self.device_)
            label = torch.as_tensor([codes[i] for i in index], device=self.device_)
            inputs = tokens[:, :-1].clamp_min(0)  # padding (-100) read as token 0, ignored
            logits, _ = self.model_(inputs, label[:, None].expand_as(inputs))
            targets = tokens[:, 1:]
            total -= float(
                nn.functional.cross_entropy(
                    logits.reshape(-1, self.n_tokens_),
                    targets.reshape(-1),
                    ignore_index=-100,
                    reduction="sum",
                )
            )
            count += int((targets != -100).sum())
        return total, count

    def perplexity(self, texts: list[str], labels: list | None = None) -> float:
        """exp(-log-likelihood per token) of documents: per character, EOS included."""
        total, count = self.log_likelihood(texts, labels)
        return math.exp(-total / max(count, 1))

    def _model_state(self) -> dict[str, torch.Tensor]:
        return dict(self.model_.state_dict())

    def _model_meta(self) -> dict:
        return {"n_tokens": self.n_tokens_, "n_labels": max(1, len(self.label_values_))}

    def _load_model_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        p = self.params
        self.n_tokens_ = meta["n_tokens"]
        self.model_ = CharGRU(
            self.n_tokens_, meta["n_labels"], p.embed, p.hidden, p.layers, p.dropout
        )
        self.model_.load_state_dict(tensors)
        self.model_.to(self.device_).eval()
