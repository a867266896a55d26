"""A hidden Markov model of multi-entity time series: Gaussian and categorical emissions.

`SequenceHMMGenerator` (name "hmm", modality "sequence") models every value column of a
long table given a hidden state: numeric (and datetime) columns by a diagonal Gaussian on
standardised values, categorical and boolean columns by a categorical distribution. It is
trained by Baum–Welch, batched over the training windows of all entities, reusing
`generators.hmm.forward_backward` (scaled recursion, (B, T, K) emission log-probs) and
`m_step_markov`; float64 throughout, on CUDA when present.

Missing values (`missing` parameter):
- "state" (default): missingness is part of the state. A numeric column with missing
  values in training gets a per-state Bernoulli "is missing" emission, and its value
  contributes log 1 (is marginalised) where it is missing; a categorical column's missing
  value is one more category. A state can so learn "sensor down", and runs of missing
  values (Beijing's outages last hours) come back as runs.
- "rate": missing values are marginalised (log 1) and not modelled; at sampling each
  column's values are blanked independently at the column's real missing rate.

Windows: training sees each entity cut into consecutive windows of at most
`data.sequence.max_length` rows, each an independent sequence whose first state is drawn
from the start distribution (which so learns the distribution of states at window starts,
close to the stationary one). Sampling runs one Markov chain per new entity over its whole
length, so the hidden state carries across window boundaries and nothing is stitched.

Initialisation: seeded k-means++ (a few Lloyd steps on at most `init_rows` rows) on the
standardised numeric values and one-hot categories, then one hard M-step from the cluster
labels (means, variances, category and missingness shares, start and transition counts).

hmmlearn's GaussianHMM is the oracle (tests/generators/test_sequence_hmm.py): on numeric
data without missing values, from the same parameters, `baum_welch_sequences` matches its
log-likelihood; `var_prior` is hmmlearn's `covars_prior` (in standardised units).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from generators.base import Params, resolve_device
from generators.hmm import (
    DTYPE,
    CategoricalEmissions,
    MarkovStatistics,
    forward_backward,
    length_batches,
    m_step_markov,
    normalize_rows,
    sample_states,
)
from generators.sequences import SequenceGenerator
from generators.values import as_float

MODEL_FILE = "sequence_hmm.pt"
ENCODING_FILE = "sequence_hmm.json"
_LOG_2PI = math.log(2 * math.pi)
# hmmlearn's floor on a state's posterior mass in the variance update.
_MIN_MASS = 1e-5


# -- data as tensors -----------------------------------------------------------------------------
@dataclass
class EncodedRows:
    """Rows of a long table as tensors: x (N, D) standardised numerics, 0 where missing;
    present (N, D) 1.0 where observed; missing (N, M) 1.0 where the M indicator columns are
    missing; codes (N, C) category ids, -1 where marginalised."""

    x: torch.Tensor
    present: torch.Tensor
    missing: torch.Tensor
    codes: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass
class SequenceHMMState:
    """Parameters: log_start (K,), log_transition (K, K), means and variances (K, D),
    log_missing (K, M): log p(missing | state) per indicator column, categorical: one
    (K, V_c) log-probability table per categorical column."""

    log_start: torch.Tensor
    log_transition: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    log_missing: torch.Tensor
    categorical: list[torch.Tensor] = field(default_factory=list)

    @property
    def n_states(self) -> int:
        return self.log_start.shape[0]

    def to(self, device: str | torch.device) -> SequenceHMMState:
        return SequenceHMMState(
            self.log_start.to(device),
            self.log_transition.to(device),
            self.means.to(device),
            self.variances.to(device),
            self.log_missing.to(device),
            [table.to(device) for table in self.categorical],
        )


def emission_log_probs(state: SequenceHMMState, rows: EncodedRows) -> torch.Tensor:
    """(N, K) log p(row | state): Gaussian terms over the present numerics (a missing value
    contributes log 1), missingness indicators, and categorical terms."""
    n = len(rows)
    out = torch.zeros(n, state.n_states, dtype=DTYPE, device=rows.x.device)
    if rows.x.shape[1]:
        inverse = 1.0 / state.variances  # (K, D)
        out -= 0.5 * (
            rows.present @ (torch.log(state.variances) + _LOG_2PI).T
            + (rows.x * rows.x) @ inverse.T
            - 2.0 * rows.x @ (state.means * inverse).T
            + rows.present @ (state.means * state.means * inverse).T
        )
    if rows.missing.shape[1]:
        log_present = torch.log1p(-state.log_missing.exp().clamp(max=1 - 1e-15))
        out += rows.missing @ state.log_missing.T + (1.0 - rows.missing) @ log_present.T
    for column, table in enumerate(state.categorical):
        codes = rows.codes[:, column]
        seen = codes >= 0
        out[seen] += table.T[codes[seen]]
    return out


@dataclass
class Windows:
    """Padded index batches over the concatenated rows: per batch, positions (B, T) into
    the rows (clamped at padding) and mask (B, T)."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def build(cls, lengths: np.ndarray, batch_rows: int, device) -> Windows:
        lengths = np.asarray(lengths, dtype=np.int64)
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        total = int(lengths.sum())
        batches = []
        for index in length_batches(lengths, batch_rows):
            width = int(lengths[index].max())
            steps = np.arange(width)
            mask = steps[None, :] < lengths[index, None]
            positions = np.minimum(offsets[index, None] + steps[None, :], total - 1)
            batches.append(
                (torch.as_tensor(positions, device=device), torch.as_tensor(mask, device=device))
            )
        return cls(batches)


def e_step(
    state: SequenceHMMState, rows: EncodedRows, windows: Windows
) -> tuple[MarkovStatistics, torch.Tensor]:
    """(Markov statistics with the total log-likelihood, posteriors (N, K) of every row)."""
    k, device = state.n_states, rows.x.device
    log_emission = emission_log_probs(state, rows)
    stats = MarkovStatistics(
        torch.zeros(k, dtype=DTYPE, device=device), torch.zeros(k, k, dtype=DTYPE, device=device)
    )
    gamma = torch.zeros(len(rows), k, dtype=DTYPE, device=device)
    for positions, mask in windows.batches:
        result = forward_backward(
            state.log_start, state.log_transition, log_emission[positions], mask
        )
        stats.add(result)
        gamma[positions[mask]] = result.posteriors[mask]
    return stats, gamma


def m_step_emissions(
    state: SequenceHMMState,
    rows: EncodedRows,
    gamma: torch.Tensor,
    *,
    var_prior: float,
    smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(means, variances, log_missing, categorical tables) maximising the expected
    log-likelihood under posteriors `gamma` (N, K). Variances follow hmmlearn's diagonal
    update: (var_prior + sum gamma (x - mu)^2) / max(sum gamma, 1e-5), over present values."""
    means, variances = state.means, state.variances
    if rows.x.shape[1]:
        weight = gamma.T @ rows.present  # (K, D)
        first = gamma.T @ rows.x
        second = gamma.T @ (rows.x * rows.x)
        has_mass = weight > 1e-300
        means = torch.where(has_mass, first / weight.clamp_min(1e-300), state.means)
        spread = second - 2.0 * means * first + means * means * weight
        variances = (var_prior + spread.clamp_min(0)) / weight.clamp_min(_MIN_MASS)
        variances = torch.where(has_mass, variances, state.variances).clamp_min(1e-12)
    log_missing = state.log_missing
    if rows.missing.shape[1]:
        mass = gamma.sum(0)[:, None]
        share = (gamma.T @ rows.missing + smoothing) / (mass + 2 * smoothing).clamp_min(1e-300)
        log_missing = torch.log(share.clamp(1e-300, 1 - 1e-12))
    tables = []
    for column, table in enumerate(state.categorical):
        codes = rows.codes[:, column]
        seen = codes >= 0
        counts = torch.zeros(table.shape[1], gamma.shape[1], dtype=DTYPE, device=gamma.device)
        counts.index_add_(0, codes[seen], gamma[seen])
        tables.append(normalize_rows(counts.T + smoothing, table))
    return means, variances, log_missing, tables


def baum_welch_sequences(
    state: SequenceHMMState,
    rows: EncodedRows,
    lengths: np.ndarray,
    *,
    n_iter: int,
    tol: float = 0.0,
    var_prior: float = 1e-2,
    smoothing: float = 0.0,
    batch_rows: int = 1 << 16,
) -> tuple[SequenceHMMState, list[float]]:
    """EM from `state` for at most `n_iter` iterations over sequences of `lengths` rows
    (concatenated in `rows`). Returns the parameters and the log-likelihood before each
    update (as hmmlearn's monitor records it); stops early when an iteration gains less
    than `tol` per row."""
    windows = Windows.build(lengths, batch_rows, rows.x.device)
    history: list[float] = []
    for _ in range(n_iter):
        stats, gamma = e_step(state, rows, windows)
        history.append(stats.log_likelihood)
        log_start, log_transition = m_step_markov(stats, state.log_start, state.log_transition)
        means, variances, log_missing, tables = m_step_emissions(
            state, rows, gamma, var_prior=var_prior, smoothing=smoothing
        )
        state = SequenceHMMState(log_start, log_transition, means, variances, log_missing, tables)
        if len(history) >= 2 and (history[-1] - history[-2]) / max(len(rows), 1) < tol:
            break
    return state, history


def sequence_log_likelihood(
    state: SequenceHMMState, rows: EncodedRows, lengths: np.ndarray, batch_rows: int = 1 << 16
) -> float:
    """Total log-likelihood of sequences of `lengths` rows (in the encoded, standardised
    units)."""
    windows = Windows.build(lengths, batch_rows, rows.x.device)
    log_emission = emission_log_probs(state, rows)
    total = 0.0
    for positions, mask in windows.batches:
        result = forward_backward(
            state.log_start, state.log_transition, log_emission[positions], mask
        )
        total += float(result.log_likelihood.sum())
    return total


# -- the generator -------------------------------------------------------------------------------
class SequenceHMMParams(Params):
    # 8 states separate e.g. clean/polluted, day/night and calm/windy regimes on Beijing's
    # 11 numeric columns; cost is O(K^2) per row in the recursion and O(K D) in emissions.
    n_states: int = Field(8, ge=1)
    n_iter: int = Field(30, ge=1)
    # Stop when an iteration gains less than this much log-likelihood per row.
    tol: float = Field(1e-4, ge=0)
    # hmmlearn's covars_prior: added to each state's summed squared deviations (standardised
    # units), so a state with few rows keeps a positive variance.
    var_prior: float = Field(1e-2, ge=0)
    # Pseudo-count on every category and missingness cell at each M-step.
    emission_smoothing: float = Field(1e-3, ge=0)
    missing: Literal["state", "rate"] = "state"
    # Padded positions per forward-backward batch: memory ~ 4 * batch_rows * K float64s.
    batch_rows: int = Field(1 << 16, ge=64)
    # Rows k-means sees at initialisation (a seeded sample).
    init_rows: int = Field(20_000, ge=10)


@dataclass
class _Encoding:
    """How value columns become tensors and back."""

    numeric: list[str]
    centers: list[float]
    scales: list[float]
    datetimes: list[str]
    indicator: list[str]  # numeric columns with a missingness emission ("state" mode)
    categorical: list[str]
    categories: list[list[str]]
    missing_code: list[bool]  # categorical: missing is a category of its own ("state" mode)
    missing_rates: dict[str, float]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class SequenceHMMGenerator(SequenceGenerator):
    """Gaussian + categorical HMM over multi-entity time series (see the module docstring)."""

    name = "hmm"
    Params = SequenceHMMParams

    # -- encoding ------------------------------------------------------------------------------
    def _build_encoding(self, values: pd.DataFrame) -> _Encoding:
        assert self.schema_ is not None
        state_mode = self.params.missing == "state"
        numeric, centers, scales, datetimes, indicator = [], [], [], [], []
        categorical, categories, missing_code = [], [], []
        rates = {}
        for name in values.columns:
            kind = self.schema_[name].kind
            missing = values[name].isna()
            rates[name] = float(missing.mean())
            if kind in ("numeric", "datetime"):
                numbers = as_float(values[name])
                present = numbers[~np.isnan(numbers)]
                center = float(present.mean()) if len(present) else 0.0
                scale = float(present.std()) if len(present) > 1 else 0.0
                numeric.append(name)
                centers.append(center)
                scales.append(scale if scale > 0 else 1.0)
                if kind == "datetime":
                    datetimes.append(name)
                if state_mode and missing.any():
                    indicator.append(name)
            else:  # categorical, boolean
                labels = values[name].astype("string")
                categorical.append(name)
                categories.append(sorted(labels.dropna().unique().tolist()))
                missing_code.append(bool(state_mode and missing.any()))
        return _Encoding(
            numeric,
            centers,
            scales,
            datetimes,
            indicator,
            categorical,
            categories,
            missing_code,
            rates,
        )

    def _encode(self, values: pd.DataFrame) -> EncodedRows:
        enc, device = self.encoding_, self.device_
        n = len(values)
        x = np.zeros((n, len(enc.numeric)))
        present = np.zeros_like(x)
        for j, name in enumerate(enc.numeric):
            numbers = (as_float(values[name]) - enc.centers[j]) / enc.scales[j]
            observed = ~np.isnan(numbers)
            x[observed, j] = numbers[observed]
            present[:, j] = observed
        missing = (
            np.stack([values[name].isna().to_numpy(dtype=bool) for name in enc.indicator], axis=1)
            if enc.indicator
            else np.zeros((n, 0))
        )
        codes = np.full((n, len(enc.categorical)), -1, dtype=np.int64)
        for j, name in enumerate(enc.categorical):
            labels = values[name].astype("string")
            column = pd.Categorical(labels, categories=enc.categories[j]).codes.astype(np.int64)
            if enc.missing_code[j]:
                column = np.where(
                    labels.isna().to_numpy(dtype=bool), len(enc.categories[j]), column
                )
            codes[:, j] = column  # unseen categories (scoring new data) stay -1: marginalised

        def tensor(array, dtype=DTYPE):
            return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

        return EncodedRows(
            tensor(x), tensor(present), tensor(missing.astype(float)), tensor(codes, torch.int64)
        )

    def _n_symbols(self, column: int) -> int:
        enc = self.encoding_
        return len(enc.categories[column]) + int(enc.missing_code[column])

    # -- fitting -------------------------------------------------------------------------------
    def _fit_sequences(self, values: pd.DataFrame, lengths: np.ndarray) -> None:
        p = self.params
        self.device_ = resolve_device(self.device)
        self.encoding_ = self._build_encoding(values)
        rows = self._encode(values)
        windows = self.windows(lengths)
        init = self._initial_state(rows, windows)
        self.state_, history = baum_welch_sequences(
            init,
            rows,
            windows,
            n_iter=p.n_iter,
            tol=p.tol,
            var_prior=p.var_prior,
            smoothing=p.emission_smoothing,
            batch_rows=p.batch_rows,
        )
        self.losses_ = [{"nll_per_row": -value / len(rows)} for value in history]

    def _initial_state(self, rows: EncodedRows, lengths: np.ndarray) -> SequenceHMMState:
        """k-means++ labels, then a hard M-step (see the module docstring)."""
        p, k, device = self.params, self.params.n_states, self.device_
        features = [rows.x]
        for column in range(rows.codes.shape[1]):
            codes = rows.codes[:, column]
            onehot = torch.zeros(len(rows), self._n_symbols(column), dtype=DTYPE, device=device)
            seen = codes >= 0
            onehot[seen, codes[seen]] = 1 / math.sqrt(2)
            features.append(onehot)
        points = torch.cat(features, 1) if features else torch.zeros(len(rows), 1, dtype=DTYPE)
        labels = _kmeans_labels(points, k, p.init_rows)
        gamma = torch.nn.functional.one_hot(labels, k).to(DTYPE)
        d = rows.x.shape[1]
        blank = SequenceHMMState(
            torch.full((k,), -math.log(k), dtype=DTYPE, device=device),
            torch.full((k, k), -math.log(k), dtype=DTYPE, device=device),
            torch.zeros(k, d, dtype=DTYPE, device=device),
            torch.ones(k, d, dtype=DTYPE, device=device),
            torch.full((k, rows.missing.shape[1]), math.log(0.5), dtype=DTYPE, device=device),
            [
                torch.full(
                    (k, self._n_symbols(c)),
                    -math.log(self._n_symbols(c)),
                    dtype=DTYPE,
                    device=device,
                )
                for c in range(rows.codes.shape[1])
            ],
        )
        means, variances, log_missing, tables = m_step_emissions(
            blank, rows, gamma, var_prior=p.var_prior, smoothing=max(p.emission_smoothing, 1e-3)
        )
        # Start and transition counts of the labels, plus one (every move stays possible).
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        label_array = labels.cpu().numpy()
        start_counts = np.bincount(label_array[starts], minlength=k) + 1.0
        within = np.ones(len(label_array), dtype=bool)
        within[starts] = False  # no transition into a window's first row
        moves = np.zeros((k, k)) + 1.0
        np.add.at(moves, (label_array[:-1][within[1:]], label_array[1:][within[1:]]), 1.0)
        return SequenceHMMState(
            normalize_rows(torch.as_tensor(start_counts, dtype=DTYPE, device=device)),
            normalize_rows(torch.as_tensor(moves, dtype=DTYPE, device=device)),
            means,
            variances,
            log_missing,
            tables,
        )

    # -- sampling ------------------------------------------------------------------------------
    def _sample_sequences(self, lengths: np.ndarray) -> pd.DataFrame:
        state, enc = self.state_, self.encoding_
        paths = sample_states(
            state.log_start, state.log_transition, len(lengths), int(lengths.max())
        )
        keep = (
            torch.arange(paths.shape[1], device=paths.device)[None, :]
            < torch.as_tensor(lengths, device=paths.device)[:, None]
        )
        states = paths[keep]  # (rows,) entity by entity, in time order
        n = len(states)
        out: dict[str, object] = {}
        if enc.numeric:
            noise = torch.randn(n, len(enc.numeric), dtype=DTYPE, device=states.device)
            draws = state.means[states] + state.variances[states].sqrt() * noise
            draws = draws.cpu().numpy() * np.asarray(enc.scales) + np.asarray(enc.centers)
            for j, name in enumerate(enc.numeric):
                out[name] = draws[:, j]
        if enc.indicator:
            blank = torch.bernoulli(state.log_missing.exp()[states]).bool().cpu().numpy()
            for j, name in enumerate(enc.indicator):
                out[name] = np.where(blank[:, j], np.nan, out[name])
        for j, name in enumerate(enc.categorical):
            symbols = CategoricalEmissions(state.categorical[j]).sample(states).cpu().numpy()
            labels = np.asarray(enc.categories[j] + [None], dtype=object)
            out[name] = labels[np.minimum(symbols, len(enc.categories[j]))]
        frame = pd.DataFrame(out)
        if self.params.missing == "rate":
            for name in frame.columns:
                rate = enc.missing_rates.get(name, 0.0)
                if rate > 0:
                    blank = torch.rand(n, dtype=DTYPE).numpy() < rate
                    frame[name] = frame[name].astype(object).where(~blank, None)
        for name in enc.datetimes:
            numbers = pd.to_numeric(frame[name], errors="coerce")
            frame[name] = pd.to_datetime(numbers.round(), unit="ns", errors="coerce")
        return frame[[c for c in self.value_columns]]

    # -- scoring -------------------------------------------------------------------------------
    def log_likelihood(self, frame: pd.DataFrame) -> float:
        """Total log-likelihood of a long table (whole entities, no windows) in the data's
        own units: the standardised likelihood less log(scale) for every observed numeric
        value (datetimes in nanoseconds)."""
        from generators.sequences import check_sequences, entity_lengths

        assert self.sequence is not None
        ordered = check_sequences(frame, self.sequence)
        lengths = entity_lengths(ordered, self.sequence.entity_column)
        rows = self._encode(ordered[self.value_columns].reset_index(drop=True))
        total = sequence_log_likelihood(self.state_, rows, lengths, self.params.batch_rows)
        observed = rows.present.sum(0).cpu().numpy()
        return total - float((observed * np.log(self.encoding_.scales)).sum())

    # -- saving --------------------------------------------------------------------------------
    def _save_model(self, path: Path) -> None:
        state = self.state_
        tensors = {
            "log_start": state.log_start.cpu(),
            "log_transition": state.log_transition.cpu(),
            "means": state.means.cpu(),
            "variances": state.variances.cpu(),
            "log_missing": state.log_missing.cpu(),
            "categorical": [table.cpu() for table in state.categorical],
        }
        torch.save(tensors, path / MODEL_FILE)
        (path / ENCODING_FILE).write_text(json.dumps(self.encoding_.to_dict()))

    def _load_model(self, path: Path) -> None:
        # A model saved on a GPU loads on a CPU-only machine, and vice versa.
        cuda = self.device in ("auto", "cuda") and torch.cuda.is_available()
        self.device_ = "cuda" if cuda else "cpu"
        tensors = torch.load(path / MODEL_FILE, map_location=self.device_, weights_only=True)
        self.state_ = SequenceHMMState(
            tensors["log_start"],
            tensors["log_transition"],
            tensors["means"],
            tensors["variances"],
            tensors["log_missing"],
            list(tensors["categorical"]),
        )
        self.encoding_ = _Encoding(**json.loads((path / ENCODING_FILE).read_text()))


def _kmeans_labels(points: torch.Tensor, k: int, max_rows: int, steps: int = 10) -> torch.Tensor:
    """Labels (N,) of a seeded k-means++ (global torch RNG) fitted on at most `max_rows`
    rows; every label in [0, k) (with fewer distinct points than k, some states start
    empty and are shaped by EM)."""
    n = points.shape[0]
    sample = points[torch.randperm(n, device=points.device)[:max_rows]] if n > max_rows else points
    centers = sample[torch.randint(len(sample), (1,), device=points.device)]
    for _ in range(1, k):
        distance = torch.cdist(sample, centers).min(1).values ** 2
        if float(distance.sum()) <= 0:
            pick = torch.randint(len(sample), (1,), device=points.device)
        else:
            pick = torch.multinomial(distance / distance.sum(), 1)
        centers = torch.cat([centers, sample[pick]], 0)
    for _ in range(steps):
        labels = torch.cdist(sample, centers).argmin(1)
        for c in range(k):
            members = sample[labels == c]
            if len(members):
                centers[c] = members.mean(0)
    return torch.cdist(points, centers).argmin(1)
