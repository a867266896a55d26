"""Boltzmann machines for tables: `rbm`, `dbn`, `dbm` over `generators.models.boltzmann`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from generators.base import Generator, resolve_device
from generators.models.boltzmann import (
    DBM,
    RBM,
    STATE_FILE,
    WEIGHTS_FILE,
    MachineParams,
    TrainingSettings,
    VisibleLayout,
    _bernoulli,
    _DBMFitting,
    _DBMShape,
    _DBNShape,
    _prefixed,
    _RBMShape,
    run_chains,
    train_rbm,
)
from generators.table.encoding import TabularEncoder, TokenEncoder


class BoltzmannParams(MachineParams):
    """Tables: how columns become visible units."""

    # "bins": each column one softmax group over TokenEncoder's tokens; "gaussian":
    # numeric columns as unit-variance gaussian units on quantile-normal scores.
    numeric_encoding: Literal["bins", "gaussian"] = "bins"
    n_bins: int = Field(20, ge=2)  # tokens per numeric column (point masses + intervals)
    min_bin_rows: int = Field(10, ge=1)


class RBMParams(BoltzmannParams, _RBMShape):
    pass


class DBNParams(BoltzmannParams, _DBNShape):
    pass


class DBMParams(BoltzmannParams, _DBMShape):
    pass


# -- the table <-> visible-units encoding, shared by the three generators ----------------
class _BoltzmannTableGenerator(Generator):
    """Fits the encoding and decodes visible activations; subclasses hold the machines."""

    def _learning_rate(self) -> float:
        return self.params.learning_rate

    def _encode_fit(self, data: pd.DataFrame) -> torch.Tensor:
        """Fit the encoder on `data` and return its (rows, V) visible matrix (float32, CPU)."""
        params: BoltzmannParams = self.params  # type: ignore[assignment]
        if params.numeric_encoding == "bins":
            self.encoder_ = TokenEncoder(params.n_bins, params.min_bin_rows).fit(data, self.schema_)
        else:
            self.encoder_ = TabularEncoder().fit(data, self.schema_)
        self.layout_ = self._layout()
        return self._encode(data)

    def _layout(self) -> VisibleLayout:
        if isinstance(self.encoder_, TokenEncoder):
            sizes = self.encoder_.vocab_sizes
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            groups = [list(range(offsets[j], offsets[j + 1])) for j in range(len(sizes))]
            return VisibleLayout(int(offsets[-1]), groups)
        spans = self.encoder_.spans
        groups = [list(range(s.start, s.stop)) for s in spans if s.kind == "categorical"]
        gaussian = [s.start for s in spans if s.kind == "continuous"]
        return VisibleLayout(self.encoder_.width, groups, gaussian)

    def _encode(self, data: pd.DataFrame) -> torch.Tensor:
        if isinstance(self.encoder_, TokenEncoder):
            tokens = torch.from_numpy(self.encoder_.transform(data))  # (rows, columns)
            offsets = self.layout_.group_units[:, 0]  # first unit of each column's group
            matrix = torch.zeros(len(data), self.layout_.n_visible)
            return matrix.scatter_(1, tokens + offsets, 1.0)
        return torch.from_numpy(self.encoder_.transform(data))

    def _decode(self, activation: torch.Tensor) -> pd.DataFrame:
        """(rows, V) visible activations from the chains -> a frame of the modelled columns.

        The visible units are drawn once more from p(v | h): each column's group gives its
        token (bins), or, with gaussian units, the normal score plus unit noise and the
        category/missing logits that `TabularEncoder.inverse` samples from.
        """
        rng = np.random.default_rng(int(np.random.randint(2**31)))
        activation = activation.cpu()
        layout = VisibleLayout.from_state(self.layout_.state())  # a CPU copy
        if isinstance(self.encoder_, TokenEncoder):
            _, tokens = layout.sample(activation)
            return self.encoder_.inverse(tokens.numpy(), rng)
        values = activation.clone()
        values[:, layout.gaussian] += torch.randn(len(values), len(layout.gaussian))
        return self.encoder_.inverse(values.numpy(), rng)

    def _monitor(self, matrix: torch.Tensor) -> torch.Tensor:
        """The first `monitor_rows` of a seeded permutation: the rows whose PLL is logged."""
        params: BoltzmannParams = self.params  # type: ignore[assignment]
        return matrix[torch.randperm(len(matrix))[: params.monitor_rows]]

    def _save_encoder(self, path: Path, extra: dict | None = None) -> None:
        kind = "tokens" if isinstance(self.encoder_, TokenEncoder) else "tabular"
        encoder = (
            self.encoder_.state()
            if kind == "tokens"
            else {"n_quantiles": self.encoder_.n_quantiles, "columns": self.encoder_.columns}
        )
        state = {"kind": kind, "encoder": encoder, "layout": self.layout_.state(), **(extra or {})}
        (path / STATE_FILE).write_text(json.dumps(state))

    def _load_encoder(self, path: Path) -> dict:
        state = json.loads((path / STATE_FILE).read_text())
        if state["kind"] == "tokens":
            self.encoder_ = TokenEncoder.from_state(state["encoder"])
        else:
            self.encoder_ = TabularEncoder(state["encoder"]["n_quantiles"])
            self.encoder_.columns = state["encoder"]["columns"]
            self.encoder_._build_spans()
        self.layout_ = VisibleLayout.from_state(state["layout"])
        return state

    @staticmethod
    def _load_weights(path: Path) -> dict[str, torch.Tensor]:
        # weights_only: never unpickle code from a model file; map to CPU so a GPU-trained
        # model loads anywhere.
        return torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)


class RBMGenerator(_BoltzmannTableGenerator):
    """A restricted Boltzmann machine over the table's binary (or gaussian) encoding."""

    name = "rbm"
    Params = RBMParams

    def _fit(self, data: pd.DataFrame) -> None:
        params: RBMParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        matrix = self._encode_fit(data).to(device)
        self.rbm_ = RBM(self.layout_, params.n_hidden).to(device)
        monitor = self._monitor(matrix)
        self.losses_ = train_rbm(
            self.rbm_, matrix, TrainingSettings(params), monitor, desc="training rbm"
        )
        self.log_z_ = self.log_likelihood_ = None
        if params.ais_runs and not self.layout_.has_gaussian:
            self.log_z_, _ = self.rbm_.log_partition_ais(params.ais_runs, params.ais_betas)
            self.log_likelihood_ = float(-self.rbm_.free_energy(monitor).mean()) - self.log_z_
        self.rbm_ = self.rbm_.cpu()

    @torch.no_grad()
    def _sample(self, n: int) -> pd.DataFrame:
        params: RBMParams = self.params  # type: ignore[assignment]
        activation = self.rbm_.sample_activations(
            n, params.burn_in, params.thinning, params.n_chains
        )
        return self._decode(activation)

    def _save(self, path: Path) -> None:
        self._save_encoder(path, {"log_z": self.log_z_, "log_likelihood": self.log_likelihood_})
        torch.save(self.rbm_.state_dict(), path / WEIGHTS_FILE)

    def _load(self, path: Path) -> None:
        params: RBMParams = self.params  # type: ignore[assignment]
        state = self._load_encoder(path)
        self.log_z_, self.log_likelihood_ = state["log_z"], state["log_likelihood"]
        self.rbm_ = RBM(self.layout_, params.n_hidden)
        self.rbm_.load_state_dict(self._load_weights(path))


class DBNGenerator(_BoltzmannTableGenerator):
    """A deep belief network: RBMs stacked greedily, sampled top-down."""

    name = "dbn"
    Params = DBNParams

    def _build(self) -> list[RBM]:
        params: DBNParams = self.params  # type: ignore[assignment]
        sizes = [self.layout_.n_visible, *params.hidden_sizes]
        layouts = [self.layout_] + [VisibleLayout.binary(size) for size in sizes[1:-1]]
        return [RBM(lay, h) for lay, h in zip(layouts, sizes[1:], strict=True)]

    def _fit(self, data: pd.DataFrame) -> None:
        params: DBNParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        layer_input = self._encode_fit(data).to(device)
        monitor = self._monitor(layer_input)
        self.rbms_ = [rbm.to(device) for rbm in self._build()]
        for depth, rbm in enumerate(self.rbms_, start=1):
            losses = train_rbm(
                rbm, layer_input, TrainingSettings(params), monitor, desc=f"training dbn {depth}"
            )
            self.losses_ += _prefixed(f"layer{depth}", losses)
            # The next RBM models this one's hidden probabilities (as Hinton et al. 2006).
            layer_input = rbm.hidden_probabilities(layer_input)
            monitor = rbm.hidden_probabilities(monitor)
        self.rbms_ = [rbm.cpu() for rbm in self.rbms_]

    @torch.no_grad()
    def _sample(self, n: int) -> pd.DataFrame:
        params: DBNParams = self.params  # type: ignore[assignment]
        # Gibbs in the top RBM (the undirected associative memory), whose chains start from
        # marginal rows of the data propagated upwards...
        top = self.rbms_[-1]
        below = self.rbms_[:-1]
        chains = min(params.n_chains, n)
        v = self.rbms_[0].start_chains(chains)[0]
        for rbm in below:
            v = _bernoulli(rbm.hidden_probabilities(v))
        state = (v, top.visible_activation(_bernoulli(top.hidden_probabilities(v))))
        top_visible = run_chains(
            state, top.gibbs_step, lambda s: s[0], n, params.burn_in, params.thinning
        )
        # ... then one directed pass down: h_{l-1} ~ p(h_{l-1} | h_l) of RBM l.
        h = top_visible
        for rbm in reversed(below[1:]):
            h = rbm.layout.sample(rbm.visible_activation(h))[0]
        activation = (
            below[0].visible_activation(h)
            if below
            else top.visible_activation(_bernoulli(top.hidden_probabilities(top_visible)))
        )
        return self._decode(activation)

    def _save(self, path: Path) -> None:
        self._save_encoder(path)
        weights = {
            f"{i}.{k}": t for i, rbm in enumerate(self.rbms_) for k, t in rbm.state_dict().items()
        }
        torch.save(weights, path / WEIGHTS_FILE)

    def _load(self, path: Path) -> None:
        self._load_encoder(path)
        weights = self._load_weights(path)
        self.rbms_ = self._build()
        for i, rbm in enumerate(self.rbms_):
            prefix = f"{i}."
            rbm.load_state_dict(
                {k[len(prefix) :]: t for k, t in weights.items() if k.startswith(prefix)}
            )


class DBMGenerator(_DBMFitting, _BoltzmannTableGenerator):
    """A two-hidden-layer deep Boltzmann machine: mean-field data term, persistent chains."""

    name = "dbm"
    Params = DBMParams

    def _fit(self, data: pd.DataFrame) -> None:
        device = torch.device(resolve_device(self.device))
        matrix = self._encode_fit(data).to(device)
        self._fit_dbm(matrix, self._monitor(matrix))

    @torch.no_grad()
    def _sample(self, n: int) -> pd.DataFrame:
        params: DBMParams = self.params  # type: ignore[assignment]
        state = self.dbm_.start_chains(min(params.n_chains, n), params.mean_field_steps)
        activation = run_chains(
            state, self.dbm_.gibbs_step, lambda s: s[3], n, params.burn_in, params.thinning
        )
        return self._decode(activation)

    def _save(self, path: Path) -> None:
        self._save_encoder(path)
        torch.save(self.dbm_.state_dict(), path / WEIGHTS_FILE)

    def _load(self, path: Path) -> None:
        params: DBMParams = self.params  # type: ignore[assignment]
        self._load_encoder(path)
        self.dbm_ = DBM(self.layout_, *params.hidden_sizes)
        self.dbm_.load_state_dict(self._load_weights(path))
