"""Boltzmann machines in PyTorch: the RBM, DBN and DBM math the table and image generators share.

The generators are `generators/table/boltzmann.py` and `generators/image/boltzmann.py`.

Everything here is an energy-based model over a layer of visible units v and one or two
layers of binary hidden units h, trained by contrastive divergence and sampled by block
Gibbs sampling, batched on whatever device `resolve_device` picks.

The visible layer (`VisibleLayout`) mixes three kinds of unit:
- bernoulli: an independent binary unit, p(v_i = 1 | h) = sigmoid(a_i);
- softmax groups: a group of units of which exactly one is on, p(v_g = k | h) =
  softmax(a_g)_k (Salakhutdinov, Mnih & Hinton's "softmax visible unit"). A table column
  is one group, so a sampled row always decodes to one value per column;
- gaussian: unit variance, v_i | h ~ N(a_i, 1) (Gaussian-Bernoulli RBM, for normal scores),
where a = b + W h is the visible activation. The energy is

    E(v, h) = -v.W.h - b.v - c.h  (+ sum_i over gaussian units of v_i^2 / 2)

Tables reach the models through one of two encodings, both from `generators.table.encoding`:
- "bins" (default): `TokenEncoder` gives each column a token (a category, missing as a
  category; a numeric point mass, a quantile interval, or missing), and each column
  becomes one softmax group over its tokens. Decoding draws a point mass exactly and an
  interval uniformly on the column's grid.
- "gaussian": `TabularEncoder`'s quantile-normal scores as gaussian units, categories as
  softmax groups, missing indicators as bernoulli units.

The three models:
- `rbm` (`RBM`): CD-k, or persistent CD (Tieleman 2008) with `persistent`, with momentum,
  weight decay and minibatches. Per epoch: reconstruction error and pseudo-log-likelihood
  (PLL); optionally an annealed-importance-sampling (AIS) estimate of log Z (Salakhutdinov &
  Murray 2008), hence a log-likelihood, after training.
- `dbn` (`DBN`): greedily stacked RBMs (Hinton, Osindero & Teh 2006); each RBM learns the
  hidden probabilities of the one below. Sampling runs Gibbs in the top RBM and then one
  downward pass through the lower RBMs' visible conditionals.
- `dbm` (`DBM`): a two-hidden-layer deep Boltzmann machine (Salakhutdinov & Hinton 2009):
  mean-field inference for the data term, persistent Gibbs chains for the model term,
  optionally initialised from greedily pre-trained RBMs with the paper's doubled weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from tqdm.auto import tqdm

from generators.base import Params

ENCODER_FILE = "encoder.json"
WEIGHTS_FILE = "boltzmann.pt"
STATE_FILE = "boltzmann_state.json"
# Rows x alternatives x hidden units held at once when computing the pseudo-likelihood.
_PLL_CHUNK = 1 << 23
_SLOW_EPOCHS = 5  # epochs at `initial_momentum`
# Initial weights' spread. Hinton's guide says 0.01; on one-hot columns of 10-20 bins the
# weights then take thousands of updates to leave the symmetric start, and 0.1 learns the
# mixed test table's age-income link in a few hundred.
_INIT_STD = 0.1


# -- the visible layer -------------------------------------------------------------------
class VisibleLayout:
    """Which visible units are bernoulli, gaussian, or slots of a softmax group.

    groups: lists of unit indices (each a one-hot group); gaussian: unit indices; every
    other unit is bernoulli. Held as index tensors so sampling is a few gathers/scatters.
    """

    def __init__(self, n_visible: int, groups: list[list[int]] = (), gaussian: list[int] = ()):
        self.n_visible = n_visible
        self.groups = [list(g) for g in groups]
        self.gaussian_list = list(gaussian)
        taken = {u for g in self.groups for u in g} | set(self.gaussian_list)
        self.bernoulli = torch.tensor([u for u in range(n_visible) if u not in taken]).long()
        self.gaussian = torch.tensor(self.gaussian_list).long()
        # group_units (G, K): the units of each group, padded (with its first unit) to the
        # largest group's size K; group_mask (G, K) marks the real slots.
        k = max((len(g) for g in self.groups), default=0)
        self.group_units = torch.tensor([g + [g[0]] * (k - len(g)) for g in self.groups]).long()
        self.group_mask = torch.tensor([[i < len(g) for i in range(k)] for g in self.groups])
        self.group_units = self.group_units.reshape(len(self.groups), k)
        self.group_mask = self.group_mask.reshape(len(self.groups), k).bool()
        self.group_sizes = self.group_mask.sum(1)  # (G,)

    @classmethod
    def binary(cls, n_visible: int) -> VisibleLayout:
        return cls(n_visible)

    def to(self, device: torch.device | str) -> VisibleLayout:
        for name in ("bernoulli", "gaussian", "group_units", "group_mask", "group_sizes"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    @property
    def has_gaussian(self) -> bool:
        return len(self.gaussian) > 0

    @property
    def discrete(self) -> bool:
        """Whether any unit is bernoulli or softmax (what the pseudo-likelihood scores)."""
        return len(self.bernoulli) > 0 or len(self.groups) > 0

    def _group_probabilities(self, activation: torch.Tensor) -> torch.Tensor:
        """(B, V) activations -> (B, G, K) softmax over each group's real slots."""
        logits = activation[:, self.group_units].masked_fill(~self.group_mask, -math.inf)
        return torch.softmax(logits, dim=-1)

    def mean(self, activation: torch.Tensor) -> torch.Tensor:
        """E[v | h] from the activation a = b + W h, (B, V) -> (B, V)."""
        mean = torch.sigmoid(activation)
        if self.has_gaussian:
            mean[:, self.gaussian] = activation[:, self.gaussian]
        if len(self.groups):
            probabilities = self._group_probabilities(activation)
            mean[:, self.group_units[self.group_mask]] = probabilities[:, self.group_mask]
        return mean

    def sample(
        self, activation: torch.Tensor, uniforms: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw v ~ p(v | h): returns (v (B, V), the chosen slot of each group (B, G)).

        uniforms: (B, V) draws from U(0, 1) for the bernoulli units, when the caller drew
        them in bulk (`_UniformStream`); fresh ones otherwise.
        """
        rows = len(activation)
        if uniforms is None:
            uniforms = torch.rand(activation.shape, device=activation.device)
        v = (uniforms < torch.sigmoid(activation)).to(activation.dtype)
        if self.has_gaussian:
            noise = torch.randn(rows, len(self.gaussian), device=activation.device)
            v[:, self.gaussian] = activation[:, self.gaussian] + noise
        choice = torch.zeros(rows, len(self.groups), dtype=torch.long, device=activation.device)
        if len(self.groups):
            # Inverse-CDF draw per group: the slot where the cumulative probability first
            # passes a uniform (padding slots hold probability 0, so never win).
            cumulative = self._group_probabilities(activation).cumsum(-1)  # (B, G, K)
            u = torch.rand(rows, len(self.groups), 1, device=activation.device)
            choice = torch.minimum((u > cumulative).sum(-1), self.group_sizes - 1)
            onehot = torch.zeros_like(cumulative).scatter_(-1, choice[..., None], 1.0)
            v[:, self.group_units[self.group_mask]] = onehot[:, self.group_mask]
        return v, choice

    def state(self) -> dict:
        return {"n_visible": self.n_visible, "groups": self.groups, "gaussian": self.gaussian_list}

    @classmethod
    def from_state(cls, state: dict) -> VisibleLayout:
        return cls(state["n_visible"], state["groups"], state["gaussian"])


def base_activation(layout: VisibleLayout, data: torch.Tensor) -> torch.Tensor:
    """(V,) the visible activation whose p(v) is the data's independent marginals:
    logit of each bernoulli unit's mean, log of each group slot's share, gaussian means.
    Used as the initial visible bias (Hinton's practical guide) and to start chains."""
    mean = data.mean(0).clamp(1e-4, 1 - 1e-4)
    activation = torch.log(mean) - torch.log1p(-mean)
    if len(layout.groups):
        slots = layout.group_units[layout.group_mask]
        activation[slots] = torch.log(mean[slots])
    if layout.has_gaussian:
        activation[layout.gaussian] = data[:, layout.gaussian].mean(0)
    return activation


def pseudo_log_likelihood(
    v: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    layout: VisibleLayout,
) -> torch.Tensor:
    """Exact pseudo-log-likelihood per row, sum over discrete units of log p(v_i | v_-i), (B,).

    v: (B, V); weight (V, H); visible_bias (V,); hidden_bias (H,) or (B, H). Bernoulli
    units: log sigmoid(F(v with bit i flipped) - F(v)), whose mean over bits times V is what
    scikit-learn's `score_samples` estimates with one random bit per row. A softmax group
    counts as one variable: log softmax over its slots of -F(v with the group set to that
    slot). Gaussian units are conditioned on but not scored (their conditional density
    under the marginal over h is a mixture with no closed form).
    """
    total = torch.zeros(len(v), device=v.device, dtype=v.dtype)
    n_alternatives = len(layout.bernoulli) + int(layout.group_mask.sum())
    step = max(1, _PLL_CHUNK // max(1, n_alternatives * weight.shape[1]))
    for start in range(0, len(v), step):
        rows = slice(start, start + step)
        x = v[rows]
        c = hidden_bias if hidden_bias.dim() == 1 else hidden_bias[rows]
        pre = x @ weight + c  # (b, H) hidden pre-activations
        base = F.softplus(pre).sum(1)  # (b,)  -F(x) = b.x + base (+ gaussian terms)
        if len(layout.bernoulli):
            idx = layout.bernoulli
            sign = 1 - 2 * x[:, idx]  # (b, nb): +1 turns a bit on, -1 turns it off
            delta = sign[:, :, None] * weight[idx][None]  # (b, nb, H)
            softplus = F.softplus(pre[:, None, :] + delta).sum(-1)  # (b, nb)
            free_energy_gap = -sign * visible_bias[idx] - (softplus - base[:, None])
            total[rows] += F.logsigmoid(free_energy_gap).sum(1)
        if len(layout.groups):
            units, mask = layout.group_units, layout.group_mask  # (G, K)
            slots = units[mask]  # (S,) every real slot, group by group
            group_of_slot = torch.arange(len(units), device=v.device)[:, None].expand_as(units)
            group_of_slot = group_of_slot[mask]  # (S,)
            on_slot = x[:, units].masked_fill(~mask, -1).argmax(-1)  # (b, G)
            on_unit = units.gather(1, on_slot.T).T[:, group_of_slot]  # (b, S): its group's on unit
            # Setting a slot's group to that slot moves the hidden input by W_slot - W_on
            # (computed over real slots only, not the (G, K) padding).
            delta = weight[slots][None] - weight[on_unit]  # (b, S, H)
            softplus = F.softplus(pre[:, None, :] + delta).sum(-1)  # (b, S)
            bias_gap = visible_bias[slots][None] - visible_bias[on_unit]
            neg_free_energy = torch.full(
                (len(x), *units.shape), -math.inf, device=v.device, dtype=v.dtype
            )  # (b, G, K), padding stays -inf
            neg_free_energy[:, mask] = bias_gap + softplus - base[:, None]
            total[rows] -= torch.logsumexp(neg_free_energy, -1).sum(1)
    return total


def _bernoulli(p: torch.Tensor) -> torch.Tensor:
    return (torch.rand_like(p) < p).to(p.dtype)


def run_chains(
    state: tuple,
    step: Callable[[tuple], tuple],
    read: Callable[[tuple], torch.Tensor],
    n: int,
    burn_in: int,
    thinning: int,
) -> torch.Tensor:
    """Advance every chain `burn_in` steps, then read a (chains, V) block every `thinning`
    steps until n rows are read; returns (n, V)."""
    for _ in range(burn_in):
        state = step(state)
    blocks, rows = [read(state)], len(read(state))
    while rows < n:
        for _ in range(thinning):
            state = step(state)
        blocks.append(read(state))
        rows += len(blocks[-1])
    return torch.cat(blocks)[:n]


# -- the restricted Boltzmann machine ----------------------------------------------------
class RBM(nn.Module):
    """v (V units, any `VisibleLayout`) <-> h (H bernoulli units).

    `up_scale` / `down_scale` multiply W in p(h | v) / p(v | h): 2 gives the doubled-weight
    RBMs that pre-train a DBM's bottom and top layers (Salakhutdinov & Hinton 2009, sec. 3.1);
    1 everywhere else. Parameters are buffers: CD updates them directly, not autograd.
    """

    def __init__(
        self,
        layout: VisibleLayout,
        n_hidden: int,
        up_scale: float = 1.0,
        down_scale: float = 1.0,
    ):
        super().__init__()
        self.layout, self.up_scale, self.down_scale = layout, up_scale, down_scale
        n_visible = layout.n_visible
        self.register_buffer("weight", _INIT_STD * torch.randn(n_visible, n_hidden))  # (V, H)
        self.register_buffer("visible_bias", torch.zeros(n_visible))  # (V,)
        self.register_buffer("hidden_bias", torch.zeros(n_hidden))  # (H,)
        self.register_buffer("start_activation", torch.zeros(n_visible))  # chains start here

    def _apply(self, fn, recurse=True):  # keep the layout on the buffers' device
        super()._apply(fn, recurse)
        self.layout.to(self.weight.device)
        return self

    def hidden_probabilities(self, v: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v), (B, V) -> (B, H). One fused multiply-add, then an in-place sigmoid:
        with small batches the per-operation cost, not the arithmetic, is what adds up."""
        return torch.addmm(self.hidden_bias, v, self.weight, alpha=self.up_scale).sigmoid_()

    def visible_activation(self, h: torch.Tensor) -> torch.Tensor:
        """a = b + W h, (B, H) -> (B, V); p(v | h) is `layout.mean(a)` / `layout.sample(a)`."""
        return torch.addmm(self.visible_bias, h, self.weight.T, alpha=self.down_scale)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), (B,)."""
        linear = v @ self.visible_bias
        if self.layout.has_gaussian:
            g = self.layout.gaussian
            linear = linear - 0.5 * (v[:, g] ** 2).sum(1)
        return -linear - F.softplus(v @ self.weight + self.hidden_bias).sum(1)

    def pseudo_log_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """(B, V) -> (B,); see the module-level function."""
        return pseudo_log_likelihood(
            v, self.weight, self.visible_bias, self.hidden_bias, self.layout
        )

    def gibbs_step(self, state: tuple) -> tuple:
        """(v, a) -> h ~ p(h | v), a = activation(h), v ~ p(v | h): one block Gibbs sweep."""
        v, _ = state
        activation = self.visible_activation(_bernoulli(self.hidden_probabilities(v)))
        return self.layout.sample(activation)[0], activation

    def start_chains(self, n: int) -> tuple:
        """n chains started from the training data's independent marginals."""
        activation = self.start_activation.expand(n, -1).clone()
        return self.layout.sample(activation)[0], activation

    def sample_activations(self, n: int, burn_in: int, thinning: int, chains: int):
        """(n, V) visible activations read from `chains` Gibbs chains."""
        state = self.start_chains(min(chains, n))
        return run_chains(state, self.gibbs_step, lambda s: s[1], n, burn_in, thinning)

    @torch.no_grad()
    def log_partition_ais(self, n_runs: int = 100, n_betas: int = 10_000) -> tuple[float, float]:
        """AIS estimate of log Z (Salakhutdinov & Murray 2008): (log Z, its standard error
        from the spread of the importance weights, by the delta method).

        Base model A: visible units independent with activation `start_activation` (the
        data's marginals), hidden units with zero parameters. Intermediate k has
            p*_k(v) = exp((1 - beta_k) a_A.v + beta_k b.v) prod_j (1 + exp(beta_k (c + v W)_j)).
        Discrete visible units only.
        """
        if self.layout.has_gaussian:
            raise ValueError("AIS here supports bernoulli and softmax visible units only")
        layout, base = self.layout, self.start_activation
        betas = torch.linspace(0.0, 1.0, n_betas, device=self.weight.device)

        def log_unnormalised(v: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
            pre = v @ self.weight + self.hidden_bias
            linear = v @ ((1 - beta) * base + beta * self.visible_bias)
            return linear + F.softplus(beta * pre).sum(1)

        # log Z_A: the visible units' own partition functions, times 2^H for the hidden ones.
        log_z_base = self.weight.shape[1] * math.log(2.0)
        log_z_base += float(F.softplus(base[layout.bernoulli]).sum())
        if len(layout.groups):
            logits = base[layout.group_units].masked_fill(~layout.group_mask, -math.inf)
            log_z_base += float(torch.logsumexp(logits, -1).sum())
        v = layout.sample(base.expand(n_runs, -1).clone())[0]
        log_weights = torch.zeros(n_runs, device=v.device)
        for previous, beta in zip(betas[:-1], betas[1:], strict=True):
            log_weights += log_unnormalised(v, beta) - log_unnormalised(v, previous)
            # A Gibbs sweep that leaves p_beta invariant.
            h = _bernoulli(torch.sigmoid(beta * (v @ self.weight + self.hidden_bias)))
            activation = (1 - beta) * base + beta * (h @ self.weight.T + self.visible_bias)
            v = layout.sample(activation)[0]
        log_mean = torch.logsumexp(log_weights, 0) - math.log(n_runs)
        ratios = torch.exp(log_weights - log_weights.max())
        relative_error = float(ratios.std() / ratios.mean()) / math.sqrt(n_runs)
        return float(log_z_base + log_mean), relative_error


class TrainingSettings:
    """The CD settings one `train_rbm` call uses (a plain bundle of the params)."""

    def __init__(
        self, params: MachineParams, epochs: int | None = None, learning_rate: float | None = None
    ):
        self.epochs = params.epochs if epochs is None else epochs
        self.batch_size = params.batch_size
        self.learning_rate = params.learning_rate if learning_rate is None else learning_rate
        self.anneal = params.anneal_learning_rate
        self.momentum = params.momentum
        self.initial_momentum = params.initial_momentum
        self.weight_decay = params.weight_decay
        self.cd_k = params.cd_k
        self.persistent = params.persistent


class _UniformStream:
    """U(0, 1) draws of one shape, made about a million numbers at a time.

    The RNG is the largest single cost of a small-batch CD step on a CPU, ahead of the
    matmuls. One `torch.rand` per step costs twice as much per number as a bulk draw
    (measured on one thread: 16 ns a number at 10 x 784, 8 ns at 1M), and numpy's PCG64
    draws float32 at about 4.4 ns; so on a CPU the blocks come from a numpy generator
    seeded from torch's (`torch.manual_seed` still fixes every draw). On a GPU, torch's own
    generator, one kernel launch per block rather than per step.
    """

    def __init__(self, shape: tuple[int, ...], device: torch.device, numbers: int = 1 << 20):
        self.shape, self.device = shape, torch.device(device)
        self.block = max(1, numbers // max(1, math.prod(shape)))
        self.numpy = None
        if self.device.type == "cpu":
            self.numpy = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        self.buffer = torch.empty(0, *shape, device=device)
        self.position = 0

    def next(self) -> torch.Tensor:
        if self.position == len(self.buffer):
            if self.numpy is not None:
                draws = self.numpy.random((self.block, *self.shape), dtype=np.float32)
                self.buffer = torch.from_numpy(draws)
            else:
                self.buffer = torch.rand(self.block, *self.shape, device=self.device)
            self.position = 0
        self.position += 1
        return self.buffer[self.position - 1]


# Below this many multiply-adds per matmul (batch x visible x hidden), a CPU training step
# runs on one thread. Torch parallelises the (V, H) updates and the matmuls over its
# threads, and each parallel region ends at a barrier: with batch 10 on 784 x 64 (0.5M)
# that synchronisation is most of the step. Measured on the 2-core dev machine with other
# jobs running, 2,000 MNIST images, 2 epochs: batch 10 took 0.3 s on one thread and 1.3 to
# 11.8 s on two; batch 1,000 (50M) took 0.2 s on one and 0.15 s on two.
_PARALLEL_WORK = 1 << 24


@contextmanager
def _threads_for(work: int, device: torch.device) -> Iterator[None]:
    """One torch thread while a CPU loop's matmuls are smaller than `_PARALLEL_WORK`."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or work >= _PARALLEL_WORK or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def reconstruction_error(rbm: RBM, v: torch.Tensor) -> float:
    """Mean over rows of sum_i (v_i - E[v_i | h])^2 with h ~ p(h | v): one up-down pass."""
    activation = rbm.visible_activation(_bernoulli(rbm.hidden_probabilities(v)))
    return float(((v - rbm.layout.mean(activation)) ** 2).sum(1).mean())


@torch.no_grad()
def train_rbm(
    rbm: RBM,
    data: torch.Tensor,
    settings: TrainingSettings,
    monitor: torch.Tensor,
    desc: str = "training rbm",
) -> list[dict[str, float]]:
    """Minibatch CD-k / PCD-k with momentum and L2 weight decay; returns per-epoch losses.

    data: (N, V) on rbm's device; monitor: (M, V) rows whose reconstruction error and PLL
    are reported after each epoch.
    The gradient of the mean log-likelihood is <v h>_data - <v h>_model; the data term uses
    p(h | v) exactly, the model term the end of k Gibbs sweeps from the data (CD) or from
    persistent fantasy chains (PCD).

    Written for small batches (scikit-learn's default is 10): a CPU step is then a few dozen
    small operations, and their number, not the arithmetic, is the cost. So the data is
    shuffled once per epoch (minibatches are views); uniforms come in bulk
    (`_UniformStream`); persistent chains are held as their hidden probabilities, as
    scikit-learn holds its hidden samples, so a PCD-1 step is three matmuls (h -> v, one
    p(h | v) for data and particles stacked, one gradient) and a few in-place updates;
    samples are written as 0./1. straight into the stacked buffer; and nothing is read
    back to Python within an epoch (on a GPU each read is a sync). The reconstruction
    error, once a by-product of the CD step, is measured on the monitor rows per epoch.
    """
    layout = rbm.layout
    rbm.visible_bias.copy_(base_activation(layout, data))
    rbm.start_activation.copy_(rbm.visible_bias)
    # Locals, not module attributes or method calls, inside the loop: at batch 10 a step is
    # ~0.4 ms, and nn.Module attribute lookups and len() on tensors add up to a tenth of it.
    weight, visible_bias, hidden_bias = rbm.weight, rbm.visible_bias, rbm.hidden_bias
    weight_t = weight.T  # (H, V), a view: sees every in-place update of weight
    up, down = rbm.up_scale, rbm.down_scale
    n_rows, (n_visible, n_hidden) = len(data), weight.shape
    device, dtype = data.device, weight.dtype
    batch_size = min(settings.batch_size, n_rows)
    batches = [(start, min(batch_size, n_rows - start)) for start in range(0, n_rows, batch_size)]
    velocity_w, velocity_b, velocity_c = (
        torch.zeros_like(p) for p in (weight, visible_bias, hidden_bias)
    )
    persistent = settings.persistent
    # Persistent chains: p(h | v) of `batch_size` fantasy particles (C, H).
    chains = rbm.hidden_probabilities(rbm.start_chains(batch_size)[0]) if persistent else None
    uniforms_v = _UniformStream((batch_size, n_visible), device)
    uniforms_h = _UniformStream((batch_size, n_hidden), device)
    rates = list(
        _step_sizes(settings.learning_rate, settings.epochs * len(batches), settings.anneal)
    )
    decay, cd_k = settings.weight_decay, settings.cd_k
    # Bernoulli-only layouts (binary images, a DBN's upper layers) sample v straight into
    # the stacked buffer below.
    plain = not layout.has_gaussian and not layout.groups
    # The data and negative rows stacked, [v0; vk] (B + C, V), with their signed weights
    # [1/B ...; -1/C ...]: one matmul then gives both phases' p(h | v) (with PCD, vk does not
    # depend on v0), one `addmm_` the weight gradient <v h>_data - <v h>_model, and one
    # `addmv_` each bias gradient.
    stacked = torch.empty(2 * batch_size, n_visible, device=device, dtype=dtype)
    hidden = torch.empty(batch_size, n_hidden, device=device, dtype=dtype)

    def signs(rows: int, count: int) -> torch.Tensor:
        return torch.cat([torch.full((rows,), 1 / rows), torch.full((count,), -1 / count)]).to(
            device=device, dtype=dtype
        )

    full_signs = signs(batch_size, batch_size)
    with _threads_for(batch_size * n_visible * n_hidden, device):
        step, losses = 0, []
        for epoch in tqdm(range(settings.epochs), desc=desc, unit="epoch", leave=False):
            momentum = settings.initial_momentum if epoch < _SLOW_EPOCHS else settings.momentum
            shuffled = data[torch.randperm(n_rows, device=device)]
            for start, rows in batches:
                v0 = shuffled[start : start + rows]  # (B, V), a view
                count = batch_size if persistent else rows
                both = stacked if rows == batch_size else stacked[: rows + count]
                sign = full_signs if rows == batch_size else signs(rows, count)
                both[:rows] = v0
                if persistent:
                    phk = chains
                else:
                    ph0 = torch.addmm(hidden_bias, v0, weight, alpha=up).sigmoid_()
                    phk = ph0
                for k in range(cd_k):
                    u_h, u_v = uniforms_h.next(), uniforms_v.next()
                    if count < batch_size:
                        u_h, u_v = u_h[:count], u_v[:count]
                    h = torch.lt(u_h, phk, out=hidden[:count])  # h ~ p(h | v) as 0./1.
                    activation = torch.addmm(visible_bias, h, weight_t, alpha=down)
                    vk = both[rows:]
                    if plain:
                        torch.lt(u_v, activation.sigmoid_(), out=vk)
                    else:
                        vk.copy_(layout.sample(activation, u_v)[0])
                    if k < cd_k - 1:
                        phk = torch.addmm(hidden_bias, vk, weight, alpha=up).sigmoid_()
                if persistent:  # both phases' p(h | v) in one matmul: (B + C, H)
                    ph_both = torch.addmm(hidden_bias, both, weight, alpha=up).sigmoid_()
                    chains = ph_both[rows:]
                else:
                    phk = torch.addmm(hidden_bias, both[rows:], weight, alpha=up).sigmoid_()
                    ph_both = torch.cat([ph0, phk])
                rate = rates[step]
                step += 1
                # velocity <- momentum velocity + rate (<v h>_data - <v h>_model - decay W)
                velocity_w.mul_(momentum).addmm_(both.T, ph_both * sign[:, None], alpha=rate)
                velocity_w.add_(weight, alpha=-rate * decay)
                velocity_b.mul_(momentum).addmv_(both.T, sign, alpha=rate)
                velocity_c.mul_(momentum).addmv_(ph_both.T, sign, alpha=rate)
                weight.add_(velocity_w)
                visible_bias.add_(velocity_b)
                hidden_bias.add_(velocity_c)
            losses.append({"reconstruction_error": reconstruction_error(rbm, monitor)})
            if layout.discrete:  # gaussian units are not scored: all-gaussian has no PLL
                losses[-1]["pseudo_log_likelihood"] = float(
                    rbm.pseudo_log_likelihood(monitor).mean()
                )
    return losses


def _step_sizes(learning_rate: float, steps: int, anneal: bool):
    """One learning rate per update, each used for all of that update's parameters;
    annealed linearly to 0 over the run (Tieleman 2008: PCD's chains then settle on the
    final model instead of chasing a moving one)."""
    for step in range(steps):
        yield learning_rate * (1 - step / steps) if anneal else learning_rate


def _prefixed(prefix: str, losses: list[dict[str, float]]) -> list[dict[str, float]]:
    """Name one stage's losses ("layer2.pseudo_log_likelihood"): losses_ holds floats only,
    logged to MLflow as `loss.<name>` with the list position as the step."""
    return [{f"{prefix}.{key}": value for key, value in entry.items()} for entry in losses]


# -- the deep Boltzmann machine -----------------------------------------------------------
class DBM(nn.Module):
    """v (layout) <-> h1 (H1) <-> h2 (H2); no connections within a layer or from v to h2.

    E(v, h1, h2) = -v.W1.h1 - h1.W2.h2 - b.v - c1.h1 - c2.h2. Given h1, v and h2 are
    independent, so one Gibbs sweep is h1 | (v, h2), then (v, h2) | h1.
    """

    def __init__(self, layout: VisibleLayout, n_hidden1: int, n_hidden2: int):
        super().__init__()
        self.layout = layout
        self.register_buffer("weight1", _INIT_STD * torch.randn(layout.n_visible, n_hidden1))
        self.register_buffer("weight2", _INIT_STD * torch.randn(n_hidden1, n_hidden2))
        self.register_buffer("visible_bias", torch.zeros(layout.n_visible))
        self.register_buffer("hidden_bias1", torch.zeros(n_hidden1))
        self.register_buffer("hidden_bias2", torch.zeros(n_hidden2))
        self.register_buffer("start_activation", torch.zeros(layout.n_visible))

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.layout.to(self.weight1.device)
        return self

    def parameters_list(self) -> list[torch.Tensor]:
        return [
            self.weight1,
            self.weight2,
            self.visible_bias,
            self.hidden_bias1,
            self.hidden_bias2,
        ]

    def h1_probabilities(self, v: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        """p(h1 = 1 | v, h2), (B, H1): input from both sides."""
        return torch.sigmoid(v @ self.weight1 + h2 @ self.weight2.T + self.hidden_bias1)

    def h2_probabilities(self, h1: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h1 @ self.weight2 + self.hidden_bias2)

    def visible_activation(self, h1: torch.Tensor) -> torch.Tensor:
        return h1 @ self.weight1.T + self.visible_bias

    def mean_field(self, v: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed-point updates of q(h1) q(h2) given v: (mu1 (B, H1), mu2 (B, H2)).

        Started bottom-up with the doubled input the pre-training assumed (sec. 3.1).
        """
        mu1 = torch.sigmoid(2 * (v @ self.weight1) + self.hidden_bias1)
        mu2 = self.h2_probabilities(mu1)
        for _ in range(steps):
            mu1 = self.h1_probabilities(v, mu2)
            mu2 = self.h2_probabilities(mu1)
        return mu1, mu2

    def gibbs_step(self, state: tuple) -> tuple:
        """(v, h1, h2, a) -> one sweep; a = visible activation given the new h1."""
        v, _, h2, _ = state
        h1 = _bernoulli(self.h1_probabilities(v, h2))
        activation = self.visible_activation(h1)
        v = self.layout.sample(activation)[0]
        h2 = _bernoulli(self.h2_probabilities(h1))
        return v, h1, h2, activation

    def start_chains(self, n: int, mean_field_steps: int) -> tuple:
        activation = self.start_activation.expand(n, -1).clone()
        v = self.layout.sample(activation)[0]
        mu1, mu2 = self.mean_field(v, mean_field_steps)
        return v, _bernoulli(mu1), _bernoulli(mu2), activation

    def pseudo_log_likelihood(self, v: torch.Tensor, mean_field_steps: int) -> torch.Tensor:
        """PLL of v under the RBM over (v, h1) with h2 fixed at its mean-field value: the
        DBM's own PLL needs a sum over h2, which has no closed form. (B,)."""
        _, mu2 = self.mean_field(v, mean_field_steps)
        hidden_bias = self.hidden_bias1 + mu2 @ self.weight2.T  # (B, H1)
        return pseudo_log_likelihood(v, self.weight1, self.visible_bias, hidden_bias, self.layout)


# -- hyperparameters -----------------------------------------------------------------------
class MachineParams(Params):
    """Training and sampling settings shared by the table and image generators."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(100, ge=1)
    # Per-row-mean gradients with momentum: a step of 0.05 is Hinton's guide's range for
    # binary units; gaussian visible units want about ten times less (set it lower).
    learning_rate: float = Field(0.05, gt=0)
    # Momentum for the first 5 epochs, then `momentum`. Hinton's guide raises it to 0.9;
    # with PCD that made bars-and-stripes samples worse here (0.42 valid against 0.79 at
    # 0.5, 16 hidden units, 60 epochs), so both default to 0.5.
    initial_momentum: float = Field(0.5, ge=0, lt=1)
    momentum: float = Field(0.5, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    # Decay the learning rate linearly to 0 over training (see `_step_sizes`).
    anneal_learning_rate: bool = True
    cd_k: int = Field(1, ge=1)  # Gibbs sweeps per negative phase
    persistent: bool = True  # PCD (fantasy chains kept across updates) rather than CD
    # Sampling: n_chains chains from the data's marginals, burn_in sweeps, then one row per
    # chain every `thinning` sweeps: n rows cost burn_in + thinning * n / n_chains sweeps
    # (Adult's 26k rows: 760 sweeps, about 18 s on one CPU thread).
    n_chains: int = Field(1000, ge=1)
    burn_in: int = Field(500, ge=0)
    thinning: int = Field(10, ge=1)
    monitor_rows: int = Field(1000, ge=1)  # training rows whose PLL is logged per epoch


class _RBMShape(Params):
    n_hidden: int = Field(128, ge=1)
    # > 0: after training, estimate log Z by AIS with this many runs (discrete visible
    # units only) and record the monitor rows' mean log-likelihood as `log_likelihood_`.
    ais_runs: int = Field(0, ge=0)
    ais_betas: int = Field(5000, ge=2)


class _DBNShape(Params):
    hidden_sizes: tuple[int, ...] = Field((128, 64), min_length=1)


class _DBMShape(Params):
    hidden_sizes: tuple[int, int] = (128, 64)
    pretrain: bool = True  # initialise from greedily trained doubled-weight RBMs
    pretrain_epochs: int = Field(10, ge=1)
    mean_field_steps: int = Field(10, ge=1)


class _DBMFitting:
    """Fits `self.dbm_` on a visible matrix; shared by the table and image DBMs, which hold
    `params` (a `_DBMShape` and `MachineParams`), `layout_`, `losses_` and `_learning_rate`."""

    def _fit_dbm(self, matrix: torch.Tensor, monitor: torch.Tensor) -> None:
        params = self.params
        n1, n2 = params.hidden_sizes
        self.dbm_ = DBM(self.layout_, n1, n2).to(matrix.device)
        self.dbm_.visible_bias.copy_(base_activation(self.layout_, matrix))
        self.dbm_.start_activation.copy_(self.dbm_.visible_bias)
        if params.pretrain:
            self._pretrain(matrix, monitor)
        self._train(matrix, monitor)
        self.dbm_ = self.dbm_.cpu()

    def _pretrain(self, matrix: torch.Tensor, monitor: torch.Tensor) -> None:
        """Greedy doubled-weight RBMs (sec. 3.1): the bottom one sees v twice going up, the
        top one h1 twice coming down, so that in the DBM, where h1 hears both v and h2, the
        input is not counted twice. c1 is the mean of the two RBMs' biases for h1."""
        params = self.params
        n1, n2 = params.hidden_sizes
        device = matrix.device
        settings = TrainingSettings(params, params.pretrain_epochs, self._learning_rate())
        bottom = RBM(self.layout_, n1, up_scale=2.0).to(device)
        losses = train_rbm(bottom, matrix, settings, monitor, desc="pretraining dbm 1")
        self.losses_ += _prefixed("pretrain1", losses)
        h1 = bottom.hidden_probabilities(matrix)
        top = RBM(VisibleLayout.binary(n1), n2, down_scale=2.0).to(device)
        monitor1 = bottom.hidden_probabilities(monitor)
        losses = train_rbm(top, h1, settings, monitor1, desc="pretraining dbm 2")
        self.losses_ += _prefixed("pretrain2", losses)
        self.dbm_.weight1.copy_(bottom.weight)
        self.dbm_.weight2.copy_(top.weight)
        self.dbm_.visible_bias.copy_(bottom.visible_bias)
        self.dbm_.hidden_bias1.copy_(0.5 * (bottom.hidden_bias + top.visible_bias))
        self.dbm_.hidden_bias2.copy_(top.hidden_bias)

    @torch.no_grad()
    def _train(self, matrix: torch.Tensor, monitor: torch.Tensor) -> None:
        params = self.params
        dbm, steps = self.dbm_, params.mean_field_steps
        batch_size = min(params.batch_size, len(matrix))
        chains = dbm.start_chains(batch_size, steps)  # persistent (v, h1, h2, a) particles
        velocities = [torch.zeros_like(p) for p in dbm.parameters_list()]
        n_updates = params.epochs * math.ceil(len(matrix) / batch_size)
        step_sizes = _step_sizes(self._learning_rate(), n_updates, params.anneal_learning_rate)
        for epoch in tqdm(range(params.epochs), desc="training dbm", unit="epoch", leave=False):
            momentum = params.initial_momentum if epoch < _SLOW_EPOCHS else params.momentum
            order = torch.randperm(len(matrix), device=matrix.device)
            squared_error = torch.zeros((), device=matrix.device)  # read once per epoch
            for start in range(0, len(matrix), batch_size):
                v0 = matrix[order[start : start + batch_size]]  # (B, V)
                mu1, mu2 = dbm.mean_field(v0, steps)  # data term: (B, H1), (B, H2)
                reconstruction = dbm.layout.mean(dbm.visible_activation(mu1))
                squared_error += ((v0 - reconstruction) ** 2).sum()
                for _ in range(params.cd_k):  # model term: persistent Gibbs chains
                    chains = dbm.gibbs_step(chains)
                v, h1, h2, _ = chains
                b, c = len(v0), len(v)
                gradients = (
                    v0.T @ mu1 / b - v.T @ h1 / c - params.weight_decay * dbm.weight1,
                    mu1.T @ mu2 / b - h1.T @ h2 / c - params.weight_decay * dbm.weight2,
                    v0.mean(0) - v.mean(0),
                    mu1.mean(0) - h1.mean(0),
                    mu2.mean(0) - h2.mean(0),
                )
                rate = next(step_sizes)
                for parameter, velocity, gradient in zip(
                    dbm.parameters_list(), velocities, gradients, strict=True
                ):
                    velocity.mul_(momentum).add_(rate * gradient)
                    parameter.add_(velocity)
            self.losses_.append({"reconstruction_error": float(squared_error) / len(matrix)})
            if dbm.layout.discrete:
                self.losses_[-1]["pseudo_log_likelihood"] = float(
                    dbm.pseudo_log_likelihood(monitor, steps).mean()
                )


# -- images ----------------------------------------------------------------------------
def labelled_chains(
    start: Callable[[torch.Tensor | None], tuple],
    step: Callable[[tuple], tuple],
    read: Callable[[tuple], torch.Tensor],
    n: int,
    labels: torch.Tensor | None,
    n_chains: int,
    burn_in: int,
    thinning: int,
) -> torch.Tensor:
    """n rows (n, D) read from Gibbs chains; row i comes from a chain whose label units are
    clamped to labels[i] (any chain, without labels).

    start(chain_labels (C,) or None) -> the chains' state (clamped); step: one sweep that
    keeps the clamp; read(state) -> (C, D). Each label present gets chains in proportion to
    its rows (at least one), so about n / n_chains reads serve every label.
    """
    if labels is None:
        return run_chains(start(None), step, read, n, burn_in, thinning)
    counts = torch.bincount(labels)
    chains = min(n_chains, n)
    per_label = torch.minimum((counts * chains // n).clamp(min=1), counts)  # 0 where absent
    chain_labels = torch.repeat_interleave(torch.arange(len(counts)), per_label)
    reads = int(torch.max(-(-counts // per_label.clamp(min=1))))
    state = start(chain_labels)
    for _ in range(burn_in):
        state = step(state)
    blocks = [read(state)]
    for _ in range(reads - 1):
        for _ in range(thinning):
            state = step(state)
        blocks.append(read(state))
    stacked = torch.stack(blocks)  # (reads, C, D)
    out = torch.empty(n, stacked.shape[-1], dtype=stacked.dtype)
    for label in torch.nonzero(counts).flatten().tolist():
        rows = stacked[:, chain_labels == label].reshape(-1, stacked.shape[-1])
        out[labels == label] = rows[: int(counts[label])]
    return out
