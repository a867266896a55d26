"""A latent-class mixture model for mixed-type tables, fitted by EM in PyTorch.

Each of K components holds, independently per column:
- numeric and datetime columns: a Gaussian with its own mean and variance (diagonal). On
  the default `quantile` scale a column is first mapped to normal scores with
  `TabularEncoder`'s quantile transform (ties spread over their interval, see
  `generators.table.dequantize`), so the mixture only has to model the dependence between
  columns and the deviations from normality: decoding goes back through the real
  quantiles, which gives every marginal its real shape (skew, long tails, the point mass of
  `capital_gain` at 0) even with few components, and keeps values within the seen range.
  `standard` scaling ((x - mean) / std) is the textbook model, where a component really is
  a Gaussian in the data's units; it needs many components for skewed columns.
  A variance floor is added to every variance (as scikit-learn's `reg_covar`), so a
  component cannot collapse onto a point.
- categorical and boolean columns (missing as a category of its own), and the missing
  indicator of each numeric column with missing values: category probabilities, smoothed
  by a symmetric Dirichlet prior (`category_smoothing` pseudo-counts per category). A
  missing numeric value contributes only its indicator, i.e. its Gaussian is marginalised
  out.

EM runs on whole-table tensors: the E-step is three (rows x columns) @ (columns x K)
matrix products and a logsumexp, the M-step a few products with the responsibilities and
one segment sum over category spans; no loop touches rows or columns. Initialisation is
seeded k-means++ followed by a few Lloyd steps. Without `n_components`, K is chosen by
BIC over 1, 2, 4, ... up to `max_components`.

Sampling picks a component per row, then each column independently from that component.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from generators.base import Generator, Params, resolve_device
from generators.data.values import as_float
from generators.table.dequantize import spread_ties
from generators.table.encoding import TabularEncoder

ENCODER_FILE = "encoder.json"
WEIGHTS_FILE = "gmm.pt"
STATE_FILE = "gmm_state.json"
_EPS = 10 * torch.finfo(torch.float64).eps  # keeps empty components' counts positive


class GMMParams(Params):
    # None: chosen by BIC over 1, 2, 4, ... up to max_components.
    n_components: int | None = Field(None, ge=1)
    # Adult's BIC keeps improving past 32 components; 64 fits in seconds on a CPU.
    max_components: int = Field(64, ge=1)
    max_iter: int = Field(200, ge=1)
    # Stop when the mean log-likelihood per row changes by less than this (scikit-learn's).
    tol: float = Field(1e-4, gt=0)
    numeric_scale: Literal["quantile", "standard"] = "quantile"
    # Added to every variance. On the unit-variance scale 1e-3 means no component is
    # narrower than 3% of a column's spread: enough to keep point masses from running the
    # likelihood to infinity, too little to blur a real cluster.
    variance_floor: float = Field(1e-3, gt=0)
    # Dirichlet pseudo-count per category and component: a category a component never saw
    # keeps a small probability instead of log(0).
    category_smoothing: float = Field(0.1, ge=0)
    # Lloyd iterations after k-means++ seeding, before EM.
    kmeans_iter: int = Field(10, ge=0)


@dataclass
class MixtureData:
    """A table as EM sees it.

    numbers: (rows, d) Gaussian columns, 0 where missing; observed: (rows, d) 1/0;
    onehot: (rows, c) the one-hot codes of every categorical part side by side;
    part_of: (c,) which categorical part each one-hot column belongs to.
    """

    numbers: torch.Tensor
    observed: torch.Tensor
    onehot: torch.Tensor
    part_of: torch.Tensor
    n_parts: int

    @property
    def n_free_parameters_per_component(self) -> int:
        """Means and variances, plus each categorical part's probabilities less one."""
        return 2 * self.numbers.shape[1] + self.onehot.shape[1] - self.n_parts


@dataclass
class Mixture:
    """Fitted parameters: weights (K,), means and variances (K, d), log_probs (K, c)."""

    weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    log_probs: torch.Tensor

    def log_densities(self, data: MixtureData) -> torch.Tensor:
        """log p(row | component), (rows, K): observed Gaussian entries plus categorical parts.

        sum_j o_ij [log(2 pi v_kj) + (x_ij - m_kj)^2 / v_kj] / -2, expanded into products.
        """
        x, o = data.numbers, data.observed
        precision = 1.0 / self.variances  # (K, d)
        quadratic = (
            (o * x * x) @ precision.T
            - 2.0 * (o * x) @ (self.means * precision).T
            + o @ (self.means**2 * precision + torch.log(2 * math.pi * self.variances)).T
        )
        return -0.5 * quadratic + data.onehot @ self.log_probs.T

    def e_step(self, data: MixtureData) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(row) (rows,), log responsibilities (rows, K))."""
        log_joint = torch.log(self.weights) + self.log_densities(data)
        log_norm = torch.logsumexp(log_joint, dim=1)
        return log_norm, log_joint - log_norm[:, None]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Mixture:
        return Mixture(*(t.to(device, dtype) for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.weights, self.means, self.variances, self.log_probs


def m_step(
    data: MixtureData, resp: torch.Tensor, variance_floor: float, smoothing: float
) -> Mixture:
    """Maximise the expected complete log-likelihood given responsibilities (rows, K)."""
    counts = resp.sum(0) + _EPS  # (K,)
    x, o = data.numbers, data.observed
    observed_counts = resp.T @ o + _EPS  # (K, d): a mean uses only the rows that have a value
    means = resp.T @ (o * x) / observed_counts
    second = resp.T @ (o * x * x) / observed_counts
    variances = (second - means**2).clamp_min(0.0) + variance_floor
    category_counts = resp.T @ data.onehot + smoothing  # (K, c)
    part_totals = torch.zeros(
        len(counts), data.n_parts, dtype=resp.dtype, device=resp.device
    ).index_add_(1, data.part_of, category_counts)
    log_probs = torch.log(category_counts) - torch.log(part_totals[:, data.part_of])
    return Mixture(counts / len(resp), means, variances, log_probs)


def run_em(
    data: MixtureData,
    start: Mixture,
    *,
    max_iter: int,
    tol: float,
    variance_floor: float,
    smoothing: float,
) -> tuple[Mixture, list[float]]:
    """EM from `start` until the mean log-likelihood moves by less than `tol`.

    Returns the mixture and the mean log-likelihood per row before each M-step; the last
    entry is the log-likelihood of the returned mixture.
    """
    mixture, history = start, []
    for _ in range(max_iter):
        log_norm, log_resp = mixture.e_step(data)
        history.append(float(log_norm.mean()))
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol:
            break
        mixture = m_step(data, log_resp.exp(), variance_floor, smoothing)
    else:
        history.append(float(mixture.e_step(data)[0].mean()))
    return mixture, history


def kmeans_responsibilities(
    features: torch.Tensor, k: int, rng: np.random.Generator, lloyd_iter: int
) -> torch.Tensor:
    """Hard (rows, K) responsibilities from k-means++ seeding and `lloyd_iter` Lloyd steps."""
    rows = len(features)
    squared = (features**2).sum(1)
    centres = [int(rng.integers(rows))]
    closest = torch.full((rows,), float("inf"), dtype=features.dtype, device=features.device)
    for _ in range(1, k):  # one distance pass per centre: K passes, never one per row
        centre = features[centres[-1]]
        distance = (squared - 2 * features @ centre + centre @ centre).clamp_min(0.0)
        closest = torch.minimum(closest, distance)
        weights = closest.cpu().double().numpy()
        total = weights.sum()
        pick = rng.choice(rows, p=weights / total) if total > 0 else rng.integers(rows)
        centres.append(int(pick))
    means = features[centres]
    for _ in range(lloyd_iter + 1):
        distance = squared[:, None] - 2 * features @ means.T + (means**2).sum(1)
        labels = distance.argmin(1)
        assignment = torch.nn.functional.one_hot(labels, k).to(features.dtype)
        sizes = assignment.sum(0)
        # An emptied cluster keeps its old centre.
        means = torch.where(
            sizes[:, None] > 0, assignment.T @ features / sizes.clamp_min(1)[:, None], means
        )
    return assignment


def n_parameters(data: MixtureData, k: int) -> int:
    return (k - 1) + k * data.n_free_parameters_per_component


def bic(data: MixtureData, mixture: Mixture, mean_log_likelihood: float) -> float:
    rows = len(data.numbers)
    return -2.0 * mean_log_likelihood * rows + n_parameters(data, len(mixture.weights)) * math.log(
        rows
    )


class GaussianMixtureGenerator(Generator):
    """Latent-class mixture (Gaussian + categorical parts) fitted by EM; GPU when present."""

    name = "gmm"
    Params = GMMParams

    # -- layout: encoder spans <-> Gaussian columns and categorical parts -----------------
    def _index_spans(self) -> None:
        """Precompute where each model part lives in the encoder's matrix."""
        self._continuous = [s.start for s in self.encoder_.spans if s.kind == "continuous"]
        # Each categorical part: the encoder columns of its categories. A missing indicator
        # (one column, 1 = missing) becomes a two-category part: (present, missing).
        parts: list[tuple[str, list[int]]] = []
        for span in self.encoder_.spans:
            if span.kind == "categorical":
                parts.append(("categorical", list(range(span.start, span.stop))))
            elif span.kind == "missing":
                parts.append(("missing", [span.start]))
        self._parts = parts
        part_of: list[int] = []
        for i, (kind, cols) in enumerate(parts):
            part_of += [i] * (2 if kind == "missing" else len(cols))
        self._part_of = part_of

    def _mixture_data(self, data: pd.DataFrame, device, dtype) -> MixtureData:
        params: GMMParams = self.params  # type: ignore[assignment]
        matrix = self.encoder_.transform(data)
        if params.numeric_scale == "quantile":
            rng = np.random.default_rng(int(np.random.randint(2**31)))
            matrix = spread_ties(self.encoder_, data, matrix, rng)
            numbers = matrix[:, self._continuous]
            observed = self._observed(matrix)
        else:
            raw = self._raw_numbers(data)
            observed = (~np.isnan(raw)).astype(np.float64)
            numbers = np.nan_to_num((raw - self.centre_) / self.scale_)
        blocks = []
        for kind, cols in self._parts:
            if kind == "missing":
                blocks += [1.0 - matrix[:, cols], matrix[:, cols]]
            else:
                blocks.append(matrix[:, cols])
        onehot = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(data), 0))

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=dtype, device=device)

        return MixtureData(
            tensor(numbers),
            tensor(observed),
            tensor(onehot),
            torch.as_tensor(self._part_of, dtype=torch.long, device=device),
            len(self._parts),
        )

    def _raw_numbers(self, data: pd.DataFrame) -> np.ndarray:
        """(rows, d) the Gaussian columns in their own units (datetimes as ns), NaN missing."""
        names = [c["name"] for c in self.encoder_.columns if c["kind"] == "continuous"]
        out = np.full((len(data), len(names)), np.nan)
        for j, name in enumerate(names):
            out[:, j] = as_float(data[name])
        return out

    def _observed(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, d) 1 where the Gaussian column has a value, from the missing indicators."""
        observed = np.ones((len(matrix), len(self._continuous)))
        position = {start: j for j, start in enumerate(self._continuous)}
        spans = self.encoder_.spans
        for previous, span in zip(spans, spans[1:], strict=False):
            if span.kind == "missing":
                observed[:, position[previous.start]] = 1.0 - matrix[:, span.start]
        return observed

    # -- fit -------------------------------------------------------------------------------
    def _fit(self, data: pd.DataFrame) -> None:
        params: GMMParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        # float32: half float64's time on a CPU (Adult's BIC search: 33 s against 78 s) and
        # fast on any GPU; the mean log-likelihood agrees with float64's to 1e-6.
        dtype = torch.float32
        self.encoder_ = TabularEncoder().fit(data, self.schema_)
        self._index_spans()
        # For the standard scale: each numeric column's mean, std and seen range.
        raw = self._raw_numbers(data)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
            self.centre_ = np.nan_to_num(np.nanmean(raw, 0))
            scale = np.nan_to_num(np.nanstd(raw, 0))
            self.low_ = np.nan_to_num(np.nanmin(raw, 0))
            self.high_ = np.nan_to_num(np.nanmax(raw, 0))
        self.scale_ = np.where(scale > 0, scale, 1.0)
        mixture_data = self._mixture_data(data, device, dtype)
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        rows = len(data)
        fits: dict[int, tuple[Mixture, list[float]]] = {}
        self.bic_: dict[int, float] = {}

        def fit_k(k: int) -> None:
            fits[k] = self._fit_k(mixture_data, k, rng)
            self.bic_[k] = bic(mixture_data, fits[k][0], fits[k][1][-1])

        if params.n_components is not None:
            fit_k(min(params.n_components, rows))
        else:
            # Coarse: 1, 2, 4, ... up to max_components, stopping once BIC has been worse
            # than the best twice in a row. Fine: 3/4 and 3/2 of the coarse winner (so 3,
            # 6, 12, 24, 48 can win too).
            top = min(params.max_components, rows)
            worse = 0
            for k in sorted({2**i for i in range(int(math.log2(top)) + 1)} | {top}):
                fit_k(k)
                worse = 0 if self.bic_[k] == min(self.bic_.values()) else worse + 1
                if worse == 2:
                    break
            coarse_best = min(self.bic_, key=self.bic_.__getitem__)
            for k in (round(coarse_best * 3 / 4), round(coarse_best * 3 / 2)):
                if 1 <= k <= top and k not in fits:
                    fit_k(k)
        mixture, history = fits[min(self.bic_, key=self.bic_.__getitem__)]
        self.mixture_ = mixture.to("cpu", torch.float64)
        self.n_components_ = len(mixture.weights)
        self.losses_ = [{"neg_log_likelihood": -value} for value in history]

    def _fit_k(
        self, data: MixtureData, k: int, rng: np.random.Generator
    ) -> tuple[Mixture, list[float]]:
        params: GMMParams = self.params  # type: ignore[assignment]
        # k-means on Gaussian columns and one-hot codes side by side, both on unit scales.
        features = torch.cat([data.numbers, data.onehot], dim=1)
        resp = kmeans_responsibilities(features, k, rng, params.kmeans_iter)
        start = m_step(data, resp, params.variance_floor, params.category_smoothing)
        return run_em(
            data,
            start,
            max_iter=params.max_iter,
            tol=params.tol,
            variance_floor=params.variance_floor,
            smoothing=params.category_smoothing,
        )

    # -- sample ----------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self, n: int) -> pd.DataFrame:
        params: GMMParams = self.params  # type: ignore[assignment]
        mixture = self.mixture_
        component = torch.multinomial(mixture.weights, n, replacement=True)  # (n,)
        numbers = mixture.means[component] + mixture.variances[component].sqrt() * torch.randn(
            n, mixture.means.shape[1], dtype=torch.float64
        )
        log_probs = mixture.log_probs[component]  # (n, c)
        # Back to the encoder's layout: normal scores for continuous spans, logits for
        # categorical spans and for missing indicators (log p(missing) - log p(present)).
        output = np.zeros((n, self.encoder_.width))
        output[:, self._continuous] = numbers.numpy()
        position = 0
        for kind, cols in self._parts:
            if kind == "missing":
                output[:, cols[0]] = (log_probs[:, position + 1] - log_probs[:, position]).numpy()
                position += 2
            else:
                output[:, cols] = log_probs[:, position : position + len(cols)].numpy()
                position += len(cols)
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        frame = self.encoder_.inverse(output, rng)
        if params.numeric_scale == "standard":
            values = np.clip(numbers.numpy() * self.scale_ + self.centre_, self.low_, self.high_)
            numeric = [c["name"] for c in self.encoder_.columns if c["kind"] == "continuous"]
            for j, name in enumerate(numeric):
                frame[name] = np.where(frame[name].isna(), np.nan, values[:, j])
        return frame

    # -- persistence -----------------------------------------------------------------------
    def _save(self, path: Path) -> None:
        self.encoder_.save(path / ENCODER_FILE)
        names = ("weights", "means", "variances", "log_probs")
        torch.save(dict(zip(names, self.mixture_.tensors(), strict=True)), path / WEIGHTS_FILE)
        state = {
            "n_components": self.n_components_,
            "bic": {str(k): v for k, v in self.bic_.items()},
            "centre": self.centre_.tolist(),
            "scale": self.scale_.tolist(),
            "low": self.low_.tolist(),
            "high": self.high_.tolist(),
        }
        (path / STATE_FILE).write_text(json.dumps(state))

    def _load(self, path: Path) -> None:
        self.encoder_ = TabularEncoder.load(path / ENCODER_FILE)
        self._index_spans()
        # weights_only: never unpickle code from a model file; map to CPU so a GPU-trained
        # model loads anywhere.
        tensors = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.mixture_ = Mixture(**tensors)
        state = json.loads((path / STATE_FILE).read_text())
        self.n_components_ = state["n_components"]
        self.bic_ = {int(k): v for k, v in state["bic"].items()}
        for key in ("centre", "scale", "low", "high"):
            setattr(self, f"{key}_", np.asarray(state[key], dtype=np.float64))
