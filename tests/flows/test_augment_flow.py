"""Issue 12 through the real flow: rebalancing, conditions, constraints, the downstream report."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.config import load_config
from flows.synthesize import AUGMENTED_FILE, synthesize
from generators.errors import DataError

AUTOREGRESSIVE = {"name": "autoregressive", "params": {"epochs": 3, "width": 16}, "device": "cpu"}
CONSTRAINTS = [
    {"kind": "fixed_combinations", "columns": ["education", "education_num"]},
    {"kind": "range", "column": "age", "min": 17, "max": 90},
    {"kind": "value_set", "column": "sex", "values": ["Male", "Female"]},
]
QUICK = {"expectations": True, "fidelity": False, "plots": False}


def test_balancing_income_publishes_the_missing_rows_and_the_merged_table(
    write_config, prefect_harness
):
    config = load_config(
        write_config(
            generator=AUTOREGRESSIVE,
            augment={"target": "income", "strategy": "balance", "merge": True},
            constraints=CONSTRAINTS,
            sample={"seed": 3},
            validation=QUICK,
            privacy={"attacks": False},
        )
    )
    result = synthesize(config)
    assert result.status == "published", result

    synthetic = pq.read_table(result.output).to_pandas()
    merged = pq.read_table(result.output.replace("synthetic.parquet", AUGMENTED_FILE)).to_pandas()
    real = merged[~merged["synthetic"]]
    counts = real["income"].value_counts()
    # Exactly the rows that lift >50K to the count of <=50K, all of them >50K.
    assert len(synthetic) == counts["<=50K"] - counts[">50K"] == result.rows
    assert set(synthetic["income"]) == {">50K"}
    assert merged["synthetic"].sum() == len(synthetic)
    assert merged["income"].value_counts()[">50K"] == counts["<=50K"]
    # The published rows obey every constraint, and the report says so.
    run_dir = result.output.rsplit("/", 1)[0]
    constraints = json.loads(open(f"{run_dir}/constraints.json").read())
    assert constraints["passed"] and set(constraints["metrics"].values()) == {0.0}
    seen = set(zip(real["education"], real["education_num"], strict=True))
    assert set(zip(synthetic["education"], synthetic["education_num"], strict=True)) <= seen
    # The downstream report scores the three ways on the holdout, per class.
    downstream = json.loads(open(f"{run_dir}/downstream.json").read())["metrics"]
    for way in ("real", "augmented", "synthetic"):
        assert 0 <= downstream[f"{way}.macro_f1"] <= 1
        assert f"{way}.recall.>50K" in downstream
    logged = mlflow.MlflowClient(config.tracking.uri).get_run(result.mlflow_run_id).data.metrics
    assert logged["downstream.augmented.recall.gt50K"] == pytest.approx(
        downstream["augmented.recall.>50K"]
    )
    assert "downstream.augmented.recall.le50K" in logged  # "<=50K" stays distinct from ">50K"
    # Privacy ran on the synthetic rows.
    assert "privacy.dcr_share" in logged


def test_conditions_give_the_rows_asked_for(write_config, prefect_harness):
    conditions = [
        {"values": {"sex": "Female", "income": ">50K"}, "rows": 40},
        {"values": {"sex": "Male"}, "rows": 60},
    ]
    config = load_config(
        write_config(
            generator=AUTOREGRESSIVE,
            sample={"conditions": conditions, "seed": 1},
            validation=QUICK,
            privacy={"attacks": False},
        )
    )
    result = synthesize(config)
    synthetic = pq.read_table(result.output).to_pandas()
    assert len(synthetic) == 100
    first, second = synthetic.iloc[:40], synthetic.iloc[40:]
    assert (first["sex"] == "Female").all() and (first["income"] == ">50K").all()
    assert (second["sex"] == "Male").all()


def test_an_unreachable_condition_fails_naming_it_and_publishes_nothing(
    write_config, tmp_path, prefect_harness
):
    config = load_config(
        write_config(
            generator={"name": "uniform", "params": {}},
            sample={"conditions": {"age": 200}, "rows": 10},
            validation=QUICK,
        )
    )
    with pytest.raises(DataError, match="age"):
        synthesize(config)
    assert not list((tmp_path / "outputs").rglob("*.parquet"))


def test_a_constraint_the_generator_cannot_meet_fails_clearly(
    write_config, tmp_path, prefect_harness
):
    config = load_config(
        write_config(
            generator={"name": "uniform", "params": {}},
            constraints=[{"kind": "range", "column": "age", "min": 30.2, "max": 30.5}],
            validation=QUICK,
        )
    )
    with pytest.raises(DataError, match="range.age"):
        synthesize(config)
    assert not list((tmp_path / "outputs").rglob("*.parquet"))


def test_augment_and_conditions_together_are_refused(write_config):
    from generators.errors import ConfigError

    with pytest.raises(ConfigError, match="augment: cannot be combined with sample.conditions"):
        load_config(
            write_config(
                augment={"target": "income"},
                sample={"conditions": {"sex": "Male"}, "rows": 5},
            )
        )


def test_a_constraint_on_a_missing_column_is_named(write_config, prefect_harness):
    config = load_config(write_config(constraints=[{"kind": "unique", "column": "nope"}]))
    with pytest.raises(Exception, match=r"constraints\[0\]"):
        synthesize(config)


def test_downstream_report_is_informational_and_in_the_report(write_config, prefect_harness):
    config = load_config(write_config(validation=QUICK, privacy={"attacks": False}))
    result = synthesize(config)
    report = (pd.io.common.Path(result.output).parent / "report.md").read_text()
    assert "### downstream" in report


def test_pyfunc_predict_takes_conditions(write_config, prefect_harness):
    config = load_config(write_config(generator=AUTOREGRESSIVE, validation=QUICK))
    result = synthesize(config)
    mlflow.set_tracking_uri(config.tracking.uri)
    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = model.predict(
        pd.DataFrame({"rows": [30], "seed": [2], "conditions": ['{"income": ">50K"}']})
    )
    assert len(rows) == 30 and set(rows["income"]) == {">50K"}
    with pytest.raises(DataError, match="not JSON"):
        model.predict(pd.DataFrame({"rows": [3], "seed": [2], "conditions": ["{income"]}))
