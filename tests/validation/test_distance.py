"""The mixed-type distance and the blocked nearest-neighbour search."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import validation.distance as distance
from generators.data.schema import infer_schema, normalize_dtypes
from validation.distance import DistanceEncoder, nearest_neighbors


def _frame(rows: list[dict]) -> pd.DataFrame:
    return normalize_dtypes(pd.DataFrame(rows))


def test_each_column_contributes_as_documented():
    train = _frame([{"x": 0.0, "c": "a"}, {"x": 10.0, "c": "b"}, {"x": 5.0, "c": "a"}])
    schema = infer_schema(train)
    encoder = DistanceEncoder.fit(train, schema)
    probe = _frame(
        [
            {"x": 0.0, "c": "a"},
            {"x": 10.0, "c": "a"},
            {"x": 0.0, "c": "b"},
            {"x": 0.0, "c": "never seen"},
        ]
    )
    probe.loc[4] = [pd.NA, "a"]
    features = encoder.transform(probe)
    squared = ((features[1:] - features[0]) ** 2).sum(1)
    # full range on x -> 1; a different category -> 1; an unseen category -> 1
    assert squared[:3] == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    # missing vs present: the indicator costs 1, plus the gap to the median it is imputed with
    assert squared[3] == pytest.approx(1.0 + ((5.0 - 0.0) / 10.0) ** 2, abs=1e-6)


def test_blocked_search_equals_brute_force(monkeypatch):
    # Small blocks force the merge of partial top-k results across query and reference blocks.
    monkeypatch.setattr(distance, "QUERY_BLOCK_ROWS", 7)
    monkeypatch.setattr(distance, "REFERENCE_BLOCK_ROWS", 11)
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(40, 5)).astype(np.float32)
    reference = rng.normal(size=(53, 5)).astype(np.float32)
    found_d, found_i = nearest_neighbors(queries, reference, 3, n_columns=5, device="cpu")
    brute = np.sqrt(((queries[:, None, :] - reference[None]) ** 2).sum(-1) / 5)
    expected_i = np.argsort(brute, axis=1)[:, :3]
    np.testing.assert_array_equal(found_i, expected_i)
    np.testing.assert_allclose(found_d, np.take_along_axis(brute, expected_i, 1), atol=1e-4)


def test_distance_is_normalised_by_the_number_of_columns():
    queries = np.zeros((1, 4), dtype=np.float32)
    reference = np.ones((1, 4), dtype=np.float32)
    found, _ = nearest_neighbors(queries, reference, 1, n_columns=4, device="cpu")
    assert found[0, 0] == pytest.approx(math.sqrt(4 / 4))


def test_exact_copy_ranks_ahead_of_a_near_duplicate():
    # Large norms make float32's |q|^2 + |r|^2 - 2 q.r round by more than the 1e-4 gap.
    rng = np.random.default_rng(1)
    reference = (rng.normal(size=(200, 60)) * 30).astype(np.float32)
    near = reference.copy()
    near[:, 0] += 1e-3
    reference = np.vstack([near, reference])  # the near duplicates come first
    queries = reference[200:].copy()
    found_d, found_i = nearest_neighbors(queries, reference, 1, n_columns=60, device="cpu")
    np.testing.assert_array_equal(found_i[:, 0], np.arange(200, 400))
    assert (found_d[:, 0] == 0).all()


def _high_cardinality_frames(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and query rows with a 300-category column (past ONE_HOT_MAX_CATEGORIES),
    a small categorical, a number, missing values and categories unseen in training."""
    rng = np.random.default_rng(seed)

    def rows(n: int, categories: int) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "city": [f"city{i}" for i in rng.integers(0, categories, n)],
                "group": rng.choice(["a", "b", "c"], n),
                "x": rng.normal(size=n),
            }
        )
        frame.loc[rng.random(n) < 0.05, "city"] = None
        return normalize_dtypes(frame)

    return rows(400, 300), rows(90, 330)  # queries include 30 unseen cities


@pytest.mark.parametrize("seed", range(5))
def test_coded_categories_give_the_one_hot_distances(monkeypatch, seed):
    # Two small blocks so codes are compared across block boundaries too.
    monkeypatch.setattr(distance, "QUERY_BLOCK_ROWS", 32)
    monkeypatch.setattr(distance, "REFERENCE_BLOCK_ROWS", 64)
    train, queries = _high_cardinality_frames(seed)
    schema = infer_schema(train)
    coded = DistanceEncoder.fit(train, schema)
    assert coded.coded == ["city"] and coded.search["codes"] == 1
    monkeypatch.setattr(distance, "ONE_HOT_MAX_CATEGORIES", 10_000)
    one_hot = DistanceEncoder.fit(train, schema)
    assert one_hot.coded == []
    found = nearest_neighbors(
        coded.transform(queries), coded.transform(train), 5, **coded.search, device="cpu"
    )
    expected = nearest_neighbors(
        one_hot.transform(queries), one_hot.transform(train), 5, **one_hot.search, device="cpu"
    )
    np.testing.assert_allclose(found[0], expected[0], atol=1e-6)
    # Indices may differ only between rows at the same distance.
    rows = np.arange(len(queries))[:, None]
    brute = ((one_hot.transform(queries)[:, None] - one_hot.transform(train)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(brute[rows, found[1]], brute[rows, expected[1]], atol=1e-5)


def test_a_high_cardinality_column_costs_one_feature():
    cities = [f"c{i}" for i in range(15_000)] * 2  # repeated: a category, not an id
    train = normalize_dtypes(pd.DataFrame({"city": cities, "x": np.arange(30_000.0)}))
    schema = infer_schema(train)
    assert schema["city"].kind == "categorical"
    encoder = DistanceEncoder.fit(train, schema)
    # x and its missing flag, then one code: not 15,000 one-hot columns.
    assert encoder.transform(train.head(3)).shape == (3, 3)
