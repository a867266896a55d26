"""Conditional sampling (native and by rejection), the config forms of conditions, class
rebalancing plans and the merge of real and synthetic rows.

Tolerance: the native autoregressive path must draw from the same conditional as the
model's unconditioned draws filtered to the condition; a share p compared between n1 and
n2 draws may differ by sampling noise, four standard errors sqrt(p (1 - p) (1/n1 + 1/n2)).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import infer_schema, normalize_dtypes
from generators.errors import ConfigError, DataError
from generators.sampling.augment import AugmentConfig, merge_augmented, rebalance_plan
from generators.sampling.conditions import Condition, parse_conditions, sample_conditioned
from generators.sampling.constraints import Constraints
from generators.table.autoregressive import AutoregressiveGenerator
from generators.table.gan import ConditionalGANGenerator
from generators.table.gmm import GaussianMixtureGenerator
from generators.table.sdv import GaussianCopulaGenerator
from tests.conftest import read_adult

ADULT_ROWS = 3000
TINY_AR = {"epochs": 4, "batch_size": 256, "width": 16, "n_bins": 10}


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    frame = read_adult(ADULT_ROWS)
    return normalize_dtypes(frame)


@pytest.fixture(scope="module")
def autoregressive(adult) -> AutoregressiveGenerator:
    generator = AutoregressiveGenerator(device="cpu", first_columns=["income"], **TINY_AR)
    return generator.fit(adult, infer_schema(adult), seed=0)


@pytest.fixture(scope="module")
def gmm(mixed_frame_shared, mixed_schema) -> GaussianMixtureGenerator:
    generator = GaussianMixtureGenerator(device="cpu", max_components=4)
    return generator.fit(mixed_frame_shared, mixed_schema, seed=0)


# -- native: the autoregressive model's fixed prefix ------------------------------------------
def test_first_columns_lead_the_model_order(autoregressive) -> None:
    assert autoregressive.encoder_.names[0] == "income"
    assert autoregressive._conditions_natively({"income": ">50K"})
    assert not autoregressive._conditions_natively({"sex": "Female"})


def test_native_conditioning_returns_only_the_condition(autoregressive) -> None:
    rows = autoregressive.sample_conditioned(2000, {"income": ">50K"}, seed=1)
    assert len(rows) == 2000
    assert (rows["income"] == ">50K").all()
    assert rows.dtypes.equals(autoregressive.sample(5, seed=0).dtypes)
    again = autoregressive.sample_conditioned(2000, {"income": ">50K"}, seed=1)
    pd.testing.assert_frame_equal(rows, again)


def test_native_conditioning_draws_the_models_own_conditional(autoregressive) -> None:
    """Fixing the prefix is exact: the share of men among conditioned rows equals their
    share among the model's unconditioned rows that happen to have income >50K."""
    conditioned = autoregressive.sample_conditioned(4000, {"income": ">50K"}, seed=2)
    free = autoregressive.sample(20_000, seed=3)
    filtered = free[free["income"] == ">50K"]
    assert len(filtered) > 1000
    p = float((filtered["sex"] == "Male").mean())
    q = float((conditioned["sex"] == "Male").mean())
    tolerance = 4 * math.sqrt(p * (1 - p) * (1 / len(filtered) + 1 / len(conditioned)))
    assert abs(p - q) <= tolerance, (p, q, tolerance)


def test_a_saved_model_keeps_its_order_and_conditions_alike(autoregressive, tmp_path) -> None:
    autoregressive.save(tmp_path / "model")
    loaded = AutoregressiveGenerator.load(tmp_path / "model")
    pd.testing.assert_frame_equal(
        loaded.sample_conditioned(100, {"income": "<=50K"}, seed=8),
        autoregressive.sample_conditioned(100, {"income": "<=50K"}, seed=8),
    )


def test_first_columns_must_be_modelled_columns(mixed_frame_shared, mixed_schema) -> None:
    for first, message in (
        (["regoin"], "'regoin'"),
        (["age", "age"], "twice"),
        (["customer_id"], "customer_id"),
    ):
        generator = AutoregressiveGenerator(device="cpu", first_columns=first, **TINY_AR)
        with pytest.raises(ConfigError, match=message):
            generator.fit(mixed_frame_shared, mixed_schema)


def test_a_condition_off_the_prefix_falls_back_to_rejection(autoregressive) -> None:
    rows = autoregressive.sample_conditioned(300, {"sex": "Female", "race": "Black"}, seed=4)
    assert len(rows) == 300
    assert ((rows["sex"] == "Female") & (rows["race"] == "Black")).all()


# -- rejection: the GMM -----------------------------------------------------------------------
def test_rejection_on_a_generator_without_native_conditioning(gmm) -> None:
    assert not gmm.supports_conditions
    rows = gmm.sample_conditioned(200, {"region": "west", "member": True}, seed=5)
    assert len(rows) == 200
    assert ((rows["region"] == "west") & rows["member"]).all()
    assert rows["customer_id"].is_unique  # ids re-issued over all rounds
    assert rows["customer_id"].min() == 1400  # past the largest real id (1399)
    pd.testing.assert_frame_equal(
        rows, gmm.sample_conditioned(200, {"region": "west", "member": True}, seed=5)
    )


def test_an_unreachable_condition_names_itself_and_its_rate(gmm) -> None:
    """A continuous column never produces one exact value."""
    with pytest.raises(DataError) as error:
        gmm.sample_conditioned(100, {"income": 1234.5678}, seed=0)
    message = str(error.value)
    assert message.startswith("`income = 1234.5678` was reached by 0 of 10,000 draws")
    assert "0.000%" in message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"regoin": "west"}, "column 'regoin' is not in the table"),
        ({"region": "mars"}, "region = 'mars': this value never occurs in the training data"),
        ({"customer_id": 1000}, "column 'customer_id' is id"),
        ({"member": "yes"}, "give true or false"),
        ({"age": 200}, "outside the range seen"),
        ({"region": None}, "exact values, not missing"),
    ],
)
def test_unknown_columns_and_values_are_refused(gmm, values, message) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        gmm.sample_conditioned(10, values, seed=0)


# -- native: the gan's conditional vector ------------------------------------------------------
@pytest.fixture(scope="module")
def gan_and_frame():
    """A table where the category decides the number: 'low' rows near 0, 'high' rows
    near 10 ('high' only 15% of rows, so a condition on it is a minority class)."""
    rng = np.random.default_rng(3)
    kind = np.where(rng.random(800) < 0.15, "high", "low")
    value = np.where(kind == "high", 10.0, 0.0) + rng.normal(0, 1, 800)
    frame = normalize_dtypes(pd.DataFrame({"kind": kind, "value": value}))
    generator = ConditionalGANGenerator(
        device="cpu",
        epochs=150,
        batch_size=100,
        embedding_dim=16,
        generator_dim=(64,),
        discriminator_dim=(64,),
    )
    return generator.fit(frame, infer_schema(frame), seed=0), frame


def test_gan_conditions_one_category_natively(gan_and_frame, monkeypatch) -> None:
    generator, _ = gan_and_frame
    assert generator._conditions_natively({"kind": "high"})
    assert not generator._conditions_natively({"kind": "high", "value": 1.0})

    def no_rejection(*args, **kwargs):
        raise AssertionError("fell back to rejection")

    monkeypatch.setattr("generators.base.rejection_sample", no_rejection)
    rows = generator.sample_conditioned(300, {"kind": "high"}, seed=1)
    assert len(rows) == 300 and (rows["kind"] == "high").all()
    assert rows.equals(generator.sample_conditioned(300, {"kind": "high"}, seed=1))


def test_gan_conditioned_rows_follow_the_models_own_conditional(gan_and_frame) -> None:
    """Rows drawn with the conditional vector fixed to a category carry the numbers the
    model gives that category unconditioned (its rows filtered to the category): means
    within four standard errors of their difference. And the model has learned the table's
    dependency in the right direction ('high' above 'low')."""
    generator, _ = gan_and_frame
    free = generator.sample(4000, seed=3)
    means = {}
    for kind in ("high", "low"):
        conditioned = generator.sample_conditioned(600, {"kind": kind}, seed=2)["value"]
        filtered = free.loc[free["kind"] == kind, "value"]
        error = math.sqrt(conditioned.var() / len(conditioned) + filtered.var() / len(filtered))
        assert abs(conditioned.mean() - filtered.mean()) < 4 * error, kind
        means[kind] = conditioned.mean()
    assert means["high"] > means["low"] + 1.0, means


# -- native: SDV's Gaussian copula ------------------------------------------------------------
def test_gaussian_copula_conditions_natively(mixed_frame_shared, mixed_schema) -> None:
    generator = GaussianCopulaGenerator(default_distribution="norm")
    generator.fit(mixed_frame_shared, mixed_schema, seed=0)
    assert generator._conditions_natively({"region": "west"})
    rows = generator.sample_conditioned(150, {"region": "west", "member": False}, seed=6)
    assert len(rows) == 150
    assert ((rows["region"] == "west") & ~rows["member"]).all()
    pd.testing.assert_frame_equal(
        rows, generator.sample_conditioned(150, {"region": "west", "member": False}, seed=6)
    )


# -- several conditions, with constraints -----------------------------------------------------
def test_sample_conditioned_keeps_the_conditions_order(gmm, mixed_frame_shared, mixed_schema):
    conditions = parse_conditions(
        [{"values": {"region": "east"}, "rows": 30}, {"values": {"region": "west"}, "rows": 20}]
    )
    constraints = Constraints([{"kind": "range", "column": "age", "min": 30}])
    constraints.fit(mixed_frame_shared, mixed_schema)
    rows = sample_conditioned(gmm, conditions, seed=7, constraints=constraints)
    assert rows["region"].tolist() == ["east"] * 30 + ["west"] * 20
    assert not constraints.mask(rows).any()
    assert rows["customer_id"].is_unique
    again = sample_conditioned(gmm, conditions, seed=7, constraints=constraints)
    pd.testing.assert_frame_equal(rows, again)


def test_constraints_that_cannot_hold_name_the_condition(gmm, mixed_frame_shared, mixed_schema):
    constraints = Constraints([{"kind": "range", "column": "income", "max": 0}])
    constraints.fit(mixed_frame_shared, mixed_schema)
    conditions = [Condition(values={"region": "east"}, rows=20)]
    with pytest.raises(
        DataError,
        match=r"^`region = east`: constraints: only 0 of .*\(range\.income rejected 100\.0%",
    ):
        sample_conditioned(gmm, conditions, seed=0, constraints=constraints)


def test_parse_conditions_forms() -> None:
    assert parse_conditions(None) == []
    assert parse_conditions({"income": ">50K"}, rows=5) == [
        Condition(values={"income": ">50K"}, rows=5)
    ]
    listed = parse_conditions([{"values": {"age": 30, "member": True}, "rows": 2}])
    assert listed[0].values == {"age": 30, "member": True}
    assert listed[0].describe() == "`age = 30, member = True`"
    with pytest.raises(ConfigError, match="needs sample.rows"):
        parse_conditions({"income": ">50K"})
    with pytest.raises(ConfigError, match=r"sample.conditions\[1\].rows"):
        parse_conditions([{"values": {"a": 1}, "rows": 1}, {"values": {"a": 1}, "rows": 0}])
    with pytest.raises(ConfigError, match=r"sample.conditions\[0\].value"):
        parse_conditions([{"value": {"a": 1}, "rows": 1}])


# -- rebalancing ------------------------------------------------------------------------------
@pytest.fixture
def labels() -> pd.DataFrame:
    """90 'no', 30 'yes', 10 'maybe' and two missing labels."""
    values = ["no"] * 90 + ["yes"] * 30 + ["maybe"] * 10 + [None, None]
    return pd.DataFrame({"y": pd.array(values, dtype="string"), "x": np.arange(132)})


def _plan(frame, **config) -> dict[str, int]:
    plan = rebalance_plan(frame, "y", AugmentConfig(target="y", **config))
    return {condition.values["y"]: condition.rows for condition in plan}


def test_balance_raises_every_class_to_the_largest(labels) -> None:
    assert _plan(labels, strategy="balance") == {"maybe": 80, "yes": 60}


def test_ratio_raises_minorities_to_a_share_of_the_majority(labels) -> None:
    assert _plan(labels, strategy="ratio", ratio=0.5) == {"maybe": 35, "yes": 15}
    assert _plan(labels, strategy="ratio", ratio=0.25) == {"maybe": 13}  # yes: 30 > 22.5
    assert _plan(labels, strategy="ratio", ratio=1 / 3) == {"maybe": 20}  # yes: exactly 30


def test_counts_are_final_counts_never_negative(labels) -> None:
    assert _plan(labels, strategy="counts", counts={"yes": 100, "no": 50}) == {"yes": 70}
    with pytest.raises(DataError, match=r"class\(es\) \['perhaps'\]"):
        _plan(labels, strategy="counts", counts={"perhaps": 5})


def test_a_boolean_target_plans_boolean_values() -> None:
    frame = pd.DataFrame({"flag": pd.array([True] * 8 + [False] * 2, dtype="boolean")})
    schema = infer_schema(frame)
    plan = rebalance_plan(frame, "flag", AugmentConfig(target="flag"), schema)
    assert plan == [Condition(values={"flag": False}, rows=6)]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"target": "y", "strategy": "ratio"}, "augment: Value error, strategy 'ratio' needs"),
        ({"target": "y", "strategy": "ratio", "ratio": 2}, "augment.ratio"),
        ({"target": "y", "strategy": "counts"}, "strategy 'counts' needs counts"),
        ({"target": "y", "strategy": "even"}, "augment.strategy"),
        ({"target": "y", "merge": True, "mrege": 1}, "augment.mrege"),
        ({"strategy": "balance"}, "augment.target"),
        ({"target": "y", "ratio": 0.5}, "ratio applies to strategy 'ratio'"),
    ],
)
def test_augment_config_errors_name_the_key(config, message) -> None:
    with pytest.raises(ConfigError, match=message):
        AugmentConfig.parse(config)


def test_merge_marks_the_synthetic_rows(labels) -> None:
    synthetic = labels.iloc[:3].copy()
    merged = merge_augmented(labels, synthetic)
    assert len(merged) == len(labels) + 3
    assert str(merged["synthetic"].dtype) == "boolean"
    assert merged["synthetic"].sum() == 3 and merged["synthetic"].iloc[-3:].all()
    assert list(merged.columns) == ["y", "x", "synthetic"]
    with pytest.raises(DataError, match="already has a column named 'synthetic'"):
        merge_augmented(merged, merged)
