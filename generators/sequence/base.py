"""`SequenceGenerator`, the base of the sequence models (see `generators.sequence.data`)."""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from generators.base import (
    SAMPLE_SHARD_ROWS,
    DPBudget,
    Generator,
    first_fresh_id,
    fresh_ids,
    seeded,
)
from generators.data.schema import Schema
from generators.errors import ConfigError, DataError, NotFittedError
from generators.seeds import chunk_seed
from generators.sequence.data import (
    SequenceSettings,
    _order_numbers,
    check_sequences,
    entity_lengths,
    most_common_step,
    sequence_schema,
    window_lengths,
)

SEQUENCE_FILE = "sequence.json"


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
            with seeded(chunk_seed(seed, index)):
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

    def _reserve_ids_of(self, frame: pd.DataFrame) -> None:
        """Fresh entities too start past the real ones in `frame` (see `reserve_ids`)."""
        super()._reserve_ids_of(frame)
        assert self.sequence is not None
        entity = self.sequence.entity_column
        if entity in frame.columns:
            self.entity_start_ = max(self.entity_start_, first_fresh_id(frame[entity]))

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
