"""A hidden Markov model of multi-entity time series: Gaussian and categorical emissions.

`SequenceHMMGenerator` (name "hmm", modality "sequence") models every value column of a
long table given a hidden state: numeric (and datetime) columns on standardised values,
categorical and boolean columns by a categorical distribution per state. Numeric
emissions (`emission` parameter):
- "autoregressive" (default): within state k each numeric column d follows its own AR(1),
  x_t ~ N(c_kd + a_kd x_{t-1}, v_kd), where the same entity's previous value is observed,
  and a diagonal Gaussian N(mu_kd, var_kd) where it is not (an entity's first row, after a
  missing value). In EM columns are independent given the state and the previous row;
  at sampling (`correlated_noise`, default on) each state's residual correlation between
  the numeric columns, estimated after EM from the posteriors, correlates the noise, so
  columns co-move within a row as well as through the shared state path.
- "gaussian": a diagonal Gaussian everywhere: hmmlearn's GaussianHMM in EM and
  `log_likelihood` (its sampling noise is correlated too unless `correlated_noise` is off).
It is trained by Baum–Welch, batched over the training windows of all entities, reusing
`generators.models.hmm.forward_backward` (scaled recursion, (B, T, K) emission log-probs) and
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
length, so the hidden state carries across window boundaries and nothing is stitched. (The
autoregressive emission's lag crosses window boundaries in training too: the previous row
is observed data, even where a window starts.)

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
from generators.data.values import as_float
from generators.errors import NotFittedError
from generators.models.hmm import (
    DTYPE,
    CategoricalEmissions,
    MarkovStatistics,
    forward_backward,
    length_batches,
    m_step_markov,
    normalize_rows,
    sample_states,
)
from generators.sequence.base import SequenceGenerator
from generators.sequence.data import check_sequences, entity_lengths

MODEL_FILE = "sequence_hmm.pt"
ENCODING_FILE = "sequence_hmm.json"
_LOG_2PI = math.log(2 * math.pi)
# hmmlearn's floor on a state's posterior mass in the variance update.
_MIN_MASS = 1e-5


# -- data as tensors -----------------------------------------------------------------------------
@dataclass
class EncodedRows:
    """Rows of a long table as tensors, N rows of D numeric columns:

    x (N, D) standardised values, 0 where missing; present (N, D) 1.0 where observed;
    lagged (N, D) 1.0 where the value AND the same entity's previous value are observed
    (the positions the autoregressive emission explains; all 0 for plain Gaussian
    emissions); previous (N, D) the previous value there, else 0; missing (N, M) 1.0 where
    the M indicator columns are missing; codes (N, C) category ids, -1 where marginalised.
    """

    x: torch.Tensor
    present: torch.Tensor
    lagged: torch.Tensor
    previous: torch.Tensor
    missing: torch.Tensor
    codes: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]


def encoded_numeric(
    x: np.ndarray,
    lengths: np.ndarray,
    *,
    autoregressive: bool,
    device: str | torch.device = "cpu",
    missing: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> EncodedRows:
    """EncodedRows from standardised values `x` (N, D) with NaN where missing, sequences of
    `lengths` rows (entities: the lag never crosses from one to the next)."""
    n = len(x)
    present = ~np.isnan(x)
    lagged = np.zeros_like(present)
    previous = np.zeros_like(x)
    if autoregressive and n > 1:
        first = np.zeros(n, dtype=bool)
        first[np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)] = True
        lagged[1:] = present[1:] & present[:-1] & ~first[1:, None]
        previous[1:] = np.where(lagged[1:], np.nan_to_num(x[:-1]), 0.0)

    def tensor(array, dtype=DTYPE):
        return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

    return EncodedRows(
        tensor(np.nan_to_num(x)),
        tensor(present.astype(float)),
        tensor(lagged.astype(float)),
        tensor(previous),
        tensor(np.zeros((n, 0)) if missing is None else missing.astype(float)),
        tensor(np.zeros((n, 0)) if codes is None else codes, torch.int64),
    )


@dataclass
class SequenceHMMState:
    """Parameters, K states and D numeric columns: log_start (K,), log_transition (K, K);
    means and variances (K, D) of the plain Gaussian emission (rows without an observed
    previous value); ar_const, ar_coef, ar_var (K, D) of the autoregressive emission
    x_t ~ N(ar_const + ar_coef * x_{t-1}, ar_var); log_missing (K, M): log p(missing |
    state) per indicator column; categorical: one (K, V_c) log-probability table per
    categorical column."""

    log_start: torch.Tensor
    log_transition: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    ar_const: torch.Tensor
    ar_coef: torch.Tensor
    ar_var: torch.Tensor
    log_missing: torch.Tensor
    categorical: list[torch.Tensor] = field(default_factory=list)
    # (K, D, D) Cholesky factors of the numeric columns' residual correlation per state,
    # applied to the noise at sampling (None: independent columns, as EM assumes).
    noise_chol: torch.Tensor | None = None

    @property
    def n_states(self) -> int:
        return self.log_start.shape[0]

    def to(self, device: str | torch.device) -> SequenceHMMState:
        moved = {
            name: [t.to(device) for t in value]
            if isinstance(value, list)
            else (value if value is None else value.to(device))
            for name, value in self.tensors().items()
        }
        return SequenceHMMState(**moved)

    def tensors(self) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def gaussian(cls, start, transition, means, variances, device="cpu") -> SequenceHMMState:
        """Plain Gaussian emissions from probabilities and (K, D) moments (hmmlearn's
        startprob_, transmat_, means_, covars_ for diagonal covariances)."""

        def tensor(values):
            return torch.as_tensor(np.asarray(values), dtype=DTYPE, device=device)

        k, d = np.shape(means)
        return cls(
            torch.log(tensor(start)),
            torch.log(tensor(transition)),
            tensor(means),
            tensor(variances),
            torch.zeros(k, d, dtype=DTYPE, device=device),
            torch.zeros(k, d, dtype=DTYPE, device=device),
            torch.ones(k, d, dtype=DTYPE, device=device),
            torch.zeros(k, 0, dtype=DTYPE, device=device),
        )


def _gaussian_terms(y, mask, means, variances) -> torch.Tensor:
    """(N, K) sum over columns of log N(y; means, variances) where mask is 1 (y is 0 there
    otherwise), as matrix products."""
    inverse = 1.0 / variances
    return -0.5 * (
        mask @ (torch.log(variances) + _LOG_2PI).T
        + (y * y) @ inverse.T
        - 2.0 * y @ (means * inverse).T
        + mask @ (means * means * inverse).T
    )


def emission_log_probs(state: SequenceHMMState, rows: EncodedRows) -> torch.Tensor:
    """(N, K) log p(row | state, previous row): plain Gaussian terms where a value has no
    observed previous value, autoregressive terms where it has (a missing value contributes
    log 1), missingness indicators, and categorical terms."""
    n = len(rows)
    out = torch.zeros(n, state.n_states, dtype=DTYPE, device=rows.x.device)
    if rows.x.shape[1]:
        plain = rows.present - rows.lagged
        out += _gaussian_terms(rows.x * plain, plain, state.means, state.variances)
        if bool(rows.lagged.any()):
            # (y - c - a p)^2 = y^2 + c^2 + a^2 p^2 - 2 c y - 2 a y p + 2 a c p
            lagged, y, p = rows.lagged, rows.x * rows.lagged, rows.previous
            c, a, inverse = state.ar_const, state.ar_coef, 1.0 / state.ar_var
            out -= 0.5 * (
                lagged @ (torch.log(state.ar_var) + _LOG_2PI + c * c * inverse).T
                + (y * y) @ inverse.T
                + (p * p) @ (a * a * inverse).T
                - 2.0 * y @ (c * inverse).T
                - 2.0 * (y * p) @ (a * inverse).T
                + 2.0 * p @ (a * c * inverse).T
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
    prior_weight: float = 0.0,
) -> SequenceHMMState:
    """`state` with the emission parameters maximising the expected log-likelihood under
    posteriors `gamma` (N, K); start and transitions kept.

    Plain Gaussian: hmmlearn's diagonal update, (var_prior + sum gamma (x - mu)^2) /
    max(sum gamma, 1e-5), over the rows it explains, plus `prior_weight` pseudo-rows from
    N(0, 1) (the standardised column; the autoregressive model leaves few plain rows per
    state). Autoregressive: per state and column a weighted least-squares line of x_t on
    x_{t-1}, its slope kept in [-0.999, 0.999] so sampled series stay stationary, and the
    weighted residual variance with the same var_prior.
    """
    means, variances = state.means, state.variances
    ar_const, ar_coef, ar_var = state.ar_const, state.ar_coef, state.ar_var
    if rows.x.shape[1]:
        plain = rows.present - rows.lagged
        y = rows.x * plain
        weight = gamma.T @ plain  # (K, D)
        first = gamma.T @ y
        second = gamma.T @ (y * y)
        mass = weight + prior_weight
        has_mass = mass > 1e-300
        means = torch.where(has_mass, first / mass.clamp_min(1e-300), state.means)
        spread = (second - 2.0 * means * first + means * means * weight).clamp_min(0)
        spread = spread + prior_weight * (1.0 + means * means)
        variances = (var_prior + spread) / mass.clamp_min(_MIN_MASS)
        variances = torch.where(has_mass, variances, state.variances).clamp_min(1e-12)
        if bool(rows.lagged.any()):
            lagged, y, p = rows.lagged, rows.x * rows.lagged, rows.previous
            w = gamma.T @ lagged
            sp, spp = gamma.T @ p, gamma.T @ (p * p)
            sy, syp, syy = gamma.T @ y, gamma.T @ (y * p), gamma.T @ (y * y)
            det = w * spp - sp * sp
            ok = (w > 1e-8) & (det > 1e-12 * w.clamp_min(1.0) ** 2)
            slope = (w * syp - sp * sy) / torch.where(ok, det, 1.0)
            ar_coef = torch.where(ok, slope.clamp(-0.999, 0.999), state.ar_coef)
            ar_const = torch.where(ok, (sy - ar_coef * sp) / w.clamp_min(1e-300), state.ar_const)
            c, a = ar_const, ar_coef
            residual = syy - 2 * c * sy - 2 * a * syp + c * c * w + 2 * a * c * sp + a * a * spp
            ar_var = (var_prior + residual.clamp_min(0)) / w.clamp_min(_MIN_MASS)
            ar_var = torch.where(ok, ar_var, state.ar_var).clamp_min(1e-12)
    log_missing = state.log_missing
    if rows.missing.shape[1]:
        total = gamma.sum(0)[:, None]
        share = (gamma.T @ rows.missing + smoothing) / (total + 2 * smoothing).clamp_min(1e-300)
        log_missing = torch.log(share.clamp(1e-300, 1 - 1e-12))
    tables = []
    for column, table in enumerate(state.categorical):
        codes = rows.codes[:, column]
        seen = codes >= 0
        counts = torch.zeros(table.shape[1], gamma.shape[1], dtype=DTYPE, device=gamma.device)
        counts.index_add_(0, codes[seen], gamma[seen])
        tables.append(normalize_rows(counts.T + smoothing, table))
    return SequenceHMMState(
        state.log_start,
        state.log_transition,
        means,
        variances,
        ar_const,
        ar_coef,
        ar_var,
        log_missing,
        tables,
    )


def baum_welch_sequences(
    state: SequenceHMMState,
    rows: EncodedRows,
    lengths: np.ndarray,
    *,
    n_iter: int,
    tol: float = 0.0,
    var_prior: float = 1e-2,
    smoothing: float = 0.0,
    prior_weight: float = 0.0,
    batch_rows: int = 1 << 16,
) -> tuple[SequenceHMMState, list[float]]:
    """EM from `state` for at most `n_iter` iterations over sequences (windows) of
    `lengths` rows concatenated in `rows`. Returns the parameters and the log-likelihood
    before each update (as hmmlearn's monitor records it); stops early when an iteration
    gains less than `tol` per row."""
    windows = Windows.build(lengths, batch_rows, rows.x.device)
    history: list[float] = []
    for _ in range(n_iter):
        stats, gamma = e_step(state, rows, windows)
        history.append(stats.log_likelihood)
        log_start, log_transition = m_step_markov(stats, state.log_start, state.log_transition)
        state = m_step_emissions(
            state,
            rows,
            gamma,
            var_prior=var_prior,
            smoothing=smoothing,
            prior_weight=prior_weight,
        )
        state.log_start, state.log_transition = log_start, log_transition
        if len(history) >= 2 and (history[-1] - history[-2]) / max(len(rows), 1) < tol:
            break
    return state, history


def residual_correlation_factors(
    state: SequenceHMMState,
    rows: EncodedRows,
    gamma: torch.Tensor,
    *,
    autoregressive: bool,
    prior_rows: float = 10.0,
) -> torch.Tensor:
    """(K, D, D) Cholesky factors of each state's correlation between the numeric columns'
    standardised residuals: (x - mean) / sd under the plain Gaussian, (x - c - a x_prev) /
    sd under the AR(1) where it applies. Pairs are weighted by the posteriors `gamma`
    (N, K) over the rows where both columns are observed; each estimate is shrunk towards
    independence by `prior_rows` pseudo-rows and projected to the nearest valid
    correlation matrix (eigenvalues floored), so a state with few rows stays near I."""
    k, d = state.n_states, rows.x.shape[1]
    factors = torch.empty(k, d, d, dtype=DTYPE, device=rows.x.device)
    eye = torch.eye(d, dtype=DTYPE, device=rows.x.device)
    for j in range(k):
        plain = (rows.x - state.means[j]) / state.variances[j].sqrt()
        if autoregressive:
            step = state.ar_const[j] + state.ar_coef[j] * rows.previous
            ar = (rows.x - step) / state.ar_var[j].sqrt()
            plain = torch.where(rows.lagged > 0, ar, plain)
        z = plain * rows.present
        weighted = z * gamma[:, j : j + 1]
        cross = weighted.T @ z  # (D, D) sums over rows where both are observed
        squares = (weighted * z).T @ rows.present  # [d, e]: sum of z_d^2 where e observed
        pairs = (rows.present * gamma[:, j : j + 1]).T @ rows.present  # posterior mass
        scale = (squares * squares.T).clamp_min(1e-12).sqrt()
        correlation = torch.where(pairs > 1.0, cross / scale, 0.0) * (1 - eye) + eye
        shrink = pairs / (pairs + prior_rows)
        correlation = shrink * correlation + (1 - shrink) * eye
        values, vectors = torch.linalg.eigh(correlation)
        repaired = vectors @ torch.diag(values.clamp_min(1e-3)) @ vectors.T
        norm = repaired.diagonal().sqrt()
        factors[j] = torch.linalg.cholesky(repaired / norm[:, None] / norm[None, :])
    return factors


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
    # "autoregressive": within a state each numeric column follows its own AR(1) on the
    # previous row, so the within-state noise is not white: a plain Gaussian HMM needs
    # many states to approach a strong lag-1 autocorrelation (measured on a planted AR(1)
    # with phi 0.9: lag-1 0.68 with 4 states, 0.85 with 16). "gaussian": the textbook
    # model, hmmlearn's GaussianHMM (the oracle).
    emission: Literal["autoregressive", "gaussian"] = "autoregressive"
    # Columns are independent given the state in EM; with this, each state's residual
    # correlation between numeric columns (estimated after EM from the posteriors) shapes
    # the sampling noise, so columns co-move within a row as in the data (a Gaussian
    # copula on the residuals; EM and log_likelihood keep the diagonal model).
    correlated_noise: bool = True
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


# With autoregressive emissions the plain Gaussian explains only entity starts and rows
# after a gap; this many pseudo-rows of N(0, 1) keep its estimates sane.
_PLAIN_PRIOR_WEIGHT = 1.0


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
    """Gaussian / autoregressive + categorical HMM over multi-entity time series (see the
    module docstring)."""

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

    def _encode(self, values: pd.DataFrame, lengths: np.ndarray) -> EncodedRows:
        enc = self.encoding_
        n = len(values)
        x = np.full((n, len(enc.numeric)), np.nan)
        for j, name in enumerate(enc.numeric):
            x[:, j] = (as_float(values[name]) - enc.centers[j]) / enc.scales[j]
        missing = (
            np.stack([values[name].isna().to_numpy(dtype=bool) for name in enc.indicator], 1)
            if enc.indicator
            else np.zeros((n, 0))
        )
        codes = np.full((n, len(enc.categorical)), -1, dtype=np.int64)
        for j, name in enumerate(enc.categorical):
            labels = values[name].astype("string")
            column = pd.Categorical(labels, categories=enc.categories[j]).codes.astype(np.int64)
            if enc.missing_code[j]:
                is_missing = labels.isna().to_numpy(dtype=bool)
                column = np.where(is_missing, len(enc.categories[j]), column)
            codes[:, j] = column  # unseen categories (scoring new data) stay -1: marginalised
        return encoded_numeric(
            x,
            lengths,
            autoregressive=self.params.emission == "autoregressive",
            device=self.device_,
            missing=missing,
            codes=codes,
        )

    def _n_symbols(self, column: int) -> int:
        enc = self.encoding_
        return len(enc.categories[column]) + int(enc.missing_code[column])

    @property
    def _prior_weight(self) -> float:
        return _PLAIN_PRIOR_WEIGHT if self.params.emission == "autoregressive" else 0.0

    # -- fitting -------------------------------------------------------------------------------
    def _fit_sequences(self, values: pd.DataFrame, lengths: np.ndarray) -> None:
        p = self.params
        self.device_ = resolve_device(self.device)
        self.encoding_ = self._build_encoding(values)
        rows = self._encode(values, lengths)
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
            prior_weight=self._prior_weight,
            batch_rows=p.batch_rows,
        )
        self.losses_ = [{"nll_per_row": -value / len(rows)} for value in history]
        if p.correlated_noise and rows.x.shape[1] > 1:
            _, gamma = e_step(
                self.state_, rows, Windows.build(windows, p.batch_rows, rows.x.device)
            )
            self.state_.noise_chol = residual_correlation_factors(
                self.state_, rows, gamma, autoregressive=p.emission == "autoregressive"
            )

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
        labels = _kmeans_labels(torch.cat(features, 1), k, p.init_rows)
        gamma = torch.nn.functional.one_hot(labels, k).to(DTYPE)
        d = rows.x.shape[1]

        def full(shape, value):
            return torch.full(shape, value, dtype=DTYPE, device=device)

        blank = SequenceHMMState(
            full((k,), -math.log(k)),
            full((k, k), -math.log(k)),
            full((k, d), 0.0),
            full((k, d), 1.0),
            full((k, d), 0.0),
            full((k, d), 0.0),
            full((k, d), 1.0),
            full((k, rows.missing.shape[1]), math.log(0.5)),
            [
                full((k, self._n_symbols(c)), -math.log(self._n_symbols(c)))
                for c in range(rows.codes.shape[1])
            ],
        )
        state = m_step_emissions(
            blank,
            rows,
            gamma,
            var_prior=p.var_prior,
            smoothing=max(p.emission_smoothing, 1e-3),
            prior_weight=self._prior_weight,
        )
        # Start and transition counts of the labels, plus one (every move stays possible).
        starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        label_array = labels.cpu().numpy()
        start_counts = np.bincount(label_array[starts], minlength=k) + 1.0
        follows = np.ones(len(label_array), dtype=bool)
        follows[starts] = False  # no transition into a window's first row
        moves = np.ones((k, k))
        np.add.at(moves, (label_array[:-1][follows[1:]], label_array[1:][follows[1:]]), 1.0)
        state.log_start = normalize_rows(torch.as_tensor(start_counts, dtype=DTYPE, device=device))
        state.log_transition = normalize_rows(torch.as_tensor(moves, dtype=DTYPE, device=device))
        return state

    # -- sampling ------------------------------------------------------------------------------
    def _sample_sequences(self, lengths: np.ndarray) -> pd.DataFrame:
        """One Markov chain per entity over its whole length (see the module docstring);
        numeric values are drawn step by step where the emission is autoregressive.

        Always on the CPU: the chains advance one time step at a time over a few entities,
        where a GPU spends its time launching tiny kernels (10 Beijing stations x 35k hours
        took minutes on an H200 against 19 s on its CPU; benchmarks/gpu_speed.py)."""
        state, enc = self.state_.to("cpu"), self.encoding_
        n, width = len(lengths), int(lengths.max())
        paths = sample_states(state.log_start, state.log_transition, n, width)  # (n, T)
        device = paths.device
        keep = (
            torch.arange(width, device=device)[None, :]
            < torch.as_tensor(lengths, device=device)[:, None]
        )
        d = len(enc.numeric)
        out: dict[str, object] = {}
        if d:
            noise = torch.randn(n, width, d, dtype=DTYPE, device=device)
            if state.noise_chol is not None:
                for k in range(state.n_states):  # each state's correlation on its rows
                    rows_k = paths == k
                    noise[rows_k] = noise[rows_k] @ state.noise_chol[k].T
            blank = torch.zeros(n, width, d, dtype=torch.bool, device=device)
            if enc.indicator:
                where = [enc.numeric.index(name) for name in enc.indicator]
                draws = torch.bernoulli(state.log_missing.exp()[paths])  # (n, T, M)
                blank[..., where] = draws.bool()
            values = self._draw_numeric(state, paths, noise, blank)[keep].cpu().numpy()
            values = values * np.asarray(enc.scales) + np.asarray(enc.centers)
            values[blank[keep].cpu().numpy()] = np.nan
            for j, name in enumerate(enc.numeric):
                out[name] = values[:, j]
        states = paths[keep]  # (rows,) entity by entity, in time order
        for j, name in enumerate(enc.categorical):
            symbols = CategoricalEmissions(state.categorical[j]).sample(states).cpu().numpy()
            labels = np.asarray([*enc.categories[j], None], dtype=object)
            out[name] = labels[np.minimum(symbols, len(enc.categories[j]))]
        frame = pd.DataFrame(out)
        if self.params.missing == "rate":
            for name in frame.columns:
                rate = enc.missing_rates.get(name, 0.0)
                if rate > 0:
                    drop = torch.rand(len(frame), dtype=DTYPE).numpy() < rate
                    frame[name] = frame[name].astype(object).where(~drop, None)
        for name in enc.datetimes:
            numbers = pd.to_numeric(frame[name], errors="coerce")
            frame[name] = pd.to_datetime(numbers.round(), unit="ns", errors="coerce")
        return frame[self.value_columns]

    def _draw_numeric(
        self,
        state: SequenceHMMState,
        paths: torch.Tensor,
        noise: torch.Tensor,
        blank: torch.Tensor,
    ) -> torch.Tensor:
        """(n, T, D) standardised values: the plain Gaussian where there is no observed
        previous value (an entity's first row, after a missing value), else the AR(1)."""
        plain = state.means[paths] + state.variances[paths].sqrt() * noise
        if self.params.emission == "gaussian":
            return plain
        const, coef, scale = state.ar_const[paths], state.ar_coef[paths], state.ar_var[paths]
        scale = scale.sqrt()
        out = torch.empty_like(plain)
        out[:, 0] = plain[:, 0]
        for t in range(1, paths.shape[1]):
            follows = ~blank[:, t - 1]
            step = const[:, t] + coef[:, t] * out[:, t - 1] + scale[:, t] * noise[:, t]
            out[:, t] = torch.where(follows, step, plain[:, t])
        return out

    # -- scoring -------------------------------------------------------------------------------
    def log_likelihood(self, frame: pd.DataFrame) -> float:
        """Total log-likelihood of a long table (whole entities, no windows) in the data's
        own units: the standardised likelihood less log(scale) for every observed numeric
        value (datetimes in nanoseconds)."""
        assert self.sequence is not None
        if self.schema_ is None:
            raise NotFittedError(f"{self.name}: call fit() before log_likelihood()")
        ordered = check_sequences(frame, self.sequence)
        lengths = entity_lengths(ordered, self.sequence.entity_column)
        rows = self._encode(ordered[self.value_columns].reset_index(drop=True), lengths)
        total = sequence_log_likelihood(self.state_, rows, lengths, self.params.batch_rows)
        observed = rows.present.sum(0).cpu().numpy()
        return total - float((observed * np.log(self.encoding_.scales)).sum())

    # -- saving --------------------------------------------------------------------------------
    def _save_model(self, path: Path) -> None:
        tensors = {
            name: [t.cpu() for t in value] if isinstance(value, list) else value.cpu()
            for name, value in self.state_.tensors().items()
            if value is not None
        }
        torch.save(tensors, path / MODEL_FILE)
        (path / ENCODING_FILE).write_text(json.dumps(self.encoding_.to_dict()))

    def _load_model(self, path: Path) -> None:
        # A model saved on a GPU loads on a CPU-only machine, and vice versa.
        cuda = self.device in ("auto", "cuda") and torch.cuda.is_available()
        self.device_ = "cuda" if cuda else "cpu"
        tensors = torch.load(path / MODEL_FILE, map_location=self.device_, weights_only=True)
        tensors["categorical"] = list(tensors["categorical"])
        self.state_ = SequenceHMMState(**tensors)
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
