"""The anonymeter-style privacy attacks (validation.attacks) on a seeded table built in code.

Two synthetic tables bracket every attack: a copy of the training rows (everything leaks)
and an independent draw from the same distribution (nothing leaks, so the risk's 95%
interval should reach 0). The table is benchmarks/anonymeter_check.py's, so the figures
here are the ones that script compares with anonymeter itself.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import Schema, infer_schema
from generators.data.split import split_holdout
from generators.errors import DataError
from validation.attacks import (
    RiskEstimate,
    SuccessRate,
    _singles_out_in_subset,
    inference_risk,
    linkability_risk,
    residual_success,
    singling_out_risk,
    success_rate,
)

_SOURCE = Path(__file__).resolve().parents[2] / "benchmarks" / "anonymeter_check.py"
_spec = importlib.util.spec_from_file_location("_synthpipe_anonymeter_check", _SOURCE)
_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_check)
make_table = _check.make_table

SEED = 7
HOLDOUT_FRACTION = 0.25
AUX = (["age", "region", "member", "signup"], ["income", "hours", "education"])


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Schema]:
    """(train, holdout, independent synthetic, schema) from 2,000 seeded rows."""
    frame = make_table(rows=2000, seed=SEED)
    schema = infer_schema(frame)
    train, holdout = split_holdout(frame, HOLDOUT_FRACTION, seed=SEED)
    independent = make_table(rows=len(train), seed=SEED + 1000)  # same law, other people
    return train, holdout, independent, schema


def _all_attacks(train, holdout, synthetic, schema, seed=SEED) -> dict[str, RiskEstimate]:
    with warnings.catch_warnings():
        # "Attack is as good or worse as baseline": expected when nothing leaks.
        warnings.simplefilter("ignore")
        return {
            "singling_out_univariate": singling_out_risk(
                train, holdout, synthetic, schema, mode="univariate", seed=seed
            ),
            "singling_out_multivariate": singling_out_risk(
                train, holdout, synthetic, schema, mode="multivariate", seed=seed
            ),
            "linkability": linkability_risk(
                train, holdout, synthetic, schema, aux_columns=AUX, seed=seed
            ),
            "inference_categorical": inference_risk(
                train, holdout, synthetic, schema, secret="occupation", seed=seed
            ),
            "inference_numeric": inference_risk(
                train, holdout, synthetic, schema, secret="income", seed=seed
            ),
        }


@pytest.fixture(scope="module")
def copy_risks(data) -> dict[str, RiskEstimate]:
    train, holdout, _, schema = data
    return _all_attacks(train, holdout, train.copy(), schema)


@pytest.fixture(scope="module")
def independent_risks(data) -> dict[str, RiskEstimate]:
    train, holdout, independent, schema = data
    return _all_attacks(train, holdout, independent, schema)


def test_the_table_is_what_the_attacks_need(data):
    train, holdout, independent, schema = data
    assert schema["person_id"].kind == "id"
    assert {"numeric", "categorical", "boolean", "datetime"} <= {c.kind for c in schema.columns}
    assert len(holdout) == 500 and len(train) == 1500
    # Many distinct combinations: almost every row is unique on the attacked columns.
    columns = schema.names_of("numeric", "categorical", "boolean", "datetime")
    assert train[columns].drop_duplicates().shape[0] == len(train)
    # The independent table shares no row with the training data.
    merged = train[columns].merge(independent[columns], how="inner")
    assert len(merged) == 0


@pytest.mark.parametrize("attack", ["linkability", "inference_categorical", "inference_numeric"])
def test_a_copy_of_the_training_data_is_found_out(copy_risks, independent_risks, attack):
    copy = copy_risks[attack]
    assert copy.n_attacks == 500
    # Nearly every training target is re-identified (the control barely at all), so the
    # whole interval is far from 0 and above the independent sample's.
    assert copy.attack_rate > 0.95
    assert copy.ci_low > 0.9
    assert copy.ci_low > independent_risks[attack].ci_high


@pytest.mark.parametrize("mode", ["univariate", "multivariate"])
def test_singling_out_a_copy_is_clearly_riskier_than_an_independent_sample(
    copy_risks, independent_risks, mode
):
    copy = copy_risks[f"singling_out_{mode}"]
    independent = independent_risks[f"singling_out_{mode}"]
    assert copy.n_attacks == 500 and independent.n_attacks == 500
    assert copy.ci_low > independent.ci_high
    assert copy.attack_rate > copy.baseline_rate


@pytest.mark.parametrize(
    "attack",
    [
        "singling_out_univariate",
        "singling_out_multivariate",
        "linkability",
        "inference_categorical",
        "inference_numeric",
    ],
)
def test_an_independent_sample_shows_no_risk(independent_risks, attack):
    """Nothing leaks, so the 95% interval reaches 0 (the lower bound is clipped at 0)."""
    estimate = independent_risks[attack]
    assert estimate.ci_low == 0.0, estimate
    assert estimate.ci_low <= estimate.risk <= estimate.ci_high


def test_a_partial_leak_is_measured_at_its_size(data):
    """A fifth of the synthetic rows are training rows: each attack's risk is about 0.2.

    anonymeter's risk is the share of attacks that succeed because of the training data;
    here its 95% interval must cover the leaked share and exclude 0.
    """
    train, holdout, independent, schema = data
    leaked_share = 0.2
    k = int(leaked_share * len(train))
    rng = np.random.default_rng(SEED)
    leaked = train.iloc[rng.choice(len(train), k, replace=False)]
    synthetic = pd.concat([leaked, independent.iloc[k:]], ignore_index=True)
    for name, estimate in _all_attacks(train, holdout, synthetic, schema).items():
        assert 0 < estimate.ci_low <= leaked_share <= estimate.ci_high, (name, estimate)


def test_results_are_deterministic_for_a_seed(data):
    train, holdout, independent, schema = data
    first = {k: v.to_dict() for k, v in _all_attacks(train, holdout, independent, schema).items()}
    again = {k: v.to_dict() for k, v in _all_attacks(train, holdout, independent, schema).items()}
    assert first == again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = singling_out_risk(
            train, holdout, independent, schema, mode="multivariate", seed=SEED + 1
        )
    assert other.to_dict() != first["singling_out_multivariate"]


def test_identifier_and_text_columns_are_ignored(data):
    train, holdout, independent, schema = data
    rng = np.random.default_rng(0)
    words = np.array(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"])

    def with_notes(frame: pd.DataFrame) -> pd.DataFrame:
        notes = [" ".join(rng.choice(words, 7)) for _ in range(len(frame))]
        return frame.assign(notes=pd.array(notes, dtype="string"))

    train_n, holdout_n, synthetic_n = (with_notes(f) for f in (train, holdout, train))
    schema_n = infer_schema(pd.concat([train_n, holdout_n], ignore_index=True))
    assert schema_n["notes"].kind == "text" and schema_n["person_id"].kind == "id"
    kept = [c for c in schema.columns if c.kind not in ("id", "text")]
    schema_kept = Schema(tuple(kept), schema.arrow_schema)
    names = schema_kept.names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = singling_out_risk(train_n, holdout_n, synthetic_n, schema_n, mode="multivariate")
        bare = singling_out_risk(
            train[names], holdout[names], train[names], schema_kept, mode="multivariate"
        )
        inferred = inference_risk(train_n, holdout_n, synthetic_n, schema_n, secret="region")
        inferred_bare = inference_risk(
            train[names], holdout[names], train[names], schema_kept, secret="region"
        )
    assert full == bare
    assert inferred == inferred_bare


@pytest.mark.parametrize(
    "call, name",
    [
        (
            lambda t, h, s, sc: linkability_risk(
                t, h, s, sc, aux_columns=(["age", "nope"], ["income"])
            ),
            "nope",
        ),
        (
            lambda t, h, s, sc: linkability_risk(t, h, s, sc, aux_columns=(["age"], ["Income"])),
            "Income",
        ),
        (lambda t, h, s, sc: inference_risk(t, h, s, sc, secret="salary"), "salary"),
        (
            lambda t, h, s, sc: inference_risk(
                t, h, s, sc, secret="region", aux_columns=["age", "zip"]
            ),
            "zip",
        ),
        (lambda t, h, s, sc: inference_risk(t, h, s, sc, secret="person_id"), "person_id"),
        (
            lambda t, h, s, sc: linkability_risk(t, h, s, sc, aux_columns=(["person_id"], ["age"])),
            "person_id",
        ),
    ],
)
def test_bad_column_names_raise_data_error_naming_the_column(data, call, name):
    train, holdout, independent, schema = data
    with pytest.raises(DataError, match=name):
        call(train, holdout, independent, schema)


def test_a_table_lacking_a_column_is_a_data_error(data):
    train, holdout, independent, schema = data
    with pytest.raises(DataError, match="synthetic.*income"):
        inference_risk(
            train, holdout, independent.drop(columns=["income"]), schema, secret="region"
        )
    with pytest.raises(DataError, match="secret"):
        inference_risk(
            train, holdout, independent, schema, secret="region", aux_columns=["age", "region"]
        )


def test_n_attacks_is_capped_at_the_holdout_size(data):
    train, holdout, independent, schema = data
    small = holdout.iloc[:120].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        linked = linkability_risk(
            train, small, independent, schema, aux_columns=AUX, n_attacks=10_000
        )
        inferred = inference_risk(
            train, small, independent, schema, secret="region", n_attacks=10_000
        )
        singled = singling_out_risk(train, small, independent, schema, n_attacks=10_000)
    assert linked.n_attacks == inferred.n_attacks == singled.n_attacks == 120


def test_wilson_interval_matches_the_textbook_values():
    # 10 successes in 100 trials, 95%: Wilson's interval is [0.0552, 0.1744].
    rate = success_rate(100, 10, 0.95)
    assert rate.value - rate.error == pytest.approx(0.0552, abs=1e-4)
    assert rate.value + rate.error == pytest.approx(0.1744, abs=1e-4)
    # anonymeter's residual: (a - c) / (1 - c), errors propagated.
    residual = residual_success(SuccessRate(0.6, 0.03), SuccessRate(0.2, 0.04))
    assert residual.value == pytest.approx(0.5)
    assert residual.error == pytest.approx(math.hypot(0.03 / 0.8, 0.04 * 0.4 / 0.8**2))


def test_singling_out_chance_in_a_subset_is_hypergeometric():
    counts = np.array([0, 1, 2, 5])
    full = _singles_out_in_subset(counts, 10, 10)
    assert full.tolist() == [0.0, 1.0, 0.0, 0.0]
    half = _singles_out_in_subset(counts, 10, 5)
    # one match of 10 rows is in a 5-row subset half the time; two matches: 2*C(8,4)/C(10,5)
    assert half[:3] == pytest.approx([0.0, 0.5, 2 * 70 / 252])


def test_risk_estimate_to_dict():
    estimate = RiskEstimate(0.1, 0.0, 0.2, 0.3, 0.25, 0.05, 500)
    assert estimate.to_dict() == {
        "risk": 0.1,
        "ci_low": 0.0,
        "ci_high": 0.2,
        "attack_rate": 0.3,
        "control_rate": 0.25,
        "baseline_rate": 0.05,
        "n_attacks": 500,
    }
