"""Cost limits by design: a high-cardinality categorical column must not make the privacy
checks' row encodings as wide as its number of categories (one-hot of 15,000 categories
took 6-7 GB and most of a run's time). Structural checks only: times and memory figures
live in benchmarks/high_cardinality.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import validation.distance as distance
from generators.data.schema import infer_schema, normalize_dtypes
from validation.privacy import PrivacyPolicy, privacy_report

CATEGORIES = 2_500


def _table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = np.array([f"c{i:05d}" for i in range(CATEGORIES)])
    return normalize_dtypes(
        pd.DataFrame(
            {
                # every category at least once, most of them twice: a category, not an id
                "city": np.concatenate([names, rng.choice(names, rows - CATEGORIES)]),
                "age": rng.integers(18, 90, rows),
                "group": rng.choice(list("abcde"), rows),
            }
        )
    )


def test_the_privacy_report_encodes_a_high_cardinality_column_as_one_feature(monkeypatch):
    widths = []
    transform = distance.DistanceEncoder.transform

    def recording(self, frame):
        features = transform(self, frame)
        widths.append(features.shape[1])
        return features

    monkeypatch.setattr(distance.DistanceEncoder, "transform", recording)
    train, holdout, synthetic = _table(4_000, 0), _table(3_000, 1), _table(3_000, 2)
    schema = infer_schema(train)
    assert schema["city"].kind == "categorical"
    policy = PrivacyPolicy(max_rows=1_500, shadow={"enabled": False})
    report = privacy_report(train, holdout, synthetic, schema, policy, seed=0)
    assert widths, "no distance encoding ran, so the bound below would prove nothing"
    # age (+ its missing flag), group (5 one-hot + unseen) and one code for city; the
    # attacks' encoders on column subsets are narrower still.
    assert max(widths) <= 2 + 6 + 1
    # An independent table of the same population is no leak: the figures stay sane.
    assert 0.3 < report.metrics["dcr_share"] < 0.7


@pytest.mark.parametrize("categories", [129, 10_000])
def test_past_the_one_hot_limit_every_row_costs_one_number(categories):
    frame = normalize_dtypes(
        pd.DataFrame({"c": [f"v{i % categories}" for i in range(2 * categories)]})
    )
    encoder = distance.DistanceEncoder.fit(frame, infer_schema(frame))
    assert encoder.transform(frame).shape == (2 * categories, 1)
