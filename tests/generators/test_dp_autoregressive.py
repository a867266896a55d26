"""DP-SGD for the autoregressive generator, and its encoder's statistics under DP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.base import DPBudget
from generators.data.schema import infer_schema, normalize_dtypes
from generators.data.values import MISSING
from generators.errors import ConfigError
from generators.table.autoregressive import AutoregressiveGenerator
from generators.table.encoding import TokenEncoder, dp_categories, fit_private_token_encoder

TINY = {"epochs": 2, "batch_size": 64, "width": 8}
SEEDS = range(20)


@pytest.fixture(scope="module")
def dp_fitted(model_frame_shared, model_schema) -> AutoregressiveGenerator:
    generator = AutoregressiveGenerator(device="cpu", **TINY)
    return generator.fit(model_frame_shared, model_schema, seed=0, dp=DPBudget(epsilon=3.0))


def test_dp_training_spends_at_most_the_budget_and_records_how(dp_fitted) -> None:
    details = dp_fitted.dp_details_
    # make_private_with_epsilon calibrates the noise to spend the SGD share, not far less.
    assert 0.9 * 3.0 <= dp_fitted.epsilon_spent_ <= 3.0 + 1e-9
    parts = details["epsilon_encoder"] + details["epsilon_marginals"] + details["epsilon_sgd"]
    assert parts == pytest.approx(dp_fitted.epsilon_spent_)
    # default encoder_share 0.1: half for the encoder's statistics, half for the marginals
    assert details["epsilon_encoder"] == details["epsilon_marginals"] == pytest.approx(0.15)
    assert details["delta_encoder"] + details["delta_sgd"] <= 1e-5 * (1 + 1e-9)
    assert details["unit"] == "row"
    assert details["sampling"].startswith("Poisson")
    # Only epsilon per epoch, rising to what was spent: no raw loss of the private rows.
    epsilons = [epoch["epsilon"] for epoch in dp_fitted.losses_]
    assert [set(epoch) for epoch in dp_fitted.losses_] == [{"epsilon"}] * TINY["epochs"]
    assert epsilons == sorted(epsilons) and epsilons[-1] == pytest.approx(dp_fitted.epsilon_spent_)


def test_each_column_says_where_its_statistics_came_from(dp_fitted, model_schema) -> None:
    columns = dp_fitted.dp_details_["columns"]
    assert columns == {
        "age": "range: dp, bins: dp",
        "income": "range: dp, bins: dp",
        "region": "categories: dp",
        "member": "categories: public",
        "signup": "range: dp, bins: dp",
    }


def test_a_dp_model_saves_loads_and_samples_the_same(dp_fitted, tmp_path) -> None:
    dp_fitted.save(tmp_path / "model")
    loaded = AutoregressiveGenerator.load(tmp_path / "model")
    assert loaded.epsilon_spent_ == dp_fitted.epsilon_spent_
    assert loaded.dp_details_ == dp_fitted.dp_details_
    pd.testing.assert_frame_equal(loaded.sample(200, seed=3), dp_fitted.sample(200, seed=3))


def test_a_dp_fit_is_reproducible_from_its_seed(dp_fitted, model_frame_shared, model_schema):
    again = AutoregressiveGenerator(device="cpu", **TINY).fit(
        model_frame_shared, model_schema, seed=0, dp=DPBudget(epsilon=3.0)
    )
    assert again.encoder_.columns == dp_fitted.encoder_.columns
    pd.testing.assert_frame_equal(again.sample(200, seed=3), dp_fitted.sample(200, seed=3))


def test_a_dp_sample_has_the_training_columns_and_types(dp_fitted, model_frame_shared) -> None:
    sample = dp_fitted.sample(300, seed=1)
    assert list(sample.columns) == list(model_frame_shared.columns)
    assert dict(sample.dtypes) == dict(model_frame_shared.dtypes)


def _rare_frame(rows: int, seed: int) -> pd.DataFrame:
    """600 rows: `city` with two common values and one held by a single row; `amount`, an
    integer column whose one extreme value (10**6) only one row holds."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["oslo", "lima"], size=rows, p=[0.6, 0.4]).astype(object)
    city[0] = "only-one-person-lives-here"
    amount = rng.integers(0, 50, rows)
    amount[1] = 10**6
    return normalize_dtypes(pd.DataFrame({"city": city, "amount": amount}))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_category_or_value_held_by_one_row_is_not_learned(seed) -> None:
    frame = _rare_frame(600, seed)
    encoder = TokenEncoder(20, 10, 1)
    rng = np.random.default_rng(seed)
    spent = fit_private_token_encoder(encoder, frame, infer_schema(frame), 1.0, 1e-6, {}, rng)
    city, amount = encoder.columns
    assert set(city["categories"]) == {MISSING, "oslo", "lima"}
    assert 10**6 not in amount["exact"] and max(amount["edges"]) < 10**6
    assert spent["epsilon"] == pytest.approx(1.0) and spent["delta"] == pytest.approx(1e-6)


def test_the_category_threshold_keeps_a_single_row_with_tiny_probability() -> None:
    """dp_categories' threshold makes a one-row category pass with probability delta: at
    delta = 0.2 (so it shows), about 20% of 2,000 draws; a 300-row one always passes."""
    labels = pd.Series(["alone"] + ["many"] * 300)
    kept = [
        "alone" in dp_categories(labels, 1.0, 0.2, np.random.default_rng(seed))
        for seed in range(2000)
    ]
    # binomial(2000, 0.2): mean 400, sd 17.9; 5 sd either side
    assert 311 <= sum(kept) <= 489
    assert all(
        "many" in dp_categories(labels, 1.0, 0.2, np.random.default_rng(seed)) for seed in range(50)
    )


def test_a_public_domain_is_used_as_given_and_costs_the_categories_nothing() -> None:
    frame = _rare_frame(600, 0)
    encoder = TokenEncoder(20, 10, 1)
    domain = DPBudget(
        epsilon=1,
        public_domain={
            "city": {"categories": ["oslo", "lima", "bergen"]},
            "amount": {"bounds": [0, 60]},
        },
    ).public_domain
    spent = fit_private_token_encoder(
        encoder, frame, infer_schema(frame), 1.0, 1e-6, domain, np.random.default_rng(0)
    )
    city, amount = encoder.columns
    assert city["categories"] == sorted([MISSING, "oslo", "lima", "bergen"])
    assert amount["edges"][0] == 0 and amount["edges"][-1] == 60
    # only amount's bins spend: all of epsilon, and no delta (no thresholded categories)
    assert spent == {
        "epsilon": pytest.approx(1.0),
        "delta": 0.0,
        "columns": {"city": "categories: public", "amount": "range: public, bins: dp"},
    }
    # A value outside the public categories encodes as missing, one past the bounds is clipped.
    tokens = encoder.transform(frame.iloc[:2])
    assert encoder.inverse(tokens, np.random.default_rng(0))["city"].isna().tolist() == [
        True,
        False,
    ]
    decoded = encoder.inverse(tokens, np.random.default_rng(0))["amount"]
    assert decoded.max() <= 60


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ({"town": {"categories": ["x"]}}, "privacy.dp.public_domain.town: not a column"),
        ({"city": {"bounds": [0, 1]}}, "privacy.dp.public_domain.city.bounds: column 'city' is"),
        ({"amount": {"categories": ["1"]}}, "public_domain.amount.categories: column 'amount'"),
        ({"amount": {"bounds": ["2020-01-01", "2021-01-01"]}}, "amount.bounds: column 'amount'"),
    ],
)
def test_a_public_domain_that_does_not_fit_the_table_names_the_key(domain, message) -> None:
    frame = _rare_frame(100, 0)
    generator = AutoregressiveGenerator(device="cpu", **TINY)
    with pytest.raises(ConfigError, match=message):
        generator.fit(frame, infer_schema(frame), dp=DPBudget(epsilon=1, public_domain=domain))


def test_without_dp_nothing_changes(model_frame_shared, model_schema) -> None:
    """The same seed without a budget gives the same model as before DP existed: no DP
    details, the data-fitted encoder (not the private one) and the usual losses."""
    generator = AutoregressiveGenerator(device="cpu", **TINY).fit(
        model_frame_shared, model_schema, seed=0
    )
    plain = TokenEncoder(50, 10, 20, True).fit(model_frame_shared, model_schema)
    assert generator.dp_details_ is None
    assert generator.encoder_.columns == plain.columns
    assert set(generator.losses_[0]) == {"train", "validation"}
