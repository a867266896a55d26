"""Sequences as a long table: one row per (entity, time step) (base: `generators.sequence.base`).

A sequence dataset is a long table with an entity column (a sensor, a station, a customer)
and an order column (a timestamp or a step number), set in the run config as
`data.sequence:` (`SequenceSettings`). This module holds the plain functions the flow calls
before and around a sequence generator; `generators.sequence.base` holds the
`SequenceGenerator` base:

- `check_sequences(frame, settings)` validates the long table and returns it sorted by
  entity, then order. Bad input is one `DataError` line naming the `data.sequence.*` key:
  a missing entity or order column, missing entity or order values, an order column that
  does not sort (text, booleans), an entity with fewer than `min_length` rows (named; or
  dropped with `drop_short: true`), and duplicated order values within an entity (named,
  with the value). Rows out of order are not an error: they are sorted (stable).
  `max_rows_per_entity` keeps each entity's first rows only.
  With `order_parts` (e.g. Beijing's `[year, month, day, hour]`) the order column is first
  built as a datetime from those columns, which are then dropped.
- `split_sequences(frame, settings, fraction, seed)` holds out real data for the checks:
  with `holdout: entities` (the default) whole entities (`split_entities`), so no held-out
  entity's rows ever reach a generator; this needs at least 2 entities, and takes
  round(fraction * entities) of them, at least 1 and at most all but 1 (Beijing's 12
  stations at 0.2: 2 held out, 10 trained on). With `holdout: time` (for 1 entity, or very
  few) the last `fraction` of every entity's rows is held out instead (`split_in_time`):
  the holdout then shares entities with the training data, so it measures memorisation of
  a time span, not of an entity; the privacy report says which split was used.
- `sequence_schema(schema, settings)` gives the schema a sequence run writes with: the
  entity column becomes an identifier (synthetic entities get fresh ids, which a
  categorical column would blank out as never-seen values) and the order column loses its
  range (synthetic timestamps may run past the last real one; clipping them would
  duplicate times).

`SequenceGenerator` (modality "sequence") fits on the long table and samples NEW entities:
fresh entity ids (integers past the largest real one, or `syn-0001` strings), lengths drawn
from the real entity lengths (or `length`), and order values that continue the real
cadence: each entity starts at a start value drawn from the training entities' starts, and
steps by the most common step between consecutive rows (irregular gaps are not
reproduced). The order column is strictly increasing within each synthetic entity by
construction. Models see the value columns (everything but the entity, order and other
identifier columns) as one concatenated frame plus per-entity lengths (hmmlearn's
convention), and return rows the same way.

Windows: long sequences are cut into consecutive windows of at most
`settings.max_length` rows for training (`window_lengths`), which bounds a batched
forward-backward's sequential loop and padding. How windows are stitched at sampling is
each model's business and is said in its docstring: the HMM samples one Markov chain per
entity over its whole length (the hidden state carries across window boundaries, so
nothing needs stitching); PAR samples window-length pieces and concatenates them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from generators.data.schema import Column, Schema
from generators.errors import ConfigError, DataError

KEY = "data.sequence"
_TIME_UNITS = ("year", "month", "day", "hour", "minute", "second")
# Entities named in an error message, at most.
_SHOWN = 5


class SequenceSettings(BaseModel):
    """`data.sequence:` in the run config: how a long table is cut into sequences."""

    model_config = ConfigDict(extra="forbid")

    entity_column: str = Field(description="the column naming each sequence (station, sensor)")
    order_column: str = Field(description="the time or step column ordering rows in an entity")
    order_parts: list[str] | None = Field(
        None,
        description="build order_column as a datetime from these columns, named by their unit "
        "(year, month, day, hour, minute, second), then drop them; e.g. [year, month, day, hour]",
    )
    max_length: int | None = Field(
        256,
        ge=2,
        description="training windows: entities longer than this are cut into consecutive "
        "windows of at most this many rows; null = whole entities",
    )
    min_length: int = Field(
        2, ge=2, description="rows an entity needs (cadence and autocorrelation need 2)"
    )
    drop_short: bool = Field(
        False, description="drop entities shorter than min_length instead of stopping"
    )
    holdout: Literal["entities", "time"] = Field(
        "entities",
        description="hold out whole entities (needs >= 2), or the last part of every entity",
    )
    max_rows_per_entity: int | None = Field(
        None,
        ge=2,
        description="keep only each entity's first this many rows (after sorting); for slow "
        "models such as PAR on long entities; null = all",
    )
    length: int | None = Field(
        None, ge=2, description="rows per synthetic entity; default: drawn from the real lengths"
    )
    summary_window: int | None = Field(
        None,
        ge=2,
        description="per-entity summaries (privacy, expectations) on consecutive windows of "
        "this many rows instead of whole entities; more units when there are few entities",
    )
    acf_lags: int = Field(24, ge=1, description="lags of the autocorrelation in fidelity")


# -- reading and checking ----------------------------------------------------------------------
def check_sequences(frame: pd.DataFrame, settings: SequenceSettings) -> pd.DataFrame:
    """The long table sorted by entity, then order (stable), index reset; see the module
    docstring for what is an error. Builds the order column from `order_parts` first."""
    entity, order = settings.entity_column, settings.order_column
    parts = settings.order_parts or []
    # Built once: a frame that has the order column and none of the parts is already done.
    if parts and not (order in frame.columns and not any(p in frame.columns for p in parts)):
        frame = assemble_order(frame, settings)
    columns = list(frame.columns)
    if entity not in frame.columns:
        raise DataError(
            f"{KEY}.entity_column: '{entity}' is not a column of the table; columns are "
            f"{columns}; name the column that identifies each sequence"
        )
    if order not in frame.columns:
        hint = " (or build it with data.sequence.order_parts)" if not settings.order_parts else ""
        raise DataError(
            f"{KEY}.order_column: '{order}' is not a column of the table; columns are "
            f"{columns}; name the time or step column{hint}"
        )
    if entity == order:
        raise DataError(f"{KEY}: entity_column and order_column are both '{entity}'")
    if frame[entity].isna().any():
        raise DataError(
            f"{KEY}.entity_column: '{entity}' is missing in {int(frame[entity].isna().sum())} "
            "rows; every row needs an entity: fill or drop them"
        )
    values = frame[order]
    if not (
        pd.api.types.is_datetime64_any_dtype(values.dtype)
        or (pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values))
    ):
        examples = values.dropna().astype(str).unique()[:3].tolist()
        raise DataError(
            f"{KEY}.order_column: '{order}' holds {values.dtype} values (e.g. {examples}) that "
            "do not sort as times or numbers; give a datetime or numeric column (strings are "
            "parsed as datetimes when nearly all of them parse), or build one with "
            "data.sequence.order_parts"
        )
    if values.isna().any():
        raise DataError(
            f"{KEY}.order_column: '{order}' is missing in {int(values.isna().sum())} rows; "
            "every row needs a time: fill or drop them"
        )
    ordered = frame.sort_values([entity, order], kind="stable").reset_index(drop=True)
    lengths = ordered.groupby(entity, sort=False).size()
    short = lengths[lengths < settings.min_length]
    if len(short):
        if not settings.drop_short:
            shown = ", ".join(
                f"'{name}' ({rows} row{'s' * (rows != 1)})"
                for name, rows in short.iloc[:_SHOWN].items()
            )
            more = f" and {len(short) - _SHOWN} more" if len(short) > _SHOWN else ""
            raise DataError(
                f"{KEY}: {len(short)} entit{'ies' if len(short) > 1 else 'y'} of "
                f"'{entity}' have fewer than {settings.min_length} rows: {shown}{more}; a "
                "sequence needs at least 2 rows (cadence, autocorrelation): set "
                "data.sequence.drop_short: true to leave them out"
            )
        ordered = ordered[~ordered[entity].isin(short.index)].reset_index(drop=True)
        if ordered.empty:
            raise DataError(
                f"{KEY}: every entity has fewer than {settings.min_length} rows; nothing is "
                "left to learn sequences from"
            )
    if settings.max_rows_per_entity is not None:
        ordered = ordered.groupby(entity, sort=False).head(settings.max_rows_per_entity)
        ordered = ordered.reset_index(drop=True)
    duplicated = ordered.duplicated([entity, order], keep=False)
    if duplicated.any():
        first = ordered[duplicated].iloc[0]
        entities = ordered.loc[duplicated, entity].nunique()
        raise DataError(
            f"{KEY}.order_column: entity '{first[entity]}' has "
            f"{int(((ordered[entity] == first[entity]) & (ordered[order] == first[order])).sum())}"
            f" rows at {order} = {first[order]} ({entities} entit"
            f"{'ies have' if entities > 1 else 'y has'} duplicated times); each entity needs "
            "distinct order values: deduplicate or aggregate those rows"
        )
    return ordered


def assemble_order(frame: pd.DataFrame, settings: SequenceSettings) -> pd.DataFrame:
    """`frame` with `order_column` built as a datetime from the `order_parts` columns
    (named year, month, day, hour, minute, second, in any case), which are dropped."""
    parts = list(settings.order_parts or [])
    missing = [name for name in parts if name not in frame.columns]
    if missing:
        raise DataError(
            f"{KEY}.order_parts: {missing} are not columns of the table; columns are "
            f"{list(frame.columns)}"
        )
    units = {name: name.lower() for name in parts}
    unknown = [name for name, unit in units.items() if unit not in _TIME_UNITS]
    if unknown or len(set(units.values())) != len(units):
        raise DataError(
            f"{KEY}.order_parts: columns must be named by distinct time units "
            f"{list(_TIME_UNITS)}; got {parts}"
        )
    if settings.order_column in frame.columns and settings.order_column not in parts:
        raise DataError(
            f"{KEY}.order_column: '{settings.order_column}' already is a column; choose a new "
            "name for the time built from data.sequence.order_parts"
        )
    pieces = pd.DataFrame({units[name]: frame[name] for name in parts})
    for unit in ("month", "day"):  # to_datetime needs year, month and day
        if unit not in pieces:
            pieces[unit] = 1
    if "year" not in pieces:
        raise DataError(f"{KEY}.order_parts: a year column is needed, got {parts}")
    if pieces.isna().any().any():
        raise DataError(
            f"{KEY}.order_parts: {int(pieces.isna().any(axis=1).sum())} rows miss a time part; "
            "fill or drop them"
        )
    try:
        pieces = pieces.astype("int64")
        stamps = pd.to_datetime(pieces[[u for u in _TIME_UNITS if u in pieces]])
    except (ValueError, TypeError, OverflowError) as error:
        raise DataError(
            f"{KEY}.order_parts: {parts} do not form valid dates ({str(error)[:120]})"
        ) from None
    out = frame.drop(columns=parts)
    position = min(frame.columns.get_loc(name) for name in parts)
    out.insert(position, settings.order_column, stamps.astype("datetime64[ns]").to_numpy())
    return out


def entity_lengths(frame: pd.DataFrame, entity_column: str) -> np.ndarray:
    """Rows per entity of a frame sorted by entity (as `check_sequences` returns it), in the
    order entities first appear."""
    codes = pd.factorize(frame[entity_column], sort=False)[0]
    boundaries = np.flatnonzero(np.diff(codes) != 0) + 1
    return np.diff(np.r_[0, boundaries, len(codes)]).astype(np.int64)


def window_lengths(lengths: np.ndarray, max_length: int | None) -> np.ndarray:
    """Lengths after cutting each sequence into consecutive windows of at most `max_length`
    rows (the last window of a sequence takes the remainder). The rows stay where they are:
    windows are a finer cut of the same concatenated rows."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if max_length is None:
        return lengths
    out = []
    for length in lengths:
        full, rest = divmod(int(length), max_length)
        out += [max_length] * full + ([rest] if rest else [])
    return np.asarray(out, dtype=np.int64)


# -- holding out -------------------------------------------------------------------------------
def split_entities(
    frame: pd.DataFrame, entity_column: str, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded (train, holdout) of whole entities: round(fraction * entities) of them, at least
    1 and at most all but 1, go to the holdout. Needs >= 2 entities. Row order is kept."""
    if not 0 < fraction < 1:
        raise ConfigError(f"data.holdout_fraction must be in (0, 1), got {fraction}")
    entities = pd.unique(frame[entity_column])
    if len(entities) < 2:
        raise DataError(
            f"{KEY}: the table has {len(entities)} entity; holding out whole entities needs at "
            "least 2: set data.sequence.holdout: time to hold out the last part of its sequence"
        )
    take = min(max(1, int(round(fraction * len(entities)))), len(entities) - 1)
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(len(entities))[:take].tolist())
    is_holdout = (
        frame[entity_column]
        .map({value: i in held for i, value in enumerate(entities)})
        .to_numpy(dtype=bool)
    )
    return (
        frame[~is_holdout].reset_index(drop=True),
        frame[is_holdout].reset_index(drop=True),
    )


def split_in_time(
    frame: pd.DataFrame, settings: SequenceSettings, fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) where the holdout is the last round(fraction * length) rows of every
    entity (at least `min_length` rows on both sides; entities too short for that stay whole
    in train). `frame` must be sorted as `check_sequences` returns it."""
    if not 0 < fraction < 1:
        raise ConfigError(f"data.holdout_fraction must be in (0, 1), got {fraction}")
    lengths = entity_lengths(frame, settings.entity_column)
    is_holdout = np.zeros(len(frame), dtype=bool)
    start = 0
    for length in lengths:
        take = int(round(fraction * length))
        take = min(max(take, settings.min_length), length - settings.min_length)
        if take >= settings.min_length:
            is_holdout[start + length - take : start + length] = True
        start += length
    if not is_holdout.any():
        raise DataError(
            f"{KEY}.holdout: time: no entity has {2 * settings.min_length} rows, so none can be "
            "split into a training part and a held-out part"
        )
    return (
        frame[~is_holdout].reset_index(drop=True),
        frame[is_holdout].reset_index(drop=True),
    )


def split_sequences(
    frame: pd.DataFrame, settings: SequenceSettings, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) by `settings.holdout`: whole entities, or every entity's last part."""
    if settings.holdout == "time":
        return split_in_time(frame, settings, fraction)
    return split_entities(frame, settings.entity_column, fraction, seed)


# -- the schema a sequence run writes with -------------------------------------------------------
def sequence_schema(schema: Schema, settings: SequenceSettings) -> Schema:
    """`schema` with the entity column as an identifier and the order column unbounded (see
    the module docstring). DataError when the entity column holds neither integers nor
    strings."""
    columns = []
    for column in schema.columns:
        if column.name == settings.entity_column:
            dtype = pd.api.types.pandas_dtype(column.dtype)
            if not (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
                raise DataError(
                    f"{KEY}.entity_column: '{column.name}' holds {column.dtype} values; entity "
                    "ids must be integers or strings (synthetic entities get fresh ids)"
                )
            column = Column(column.name, "id", column.dtype)
        elif column.name == settings.order_column:
            if column.kind not in ("numeric", "datetime"):
                raise DataError(
                    f"{KEY}.order_column: '{column.name}' is {column.kind} in the schema; it "
                    "must be numeric or datetime (data.schema)"
                )
            column = Column(column.name, column.kind, column.dtype)
        columns.append(column)
    return Schema(tuple(columns), schema.arrow_schema)


# -- cadence -------------------------------------------------------------------------------------
def _order_numbers(values: pd.Series) -> np.ndarray:
    """Order values as float64 (datetimes: int64 nanoseconds since the epoch, UTC)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.dt.as_unit("ns").astype("int64").to_numpy().astype(np.float64)
    return values.to_numpy(dtype="float64", na_value=np.nan)


def most_common_step(frame: pd.DataFrame, settings: SequenceSettings) -> float:
    """The most common positive difference between consecutive order values within an
    entity (ties: the smallest), as a float (nanoseconds for datetimes)."""
    numbers = _order_numbers(frame[settings.order_column])
    same = frame[settings.entity_column].to_numpy()
    steps = np.diff(numbers)[same[1:] == same[:-1]]
    steps = steps[steps > 0]
    if len(steps) == 0:
        raise DataError(f"{KEY}: no entity has two rows; the cadence cannot be learned")
    values, counts = np.unique(np.round(steps, 9), return_counts=True)
    return float(values[np.argmax(counts)])
