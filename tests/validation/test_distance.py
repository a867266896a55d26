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
