"""The text HMM: `HMMGenerator`, a thin adapter over `generators.models.hmm`."""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field

from generators.models.hmm import (
    DTYPE,
    CategoricalEmissions,
    HMMState,
    baum_welch,
    log_likelihood,
    random_init,
    sample_states,
)
from generators.text.base import TextGenerator, TextParams


# -- the generator ---------------------------------------------------------------------------
class HMMParams(TextParams):
    # 32 states over characters learn letters vs spaces vs punctuation and common
    # bigrams; more states fit better, at O(K^2) per position.
    n_states: int = Field(32, ge=1)
    n_iter: int = Field(50, ge=1)
    # Stop when an iteration gains less than this much log-likelihood per token.
    tol: float = Field(1e-4, ge=0)
    # Pseudo-count added to every (state, symbol) cell at each M-step, so a symbol a state
    # never emitted in training keeps a small probability.
    emission_smoothing: float = Field(1e-3, ge=0)
    # Padded positions per forward-backward batch: bounds memory at ~ 3 * batch_tokens * K
    # float64s (100 MB at the defaults with K = 32).
    batch_tokens: int = Field(1 << 17, ge=64)
    # Gamma shape of the emission noise at initialisation (smaller: states start further apart).
    init_concentration: float = Field(1.0, gt=0)


class HMMGenerator(TextGenerator):
    """Categorical-emission HMM over characters or words; Baum–Welch on the GPU when present.

    Documents are sampled with lengths (in tokens) drawn from the real ones; the unknown
    token is never emitted. Labels are not modelled (sampled at their real frequencies).
    """

    name = "hmm"
    Params = HMMParams
    MODEL_FILE = "hmm.pt"

    def _fit_tokens(self, docs: list[list[int]], labels: np.ndarray | None) -> None:
        p = self.params
        docs = [d for d in docs if d]
        n_symbols = len(self.tokenizer_)
        counts = np.bincount(np.concatenate([np.asarray(d) for d in docs]), minlength=n_symbols)
        unigram = torch.as_tensor(counts / counts.sum(), dtype=DTYPE)
        init = random_init(
            p.n_states, n_symbols, unigram, self.device_, concentration=p.init_concentration
        )
        self.state_, history = baum_welch(
            docs,
            init,
            n_symbols,
            n_iter=p.n_iter,
            tol=p.tol,
            batch_tokens=p.batch_tokens,
            emission_smoothing=p.emission_smoothing,
        )
        tokens = sum(len(d) for d in docs)
        self.losses_ = [{"nll_per_token": -value / tokens} for value in history]

    def _generate(self, lengths: np.ndarray, labels: np.ndarray | None) -> list[list[int]]:
        states = sample_states(
            self.state_.log_start, self.state_.log_transition, len(lengths), int(lengths.max())
        )
        symbols = self.state_.emissions.sample(states, exclude=0).cpu().numpy()
        return [row[:length].tolist() for row, length in zip(symbols, lengths, strict=True)]

    def log_likelihood(self, texts: list[str]) -> tuple[float, int]:
        """(total log-likelihood, number of tokens) of documents under the fitted model."""
        docs = [d for d in (self.tokenizer_.encode(t) for t in texts) if d]
        return log_likelihood(self.state_, docs, self.params.batch_tokens), sum(map(len, docs))

    def perplexity(self, texts: list[str]) -> float:
        """exp(-log-likelihood per token) of documents (per character or word)."""
        total, count = self.log_likelihood(texts)
        return math.exp(-total / max(count, 1))

    def _model_state(self) -> dict[str, torch.Tensor]:
        return {
            "log_start": self.state_.log_start,
            "log_transition": self.state_.log_transition,
            "log_emission": self.state_.emissions.log_probs,
        }

    def _load_model_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.state_ = HMMState(
            tensors["log_start"],
            tensors["log_transition"],
            CategoricalEmissions(tensors["log_emission"]),
        )
