"""Sequences as a long table: one row per (entity, time step), and the base of sequence models.

A sequence dataset is a long table with an entity column (a sensor, a station, a customer)
and an order column (a timestamp or a step number), set in the run config as
`data.sequence:` (`SequenceSettings`). This module holds the plain functions the flow calls
before and around a sequence generator, and the `SequenceGenerator` base:

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

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from generators.base import (
    SAMPLE_SHARD_ROWS,
    DPBudget,
    Generator,
    first_fresh_id,
    fresh_ids,
    seeded,
)
from generators.errors import ConfigError, DataError, NotFittedError
from generators.schema import Column, Schema

SEQUENCE_FILE = "sequence.json"
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


# -- the base of sequence generators -------------------------------------------------------------
class SequenceGenerator(Generator):
    """Base of the sequence models: a long table in, a long table of new entities out.

    Construct with `sequence=SequenceSettings(...)` (or its dict) besides the params; the
    settings are saved with the model. `fit(data, schema)` takes the long table (checked and
    sorted by `check_sequences`; `schema` as inferred, or as `sequence_schema` gives it) and
    `sample(n, seed=...)` returns `n` NEW entities (not rows): see the module docstring.
    Subclasses implement `_fit_sequences(values, lengths)` and `_sample_sequences(lengths)`
    on the value columns (concatenated rows + per-entity lengths), and `_save_model` /
    `_load_model`.
    """

    modality: ClassVar[str] = "sequence"

    def __init__(
        self,
        device: str = "auto",
        sequence: SequenceSettings | dict[str, Any] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(device=device, **params)
        if isinstance(sequence, dict):
            sequence = SequenceSettings(**sequence)
        self.sequence = sequence

    # -- fitting ---------------------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        schema: Schema,
        *,
        seed: int = 0,
        dp: DPBudget | None = None,
        checkpoint_dir: Path | None = None,
    ) -> Self:
        """Fit on the long table `data` (entity, order and value columns). Returns self."""
        settings = self.sequence
        if settings is None:
            raise ConfigError(
                f"{self.name}: a sequence generator needs data.sequence (entity_column, "
                "order_column); pass sequence=SequenceSettings(...)"
            )
        if dp is not None:
            raise ConfigError(f"privacy.dp: generator '{self.name}' cannot train under DP-SGD")
        self.dp_, self._checkpoint_dir, self.resumed_from_ = None, None, None
        if len(data) == 0:
            raise DataError("cannot fit a generator on an empty table")
        missing = [name for name in schema.names if name not in data.columns]
        if missing:
            raise DataError(f"training data lacks the schema's columns {missing}")
        frame = check_sequences(data, settings)
        schema = sequence_schema(schema, settings)
        unusable = schema.names_of("text", "image")
        if unusable:
            raise DataError(
                f"column(s) {unusable} hold free text or images, which sequence generator "
                f"'{self.name}' cannot model; drop them (data.drop) or declare them categorical"
            )
        self.schema_ = schema
        self._id_starts = {
            name: first_fresh_id(frame[name])
            for name in schema.names_of("id")
            if name != settings.entity_column
        }
        self.entity_start_ = first_fresh_id(frame[settings.entity_column])
        lengths = entity_lengths(frame, settings.entity_column)
        self.lengths_ = lengths
        self.step_ = most_common_step(frame, settings)
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        self.starts_ = _order_numbers(frame[settings.order_column])[starts]
        if not self.value_columns:
            raise DataError(
                f"{self.name}: the table has no columns besides the entity, order and "
                "identifier columns; there is nothing to model"
            )
        self.losses_ = []
        try:
            with seeded(seed):
                self._fit_sequences(frame[self.value_columns].reset_index(drop=True), lengths)
        except BaseException:
            self.schema_ = None
            raise
        return self

    @property
    def value_columns(self) -> list[str]:
        """The columns the model learns: all but the entity, order and identifier columns."""
        assert self.schema_ is not None and self.sequence is not None
        skip = {self.sequence.entity_column, self.sequence.order_column}
        return [c.name for c in self.schema_.columns if c.kind != "id" and c.name not in skip]

    @property
    def modelled_columns(self) -> list[str]:
        return self.value_columns

    def windows(self, lengths: np.ndarray) -> np.ndarray:
        """Training windows of the concatenated rows (see `window_lengths`)."""
        assert self.sequence is not None
        return window_lengths(lengths, self.sequence.max_length)

    # -- sampling --------------------------------------------------------------------------------
    def sample(self, n: int, *, seed: int, length: int | None = None) -> pd.DataFrame:
        """`n` new entities as a long table with the schema's columns, order and dtypes,
        sorted by entity then order. Lengths: `length`, else settings.length, else drawn
        from the real entity lengths. Same (n, seed, length) -> same table."""
        if self.schema_ is None:
            raise NotFittedError(f"{self.name}: call fit() before sample()")
        if not isinstance(n, int | np.integer) or n <= 0:
            raise DataError(f"sample: the number of entities must be a positive integer, got {n!r}")
        settings = self.sequence
        assert settings is not None
        length = length if length is not None else settings.length
        if length is not None and length < 1:
            raise DataError(f"sample: length must be positive, got {length}")
        rng = np.random.default_rng([seed, 0x5E0])
        lengths = (
            np.full(n, int(length), dtype=np.int64)
            if length is not None
            else rng.choice(self.lengths_, size=n).astype(np.int64)
        )
        starts = rng.choice(self.starts_, size=n)
        shards = []
        for index, (low, high) in enumerate(_shards(lengths, SAMPLE_SHARD_ROWS)):
            with seeded(seed + 1_000_003 * index):
                values = self._sample_sequences(lengths[low:high]).reset_index(drop=True)
            if len(values) != int(lengths[low:high].sum()):
                raise AssertionError(f"{self.name}: _sample_sequences returned the wrong rows")
            shards.append(values)
        frame = pd.concat(shards, ignore_index=True)
        rows = int(lengths.sum())
        for name, id_start in self._id_starts.items():
            frame[name] = fresh_ids(id_start, rows, self.schema_[name].dtype)
        entity, order = settings.entity_column, settings.order_column
        frame[entity] = pd.NA
        frame[order] = pd.NA
        out = self.schema_.conform(frame)
        ids = fresh_ids(self.entity_start_, n, self.schema_[entity].dtype)
        out[entity] = ids.repeat(lengths).reset_index(drop=True).astype(self.schema_[entity].dtype)
        out[order] = self._order_values(starts, lengths)
        return out

    def _order_values(self, starts: np.ndarray, lengths: np.ndarray) -> pd.Series:
        """start + step * position, per entity, in the order column's dtype."""
        assert self.schema_ is not None and self.sequence is not None
        column = self.schema_[self.sequence.order_column]
        positions = np.concatenate([np.arange(length) for length in lengths])
        base = np.repeat(starts, lengths)
        dtype = pd.api.types.pandas_dtype(column.dtype)
        if column.kind == "datetime":
            nanoseconds = base.astype(np.int64) + positions * np.int64(round(self.step_))
            stamps = pd.Series(pd.to_datetime(nanoseconds, unit="ns"))
            if isinstance(dtype, pd.DatetimeTZDtype):
                stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(dtype.tz)
            return stamps.astype(column.dtype)
        numbers = base + positions * self.step_
        if pd.api.types.is_integer_dtype(dtype):
            numbers = np.round(numbers)
        return pd.Series(pd.array(numbers, dtype="Float64")).astype(column.dtype)

    # -- saving ----------------------------------------------------------------------------------
    def _save(self, path: Path) -> None:
        assert self.sequence is not None
        state = {
            "settings": self.sequence.model_dump(mode="json"),
            "entity_start": self.entity_start_,
            "lengths": self.lengths_.tolist(),
            "starts": self.starts_.tolist(),
            "step": self.step_,
        }
        (Path(path) / SEQUENCE_FILE).write_text(json.dumps(state))
        self._save_model(Path(path))

    def _load(self, path: Path) -> None:
        state = json.loads((Path(path) / SEQUENCE_FILE).read_text())
        self.sequence = SequenceSettings(**state["settings"])
        self.entity_start_ = int(state["entity_start"])
        self.lengths_ = np.asarray(state["lengths"], dtype=np.int64)
        self.starts_ = np.asarray(state["starts"], dtype=np.float64)
        self.step_ = float(state["step"])
        self._load_model(Path(path))

    # -- what each model implements --------------------------------------------------------------
    def _fit(self, data: pd.DataFrame) -> None:  # pragma: no cover - fit is overridden
        raise NotImplementedError("sequence generators fit through _fit_sequences")

    def _sample(self, n: int) -> pd.DataFrame:  # pragma: no cover - sample is overridden
        raise NotImplementedError("sequence generators sample through _sample_sequences")

    @abstractmethod
    def _fit_sequences(self, values: pd.DataFrame, lengths: np.ndarray) -> None:
        """Learn from `values` (the value columns, nullable dtypes, rows of every entity
        concatenated in order) and `lengths` (rows per entity, summing to len(values));
        RNGs are seeded."""

    @abstractmethod
    def _sample_sequences(self, lengths: np.ndarray) -> pd.DataFrame:
        """sum(lengths) rows of the value columns: one new entity per length, concatenated;
        any dtypes `Schema.conform` can cast. RNGs are seeded."""

    @abstractmethod
    def _save_model(self, path: Path) -> None: ...

    @abstractmethod
    def _load_model(self, path: Path) -> None: ...


def _shards(lengths: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive entity ranges [low, high) of at most `max_rows` rows (at least one entity
    each); they depend on the lengths alone, so a seed gives the same table anywhere."""
    out, low, rows = [], 0, 0
    for index, length in enumerate(lengths):
        if index > low and rows + length > max_rows:
            out.append((low, index))
            low, rows = index, 0
        rows += int(length)
    out.append((low, len(lengths)))
    return out
