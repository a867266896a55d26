"""Rare-category merging and the similarity filter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators import infer_schema, make_generator
from generators.data.schema import normalize_dtypes
from generators.data.split import split_holdout
from generators.errors import DataError
from validation.protection import (
    RARE_PLACEHOLDER,
    SimilarityFilter,
    merge_rare_categories,
    sample_filtered,
)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(3)
    n = 600
    city = rng.choice(["big", "mid", "small"], size=n, p=[0.6, 0.35, 0.05]).astype(object)
    city[:3] = ["tiny-a", "tiny-b", "tiny-b"]  # 1 and 2 occurrences: rare below k=3
    frame = normalize_dtypes(
        pd.DataFrame(
            {
                "city": city,
                "code": rng.choice([1, 2, 99], size=n, p=[0.5, 0.497, 0.003]),
                "x": rng.normal(size=n),
                "y": rng.normal(size=n),
            }
        )
    )
    schema = infer_schema(frame, {"code": "categorical"})
    return frame, schema


def test_rare_categories_are_merged_and_survive_conform(table):
    frame, schema = table
    merged, new_schema, changed = merge_rare_categories(frame, schema, min_count=3)
    assert changed == {"city": 3}
    assert (merged["city"] == RARE_PLACEHOLDER).sum() == 3
    assert not merged["city"].isin(["tiny-a", "tiny-b"]).any()
    assert RARE_PLACEHOLDER in new_schema["city"].categories
    assert "tiny-a" not in new_schema["city"].categories
    # the placeholder is a category the output may hold, not an unseen value nulled by conform
    assert (new_schema.conform(merged)["city"] == RARE_PLACEHOLDER).sum() == 3
    # an integer categorical cannot hold a text placeholder: left alone
    assert merged["code"].equals(frame["code"])
    # the input is not modified
    assert frame["city"].isin(["tiny-a"]).sum() == 1


def test_similarity_filter_drops_copies_and_keeps_the_rest(table):
    frame, schema = table
    numeric_schema = infer_schema(frame[["x", "y"]])
    train, holdout = split_holdout(frame[["x", "y"]], 0.3, seed=0)
    similarity = SimilarityFilter(train, holdout, numeric_schema, quantile=0.05)
    # The threshold is the holdout's own 5% quantile: 5% of holdout rows fall under it,
    # give or take the one row the quantile interpolates at.
    share = similarity.too_close(holdout).mean()
    assert share == pytest.approx(0.05, abs=1.5 / len(holdout))
    # Exact copies are at distance 0: all flagged.
    assert similarity.too_close(train.iloc[:50]).all()


def test_sample_filtered_reaches_the_count_with_no_row_too_close(table):
    frame, _ = table
    data = frame[["x", "y"]]
    schema = infer_schema(data)
    train, holdout = split_holdout(data, 0.3, seed=0)
    generator = make_generator("gaussian_copula", {"default_distribution": "norm"})
    generator.fit(train, schema, seed=0)
    similarity = SimilarityFilter(train, holdout, schema, quantile=0.2)
    rows, dropped = sample_filtered(generator, 300, seed=5, similarity=similarity)
    assert len(rows) == 300 and dropped > 0
    assert not similarity.too_close(rows).any()
    again, dropped_again = sample_filtered(generator, 300, seed=5, similarity=similarity)
    assert again.equals(rows) and dropped_again == dropped


def test_sample_filtered_gives_up_clearly_on_a_copy(table):
    frame, _ = table
    data = frame[["x", "y"]]
    schema = infer_schema(data)
    train, holdout = split_holdout(data, 0.3, seed=0)
    copy = make_generator("copy").fit(train, schema, seed=0)
    similarity = SimilarityFilter(train, holdout, schema, quantile=0.05)
    with pytest.raises(DataError, match="similarity filter dropped"):
        sample_filtered(copy, 100, seed=0, similarity=similarity)


def test_privacy_report_on_a_two_column_table_and_an_all_missing_category(table):
    from validation.privacy import PrivacyPolicy, privacy_report

    frame, _ = table
    data = frame[["city", "x"]].copy()
    data.loc[data.index[:200], "city"] = pd.NA  # the training rows below see no city at all
    schema = infer_schema(data)
    train, holdout = data.iloc[:200].reset_index(drop=True), data.iloc[200:].reset_index(drop=True)
    synthetic = make_generator("uniform").fit(train, schema, seed=0).sample(150, seed=0)
    assert synthetic["city"].isna().all()
    report = privacy_report(train, holdout, synthetic, schema, PrivacyPolicy())
    assert "singling_out_multivariate.risk" in report.metrics  # 2 usable columns suffice
