"""RBM, DBN and DBM: exact pseudo-likelihood and AIS against enumeration, scikit-learn's
BernoulliRBM as the oracle, a learned dependency, valid softmax groups, save/load."""

from __future__ import annotations

import gzip
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from generators.models.boltzmann import RBM, TrainingSettings, VisibleLayout, train_rbm
from generators.registry import load_generator
from generators.table.boltzmann import DBMGenerator, DBNGenerator, RBMGenerator, RBMParams

SIDE = 4  # bars-and-stripes images are SIDE x SIDE


def bars_and_stripes(rows: int, seed: int) -> np.ndarray:
    """(rows, SIDE*SIDE) 0/1: each row a random on/off pattern of whole rows or columns."""
    rng = np.random.default_rng(seed)
    lines = rng.integers(0, 2, (rows, SIDE))
    images = np.repeat(lines[:, :, None], SIDE, axis=2)  # bars
    stripes = rng.random(rows) < 0.5
    images[stripes] = images[stripes].transpose(0, 2, 1)
    return images.reshape(rows, -1).astype(np.float32)


def valid_patterns() -> set[tuple[int, ...]]:
    out = set()
    for bits in itertools.product([0, 1], repeat=SIDE):
        line = np.array(bits)
        out.add(tuple(np.repeat(line[:, None], SIDE, 1).ravel()))
        out.add(tuple(np.repeat(line[None, :], SIDE, 0).ravel()))
    return out


def read_mnist(folder, rows: int) -> np.ndarray:
    """The first `rows` t10k digits, binarised at half intensity: (rows, 784) 0/1."""
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as file:
        raw = np.frombuffer(file.read(), dtype=np.uint8, offset=16)
    return (raw.reshape(-1, 784)[:rows] > 127).astype(np.float32)


def small_rbm(layout: VisibleLayout, n_hidden: int, seed: int) -> RBM:
    torch.manual_seed(seed)
    rbm = RBM(layout, n_hidden)
    for tensor in (rbm.weight, rbm.visible_bias, rbm.hidden_bias, rbm.start_activation):
        tensor.normal_()
    return rbm


def all_states(layout: VisibleLayout) -> torch.Tensor:
    """Every valid visible vector of a small layout (one slot per group, any bernoulli bits)."""
    groups = [g for g in layout.groups]
    bits = layout.bernoulli.tolist()
    states = []
    for slots in itertools.product(*groups):
        for values in itertools.product([0.0, 1.0], repeat=len(bits)):
            v = torch.zeros(layout.n_visible)
            v[list(slots)] = 1.0
            v[bits] = torch.tensor(values)
            states.append(v)
    return torch.stack(states)


MIXED_LAYOUT = VisibleLayout(8, groups=[[0, 1, 2], [3, 4]])  # units 5, 6, 7 bernoulli


def test_pseudo_likelihood_equals_enumerated_conditionals() -> None:
    rbm = small_rbm(MIXED_LAYOUT, 3, seed=0)
    states = all_states(MIXED_LAYOUT)
    log_p = -rbm.free_energy(states)  # unnormalised log p(v)
    variables = [[0, 1, 2], [3, 4], [5], [6], [7]]
    for v, got in zip(states[:12], rbm.pseudo_log_likelihood(states[:12]), strict=True):
        expected = 0.0
        for units in variables:
            # The states that agree with v everywhere outside this variable.
            others = [u for u in range(8) if u not in units]
            same = (states[:, others] == v[others]).all(1)
            own = (states == v).all(1)
            expected += float(torch.logsumexp(log_p[own], 0) - torch.logsumexp(log_p[same], 0))
        assert float(got) == pytest.approx(expected, abs=1e-4)


def test_ais_log_partition_matches_enumeration() -> None:
    rbm = small_rbm(MIXED_LAYOUT, 4, seed=1)
    exact = float(torch.logsumexp(-rbm.free_energy(all_states(MIXED_LAYOUT)), 0))
    torch.manual_seed(2)
    estimate, relative_error = rbm.log_partition_ais(n_runs=200, n_betas=2000)
    # log of a mean of importance weights: its standard error is about the weights'
    # relative standard error; 4 of them, and a floor for the estimate's own bias.
    assert abs(estimate - exact) <= 4 * relative_error + 0.02, (estimate, exact, relative_error)


def test_softmax_groups_always_give_valid_one_hot_rows() -> None:
    layout = VisibleLayout(12, groups=[[0, 1, 2, 3, 4], [5], [6, 7], [8, 9, 10]])  # 11: bit
    torch.manual_seed(0)
    # Extreme and ordinary activations: saturated softmaxes must still pick one slot.
    activation = torch.cat([torch.randn(500, 12) * 50, torch.randn(500, 12)])
    v, choice = layout.sample(activation)
    for g, units in enumerate(layout.groups):
        assert torch.equal(v[:, units].sum(1), torch.ones(len(v))), units
        assert torch.equal(v[:, units].argmax(1), choice[:, g])
    assert set(v[:, 11].tolist()) <= {0.0, 1.0}


def test_sampled_table_tokens_are_one_per_column(model_frame_shared, model_schema) -> None:
    generator = RBMGenerator(device="cpu", epochs=2, n_hidden=8, burn_in=5, n_chains=50)
    generator.fit(model_frame_shared, model_schema, seed=0)
    activation = generator.rbm_.sample_activations(300, burn_in=5, thinning=1, chains=50)
    v, _ = generator.layout_.sample(activation)
    sums = v[:, generator.layout_.group_units] * generator.layout_.group_mask
    assert torch.equal(sums.sum(-1), torch.ones(300, len(generator.layout_.groups)))


def _fit_both(data: np.ndarray, n_hidden: int, epochs: int, learning_rate: float, seed: int):
    """Our RBM and scikit-learn's on the same data, hidden size, epochs, rate and batches."""
    from sklearn.neural_network import BernoulliRBM

    batch_size = 10  # scikit-learn's default
    oracle = BernoulliRBM(
        n_components=n_hidden,
        learning_rate=learning_rate,
        batch_size=batch_size,
        n_iter=epochs,
        random_state=seed,
    ).fit(data)
    torch.manual_seed(seed)
    tensor = torch.from_numpy(data)
    ours = RBM(VisibleLayout.binary(data.shape[1]), n_hidden)
    settings = TrainingSettings(
        RBMParams(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)
    )
    train_rbm(ours, tensor, settings, tensor[:100])
    return ours, oracle


def _check_against_oracle(data: np.ndarray, n_hidden: int, epochs: int, rate: float) -> None:
    ours, oracle = _fit_both(data, n_hidden, epochs, rate, seed=0)
    tensor = torch.from_numpy(data)
    our_pll = ours.pseudo_log_likelihood(tensor).numpy()
    oracle_scores = oracle.score_samples(data)  # one random bit per row, times n_features
    tolerance = 3 * oracle_scores.std() / math.sqrt(len(data))
    assert our_pll.mean() >= oracle_scores.mean() - tolerance, (
        our_pll.mean(),
        oracle_scores.mean(),
        tolerance,
    )
    # The oracle also checks our estimator: scikit-learn's score is an unbiased one-bit
    # estimate of the exact PLL, so on its own model the two agree within its noise.
    as_ours = RBM(VisibleLayout.binary(data.shape[1]), n_hidden)
    as_ours.weight.copy_(torch.from_numpy(oracle.components_.T.copy()))
    as_ours.visible_bias.copy_(torch.from_numpy(oracle.intercept_visible_))
    as_ours.hidden_bias.copy_(torch.from_numpy(oracle.intercept_hidden_))
    exact = as_ours.pseudo_log_likelihood(tensor.double().float()).mean().item()
    assert abs(exact - oracle_scores.mean()) <= 4 * oracle_scores.std() / math.sqrt(len(data))


def test_pll_at_least_scikit_learns_on_bars_and_stripes() -> None:
    _check_against_oracle(bars_and_stripes(1000, seed=0), n_hidden=16, epochs=10, rate=0.05)


def test_pll_at_least_scikit_learns_on_binarised_mnist(shared_data) -> None:
    folder = shared_data / "mnist_t10k"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    _check_against_oracle(read_mnist(folder, 1000), n_hidden=32, epochs=5, rate=0.05)


def test_rbm_learns_bars_and_stripes() -> None:
    data = torch.from_numpy(bars_and_stripes(1000, seed=1))
    torch.manual_seed(0)
    rbm = RBM(VisibleLayout.binary(SIDE * SIDE), 32)
    params = RBMParams(epochs=60, batch_size=20, learning_rate=0.1)
    train_rbm(rbm, data, TrainingSettings(params), data[:200])
    samples = rbm.layout.sample(rbm.sample_activations(2000, burn_in=200, thinning=5, chains=400))
    valid = valid_patterns()
    share = np.mean([tuple(row) in valid for row in samples[0].int().tolist()])
    # Chance: the probability of a valid image when pixels are independent with the
    # data's own pixel frequencies (what an RBM without hidden units would learn).
    p = data.mean(0).numpy()
    chance = sum(float(np.prod(np.where(np.array(v) == 1, p, 1 - p))) for v in valid)
    assert chance < 0.01
    assert share >= 0.5, (share, chance)


def _assert_marginals_close(sample: pd.DataFrame, real: pd.DataFrame, chains: int) -> None:
    """Category shares within 3 standard errors of a real sample of the training size
    (the model learns from that many rows) plus 3 of the chains' own sampling noise."""
    for column in ("region", "member"):
        real_shares = real[column].astype(object).fillna("<NA>").value_counts(normalize=True)
        shares = sample[column].astype(object).fillna("<NA>").value_counts(normalize=True)
        for level, p in real_shares.items():
            se = math.sqrt(p * (1 - p))
            tolerance = 3 * se / math.sqrt(len(real)) + 3 * se / math.sqrt(chains)
            assert abs(shares.get(level, 0.0) - p) <= tolerance, (column, level, p, shares)
    p = float(real["age"].isna().mean())
    se = math.sqrt(p * (1 - p))
    tolerance = 3 * se / math.sqrt(len(real)) + 3 * se / math.sqrt(chains)
    assert abs(float(sample["age"].isna().mean()) - p) <= tolerance


_SMALL = {"batch_size": 10, "n_bins": 10, "n_chains": 500, "burn_in": 100, "thinning": 5}


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (RBMGenerator, {"epochs": 40, "n_hidden": 32, "learning_rate": 0.1}),
        (DBNGenerator, {"epochs": 40, "hidden_sizes": (32, 16), "learning_rate": 0.1}),
        (
            DBMGenerator,
            {"epochs": 20, "hidden_sizes": (32, 16), "pretrain_epochs": 20, "learning_rate": 0.1},
        ),
    ],
    ids=["rbm", "dbn", "dbm"],
)
def test_samples_follow_marginals_and_the_age_income_link(
    cls, params, model_frame_shared, model_schema
) -> None:
    generator = cls(device="cpu", **_SMALL, **params).fit(model_frame_shared, model_schema, seed=0)
    sample = generator.sample(2000, seed=1)
    _assert_marginals_close(sample, model_frame_shared, _SMALL["n_chains"])
    # income = 1000 + 50 age + noise (correlation 0.94): a model that learned nothing
    # between columns gives a correlation within a few 1/sqrt(n) of 0.
    pair = sample[["age", "income"]].dropna().astype(float)
    correlation = pair.corr().iloc[0, 1]
    assert correlation > 10 / math.sqrt(len(pair)), correlation
    losses = pd.DataFrame(generator.losses_)
    assert losses.notna().any().all() and np.isfinite(losses.fillna(0).to_numpy()).all()


def test_losses_are_logged_per_epoch_and_improve(model_frame_shared, model_schema) -> None:
    generator = RBMGenerator(device="cpu", epochs=30, n_hidden=32, **_SMALL, learning_rate=0.1)
    generator.fit(model_frame_shared, model_schema, seed=0)
    assert len(generator.losses_) == 30
    first, last = generator.losses_[0], generator.losses_[-1]
    assert set(first) == {"reconstruction_error", "pseudo_log_likelihood"}
    assert last["pseudo_log_likelihood"] > first["pseudo_log_likelihood"]
    assert last["reconstruction_error"] < first["reconstruction_error"]


def test_gaussian_units_and_ais_survive_save_and_load(
    model_frame_shared, model_schema, tmp_path
) -> None:
    gaussian = RBMGenerator(
        device="cpu", numeric_encoding="gaussian", learning_rate=0.01, epochs=3, **_SMALL
    ).fit(model_frame_shared, model_schema, seed=0)
    assert gaussian.layout_.has_gaussian
    with_ais = RBMGenerator(device="cpu", epochs=3, ais_runs=20, ais_betas=200, **_SMALL).fit(
        model_frame_shared, model_schema, seed=0
    )
    assert math.isfinite(with_ais.log_z_) and with_ais.log_likelihood_ < 0
    for i, generator in enumerate((gaussian, with_ais)):
        generator.save(tmp_path / str(i))
        loaded = load_generator(tmp_path / str(i))
        assert loaded.log_z_ == generator.log_z_
        pd.testing.assert_frame_equal(loaded.sample(300, seed=4), generator.sample(300, seed=4))
