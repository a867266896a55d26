"""One contract every registered generator keeps, run with tiny hyperparameters.

Each generator is fitted once per module on the fixture table without its identifier
column (`model_frame_shared`); tests that need another table fit their own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from generators.base import Generator, seeded
from generators.data.schema import Schema, infer_schema
from generators.errors import DataError, NotFittedError
from generators.registry import TABLE_GENERATORS, load_generator

_GAN = {
    "epochs": 2,
    "batch_size": 100,  # a multiple of CTGAN's pac (10); 4 steps per epoch on 400 rows
    "embedding_dim": 16,
    "generator_dim": (32,),
    "discriminator_dim": (32,),
    "verbose": False,
}
_TVAE = {
    "epochs": 2,
    "batch_size": 100,
    "embedding_dim": 16,
    "compress_dims": (32,),
    "decompress_dims": (32,),
    "verbose": False,
}
_BOLTZMANN = {
    "epochs": 3,
    "batch_size": 50,
    "n_bins": 10,
    "n_chains": 100,
    "burn_in": 20,
    "thinning": 2,
    "monitor_rows": 100,
}

# name -> (tiny params, how closely its samples can be asked to follow the real data):
# "marginals": category shares and a numeric mean are checked against the real data, with
#   the generator's own known slack (see `_known_slack`);
# "support": only value ranges are checked. A 2-epoch GAN/VAE is far from converged, and
#   `uniform` is by design the worst case for fidelity.
# A generator added to the registry must be added here (see the first test).
TINY: dict[str, tuple[dict[str, Any], str]] = {
    "gaussian_copula": ({"default_distribution": "norm"}, "marginals"),
    "ctgan": (_GAN, "support"),
    "copulagan": ({**_GAN, "default_distribution": "norm"}, "support"),
    "tvae": (_TVAE, "support"),
    "copy": ({}, "marginals"),
    "uniform": ({}, "support"),
    "vae": ({"epochs": 3, "batch_size": 100, "latent_dim": 8, "hidden_dims": (32,)}, "support"),
    # Our GAN, 2 epochs: far from converged, so support only (see tests/generators/test_gan.py).
    "gan": (
        {
            "epochs": 2,
            "batch_size": 100,
            "embedding_dim": 16,
            "generator_dim": (32,),
            "discriminator_dim": (32,),
        },
        "support",
    ),
    # The GMM's category shares are exact up to its smoothing, but its numeric mean is only
    # close (a mixture's normal scores decoded through the quantiles): support, plus
    # tests/generators/test_gmm.py.
    "gmm": ({"max_components": 4}, "support"),
    # 3 epochs: support only; marginals, dependencies, point masses, nulls and datetimes are
    # checked in tests/generators/test_autoregressive.py.
    "autoregressive": (
        {"epochs": 3, "batch_size": 100, "width": 16, "n_bins": 10},
        "support",
    ),
    # Boltzmann machines, a few epochs and short chains: support only; marginals and
    # dependencies are checked in tests/generators/test_boltzmann.py.
    "rbm": ({**_BOLTZMANN, "n_hidden": 16}, "support"),
    "dbn": ({**_BOLTZMANN, "hidden_sizes": (16, 8)}, "support"),
    "dbm": ({**_BOLTZMANN, "hidden_sizes": (16, 8), "pretrain_epochs": 2}, "support"),
}
NAMES = sorted(TABLE_GENERATORS)
FIT_SEED = 3


def make(name: str) -> Generator:
    if name not in TINY:
        pytest.fail(f"generator '{name}' is registered but has no entry in TINY; add one")
    return TABLE_GENERATORS[name](device="cpu", **TINY[name][0])


@dataclass
class Fitted:
    name: str
    generator: Generator
    returned: Any
    frame: pd.DataFrame
    schema: Schema


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, model_frame_shared: pd.DataFrame, model_schema: Schema) -> Fitted:
    generator = make(request.param)
    returned = generator.fit(model_frame_shared, model_schema, seed=FIT_SEED)
    return Fitted(request.param, generator, returned, model_frame_shared, model_schema)


def test_every_registered_generator_has_tiny_params() -> None:
    assert sorted(TINY) == NAMES, "keep TINY in step with generators.registry.TABLE_GENERATORS"


@pytest.mark.parametrize("name", NAMES)
def test_sample_and_save_before_fit_are_not_fitted_errors(name: str, tmp_path) -> None:
    generator = make(name)
    with pytest.raises(NotFittedError, match=name):
        generator.sample(5, seed=0)
    with pytest.raises(NotFittedError, match=name):
        generator.save(tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_fit_returns_self(fitted: Fitted) -> None:
    assert fitted.returned is fitted.generator
    assert fitted.generator.schema_ == fitted.schema


@pytest.mark.parametrize("rows", [1, 137])
def test_sample_has_exactly_the_schema_columns_order_and_dtypes(fitted: Fitted, rows: int) -> None:
    sample = fitted.generator.sample(rows, seed=1)
    expected_dtypes = fitted.schema.conform(fitted.frame).dtypes
    assert len(sample) == rows
    assert list(sample.columns) == fitted.schema.names
    assert sample.dtypes.equals(expected_dtypes)
    assert [str(t) for t in sample.dtypes] == [c.dtype for c in fitted.schema.columns]
    assert sample.index.equals(pd.RangeIndex(rows))


def test_same_seed_gives_an_identical_frame(fitted: Fitted) -> None:
    first = fitted.generator.sample(200, seed=11)
    second = fitted.generator.sample(200, seed=11)
    pd.testing.assert_frame_equal(first, second)


def test_different_seeds_give_different_frames(fitted: Fitted) -> None:
    first = fitted.generator.sample(200, seed=11)
    other = fitted.generator.sample(200, seed=12)
    assert not first.equals(other)
    # Not merely a reshuffle of the same rows: the draws themselves differ.
    assert (
        not first["income"]
        .sort_values()
        .reset_index(drop=True)
        .equals(other["income"].sort_values().reset_index(drop=True))
    )


@pytest.mark.parametrize("name", NAMES)
def test_refitting_with_the_same_seed_gives_identical_samples(
    name: str, model_frame_shared: pd.DataFrame, model_schema: Schema
) -> None:
    # Two fresh fits (not the shared one, whose sampling history could differ); half the
    # table is enough for this property and halves the training time.
    half = model_frame_shared.head(len(model_frame_shared) // 2)
    first = make(name).fit(half, model_schema, seed=FIT_SEED + 1)
    second = make(name).fit(half, model_schema, seed=FIT_SEED + 1)
    pd.testing.assert_frame_equal(first.sample(150, seed=4), second.sample(150, seed=4))
    assert first.losses_ == second.losses_


def test_save_load_round_trip_gives_identical_samples(fitted: Fitted, tmp_path) -> None:
    original = fitted.generator
    original.save(tmp_path / "g")
    # Saved by this test: SDV's pickles may load (safe loading is test_safe_load's).
    loaded = load_generator(tmp_path / "g", allow_pickle=True)
    assert type(loaded) is type(original)
    assert loaded.params == original.params
    assert loaded.schema_ == original.schema_
    assert loaded.schema_.arrow_schema.equals(original.schema_.arrow_schema)
    assert loaded.losses_ == original.losses_
    pd.testing.assert_frame_equal(loaded.sample(120, seed=9), original.sample(120, seed=9))


def test_a_model_saved_on_a_gpu_worker_samples_the_same_rows_without_one(
    fitted: Fitted, tmp_path, monkeypatch
) -> None:
    # generator.json records device 'cuda' when a config asked for it; a CPU-only host that
    # serves the model must still load it (state is saved as CPU tensors).
    fitted.generator.save(tmp_path / "g")
    meta_file = tmp_path / "g" / "generator.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "device": "cuda"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = load_generator(tmp_path / "g", allow_pickle=True)
    pd.testing.assert_frame_equal(loaded.sample(50, seed=4), fitted.generator.sample(50, seed=4))


@pytest.mark.parametrize("name", NAMES)
def test_id_columns_are_reissued_fresh_and_unique(
    name: str, mixed_frame_shared: pd.DataFrame, mixed_schema: Schema
) -> None:
    assert mixed_schema["customer_id"].kind == "id"  # precondition
    generator = make(name).fit(mixed_frame_shared, mixed_schema, seed=FIT_SEED)
    rows = 300
    sample = generator.sample(rows, seed=2)
    assert list(sample.columns) == mixed_schema.names
    ids = sample["customer_id"]
    assert str(ids.dtype) == "Int64"
    assert ids.notna().all()
    assert ids.is_unique
    assert not set(ids) & set(mixed_frame_shared["customer_id"])
    # A second draw (another seed) must not re-issue a real id either.
    again = generator.sample(rows, seed=3)["customer_id"]
    assert not set(again) & set(mixed_frame_shared["customer_id"])


@pytest.mark.parametrize("rows", [0, -5, 2.5])
def test_sample_rows_must_be_a_positive_integer(fitted: Fitted, rows) -> None:
    with pytest.raises(DataError, match="sample.rows"):
        fitted.generator.sample(rows, seed=0)


@pytest.mark.parametrize("name", NAMES)
def test_a_text_column_is_refused_at_fit(name: str, model_frame_shared: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    words = np.array(["late", "parcel", "refund", "never", "arrived", "again", "please", "call"])
    frame = model_frame_shared.copy()
    frame["comment"] = pd.array(
        [" ".join(rng.choice(words, size=7)) + f" #{i}" for i in range(len(frame))],
        dtype="string",
    )
    schema = infer_schema(frame)
    assert schema["comment"].kind == "text"  # precondition
    generator = make(name)
    with pytest.raises(DataError, match="comment"):
        generator.fit(frame, schema, seed=0)
    assert generator.schema_ is None  # nothing half-fitted is left behind
    with pytest.raises(NotFittedError):
        generator.sample(5, seed=0)


def _shares(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), "<NA>").value_counts(normalize=True)


def test_samples_stay_within_the_real_support(fitted: Fitted) -> None:
    """Every generator: categories come from the real ones, numbers from the real range.

    `conform` would silently repair a model that invents categories or overshoots ranges,
    so the model's own output (`_sample`, before conform) is checked too.
    """
    schema = fitted.schema
    rows = 500
    sample = fitted.generator.sample(rows, seed=21)
    with seeded(21):
        raw = fitted.generator._sample(rows)
    for output in (sample, raw):
        for column in schema.columns:
            values = output[column.name].dropna()
            if column.kind == "categorical":
                assert set(values.astype(str)) <= set(column.categories), column.name
                assert values.nunique() >= 2, column.name  # not collapsed to one category
            elif column.kind == "numeric":
                numbers = values.astype(float)
                assert numbers.min() >= column.minimum, column.name
                assert numbers.max() <= column.maximum, column.name
                assert numbers.std() > 0, column.name
            elif column.kind == "datetime":
                moments = pd.to_datetime(values)
                assert moments.min() >= pd.Timestamp(column.minimum), column.name
                assert moments.max() <= pd.Timestamp(column.maximum), column.name
            elif column.kind == "boolean":
                assert set(values) <= {True, False}, column.name
    assert not sample["region"].isna().all()


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _tail_shift(c: float) -> float:
    """E[(Z - c)+] for a standard normal Z: how far clipping at c moves its mean."""
    return math.exp(-c * c / 2.0) / math.sqrt(2.0 * math.pi) - c * (1.0 - _normal_cdf(c))


def _known_slack(name: str, numbers: pd.Series) -> tuple[float, float]:
    """(largest bias of one category's share, largest bias of the mean of `numbers`)."""
    if name == "copy":
        # Real rows drawn at random: shares and mean are unbiased; only sampling noise.
        return 0.0, 0.0
    if name == "gaussian_copula":
        # SDV encodes categories as intervals of [0, 1] (uniform overall), and
        # default_distribution="norm" models that code with a fitted normal clipped back to
        # [0, 1]; a category's share moves by at most twice the KS distance between U(0, 1)
        # and N(1/2, 1/12), about 0.083.
        grid = np.linspace(0.0, 1.0, 2001)
        ks = max(abs(_normal_cdf((x - 0.5) * math.sqrt(12.0)) - x) for x in grid)
        # A fitted normal marginal has the real mean exactly; the only bias is clipping to
        # the seen [min, max] (enforce_min_max_values): the mass beyond a bound c standard
        # deviations away moves the mean by at most std * E[(Z - c)+].
        mean, std = numbers.mean(), numbers.std()
        c_low, c_high = (mean - numbers.min()) / std, (numbers.max() - mean) / std
        return 2.0 * ks, std * max(_tail_shift(c_low), _tail_shift(c_high))
    pytest.fail(f"'{name}' is checked for marginals but has no known slack; add it here")


@pytest.mark.parametrize("name", [n for n in NAMES if TINY.get(n, ({}, ""))[1] == "marginals"])
def test_marginals_follow_the_real_data(
    name: str, model_frame_shared: pd.DataFrame, model_schema: Schema
) -> None:
    frame = model_frame_shared
    generator = make(name).fit(frame, model_schema, seed=FIT_SEED)
    n = 4000
    sample = generator.sample(n, seed=5)

    # Category shares (missing counted as a level). The model is fitted on exactly these
    # rows, so the real shares are the target and the noise is the sample's own: 4 standard
    # errors sqrt(p(1-p)/n), plus the generator's known slack.
    category_slack, mean_bias = _known_slack(name, frame["income"].astype(float))
    real, synthetic = _shares(frame["region"]), _shares(sample["region"])
    for level, p in real.items():
        q = synthetic.get(level, 0.0)
        tolerance = 4.0 * math.sqrt(p * (1.0 - p) / n) + category_slack
        assert abs(q - p) <= tolerance, (level, p, q, tolerance)
    assert set(synthetic.index) <= set(real.index)

    # Numeric mean: 4 standard errors of the sample mean, std/sqrt(n), plus the known bias.
    income = frame["income"].astype(float)
    tolerance = 4.0 * income.std() / math.sqrt(n) + mean_bias
    mean = income.mean()
    synthetic_mean = sample["income"].astype(float).mean()
    assert abs(synthetic_mean - mean) <= tolerance, (synthetic_mean, mean, tolerance)
