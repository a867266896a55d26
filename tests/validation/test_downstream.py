"""The downstream report on tiny hand-made tables whose outcome is known in advance.

The label is `x > 0` exactly and the holdout keeps |x| >= 0.5, so a model trained on clean
rows separates the holdout perfectly (recall 1 for both classes, macro F1 1). Synthetic
rows with every label flipped teach the opposite rule: trained on them alone the model
gets every holdout row wrong (recall 0, macro F1 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import infer_schema, normalize_dtypes
from generators.errors import DataError
from validation.downstream import downstream_report


def _table(rows: int, seed: int, flip: bool = False, margin: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(margin, 3.0, rows) * rng.choice([-1.0, 1.0], rows)
    label = np.where(x > 0, "yes", "no")
    if flip:
        label = np.where(label == "yes", "no", "yes")
    noise = rng.normal(size=rows)  # a feature that carries nothing
    return normalize_dtypes(pd.DataFrame({"x": x, "noise": noise, "label": label}))


@pytest.fixture(scope="module")
def frames():
    train = _table(200, 0)
    holdout = _table(100, 1, margin=0.5)
    return train, holdout, infer_schema(train)


def test_label_noise_makes_synthetic_only_worse_than_real_only(frames) -> None:
    train, holdout, schema = frames
    flipped = _table(200, 2, flip=True)
    report = downstream_report(train, holdout, flipped, schema, "label", seed=0)
    metrics = report.metrics
    assert report.name == "downstream" and report.passed and not report.blocking
    assert set(metrics) == {
        f"{setting}.{measure}"
        for setting in ("real", "augmented", "synthetic")
        for measure in ("macro_f1", "recall.no", "recall.yes")
    }
    assert metrics["real.macro_f1"] == 1.0
    assert metrics["real.recall.yes"] == metrics["real.recall.no"] == 1.0
    assert metrics["synthetic.macro_f1"] == 0.0
    assert metrics["synthetic.recall.yes"] == metrics["synthetic.recall.no"] == 0.0
    # real + equally many contradicting rows: no better than real alone
    assert metrics["augmented.macro_f1"] <= metrics["real.macro_f1"]
    assert report.details["rows"] == {"real": 200, "augmented": 400, "synthetic": 200}
    assert all(isinstance(value, float) for value in metrics.values())


def test_clean_synthetic_rows_match_real_ones(frames) -> None:
    train, holdout, schema = frames
    report = downstream_report(train, holdout, _table(150, 3), schema, "label", seed=0)
    for setting in ("real", "augmented", "synthetic"):
        assert report.metrics[f"{setting}.macro_f1"] == 1.0


def test_recall_per_class_shows_a_missing_class(frames) -> None:
    """Synthetic rows of one class only: trained on them the model predicts that class for
    every row, so its recall is 1 and the other class's 0; macro F1 = (2/3 + 0) / 2."""
    train, holdout, schema = frames
    only_yes = _table(400, 4)
    only_yes = only_yes[only_yes["label"] == "yes"].reset_index(drop=True)
    report = downstream_report(train, holdout, only_yes, schema, "label", seed=0)
    share_yes = float((holdout["label"] == "yes").mean())
    assert report.metrics["synthetic.recall.yes"] == 1.0
    assert report.metrics["synthetic.recall.no"] == 0.0
    f1_yes = 2 * share_yes / (share_yes + 1)  # precision = share_yes, recall = 1
    assert report.metrics["synthetic.macro_f1"] == pytest.approx(f1_yes / 2)


def test_a_numeric_target_reports_r2_only(frames) -> None:
    rng = np.random.default_rng(5)

    def table(rows: int, slope: float) -> pd.DataFrame:
        x = rng.uniform(-3, 3, rows)
        return normalize_dtypes(pd.DataFrame({"x": x, "y": slope * x + rng.normal(0, 0.1, rows)}))

    train, holdout = table(300, 2.0), table(100, 2.0)
    report = downstream_report(train, holdout, table(300, -2.0), infer_schema(train), "y")
    assert set(report.metrics) == {"real.r2", "augmented.r2", "synthetic.r2"}
    assert report.metrics["real.r2"] > 0.95
    assert report.metrics["synthetic.r2"] < 0  # the opposite slope: worse than the mean


def test_markdown_is_a_table_per_setting(frames) -> None:
    train, holdout, schema = frames
    report = downstream_report(train, holdout, _table(200, 2, flip=True), schema, "label")
    text = report.to_markdown()
    assert "| metric | real | augmented | synthetic |" in text
    assert "| macro_f1 | 1.000 |" in text and "| recall.yes |" in text
    assert report.to_dict()["metrics"] == report.metrics


def test_too_few_rows_are_left_out_and_a_bad_target_refused(frames) -> None:
    train, holdout, schema = frames
    report = downstream_report(train, holdout, _table(5, 6), schema, "label")
    assert "synthetic.macro_f1" not in report.metrics
    assert "augmented.macro_f1" in report.metrics
    assert any("synthetic: 5 training rows" in note for note in report.details["notes"])
    with pytest.raises(DataError, match="target column 'lable'"):
        downstream_report(train, holdout, train, schema, "lable")
