"""The conditional GAN: its vectorised span machinery against plain per-column code, its
condition sampling against the recipe's frequencies, and a dependency it learns quickly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from generators.data.schema import infer_schema, normalize_dtypes
from generators.registry import load_generator
from generators.table.encoding import TabularEncoder
from generators.table.gan import ConditionalGANGenerator, _Conditions, _Layout, _RowsByCondition

TINY = {
    "batch_size": 100,
    "embedding_dim": 16,
    "generator_dim": (64,),
    "discriminator_dim": (64,),
}


@pytest.fixture(scope="module")
def encoded(mixed_frame_shared):
    frame = mixed_frame_shared.drop(columns=["customer_id"])
    encoder = TabularEncoder().fit(frame, infer_schema(frame))
    matrix = torch.from_numpy(encoder.transform(frame))
    return frame, encoder, _Layout(encoder), matrix


def test_activation_is_a_softmax_per_span_and_leaves_continuous_values(encoded) -> None:
    _, encoder, layout, _ = encoded
    torch.manual_seed(0)
    raw = torch.randn(64, encoder.width, requires_grad=True)
    out = layout.activate(raw, tau=0.2)
    for span in encoder.spans:
        block = out[:, span.start : span.stop]
        if span.kind == "continuous":
            torch.testing.assert_close(block, raw[:, span.start : span.stop])
        elif span.kind == "categorical":
            torch.testing.assert_close(block.sum(1), torch.ones(64))
            assert (block >= 0).all()
        else:  # missing indicator: the 'missing' half of a two-way softmax
            assert ((block >= 0) & (block <= 1)).all()
    out.sum().backward()  # differentiable through the scatter
    assert raw.grad is not None and raw.grad.abs().sum() > 0


def test_condition_loss_equals_per_column_cross_entropy(encoded) -> None:
    _, encoder, layout, matrix = encoded
    torch.manual_seed(1)
    raw = torch.randn(200, encoder.width)
    conditions = _Conditions(matrix[:, layout.cond_columns].sum(0), layout)
    _, span, category = conditions.draw(200, training=True)
    categorical = [s for s in encoder.spans if s.kind == "categorical"]
    expected = torch.stack(
        [
            torch.nn.functional.cross_entropy(
                raw[i, categorical[s].start : categorical[s].stop][None], category[i][None]
            )
            for i, s in enumerate(span.tolist())
        ]
    ).mean()
    torch.testing.assert_close(layout.condition_loss(raw, span, category), expected)


def test_conditions_follow_log_frequency_in_training_and_frequency_when_sampling(
    encoded,
) -> None:
    _, encoder, layout, matrix = encoded
    counts = matrix[:, layout.cond_columns].sum(0)
    conditions = _Conditions(counts, layout)
    n = 200_000
    torch.manual_seed(2)
    spans = [s for s in encoder.spans if s.kind == "categorical"]
    for training in (True, False):
        cond, span, _ = conditions.draw(n, training)
        assert torch.equal(cond.sum(1), torch.ones(n))
        # Column uniformly ...
        for s in range(len(spans)):
            share = float((span == s).float().mean())
            p = 1 / len(spans)
            assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / n)
        # ... then a category by log(1 + count) in training, by count when sampling.
        offset = 0
        for s, column in enumerate(spans):
            size = column.stop - column.start
            column_counts = counts[offset : offset + size].double()
            weights = torch.log1p(column_counts) if training else column_counts
            expected = weights / weights.sum()
            drawn = cond[span == s, offset : offset + size].double().mean(0)
            rows = int((span == s).sum())
            tolerance = 4 * torch.sqrt(expected * (1 - expected) / rows)
            assert (drawn - expected).abs().le(tolerance).all(), (column.column, drawn, expected)
            offset += size


def test_real_rows_drawn_for_a_condition_hold_it_and_cover_all_holders(encoded) -> None:
    _, _, layout, matrix = encoded
    conditions = _Conditions(matrix[:, layout.cond_columns].sum(0), layout)
    rows = _RowsByCondition(matrix, layout)
    torch.manual_seed(3)
    cond, _, _ = conditions.draw(50_000, training=True)
    drawn = rows.draw(cond)
    held = matrix[drawn][:, layout.cond_columns]
    assert torch.equal((held * cond).sum(1), torch.ones(len(cond)))
    # Every holder of a frequent condition is reachable: draws for one condition cover all
    # rows that hold it.
    position = int(cond.sum(0).argmax())
    holders = set(torch.nonzero(matrix[:, layout.cond_columns[position]] > 0)[:, 0].tolist())
    picked = set(drawn[cond[:, position] > 0].tolist())
    assert picked == holders


def _two_groups(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], size=rows, p=[0.6, 0.4])
    value = np.where(group == "a", 0.0, 4.0) + rng.normal(size=rows)
    return normalize_dtypes(
        pd.DataFrame({"group": pd.array(group, dtype="string"), "value": value})
    )


def test_a_few_seconds_of_training_learn_a_category_numeric_dependency() -> None:
    real = _two_groups(1000, seed=0)
    # 600 steps at a higher learning rate than the default: a few seconds on one core.
    generator = ConditionalGANGenerator(
        device="cpu", epochs=60, generator_lr=5e-4, discriminator_lr=5e-4, **TINY
    )
    generator.fit(real, infer_schema(real), seed=0)
    sample = generator.sample(2000, seed=1)

    def gap(frame: pd.DataFrame) -> float:
        means = frame.groupby("group")["value"].mean()
        return float(means["b"] - means["a"])

    # The gap between the groups' means (about 4 standard deviations) is reproduced to
    # within half of itself: nearer the real gap than the 0 of a model that treats the
    # columns as independent, and not exaggerated past 1.5 times. (A GAN this short is far
    # from the sampling-noise precision of the GMM's tests.)
    assert abs(gap(sample) - gap(real)) < gap(real) / 2, (gap(sample), gap(real))
    shares = sample["group"].value_counts(normalize=True)
    real_shares = real["group"].value_counts(normalize=True)
    assert (shares - real_shares).abs().max() < 0.1, (shares, real_shares)
    assert len(generator.losses_) == 60
    assert all(set(row) == {"generator", "discriminator"} for row in generator.losses_)


@pytest.mark.parametrize("columns", [["value"], ["group"]])
def test_tables_with_only_numbers_or_only_categories(columns, tmp_path) -> None:
    real = _two_groups(300, seed=4)[columns]
    generator = ConditionalGANGenerator(device="cpu", epochs=2, **TINY)
    generator.fit(real, infer_schema(real), seed=0)
    sample = generator.sample(50, seed=1)
    assert list(sample.columns) == columns
    generator.save(tmp_path / "g")
    loaded = load_generator(tmp_path / "g")
    pd.testing.assert_frame_equal(loaded.sample(50, seed=1), sample)


def test_constant_columns_come_back_constant() -> None:
    rng = np.random.default_rng(5)
    frame = normalize_dtypes(
        pd.DataFrame(
            {
                "x": rng.normal(size=300),
                "fixed": np.full(300, 7),
                "label": pd.array(["only"] * 300, dtype="string"),
                "flag": pd.array([True] * 300, dtype="boolean"),
            }
        )
    )
    generator = ConditionalGANGenerator(device="cpu", epochs=2, **TINY)
    sample = generator.fit(frame, infer_schema(frame), seed=0).sample(200, seed=0)
    assert (sample["fixed"] == 7).all()
    assert (sample["label"] == "only").all()
    assert sample["flag"].all()
