"""Sequences as long tables: reading, checking, holding out, windows and the schema.

`make_sequence_frame` is a plain function so the generator and validation tests reuse it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import infer_schema, normalize_dtypes
from generators.data.tables import read_table
from generators.errors import ConfigError, DataError
from generators.sequence.data import (
    SequenceSettings,
    check_sequences,
    entity_lengths,
    most_common_step,
    sequence_schema,
    split_entities,
    split_in_time,
    split_sequences,
    window_lengths,
)

SETTINGS = SequenceSettings(entity_column="sensor", order_column="time", max_length=32)


def make_sequence_frame(
    n_entities: int = 12, length: int = 60, seed: int = 0, phi: float = 0.9
) -> pd.DataFrame:
    """A seeded long table in synthpipe's nullable dtypes, sorted by sensor then time.

    sensor: "s00".."sNN" strings; time: hourly datetimes from a start within the first two
    days of 2021; length + U[0, length/2) rows per sensor. level: 50 + 10 * a stationary
    AR(1) with coefficient `phi` (lag-1 autocorrelation phi), about 5% missing; temp:
    20 + 3 * the AR(1) + N(0, 1) (correlated with level within a sequence); mode: "low" /
    "mid" / "high" by the AR(1)'s value, about 3% missing.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for entity in range(n_entities):
        n = length + int(rng.integers(0, max(1, length // 2)))
        signal = np.zeros(n)
        signal[0] = rng.normal()
        for t in range(1, n):
            signal[t] = phi * signal[t - 1] + rng.normal(0.0, np.sqrt(1 - phi**2))
        temp = 20.0 + 3.0 * signal + rng.normal(0.0, 1.0, n)
        mode = np.where(signal > 0.5, "high", np.where(signal < -0.5, "low", "mid")).astype(object)
        mode[rng.random(n) < 0.03] = None
        level = np.where(rng.random(n) < 0.05, np.nan, 50.0 + 10.0 * signal)
        start = pd.Timestamp("2021-01-01") + pd.Timedelta(hours=int(rng.integers(0, 48)))
        frames.append(
            pd.DataFrame(
                {
                    "sensor": f"s{entity:02d}",
                    "time": start + pd.to_timedelta(np.arange(n), unit="h"),
                    "level": level,
                    "temp": temp,
                    "mode": mode,
                }
            )
        )
    return normalize_dtypes(pd.concat(frames, ignore_index=True))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_sequence_frame()


# -- checking ----------------------------------------------------------------------------------
def test_check_sorts_by_entity_then_time(frame):
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    checked = check_sequences(shuffled, SETTINGS)
    pd.testing.assert_frame_equal(checked, frame)


def test_missing_entity_column_names_the_key(frame):
    with pytest.raises(DataError, match=r"data\.sequence\.entity_column: 'station'"):
        check_sequences(frame, SequenceSettings(entity_column="station", order_column="time"))


def test_missing_order_column_names_the_key(frame):
    with pytest.raises(DataError, match=r"data\.sequence\.order_column: 'when'"):
        check_sequences(frame, SequenceSettings(entity_column="sensor", order_column="when"))


def test_entity_with_one_row_is_named_or_dropped(frame):
    lonely = frame.iloc[:1].assign(sensor=pd.array(["lonely"], dtype="string"))
    with_lonely = pd.concat([frame, lonely], ignore_index=True)
    with pytest.raises(DataError, match=r"'lonely' \(1 row\).*drop_short"):
        check_sequences(with_lonely, SETTINGS)
    dropped = check_sequences(with_lonely, SETTINGS.model_copy(update={"drop_short": True}))
    pd.testing.assert_frame_equal(dropped, frame)


def test_duplicated_times_within_an_entity_are_named(frame):
    duplicated = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    with pytest.raises(DataError, match=r"entity 's00' has 2 rows at time = 2021-"):
        check_sequences(duplicated, SETTINGS)
    # The same time in two different entities is fine.
    other = frame.copy()
    other.loc[other.sensor == "s01", "time"] = other.loc[other.sensor == "s01", "time"].min()
    other = other[other.sensor != "s01"]
    check_sequences(other, SETTINGS)


def test_unsortable_or_missing_order_values(frame):
    text = frame.assign(time=frame.time.astype(str).str.replace("2021", "year 2021"))
    text["time"] = text.time.astype("string")
    with pytest.raises(DataError, match="do not sort as times or numbers"):
        check_sequences(text, SETTINGS)
    gaps = frame.copy()
    gaps.loc[3, "time"] = pd.NaT
    with pytest.raises(DataError, match=r"order_column: 'time' is missing in 1 rows"):
        check_sequences(gaps, SETTINGS)
    nameless = frame.copy()
    nameless.loc[3, "sensor"] = pd.NA
    with pytest.raises(DataError, match=r"entity_column: 'sensor' is missing in 1 rows"):
        check_sequences(nameless, SETTINGS)


def test_numeric_order_column(frame):
    steps = frame.assign(step=frame.groupby("sensor").cumcount() * 5).drop(columns="time")
    settings = SequenceSettings(entity_column="sensor", order_column="step")
    checked = check_sequences(steps.iloc[::-1], settings)
    assert most_common_step(checked, settings) == 5.0


def test_order_parts_build_a_datetime(frame):
    parts = frame.assign(
        year=frame.time.dt.year,
        month=frame.time.dt.month,
        day=frame.time.dt.day,
        hour=frame.time.dt.hour,
    ).drop(columns="time")
    settings = SETTINGS.model_copy(update={"order_parts": ["year", "month", "day", "hour"]})
    checked = check_sequences(parts, settings)
    assert "year" not in checked.columns
    assert (checked.time.to_numpy() == frame.time.to_numpy()).all()
    # Checking the checked frame again (as fit does) leaves it as it is.
    pd.testing.assert_frame_equal(check_sequences(checked, settings), checked)
    bad = SETTINGS.model_copy(update={"order_parts": ["year", "weekday"]})
    with pytest.raises(DataError, match="order_parts"):
        check_sequences(parts, bad)


def test_max_rows_per_entity_keeps_the_first_rows(frame):
    settings = SETTINGS.model_copy(update={"max_rows_per_entity": 10})
    checked = check_sequences(frame.iloc[::-1], settings)
    assert entity_lengths(checked, "sensor").tolist() == [10] * 12
    pd.testing.assert_frame_equal(checked, frame.groupby("sensor").head(10).reset_index(drop=True))


def test_settings_are_strict():
    with pytest.raises(ValueError, match="extra"):
        SequenceSettings(entity_column="a", order_column="b", windows=3)


def test_reads_a_glob_of_entity_files(tmp_path, frame):
    for sensor, part in frame.groupby("sensor"):
        part.to_csv(tmp_path / f"sensor_{sensor}.csv", index=False)
    read, _ = read_table(str(tmp_path / "sensor_*.csv"))
    checked = check_sequences(read, SETTINGS)
    assert entity_lengths(checked, "sensor").tolist() == entity_lengths(frame, "sensor").tolist()
    assert pd.api.types.is_datetime64_any_dtype(checked.time)


# -- holding out ------------------------------------------------------------------------------
def test_split_entities_holds_whole_entities(frame):
    train, holdout = split_entities(frame, "sensor", 0.2, seed=3)
    assert set(train.sensor).isdisjoint(holdout.sensor)
    assert holdout.sensor.nunique() == 2  # round(0.2 * 12)
    assert len(train) + len(holdout) == len(frame)
    again, _ = split_entities(frame, "sensor", 0.2, seed=3)
    pd.testing.assert_frame_equal(train, again)
    # Few entities: at least one held out and one kept.
    two = frame[frame.sensor.isin(["s00", "s01"])]
    small_train, small_holdout = split_entities(two, "sensor", 0.9, seed=0)
    assert small_train.sensor.nunique() == small_holdout.sensor.nunique() == 1
    with pytest.raises(DataError, match="holdout: time"):
        split_entities(frame[frame.sensor == "s00"], "sensor", 0.2, seed=0)
    with pytest.raises(ConfigError):
        split_entities(frame, "sensor", 1.0, seed=0)


def test_split_in_time_holds_each_entitys_tail(frame):
    settings = SETTINGS.model_copy(update={"holdout": "time"})
    one = frame[frame.sensor == "s00"].reset_index(drop=True)
    train, holdout = split_sequences(one, settings, 0.25, seed=0)
    assert len(holdout) == round(0.25 * len(one))
    assert train.time.max() < holdout.time.min()
    train, holdout = split_in_time(frame, settings, 0.2)
    last = train.groupby("sensor").time.max()
    first = holdout.groupby("sensor").time.min()
    assert (last < first.reindex(last.index)).all()


# -- windows and the schema -------------------------------------------------------------------
def test_window_lengths_cut_and_keep_rows():
    assert window_lengths(np.array([5, 10, 3]), 4).tolist() == [4, 1, 4, 4, 2, 3]
    assert window_lengths(np.array([5, 10]), None).tolist() == [5, 10]


def test_sequence_schema(frame):
    schema = sequence_schema(infer_schema(frame), SETTINGS)
    assert schema["sensor"].kind == "id"
    assert schema["time"].minimum is None and schema["time"].maximum is None
    assert schema["level"] == infer_schema(frame)["level"]
    floats = frame.assign(sensor=frame.sensor.str[1:].astype("float64"))
    with pytest.raises(DataError, match="integers or strings"):
        sequence_schema(infer_schema(floats), SETTINGS)


# -- the real data --------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_beijing_reads_as_twelve_hourly_stations(shared_data):
    frame, _ = read_table(str(shared_data / "beijing_air_quality" / "*.csv.gz"), drop=["No"])
    settings = SequenceSettings(
        entity_column="station", order_column="time", order_parts=["year", "month", "day", "hour"]
    )
    checked = check_sequences(frame, settings)
    assert entity_lengths(checked, "station").tolist() == [35_064] * 12
    assert most_common_step(checked, settings) == pd.Timedelta(hours=1).value
    assert list(checked.columns[:1]) == ["time"]
