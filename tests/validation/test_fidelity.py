"""Fidelity scores: SDMetrics' reports, the discriminator AUC and ML efficacy (TSTR vs TRTR).

Calibrated like the other checks: a copy of the training rows is perfect, a fresh real
sample scores as high as sampling noise allows, and the `uniform` baseline scores far
below it. Tolerances come from the sample sizes (Kolmogorov-Smirnov critical values,
binomial standard errors, Hanley-McNeil standard errors of a ROC AUC).
"""

from __future__ import annotations

import math
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from generators import make_generator
from generators.data.schema import Schema
from generators.data.split import split_holdout
from validation.expectations import spearman_matrix
from validation.fidelity import association_matrix, fidelity_report, ml_efficacy
from validation.privacy import hanley_mcneil_se

# -- Adult: train (2000), holdout (1000), a fresh real sample (2000), the uniform baseline --


@pytest.fixture(scope="module")
def adult(adult_table, adult_parts):
    _, schema = adult_table
    return adult_parts["train"], adult_parts["holdout"], adult_parts["fresh"], schema


@pytest.fixture(scope="module")
def uniform_rows(adult) -> pd.DataFrame:
    train, _, fresh, schema = adult
    return make_generator("uniform", device="cpu").fit(train, schema).sample(len(fresh), seed=1)


@pytest.fixture(scope="module")
def reports(adult, uniform_rows) -> dict:
    """fidelity_report of three 'synthetic' tables against the same train and holdout."""
    train, holdout, fresh, schema = adult
    tables = {"copy": train.copy(), "fresh": fresh, "uniform": uniform_rows}
    return {
        name: fidelity_report(train, holdout, table, schema, target="income")
        for name, table in tables.items()
    }


def test_report_is_informational_and_records_what_was_scored(reports, adult) -> None:
    train, holdout, fresh, schema = adult
    for report in reports.values():
        assert report.name == "fidelity"
        assert report.passed and report.blocking is False  # scores never gate publication
        assert report.failures == []
        assert report.details["sdmetrics_version"] == version("sdmetrics")
        assert report.details["columns_scored"] == schema.names  # no id column in Adult
        assert report.details["efficacy_target"] == "income"
        assert report.details["rows_scored"] == {
            "train": len(train),
            "synthetic": len(fresh),
            "holdout": len(holdout),
        }
        assert set(report.details["columns"]) == set(schema.names)
        for value in report.metrics.values():
            assert isinstance(value, float)
    assert "failed" not in reports["uniform"].to_markdown().split("\n")[0]


def test_copy_of_the_training_rows_is_scored_perfect(reports) -> None:
    metrics = reports["copy"].metrics
    for key in ("quality", "column_shapes", "column_pair_trends", "diagnostic"):
        assert metrics[key] == pytest.approx(1.0), key
    assert set(reports["copy"].details["columns"].values()) == {1.0}
    # The same rows, the same seeded model: train-on-synthetic is train-on-real.
    assert metrics["tstr_f1_macro"] == metrics["trtr_f1_macro"]
    assert metrics["tstr_roc_auc"] == metrics["trtr_roc_auc"]
    assert metrics["efficacy_ratio"] == 1.0


def _shape_floor(train: pd.DataFrame, other_rows: int, name: str, kind: str) -> float:
    """The lowest column-shape score a real sample of `other_rows` rows should get: KS
    statistics stay under the alpha = 0.001 critical value 1.95 * sqrt((n + m) / (n m));
    each category share within 4 standard errors of a difference of two proportions."""
    n, m = len(train), other_rows
    if kind in ("numeric", "datetime"):
        return 1 - 1.95 * math.sqrt((n + m) / (n * m))
    shares = train[name].astype("string").dropna().value_counts(normalize=True)
    return 1 - 0.5 * sum(4 * math.sqrt(p * (1 - p) * (1 / n + 1 / m)) for p in shares)


def test_fresh_real_sample_scores_far_above_the_uniform_baseline(reports, adult) -> None:
    train, holdout, fresh, schema = adult
    real, uniform = reports["fresh"], reports["uniform"]
    for column in schema.columns:
        score = real.details["columns"][column.name]
        assert score >= _shape_floor(train, len(fresh), column.name, column.kind), column.name
        assert uniform.details["columns"][column.name] < score, column.name
    # The holdout ceiling measures how far a real sample falls short of 1 by noise alone;
    # the uniform baseline falls short by many times that, the fresh sample's column shapes
    # by about as much. (Not its pair trends: SDMetrics 0.32 bins each table's numeric
    # columns over that table's own range, so a sample missing the real minimum of
    # education_num, 1, has misaligned bins and scores about 0.5 on that column's pairs.)
    noise = 1 - real.metrics["quality_holdout"]
    assert noise == pytest.approx(1 - uniform.metrics["quality_holdout"])  # same train/holdout
    assert 1 - uniform.metrics["quality"] > 5 * noise
    assert 1 - real.metrics["column_shapes"] < 2 * (1 - real.metrics["column_shapes_holdout"])
    for key in ("column_shapes", "column_pair_trends"):
        assert uniform.metrics[key] < real.metrics[key], key


def test_discriminator_tells_uniform_apart_and_not_a_real_sample(reports, adult, uniform_rows):
    train, _, fresh, _ = adult
    rows = min(len(train), len(fresh))
    # A fresh real sample: AUC 0.5 within 4 Hanley-McNeil standard errors at this size.
    assert abs(reports["fresh"].metrics["discriminator_auc"] - 0.5) <= 4 * hanley_mcneil_se(
        0.5, rows, rows
    )
    # Uniform: a single fixed rule already tells most rows apart (real capital_gain is 0
    # for most people, a uniform draw over its range almost never is); the classifier,
    # which sees every column, does at least as well, within 4 standard errors.
    is_fake = np.r_[np.zeros(len(train)), np.ones(len(uniform_rows))]
    gain = np.r_[
        train["capital_gain"].to_numpy(float), uniform_rows["capital_gain"].to_numpy(float)
    ]
    rule = roc_auc_score(is_fake, gain != 0)
    assert rule > 0.9  # the rule is a strong one on this data
    auc = reports["uniform"].metrics["discriminator_auc"]
    assert auc >= rule - 4 * hanley_mcneil_se(rule, rows, rows)


def test_discriminator_of_a_copy_is_no_better_than_chance(reports, adult) -> None:
    # Identical rows share a cross-validation fold; otherwise each copied row meets its
    # real twin with the opposite label across folds and the AUC falls far below 0.5.
    train = adult[0]
    se = hanley_mcneil_se(0.5, len(train), len(train))
    assert abs(reports["copy"].metrics["discriminator_auc"] - 0.5) <= 4 * se


def _auc_se(holdout: pd.DataFrame, auc: float) -> float:
    positives = int((holdout["income"] == ">50K").sum())
    return hanley_mcneil_se(auc, positives, len(holdout) - positives)


def test_tstr_on_a_fresh_real_sample_matches_trtr(reports, adult) -> None:
    _, holdout, _, _ = adult
    metrics = reports["fresh"].metrics
    trtr, tstr = metrics["trtr_roc_auc"], metrics["tstr_roc_auc"]
    assert trtr > 0.5 + 4 * _auc_se(holdout, 0.5)  # income is predictable from the rest
    # Two models trained on equal-sized real samples, scored on the same holdout: their
    # AUCs differ by less than 4 standard errors of a difference.
    assert abs(tstr - trtr) <= 4 * math.sqrt(2) * _auc_se(holdout, trtr)
    assert metrics["efficacy_ratio"] == pytest.approx(
        metrics["tstr_f1_macro"] / metrics["trtr_f1_macro"]
    )


def test_uniform_baseline_loses_ml_efficacy(reports, adult) -> None:
    _, holdout, _, _ = adult
    metrics = reports["uniform"].metrics
    trtr = metrics["trtr_roc_auc"]
    assert metrics["tstr_roc_auc"] < trtr - 4 * math.sqrt(2) * _auc_se(holdout, trtr)
    assert metrics["efficacy_ratio"] < 1.0


def test_tstr_with_the_target_shuffled_is_worse(adult) -> None:
    train, holdout, _, schema = adult
    shuffled = train.copy()
    shuffled["income"] = train["income"].sample(frac=1.0, random_state=5).to_numpy()
    metrics = ml_efficacy(train, shuffled, holdout, schema, "income", seed=0)
    trtr, tstr = metrics["trtr_roc_auc"], metrics["tstr_roc_auc"]
    # A model of labels independent of the features ranks at chance.
    assert abs(tstr - 0.5) <= 4 * _auc_se(holdout, 0.5)
    assert tstr < trtr - 4 * math.sqrt(2) * _auc_se(holdout, trtr)
    assert metrics["tstr_f1_macro"] < metrics["trtr_f1_macro"]
    assert metrics["efficacy_ratio"] < 1.0


@pytest.mark.parametrize("label", ["<=50K", ">50K"])
def test_one_class_synthetic_target_scores_as_a_constant_prediction(adult, label) -> None:
    train, holdout, _, schema = adult
    one_class = train.copy()
    one_class["income"] = pd.array([label] * len(train), dtype="string")
    metrics = ml_efficacy(train, one_class, holdout, schema, "income", seed=0)
    # Predicting one class everywhere: its F1 is 2p / (1 + p) for its holdout share p, the
    # other class's is 0, so the macro mean is p / (1 + p); the ranking is constant.
    p = float((holdout["income"] == label).mean())
    assert metrics["tstr_f1_macro"] == pytest.approx(p / (1 + p))
    assert metrics["tstr_roc_auc"] == 0.5
    assert metrics["trtr_roc_auc"] > 0.5
    assert metrics["efficacy_ratio"] < 1.0


# -- the small mixed table: a regression target, subsampling, the association matrix ------


@pytest.fixture(scope="module")
def mixed_split(fidelity_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_holdout(fidelity_frame, 0.3, seed=17)


def test_numeric_target_gives_r2_metrics(mixed_split, fidelity_schema: Schema) -> None:
    train, holdout = mixed_split
    copy = ml_efficacy(train, train.copy(), holdout, fidelity_schema, "income", seed=0)
    assert set(copy) == {"trtr_r2", "tstr_r2", "efficacy_ratio"}
    assert copy["tstr_r2"] == copy["trtr_r2"] and copy["efficacy_ratio"] == 1.0
    # Predictions independent of the target reach R^2 <= r^2 for their sample correlation r
    # with it, and |r| <= 4 / sqrt(n) on n holdout rows: a bound on a model that learnt
    # nothing. Income is 50 * age + noise, so the real model is far above it.
    chance = 16 / len(holdout)
    assert copy["trtr_r2"] > 3 * chance
    shuffled = train.copy()
    shuffled["income"] = train["income"].sample(frac=1.0, random_state=3).to_numpy()
    noise = ml_efficacy(train, shuffled, holdout, fidelity_schema, "income", seed=0)
    assert noise["tstr_r2"] <= chance
    assert noise["efficacy_ratio"] < 1.0


def test_subsampling_records_rows_and_columns_scored(mixed_split, fidelity_schema) -> None:
    train, holdout = mixed_split
    report = fidelity_report(
        train, holdout, holdout.copy(), fidelity_schema, max_rows=100, max_columns=3, seed=4
    )
    assert report.details["rows_scored"] == {"train": 100, "synthetic": 100, "holdout": 100}
    scored = report.details["columns_scored"]
    assert len(scored) == 3 and len(set(scored)) == 3
    assert set(scored) <= set(fidelity_schema.names) - {"customer_id"}  # ids are never scored
    assert scored == [name for name in fidelity_schema.names if name in scored]  # schema order
    assert set(report.details["columns"]) == set(scored)
    assert "efficacy_target" not in report.details and "efficacy_ratio" not in report.metrics
    # Small tables are scored whole, and a target outside the schema is ignored.
    whole = fidelity_report(train, holdout, holdout.copy(), fidelity_schema, target="nope")
    assert whole.details["rows_scored"] == {
        "train": len(train),
        "synthetic": len(holdout),
        "holdout": len(holdout),
    }
    assert whole.details["columns_scored"] == [
        n for n in fidelity_schema.names if n != "customer_id"
    ]
    assert "efficacy_ratio" not in whole.metrics


def test_association_matrix(mixed_split, fidelity_schema: Schema) -> None:
    train, _ = mixed_split
    names = [n for n in fidelity_schema.names if n != "customer_id"]
    matrix = association_matrix(train, fidelity_schema, names)
    assert matrix.shape == (len(names), len(names))
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert np.all((matrix >= -1) & (matrix <= 1))
    # Numeric and datetime pairs are Spearman correlations.
    numbers = fidelity_schema.names_of("numeric", "datetime")
    idx = [names.index(n) for n in numbers]
    frame = np.column_stack([train[n].astype("float64").to_numpy() for n in numbers[:2]])
    assert matrix[idx[0], idx[1]] == pytest.approx(spearman_matrix(frame)[0, 1])
    assert matrix[idx[0], idx[1]] > 0.5  # income rises with age
