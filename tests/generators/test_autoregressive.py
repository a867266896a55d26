"""The autoregressive generator and its token encoding, on small seeded tables.

Tolerances: a share p estimated from n_real training rows and compared with its share in
n_synthetic sampled rows may differ by sampling noise on both sides, so checks allow four
standard errors sqrt(p (1 - p) (1/n_real + 1/n_synthetic)), plus, where the check reads a
learned conditional rather than a marginal, the model's own estimation error (the same
noise again: the model is fitted on the real rows).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import generators.base as base
import generators.table.autoregressive as autoregressive
from generators.data.schema import infer_schema, normalize_dtypes
from generators.errors import ConfigError
from generators.table.autoregressive import AutoregressiveGenerator
from generators.table.encoding import TokenEncoder

SMALL = {"epochs": 40, "width": 32, "batch_size": 128, "early_stopping_patience": 5}
N_SYNTHETIC = 4000
SMALL_BINS = 30


def _tolerance(p: float, n_real: int, n_synthetic: int, learned: bool = False) -> float:
    real_noise = p * (1 - p) / n_real
    variance = real_noise * (2 if learned else 1) + p * (1 - p) / n_synthetic
    return 4 * math.sqrt(variance)


def _fit(frame: pd.DataFrame, seed: int = 0, **params) -> AutoregressiveGenerator:
    frame = normalize_dtypes(frame)
    generator = AutoregressiveGenerator(device="cpu", **{**SMALL, **params})
    return generator.fit(frame, infer_schema(frame), seed=seed)


@pytest.fixture(scope="module")
def dependent_frame() -> pd.DataFrame:
    """x: a/b/c; y copies x with probability 0.85 (else one of the other two); z: numeric
    whose mean depends on y; w: 25% exactly 0, 15% exactly 100, the rest log-normal."""
    rng = np.random.default_rng(7)
    rows = 2000
    x = rng.choice(["a", "b", "c"], size=rows, p=[0.5, 0.3, 0.2])
    others = {"a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b"]}
    flip = rng.random(rows) >= 0.85
    y = np.array([rng.choice(others[v]) if f else v for v, f in zip(x, flip, strict=True)])
    z = rng.normal(np.select([y == "a", y == "b"], [0.0, 5.0], 10.0), 1.0)
    kind = rng.random(rows)
    w = np.where(kind < 0.25, 0.0, np.where(kind < 0.40, 100.0, rng.lognormal(3, 1, rows)))
    return pd.DataFrame({"x": x, "y": y, "z": z, "w": w.round(3)})


@pytest.fixture(scope="module")
def dependent_fitted(dependent_frame: pd.DataFrame) -> AutoregressiveGenerator:
    return _fit(dependent_frame, seed=1)


def test_a_dependency_between_categories_is_learned(dependent_frame, dependent_fitted) -> None:
    """P(y = x | x) is 0.85, where independent marginals would give about 0.4."""
    real = dependent_frame
    sample = dependent_fitted.sample(N_SYNTHETIC, seed=2)
    for level in ("a", "b", "c"):
        real_rows = real[real["x"] == level]
        synthetic_rows = sample[sample["x"] == level]
        p = float((real_rows["y"] == level).mean())
        q = float((synthetic_rows["y"] == level).mean())
        tolerance = _tolerance(p, len(real_rows), len(synthetic_rows), learned=True)
        assert abs(q - p) <= tolerance, (level, p, q, tolerance)
        independent = float((real["y"] == level).mean())
        assert abs(q - independent) > tolerance, "y looks independent of x"


def test_a_numeric_column_follows_its_parent(dependent_frame, dependent_fitted) -> None:
    """The mean of z within each y level (0, 5, 10) is reproduced to within noise plus the
    width of the quantile bins (z is decoded uniformly inside its bin)."""
    real = dependent_frame
    sample = dependent_fitted.sample(N_SYNTHETIC, seed=3)
    bin_width = float(np.diff(np.asarray(dependent_fitted.encoder_.columns[2]["edges"])).max())
    for level in ("a", "b", "c"):
        z_real = real.loc[real["y"] == level, "z"]
        z_synthetic = sample.loc[sample["y"] == level, "z"].astype(float)
        noise = 4 * z_real.std() * math.sqrt(2 / len(z_real) + 1 / len(z_synthetic))
        assert abs(z_synthetic.mean() - z_real.mean()) <= noise + bin_width / 2, level


def test_point_masses_keep_their_exact_values_and_shares(dependent_frame, dependent_fitted):
    real = dependent_frame["w"]
    sample = dependent_fitted.sample(N_SYNTHETIC, seed=4)["w"].astype(float)
    for value in (0.0, 100.0):
        p, q = float((real == value).mean()), float((sample == value).mean())
        assert abs(q - p) <= _tolerance(p, len(real), len(sample)), (value, p, q)
    # The continuous part stays continuous: no other value is repeated like a point mass.
    assert sample[~sample.isin([0.0, 100.0])].value_counts().max() <= 5
    # w was rounded to 3 decimals: samples are on the same grid.
    assert np.allclose(sample * 1000, (sample * 1000).round(), atol=1e-6)


def test_missing_values_come_back_at_the_learned_rate() -> None:
    rng = np.random.default_rng(11)
    rows = 1500
    amount = pd.array(rng.gamma(2.0, 50.0, rows).round(2), dtype="Float64")
    amount[rng.random(rows) < 0.2] = pd.NA
    colour = pd.array(rng.choice(["red", "green", "blue"], rows), dtype="string")
    colour[rng.random(rows) < 0.1] = pd.NA
    frame = pd.DataFrame({"amount": amount, "colour": colour})
    sample = _fit(frame, seed=5).sample(N_SYNTHETIC, seed=6)
    for name in ("amount", "colour"):
        p = float(frame[name].isna().mean())
        q = float(sample[name].isna().mean())
        assert abs(q - p) <= _tolerance(p, rows, N_SYNTHETIC), (name, p, q)
    assert sample["amount"].dropna().min() >= frame["amount"].min()
    assert sample["amount"].dropna().max() <= frame["amount"].max()


def test_datetimes_round_trip_on_their_resolution() -> None:
    """Day-resolution dates come back as whole days, second-resolution times as whole
    seconds, time zones kept, missing dates at their rate, the pickup-dropoff order mostly
    kept (dropoff = pickup + 5..60 minutes, a dependency)."""
    rng = np.random.default_rng(3)
    rows = 1500
    day = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D")
    pickup = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 30 * 86400, rows), unit="s"
    )
    dropoff = pickup + pd.to_timedelta(rng.integers(300, 3600, rows), unit="s")
    frame = pd.DataFrame({"day": day, "pickup": pickup, "dropoff": dropoff})
    frame.loc[rng.random(rows) < 0.1, "day"] = pd.NaT
    frame = normalize_dtypes(frame)
    schema = infer_schema(frame)
    assert [schema[c].kind for c in frame.columns] == ["datetime"] * 3  # precondition
    generator = AutoregressiveGenerator(device="cpu", **SMALL, n_bins=SMALL_BINS)
    generator.fit(frame, schema, seed=0)
    sample = generator.sample(N_SYNTHETIC, seed=1)
    assert [str(t) for t in sample.dtypes] == [str(t) for t in frame.dtypes]
    days = sample["day"].dropna()
    assert (days == days.dt.normalize()).all()
    assert days.min() >= frame["day"].min() and days.max() <= frame["day"].max()
    assert (sample["pickup"].dt.nanosecond == 0).all()
    assert (sample["pickup"].dt.microsecond == 0).all()
    p, q = float(frame["day"].isna().mean()), float(sample["day"].isna().mean())
    assert abs(q - p) <= _tolerance(p, rows, N_SYNTHETIC)
    # dropoff follows pickup to within the bins' resolution (values are drawn uniformly
    # inside a bin, so their order within one bin is not kept): two independent draws over
    # the 30 days would land within two bin widths of each other about 13% of the time.
    bin_width = pd.Timedelta(days=30) / SMALL_BINS
    close = float(((sample["dropoff"] - sample["pickup"]).abs() <= 2 * bin_width).mean())
    assert close >= 0.8, close


def test_a_single_value_column_and_booleans() -> None:
    rng = np.random.default_rng(5)
    rows = 800
    frame = pd.DataFrame(
        {
            "constant": pd.array([7] * rows, dtype="Int64"),
            "label": pd.array(["only"] * rows, dtype="string"),
            "flag": pd.array(rng.random(rows) < 0.3, dtype="boolean"),
        }
    )
    sample = _fit(frame, seed=2).sample(N_SYNTHETIC, seed=3)
    assert (sample["constant"] == 7).all()
    assert (sample["label"] == "only").all()
    assert str(sample["flag"].dtype) == "boolean"
    p, q = float(frame["flag"].mean()), float(sample["flag"].mean())
    assert abs(q - p) <= _tolerance(p, rows, N_SYNTHETIC), (p, q)


def test_sampling_in_blocks_and_shards_does_not_change_the_rows(
    dependent_fitted, monkeypatch
) -> None:
    """Rows are drawn in cache-sized blocks inside a shard; the block size must not change
    what a seed gives, and shards are seeded on their own (a shard is a whole sample)."""
    reference = dependent_fitted.sample(1200, seed=8)
    monkeypatch.setattr(autoregressive, "_SAMPLE_BLOCK_ROWS", 7)
    pd.testing.assert_frame_equal(dependent_fitted.sample(1200, seed=8), reference)
    monkeypatch.setattr(base, "SAMPLE_SHARD_ROWS", 500)
    sharded = dependent_fitted.sample(1200, seed=8)
    assert len(sharded) == 1200
    pd.testing.assert_frame_equal(sharded.head(500), dependent_fitted.sample(500, seed=8))
    assert not sharded.iloc[500:1000].reset_index(drop=True).equals(sharded.head(500))


def test_save_load_gives_identical_samples_and_losses(dependent_fitted, tmp_path) -> None:
    dependent_fitted.save(tmp_path / "model")
    loaded = AutoregressiveGenerator.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.sample(700, seed=9), dependent_fitted.sample(700, seed=9))
    assert loaded.losses_ == dependent_fitted.losses_


def test_losses_are_recorded_per_epoch_and_early_stopping_keeps_the_best(
    dependent_fitted,
) -> None:
    losses = dependent_fitted.losses_
    assert 1 <= len(losses) <= SMALL["epochs"]
    assert all(set(epoch) == {"train", "validation"} for epoch in losses)
    validation = [epoch["validation"] for epoch in losses]
    if len(losses) < SMALL["epochs"]:  # stopped early: the last `patience` epochs were worse
        best = int(np.argmin(validation))
        assert len(losses) - 1 - best == SMALL["early_stopping_patience"]
    # Training lowered the loss below the first epoch's.
    assert min(validation) < validation[0]


def test_a_time_limit_stops_after_the_first_epoch(dependent_frame) -> None:
    generator = _fit(dependent_frame.head(300), time_limit_s=1e-6)
    assert len(generator.losses_) == 1


def test_unknown_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="n_bin"):
        AutoregressiveGenerator(n_bin=10)


def test_token_bins_hold_enough_rows_and_point_masses_are_exact() -> None:
    rng = np.random.default_rng(0)
    rows = 3000
    values = np.where(rng.random(rows) < 0.5, 0, rng.integers(1, 100_000, rows))
    frame = normalize_dtypes(pd.DataFrame({"gain": pd.array(values, dtype="Int64")}))
    encoder = TokenEncoder(n_bins=40, min_bin_rows=25).fit(frame, infer_schema(frame))
    tokens = encoder.transform(frame)[:, 0]
    counts = np.bincount(tokens, minlength=encoder.vocab_sizes[0])
    assert counts.min() >= 25 - 1  # quantile bins: at least min_bin_rows, up to a tie
    assert encoder.vocab_sizes[0] <= 40 + 1
    assert encoder.columns[0]["exact"] == [0.0]
    decoded = encoder.inverse(tokens[:, None], np.random.default_rng(1))["gain"]
    assert ((decoded == 0) == (values == 0)).all()  # the point mass decodes exactly
    assert (decoded == np.round(decoded)).all()  # integers stay integers
    # An interval decodes inside its own bin.
    again = encoder.transform(pd.DataFrame({"gain": decoded}))[:, 0]
    assert (again == tokens).all()


def _heavy_tailed_frame(rows: int = 4000, seed: int = 12) -> pd.DataFrame:
    """weight: integer, log-normal (long right tail, like Adult's fnlwgt)."""
    rng = np.random.default_rng(seed)
    weight = np.round(rng.lognormal(12, 0.6, rows)).astype(np.int64)
    return normalize_dtypes(pd.DataFrame({"weight": pd.array(weight, dtype="Int64")}))


def test_values_inside_a_bin_follow_the_real_rows_not_a_uniform() -> None:
    """A long right tail: drawn uniformly, the widest (last) bin spreads its rows up to the
    maximum and inflates the standard deviation; drawn from the within-bin quantiles, the
    decoded mean and standard deviation match the real ones."""
    frame = _heavy_tailed_frame()
    real = frame["weight"].astype(float)
    schema = infer_schema(frame)
    figures = {}
    for quantiles in (1, 20):
        encoder = TokenEncoder(n_bins=30, min_bin_rows=10, bin_quantiles=quantiles)
        tokens = encoder.fit(frame, schema).transform(frame)
        decoded = encoder.inverse(tokens, np.random.default_rng(0))["weight"]
        # Same tokens back: a value is drawn inside its own bin, on the integer grid.
        assert (encoder.transform(decoded.to_frame())[:, 0] == tokens[:, 0]).all()
        assert (decoded == decoded.round()).all()
        assert decoded.min() >= real.min() and decoded.max() <= real.max()
        figures[quantiles] = decoded.mean(), decoded.std()
    # The decoded rows are the real rows moved within their sub-interval (a 1/600 share
    # of the rows each): the standard deviation moves by a few parts in a hundred at most.
    mean, std = figures[20]
    assert abs(mean - real.mean()) <= 0.01 * real.mean()
    assert abs(std - real.std()) <= 0.03 * real.std()
    uniform_std = figures[1][1]
    assert uniform_std - real.std() > 2 * abs(std - real.std()), (uniform_std, std, real.std())


def test_within_bin_quantiles_each_summarise_enough_rows() -> None:
    frame = _heavy_tailed_frame(rows=1000)
    encoder = TokenEncoder(n_bins=10, min_bin_rows=25, bin_quantiles=8)
    entry = encoder.fit(frame, infer_schema(frame)).columns[0]
    assert len(entry["within"]) == len(entry["edges"]) - 1
    tokens = encoder.transform(frame)[:, 0]
    for i, knots in enumerate(entry["within"]):
        rows = int((tokens == i).sum())  # no point masses: interval i is token i
        assert len(knots) - 1 == min(8, rows // 25) or (not knots and rows // 25 < 2)
        # Knots are offsets within the bin's grid cells, ascending, from 0 to the cell count
        # (an interval is [edge, next edge) on the grid; the last one holds its edge).
        last = i == len(entry["edges"]) - 2
        cells = entry["edges"][i + 1] - entry["edges"][i] + last
        if knots:
            assert knots[0] == 0 and knots[-1] == cells and np.all(np.diff(knots) >= 0)


def test_an_encoder_saved_without_within_bin_quantiles_decodes_uniformly() -> None:
    """Models saved before within-bin quantiles load and decode as they did."""
    frame = _heavy_tailed_frame(rows=1000)
    encoder = TokenEncoder(n_bins=10, bin_quantiles=1).fit(frame, infer_schema(frame))
    state = encoder.state()
    old = {k: v for k, v in state.items() if k not in ("bin_quantiles", "differences")}
    old["columns"] = [{k: v for k, v in c.items() if k != "within"} for c in state["columns"]]
    loaded = TokenEncoder.from_state(old)
    tokens = encoder.transform(frame)
    pd.testing.assert_frame_equal(
        loaded.inverse(tokens, np.random.default_rng(3)),
        encoder.inverse(tokens, np.random.default_rng(3)),
    )


@pytest.fixture(scope="module")
def trips() -> pd.DataFrame:
    """Taxi-like trips: dropoff 2-90 minutes after pickup over a month, a fare, and a
    total = fare + tip (never below the fare); distance is unrelated to the order."""
    rng = np.random.default_rng(21)
    rows = 2000
    pickup = pd.Timestamp("2019-03-01") + pd.to_timedelta(
        rng.integers(0, 31 * 86400, rows), unit="s"
    )
    dropoff = pickup + pd.to_timedelta(rng.integers(120, 5400, rows), unit="s")
    fare = np.round(rng.gamma(2.0, 6.0, rows) + 2.5, 1)
    total = np.round(fare + rng.choice([0.0, 1.0, 2.5], rows) + rng.gamma(1.0, 1.0, rows), 2)
    frame = pd.DataFrame(
        {
            "pickup": pickup,
            "dropoff": dropoff,
            "distance": np.round(rng.gamma(2.0, 2.0, rows), 2),
            "fare": fare,
            "total": total,
        }
    )
    return normalize_dtypes(frame)


def test_a_later_column_that_follows_an_earlier_one_is_modelled_as_the_difference(trips):
    encoder = TokenEncoder(n_bins=30, differences=True).fit(trips, infer_schema(trips))
    bases = {entry["name"]: entry.get("base") for entry in encoder.columns}
    assert bases == {
        "pickup": None,
        "dropoff": "pickup",
        "distance": None,  # not >= pickup's kind; fare >= distance fails (or is not narrower)
        "fare": None,
        "total": "fare",
    }
    # Off by default: the encoder other models share keeps every column on its own.
    plain = TokenEncoder(n_bins=30).fit(trips, infer_schema(trips))
    assert not any("base" in entry for entry in plain.columns)


def test_sampled_datetimes_and_totals_keep_their_order(trips, tmp_path):
    """Binned separately, two datetimes inside wide bins are drawn independently and about
    half the rows would end before they start; as a difference, none does."""
    generator = _fit(trips, seed=3, n_bins=SMALL_BINS)
    sample = generator.sample(N_SYNTHETIC, seed=4)
    assert [str(t) for t in sample.dtypes] == [str(t) for t in trips.dtypes]
    gap = (sample["dropoff"] - sample["pickup"]).dt.total_seconds()
    assert (gap >= 0).all()
    # The gap itself follows the real one: 2 to 90 minutes, drawn from its own bins.
    real_gap = (trips["dropoff"] - trips["pickup"]).dt.total_seconds()
    assert gap.min() >= real_gap.min() and gap.max() <= real_gap.max()
    assert abs(gap.median() - real_gap.median()) <= 0.1 * real_gap.median()
    assert (sample["dropoff"].dt.nanosecond == 0).all()
    assert (sample["dropoff"] == sample["dropoff"].dt.floor("s")).all()
    assert (sample["total"] >= sample["fare"]).all()
    totals = sample["total"].astype(float)
    assert np.allclose(totals * 100, (totals * 100).round(), atol=1e-6)  # two decimals kept
    assert totals.min() >= trips["total"].min() and totals.max() <= trips["total"].max()
    # Save and load keep the differences.
    generator.save(tmp_path / "model")
    loaded = AutoregressiveGenerator.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.sample(500, seed=5), generator.sample(500, seed=5))


def test_a_base_with_missing_values_where_the_later_column_has_one_is_not_used() -> None:
    rng = np.random.default_rng(2)
    rows = 600
    start = pd.Series(rng.integers(0, 10_000, rows).astype(float))
    end = start + rng.integers(1, 50, rows)
    start[:30] = np.nan  # end is known where start is not: end - start is undefined there
    frame = normalize_dtypes(pd.DataFrame({"start": start, "end": end}))
    encoder = TokenEncoder(n_bins=20, differences=True).fit(frame, infer_schema(frame))
    assert "base" not in encoder.columns[1]
