"""Boltzmann machines for images: `rbm`, `dbn`, `dbm` over `generators.models.boltzmann`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from generators.base import resolve_device
from generators.image.base import ImageGenerator
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
    labelled_chains,
    train_rbm,
)


class ImageParams(MachineParams):
    """Images: how pixels become visible units."""

    # "binary": each pixel a bernoulli unit on the image binarised at `threshold`; samples
    # are the units' probabilities p(v = 1 | h) at the last Gibbs step (grey, smoother than
    # 0/1 draws). "gaussian": each pixel standardised (its training mean and standard
    # deviation, floored at `min_pixel_std`) as a unit-variance gaussian unit; samples are
    # the units' means E[v | h], de-standardised and clipped to [0, 1].
    pixels: Literal["binary", "gaussian"] = "binary"
    threshold: float = Field(0.5, gt=0, lt=1)
    # A pixel almost always dark (MNIST's border) has a tiny spread; standardising by it
    # would turn its rare ink into values of 30+ that swamp a gaussian RBM.
    min_pixel_std: float = Field(0.1, gt=0)
    # Default: 0.05 for binary pixels, 0.01 for gaussian ones (Hinton's guide: gaussian
    # visible units want a smaller rate; on the 8x8 digits, 20 epochs at batch 20, label
    # accuracy of samples was 0.35 at 0.005, 0.51 at 0.01, 0.64 at 0.02).
    learning_rate: float | None = Field(None, gt=0)
    # The exact PLL costs rows x pixels x hidden units per epoch: 256 rows of 784 pixels
    # and 128 hidden units is about 0.2 s on one CPU thread.
    monitor_rows: int = Field(256, ge=1)


class ImageRBMParams(ImageParams, _RBMShape):
    # 64 hidden units, not the tables' 128: on MNIST t10k (8,000 training images, 30
    # epochs) 128 fail the privacy gate (DCR share 0.566, 95% CI 0.535-0.597), 64 pass it
    # (0.483); the dbn (0.515) and dbm (0.507) pass with their defaults.
    n_hidden: int = Field(64, ge=1)


class ImageDBNParams(ImageParams, _DBNShape):
    pass


class ImageDBMParams(ImageParams, _DBMShape):
    pass


class _BoltzmannImageGenerator(ImageGenerator):
    """Pixels (and labels) <-> visible units; subclasses hold the machines.

    Visible units: the C*H*W pixels in (C, H, W) order, then, with labels, one softmax group
    of `n_classes` units (Hinton's joint label units): the model learns p(image, label),
    and sampling clamps the group to the label asked for in every Gibbs sweep, so the chain
    draws from p(image | label).
    """

    def _learning_rate(self) -> float:
        params: ImageParams = self.params  # type: ignore[assignment]
        if params.learning_rate is not None:
            return params.learning_rate
        return 0.05 if params.pixels == "binary" else 0.01

    def _settings(self, epochs: int | None = None) -> TrainingSettings:
        return TrainingSettings(self.params, epochs, self._learning_rate())

    @property
    def n_pixels(self) -> int:
        height, width, channels = self.image_shape_
        return height * width * channels

    def _pixel_units(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, P) visible pixel values; fits the pixel statistics."""
        params: ImageParams = self.params  # type: ignore[assignment]
        flat = images.reshape(len(images), -1)
        if params.pixels == "binary":
            self.pixel_mean_ = self.pixel_std_ = None
            return (flat > params.threshold).float()
        self.pixel_mean_ = flat.mean(0)
        self.pixel_std_ = flat.std(0).clamp(min=params.min_pixel_std)
        return (flat - self.pixel_mean_) / self.pixel_std_

    def _pixel_layout(self, labels: bool) -> VisibleLayout:
        """Pixels (bernoulli or gaussian), then the label group when `labels`."""
        params: ImageParams = self.params  # type: ignore[assignment]
        pixels, classes = self.n_pixels, self.n_classes if labels else 0
        gaussian = list(range(pixels)) if params.pixels == "gaussian" else []
        groups = [list(range(pixels, pixels + classes))] if classes else []
        return VisibleLayout(pixels + classes, groups, gaussian)

    def _with_labels(self, units: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(N, D) -> (N, D + K): the labels' one-hot columns appended (unchanged without)."""
        if labels is None:
            return units
        return torch.cat([units, F.one_hot(labels, self.n_classes).to(units.dtype)], 1)

    def _clamp(self, v: torch.Tensor, one_hot: torch.Tensor | None) -> torch.Tensor:
        """Set the last K visible units (the label group) of v to `one_hot`, in place."""
        if one_hot is not None:
            v[:, v.shape[1] - one_hot.shape[1] :] = one_hot
        return v

    def _one_hot(self, chain_labels: torch.Tensor | None) -> torch.Tensor | None:
        if chain_labels is None:
            return None
        return F.one_hot(chain_labels, self.n_classes).float()

    def _images(self, activation: torch.Tensor) -> torch.Tensor:
        """(n, >= P) visible activations -> (n, C, H, W) in [0, 1]: the pixels' p(v = 1 | h)
        (binary) or E[v | h] de-standardised and clipped (gaussian)."""
        pixels = activation[:, : self.n_pixels]
        if self.pixel_mean_ is None:
            values = torch.sigmoid(pixels)
        else:
            values = (pixels * self.pixel_std_ + self.pixel_mean_).clamp(0, 1)
        height, width, channels = self.image_shape_
        return values.reshape(len(values), channels, height, width)

    def _monitor(self, matrix: torch.Tensor) -> torch.Tensor:
        params: ImageParams = self.params  # type: ignore[assignment]
        return matrix[torch.randperm(len(matrix))[: params.monitor_rows]]

    def _save_state(self, path: Path, weights: dict[str, torch.Tensor], extra: dict) -> None:
        if self.pixel_mean_ is not None:
            weights = {**weights, "pixel_mean": self.pixel_mean_, "pixel_std": self.pixel_std_}
        torch.save(weights, path / WEIGHTS_FILE)
        (path / STATE_FILE).write_text(json.dumps(extra))

    def _load_state(self, path: Path) -> tuple[dict[str, torch.Tensor], dict]:
        weights = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.pixel_mean_ = weights.pop("pixel_mean", None)
        self.pixel_std_ = weights.pop("pixel_std", None)
        return weights, json.loads((path / STATE_FILE).read_text())


class ImageRBMGenerator(_BoltzmannImageGenerator):
    """An RBM over the pixels and, with labels, a softmax group of label units."""

    name = "rbm"
    Params = ImageRBMParams

    def _fit_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        params: ImageRBMParams = self.params  # type: ignore[assignment]
        device = torch.device(resolve_device(self.device))
        matrix = self._with_labels(self._pixel_units(images), labels).to(device)
        self.layout_ = self._pixel_layout(labels is not None)
        self.rbm_ = RBM(self.layout_, params.n_hidden).to(device)
        monitor = self._monitor(matrix)
        self.losses_ = train_rbm(self.rbm_, matrix, self._settings(), monitor, "training rbm")
        self.log_z_ = self.log_likelihood_ = None
        if params.ais_runs and not self.layout_.has_gaussian:
            self.log_z_, _ = self.rbm_.log_partition_ais(params.ais_runs, params.ais_betas)
            self.log_likelihood_ = float(-self.rbm_.free_energy(monitor).mean()) - self.log_z_
        self.rbm_ = self.rbm_.cpu()

    def _sample_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        params: ImageRBMParams = self.params  # type: ignore[assignment]
        rbm, one_hot = self.rbm_, None

        def start(chain_labels: torch.Tensor | None) -> tuple:
            nonlocal one_hot
            one_hot = self._one_hot(chain_labels)
            count = min(params.n_chains, n) if chain_labels is None else len(chain_labels)
            v, activation = rbm.start_chains(count)
            return self._clamp(v, one_hot), activation

        def step(state: tuple) -> tuple:
            v, activation = rbm.gibbs_step(state)
            return self._clamp(v, one_hot), activation

        activation = labelled_chains(
            start, step, lambda s: s[1], n, labels, params.n_chains, params.burn_in, params.thinning
        )
        return self._images(activation)

    def _save_model(self, path: Path) -> None:
        extra = {"layout": self.layout_.state(), "log_z": self.log_z_}
        self._save_state(
            path, self.rbm_.state_dict(), extra | {"log_likelihood": self.log_likelihood_}
        )

    def _load_model(self, path: Path) -> None:
        params: ImageRBMParams = self.params  # type: ignore[assignment]
        weights, state = self._load_state(path)
        self.layout_ = VisibleLayout.from_state(state["layout"])
        self.log_z_, self.log_likelihood_ = state["log_z"], state["log_likelihood"]
        self.rbm_ = RBM(self.layout_, params.n_hidden)
        self.rbm_.load_state_dict(weights)


class ImageDBNGenerator(_BoltzmannImageGenerator):
    """A DBN over the pixels. As in Hinton, Osindero & Teh (2006), the label units join the
    top RBM's visible layer beside the features below it, so that the top RBM (the
    associative memory) learns p(features, label); sampling clamps them there, runs Gibbs
    in the top RBM and passes down once. With one hidden layer this is the RBM."""

    name = "dbn"
    Params = ImageDBNParams

    def _build(self) -> list[RBM]:
        params: ImageDBNParams = self.params  # type: ignore[assignment]
        sizes = [self.n_pixels, *params.hidden_sizes]
        classes = self.n_classes
        layouts = [self._pixel_layout(labels=len(sizes) == 2)]  # the bottom RBM is the top
        for depth, size in enumerate(sizes[1:-1], start=2):  # binary features below RBM
            top = depth == len(sizes) - 1  # `depth`; the top one's also get the label group
            groups = [list(range(size, size + classes))] if top and classes else []
            layouts.append(VisibleLayout(size + (classes if groups else 0), groups))
        return [RBM(lay, h) for lay, h in zip(layouts, sizes[1:], strict=True)]

    def _fit_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        device = torch.device(resolve_device(self.device))
        layer_input = self._pixel_units(images).to(device)
        labels = None if labels is None else labels.to(device)
        self.rbms_ = [rbm.to(device) for rbm in self._build()]
        rows = torch.randperm(len(layer_input))[: self.params.monitor_rows]
        monitor = layer_input[rows.to(device)]
        for depth, rbm in enumerate(self.rbms_, start=1):
            top = depth == len(self.rbms_)
            inputs = self._with_labels(layer_input, labels) if top else layer_input
            watch = (
                self._with_labels(monitor, labels[rows.to(device)])
                if top and labels is not None
                else monitor
            )
            losses = train_rbm(rbm, inputs, self._settings(), watch, f"training dbn {depth}")
            self.losses_ += _prefixed(f"layer{depth}", losses)
            if not top:  # the next RBM models this one's hidden probabilities
                layer_input = rbm.hidden_probabilities(layer_input)
                monitor = rbm.hidden_probabilities(monitor)
        self.rbms_ = [rbm.cpu() for rbm in self.rbms_]

    def _sample_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        params: ImageDBNParams = self.params  # type: ignore[assignment]
        top, below = self.rbms_[-1], self.rbms_[:-1]
        features = top.layout.n_visible - (self.n_classes if labels is not None else 0)
        one_hot = None

        def start(chain_labels: torch.Tensor | None) -> tuple:
            # Chains start from the data's pixel marginals propagated upwards.
            nonlocal one_hot
            one_hot = self._one_hot(chain_labels)
            count = min(params.n_chains, n) if chain_labels is None else len(chain_labels)
            v = self.rbms_[0].start_chains(count)[0]
            for rbm in below:
                v = _bernoulli(rbm.hidden_probabilities(v))
            if below and one_hot is not None:
                v = torch.cat([v, one_hot], 1)
            v = self._clamp(v, one_hot)
            return v, top.visible_activation(_bernoulli(top.hidden_probabilities(v)))

        def step(state: tuple) -> tuple:
            v, activation = top.gibbs_step(state)
            return self._clamp(v, one_hot), activation

        # One RBM: read its pixel activations; deeper: the top's feature units, then down.
        read = (lambda s: s[1]) if not below else (lambda s: s[0][:, :features])
        out = labelled_chains(
            start, step, read, n, labels, params.n_chains, params.burn_in, params.thinning
        )
        if not below:
            return self._images(out)
        h = out
        for rbm in reversed(below[1:]):
            h = rbm.layout.sample(rbm.visible_activation(h))[0]
        return self._images(below[0].visible_activation(h))

    def _save_model(self, path: Path) -> None:
        weights = {
            f"{i}.{k}": t for i, rbm in enumerate(self.rbms_) for k, t in rbm.state_dict().items()
        }
        self._save_state(path, weights, {})

    def _load_model(self, path: Path) -> None:
        weights, _ = self._load_state(path)
        self.rbms_ = self._build()
        for i, rbm in enumerate(self.rbms_):
            prefix = f"{i}."
            rbm.load_state_dict(
                {k[len(prefix) :]: t for k, t in weights.items() if k.startswith(prefix)}
            )


class ImageDBMGenerator(_DBMFitting, _BoltzmannImageGenerator):
    """A two-hidden-layer DBM over the pixels and, with labels, a label group of visible
    units clamped in every sampling sweep."""

    name = "dbm"
    Params = ImageDBMParams

    def _fit_images(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        device = torch.device(resolve_device(self.device))
        matrix = self._with_labels(self._pixel_units(images), labels).to(device)
        self.layout_ = self._pixel_layout(labels is not None)
        self._fit_dbm(matrix, self._monitor(matrix))

    def _sample_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        params: ImageDBMParams = self.params  # type: ignore[assignment]
        dbm, one_hot = self.dbm_, None

        def start(chain_labels: torch.Tensor | None) -> tuple:
            nonlocal one_hot
            one_hot = self._one_hot(chain_labels)
            count = min(params.n_chains, n) if chain_labels is None else len(chain_labels)
            v, h1, h2, activation = dbm.start_chains(count, params.mean_field_steps)
            return self._clamp(v, one_hot), h1, h2, activation

        def step(state: tuple) -> tuple:
            v, h1, h2, activation = dbm.gibbs_step(state)
            return self._clamp(v, one_hot), h1, h2, activation

        activation = labelled_chains(
            start, step, lambda s: s[3], n, labels, params.n_chains, params.burn_in, params.thinning
        )
        return self._images(activation)

    def _save_model(self, path: Path) -> None:
        self._save_state(path, self.dbm_.state_dict(), {"layout": self.layout_.state()})

    def _load_model(self, path: Path) -> None:
        params: ImageDBMParams = self.params  # type: ignore[assignment]
        weights, state = self._load_state(path)
        self.layout_ = VisibleLayout.from_state(state["layout"])
        self.dbm_ = DBM(self.layout_, *params.hidden_sizes)
        self.dbm_.load_state_dict(weights)
