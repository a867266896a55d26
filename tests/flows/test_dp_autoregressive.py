"""privacy.dp with generator autoregressive: the config and one real run."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from flows.config import load_config, parse_config
from flows.result import outcome_of
from flows.synthesize import synthesize
from generators.errors import ConfigError

MINIMAL = {"name": "demo", "data": {"path": "table.csv"}}
AUTOREGRESSIVE = {"name": "autoregressive", "params": {"epochs": 2, "width": 8}}


def test_a_dp_budget_with_public_domains_is_accepted_for_autoregressive():
    config = parse_config(
        {
            **MINIMAL,
            "generator": {"name": "autoregressive"},
            "privacy": {
                "dp": {
                    "epsilon": 4,
                    "encoder_share": 0.2,
                    "public_domain": {
                        "sex": {"categories": ["Female", "Male"]},
                        "age": {"bounds": [17, 90]},
                    },
                }
            },
        }
    )
    dp = config.privacy.dp
    assert (dp.epsilon, dp.encoder_share) == (4, 0.2)
    assert dp.public_domain["age"].bounds == (17, 90)
    assert dp.public_domain["sex"].categories == ["Female", "Male"]


@pytest.mark.parametrize(
    ("dp", "expected"),
    [
        ({"epsilon": 1, "encoder_share": 1}, "privacy.dp.encoder_share"),
        ({"epsilon": 1, "public_domain": {"age": {"bounds": [5, 1]}}}, "privacy.dp.public_domain"),
        ({"epsilon": 1, "public_domain": {"age": {"range": [0, 1]}}}, "privacy.dp.public_domain"),
        ({"epsilon": 1, "public_domain": {"age": {"bounds": [0, float("inf")]}}}, "finite"),
    ],
)
def test_a_bad_dp_option_names_its_key(dp, expected):
    with pytest.raises(ConfigError) as error:
        parse_config({**MINIMAL, "generator": {"name": "autoregressive"}, "privacy": {"dp": dp}})
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.slow  # a real flow run: about 20 s, and its Prefect and MLflow start-up
def test_a_dp_run_logs_the_budget_its_shares_unit_and_sampling(write_config, prefect_harness):
    config = load_config(write_config(generator=AUTOREGRESSIVE, privacy={"dp": {"epsilon": 2.0}}))
    # Published or quarantined (the gate judges 320 rows under DP), the run logs the same.
    result = outcome_of(synthesize(config, return_state=True)).value
    assert result.status in ("published", "quarantined")
    metrics = result.metrics
    spent = metrics["privacy.dp_epsilon_spent"]
    assert 0 < spent <= 2.0 + 1e-9
    parts = ("encoder", "marginals", "sgd")
    assert sum(metrics[f"privacy.dp_epsilon_{part}"] for part in parts) == pytest.approx(spent)
    run = MlflowClient(config.tracking.uri).get_run(result.mlflow_run_id)
    assert run.data.metrics["privacy.dp_epsilon_spent"] == pytest.approx(spent)
    tags = run.data.tags
    assert tags["synthpipe.dp.unit"] == "row"
    assert tags["synthpipe.dp.sampling"].startswith("Poisson")
    columns = json.loads(tags["synthpipe.dp.columns"])
    assert columns and set(columns.values()) <= {
        "categories: dp",
        "categories: public",
        "range: dp, bins: dp",
        "range: public, bins: dp",
    }
