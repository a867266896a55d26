"""Hidden Markov model inference in PyTorch (Baum–Welch), shared by the text HMM
(`generators/text/hmm.py`) and the sequence HMM (`generators/sequence/hmm.py`).

The machinery is split so that other emission models can reuse it (issue 8: Gaussian
emissions for time series):

- `forward_backward(log_start, log_transition, log_emission, mask)` is the E-step for any
  emission model: it takes per-position emission log-probabilities (B, T, K), batched over
  B padded sequences, and returns each sequence's log-likelihood, the state posteriors
  (B, T, K) and the expected transition counts (K, K). It is the *scaled* recursion
  (Rabiner 1989): alpha and beta are renormalised at every step and the log-likelihood is
  the sum of the log scale factors, so every step is a (B, K) @ (K, K) matrix product
  rather than a logsumexp. Emission log-probs are shifted by their per-position maximum
  before exponentiating, so Gaussian densities far in the tails do not underflow.
- `m_step_markov(posteriors, transition_counts, mask)` re-estimates the start and
  transition probabilities; `categorical_emission_counts` and `CategoricalEmissions` are
  the categorical part; `baum_welch` runs EM for categorical emissions over batches of
  sequences (sorted by length, at most `batch_tokens` padded positions each, so memory is
  bounded and padding small).
- `sample_states(log_start, log_transition, n, length)` draws state paths from the global
  torch RNG (seeded by the caller).

hmmlearn's CategoricalHMM is the oracle (tests/generators/test_hmm.py): same data and
initial parameters give the same log-likelihood after the same number of iterations.
Sequences are float64 throughout: a few hundred thousand positions of log-likelihood
sum past float32's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

DTYPE = torch.float64
# Keeps a row with no expected counts (a state never visited) a distribution, and the scale
# factor of an impossible position positive; far below any probability EM produces.
_TINY = 1e-300


# -- the E-step, for any emission model ------------------------------------------------------
@dataclass
class ForwardBackward:
    """log_likelihood (B,); posteriors (B, T, K), zero at padding; transition_counts (K, K):
    expected number of i -> j transitions summed over the batch."""

    log_likelihood: torch.Tensor
    posteriors: torch.Tensor
    transition_counts: torch.Tensor


def forward_backward(
    log_start: torch.Tensor,
    log_transition: torch.Tensor,
    log_emission: torch.Tensor,
    mask: torch.Tensor,
) -> ForwardBackward:
    """Scaled forward-backward over a batch of padded sequences.

    log_start (K,), log_transition (K, K) with rows = from-state, log_emission (B, T, K):
    log p(observation at t | state), mask (B, T) bool: True where a sequence has a position
    (sequences are left-aligned; padding comes last). Every sequence needs length >= 1.
    """
    batch, steps, k = log_emission.shape
    mask = mask.to(torch.bool)
    shift = log_emission.max(dim=-1).values  # (B, T)
    shift = torch.where(mask & torch.isfinite(shift), shift, 0.0)
    emission = torch.exp(log_emission - shift[..., None])  # (B, T, K), max 1 per position
    emission = torch.where(mask[..., None], emission, 1.0)
    start, transition = log_start.exp(), log_transition.exp()

    alpha = torch.empty_like(emission)
    scale = torch.ones(batch, steps, dtype=emission.dtype, device=emission.device)
    current = start[None, :] * emission[:, 0]
    scale[:, 0] = current.sum(-1).clamp_min(_TINY)
    alpha[:, 0] = current / scale[:, 0, None]
    for t in range(1, steps):
        current = (alpha[:, t - 1] @ transition) * emission[:, t]
        norm = current.sum(-1).clamp_min(_TINY)
        valid = mask[:, t]
        # Past a sequence's end alpha stays put and the scale is 1 (adds 0 to the log-lik.)
        scale[:, t] = torch.where(valid, norm, 1.0)
        alpha[:, t] = torch.where(valid[:, None], current / norm[:, None], alpha[:, t - 1])

    beta = torch.ones_like(emission)
    for t in range(steps - 2, -1, -1):
        following = emission[:, t + 1] * beta[:, t + 1] / scale[:, t + 1, None]
        beta[:, t] = torch.where(mask[:, t + 1, None], following @ transition.T, 1.0)

    posteriors = alpha * beta * mask[..., None]
    log_likelihood = (scale.log() + shift).mul(mask).sum(-1)
    if steps > 1:
        # xi_t(i, j) = alpha_{t-1}(i) A(i, j) e_t(j) beta_t(j) / c_t, summed over b and t
        # as one (K, B*(T-1)) @ (B*(T-1), K) product.
        weight = emission[:, 1:] * beta[:, 1:] / scale[:, 1:, None] * mask[:, 1:, None]
        counts = alpha[:, :-1].reshape(-1, k).T @ weight.reshape(-1, k)
        transition_counts = counts * transition
    else:
        transition_counts = torch.zeros(k, k, dtype=emission.dtype, device=emission.device)
    return ForwardBackward(log_likelihood, posteriors, transition_counts)


def normalize_rows(counts: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
    """Rows of `counts` as log-probabilities; a row with no counts keeps `previous`'s row
    (hmmlearn leaves such rows as they were too)."""
    totals = counts.sum(-1, keepdim=True)
    log_probs = torch.log(counts.clamp_min(0) / totals.clamp_min(_TINY))
    if previous is not None:
        log_probs = torch.where(totals > 0, log_probs, previous)
    return log_probs


@dataclass
class MarkovStatistics:
    """Expected counts accumulated over batches: start (K,), transitions (K, K)."""

    start: torch.Tensor
    transitions: torch.Tensor
    log_likelihood: float = 0.0

    def add(self, result: ForwardBackward) -> None:
        self.start += result.posteriors[:, 0].sum(0)
        self.transitions += result.transition_counts
        self.log_likelihood += float(result.log_likelihood.sum())


def m_step_markov(
    stats: MarkovStatistics, log_start: torch.Tensor, log_transition: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(new log_start, new log_transition) from expected counts (maximum likelihood)."""
    return normalize_rows(stats.start, log_start), normalize_rows(stats.transitions, log_transition)


def sample_states(
    log_start: torch.Tensor, log_transition: torch.Tensor, n: int, length: int
) -> torch.Tensor:
    """(n, length) state paths drawn from the global torch RNG (seed it first)."""
    start, transition = log_start.exp(), log_transition.exp()
    states = torch.empty(n, length, dtype=torch.int64, device=start.device)
    states[:, 0] = torch.multinomial(start.expand(n, -1), 1)[:, 0]
    for t in range(1, length):
        states[:, t] = torch.multinomial(transition[states[:, t - 1]], 1)[:, 0]
    return states


# -- categorical emissions -------------------------------------------------------------------
@dataclass
class CategoricalEmissions:
    """log_probs (K, V): log p(symbol | state)."""

    log_probs: torch.Tensor

    def log_emission(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) symbol ids -> (B, T, K) log-probs (padding gets any value; it is masked)."""
        return self.log_probs.T[tokens]

    def sample(self, states: torch.Tensor, exclude: int | None = None) -> torch.Tensor:
        """One symbol per state in `states` (any shape), from the global torch RNG;
        `exclude` (e.g. the unknown token) is never drawn."""
        probs = self.log_probs.exp()
        if exclude is not None:
            probs = probs.clone()
            probs[:, exclude] = 0
            probs[probs.sum(-1) == 0] = 1.0  # a state that only emitted `exclude`
        flat = states.reshape(-1)
        out = torch.empty_like(flat)
        for state in range(probs.shape[0]):  # grouped by state: never (n, T, V) at once
            where = torch.nonzero(flat == state)[:, 0]
            if len(where):
                out[where] = torch.multinomial(probs[state], len(where), replacement=True)
        return out.reshape(states.shape)


def categorical_emission_counts(
    tokens: torch.Tensor, mask: torch.Tensor, posteriors: torch.Tensor, n_symbols: int
) -> torch.Tensor:
    """Expected (K, V) state-symbol counts: sum of posteriors at each symbol's positions."""
    k = posteriors.shape[-1]
    counts = torch.zeros(n_symbols, k, dtype=posteriors.dtype, device=posteriors.device)
    counts.index_add_(0, tokens[mask], posteriors[mask])
    return counts.T


@dataclass
class HMMState:
    """A categorical HMM's parameters, as log-probabilities."""

    log_start: torch.Tensor  # (K,)
    log_transition: torch.Tensor  # (K, K)
    emissions: CategoricalEmissions  # (K, V)

    @classmethod
    def from_probabilities(cls, start, transition, emission, device="cpu") -> HMMState:
        def log(values) -> torch.Tensor:
            return torch.log(torch.as_tensor(np.asarray(values), dtype=DTYPE, device=device))

        return cls(log(start), log(transition), CategoricalEmissions(log(emission)))


def random_init(
    n_states: int, n_symbols: int, unigram: torch.Tensor, device="cpu", concentration: float = 1.0
) -> HMMState:
    """A seeded starting point (global torch RNG): Dirichlet(1) start and transition rows,
    and per state the unigram distribution perturbed by Gamma(concentration) noise, so
    states start apart but every symbol is possible in every state."""
    gamma = torch.distributions.Gamma(
        torch.tensor(concentration, dtype=DTYPE), torch.tensor(1.0, dtype=DTYPE)
    )
    start = torch.distributions.Dirichlet(torch.ones(n_states, dtype=DTYPE)).sample()
    transition = torch.distributions.Dirichlet(torch.ones(n_states, dtype=DTYPE)).sample(
        (n_states,)
    )
    noise = gamma.sample((n_states, n_symbols))
    emission = unigram.to(DTYPE).cpu()[None, :] * noise + _TINY
    emission = emission / emission.sum(-1, keepdim=True)
    return HMMState.from_probabilities(start, transition, emission, device=device)


def length_batches(lengths: np.ndarray, batch_tokens: int) -> list[np.ndarray]:
    """Indices of sequences, sorted by length, cut into batches of at most `batch_tokens`
    padded positions (a longer sequence gets a batch of its own)."""
    order = np.argsort(lengths, kind="stable")
    batches, current, width = [], [], 0
    for index in order:
        new_width = max(width, int(lengths[index]))
        if current and new_width * (len(current) + 1) > batch_tokens:
            batches.append(np.array(current))
            current, new_width = [], int(lengths[index])
        current.append(index)
        width = new_width
    if current:
        batches.append(np.array(current))
    return batches


def e_step(
    state: HMMState, batches: list[tuple[torch.Tensor, torch.Tensor]], n_symbols: int
) -> tuple[MarkovStatistics, torch.Tensor]:
    """Expected counts over all batches: (Markov statistics with the total log-likelihood,
    emission counts (K, V))."""
    k = state.log_start.shape[0]
    device = state.log_start.device
    stats = MarkovStatistics(
        torch.zeros(k, dtype=DTYPE, device=device), torch.zeros(k, k, dtype=DTYPE, device=device)
    )
    emission_counts = torch.zeros(k, n_symbols, dtype=DTYPE, device=device)
    for tokens, mask in batches:
        result = forward_backward(
            state.log_start, state.log_transition, state.emissions.log_emission(tokens), mask
        )
        stats.add(result)
        emission_counts += categorical_emission_counts(tokens, mask, result.posteriors, n_symbols)
    return stats, emission_counts


def baum_welch(
    docs: list[list[int]],
    state: HMMState,
    n_symbols: int,
    *,
    n_iter: int,
    tol: float = 0.0,
    batch_tokens: int = 1 << 17,
    emission_smoothing: float = 0.0,
) -> tuple[HMMState, list[float]]:
    """EM from `state` for at most `n_iter` iterations on token-id sequences (each length
    >= 1). Returns the final parameters and the log-likelihood before each update (as
    hmmlearn's monitor records it). Stops early when the log-likelihood per symbol gains
    less than `tol`. `emission_smoothing` adds that pseudo-count to every emission cell."""
    device = state.log_start.device
    lengths = np.array([len(d) for d in docs])
    batches = [
        pad_documents([docs[i] for i in index], device)
        for index in length_batches(lengths, batch_tokens)
    ]
    total = float(lengths.sum())
    history: list[float] = []
    for _ in range(n_iter):
        stats, emission_counts = e_step(state, batches, n_symbols)
        history.append(stats.log_likelihood)
        log_start, log_transition = m_step_markov(stats, state.log_start, state.log_transition)
        log_emission = normalize_rows(
            emission_counts + emission_smoothing, state.emissions.log_probs
        )
        state = HMMState(log_start, log_transition, CategoricalEmissions(log_emission))
        if len(history) >= 2 and (history[-1] - history[-2]) / total < tol:
            break
    return state, history


def log_likelihood(state: HMMState, docs: list[list[int]], batch_tokens: int = 1 << 17) -> float:
    """Total log-likelihood of token-id sequences under `state`."""
    device = state.log_start.device
    lengths = np.array([len(d) for d in docs])
    total = 0.0
    for index in length_batches(lengths, batch_tokens):
        tokens, mask = pad_documents([docs[i] for i in index], device)
        result = forward_backward(
            state.log_start, state.log_transition, state.emissions.log_emission(tokens), mask
        )
        total += float(result.log_likelihood.sum())
    return total


def pad_documents(
    docs: Sequence[Sequence[int]], device: str | torch.device, pad: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, T) int64 padded with `pad`, mask (B, T) bool), T the longest document."""
    lengths = torch.tensor([len(d) for d in docs], dtype=torch.int64)
    width = max(1, int(lengths.max())) if len(docs) else 1
    tokens = torch.full((len(docs), width), pad, dtype=torch.int64)
    if len(docs):
        flat = torch.tensor([t for d in docs for t in d], dtype=torch.int64)
        rows = torch.repeat_interleave(torch.arange(len(docs)), lengths)
        cols = torch.arange(len(flat)) - torch.repeat_interleave(
            torch.cumsum(lengths, 0) - lengths, lengths
        )
        tokens[rows, cols] = flat
    mask = torch.arange(width)[None, :] < lengths[:, None]
    return tokens.to(device), mask.to(device)
