"""The table contract: which kind each column is, and how to give any frame back its types.

A `Schema` travels beside every table. It is inferred from the real data (the user may
override any column's kind in the config), saved with the run and with every trained
generator, and used to `conform` whatever a generator produces to the input's exact
column order, pandas dtypes and Arrow types.

Frames inside synthpipe use pandas' nullable dtypes (`Int64`, `Float64`, `boolean`,
`string`, `datetime64[ns]`), so a missing value is always `pd.NA`/`NaT` and an int column
with gaps stays an int column.
"""

from __future__ import annotations

import base64
import decimal
import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa

from generators.errors import DataError

Kind = Literal["numeric", "categorical", "boolean", "datetime", "id", "text", "image"]
KINDS: tuple[str, ...] = get_args(Kind)

# A string column whose values average this many words or characters is free text,
# not a category (a comment, an address); tabular generators refuse to copy it verbatim.
TEXT_MIN_MEAN_WORDS = 5
TEXT_MIN_MEAN_CHARS = 40
# Unique-per-row columns with at least this many rows are identifiers, not categories.
ID_MIN_ROWS = 20
# A string column is parsed as datetimes when this share of its non-null values parse.
DATETIME_MIN_PARSED_SHARE = 0.95
# Integers a float64 holds exactly: a numeric column beyond it is refused (see _describe).
MAX_EXACT_INTEGER = 2**53
_ID_NAME_HINTS = ("id", "uuid", "guid", "key")
_TIME_OF_DAY = r"\s*\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([AaPp][Mm])?\s*"
# What a date looks like, valid or not: 2021-02-30, 0000-00-00, 31/12/1999 (+ a time).
_DATE_SHAPE = r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
# A time of day followed by a UTC offset (Z, +05:30, -0800, +01) at the end of a value.
_WITH_OFFSET = r".*\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)"
# Spellings of a declared boolean column's values (compared lower-cased, stripped).
BOOLEAN_WORDS = {
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "t": True,
    "f": False,
}


@dataclass(frozen=True)
class Column:
    """One column: its name, its kind, its pandas dtype and the range seen in the real data."""

    name: str
    kind: Kind
    dtype: str  # pandas dtype name, e.g. "Int64", "Float64", "string", "boolean", "datetime64[ns]"
    minimum: float | str | None = None  # numeric: number; datetime: ISO string
    maximum: float | str | None = None
    categories: tuple[str, ...] | None = None  # categorical: the values seen, sorted

    @property
    def is_integer(self) -> bool:
        return pd.api.types.is_integer_dtype(pd.api.types.pandas_dtype(self.dtype))


@dataclass(frozen=True)
class Schema:
    """Columns in the input's order, plus the input's Arrow schema for writing Parquet back."""

    columns: tuple[Column, ...]
    arrow_schema: pa.Schema = field(compare=False, repr=False)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def names_of(self, *kinds: str) -> list[str]:
        return [c.name for c in self.columns if c.kind in kinds]

    def to_dict(self) -> dict:
        return {
            "columns": [
                {k: v for k, v in asdict(c).items() if v is not None} for c in self.columns
            ],
            "arrow_types": {f.name: str(f.type) for f in self.arrow_schema},
            # The exact Arrow schema, so Parquet written later has the input's types.
            "arrow_schema_ipc": base64.b64encode(
                self.arrow_schema.serialize().to_pybytes()
            ).decode(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Schema:
        columns = []
        for c in data["columns"]:
            c = dict(c)
            if "categories" in c:
                c["categories"] = tuple(c["categories"])
            columns.append(Column(**c))
        buffer = pa.py_buffer(base64.b64decode(data["arrow_schema_ipc"]))
        return cls(tuple(columns), pa.ipc.read_schema(buffer))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> Schema:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return `frame` with exactly this schema's columns, order and dtypes.

        Integers are rounded and clipped to the range seen in the real data, categories
        outside the seen set become missing, datetimes are parsed; any generator's output
        goes through here, so every sample has the input's types.
        """
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            raise DataError(f"generator output lacks columns {missing}; expected {self.names}")
        out = {}
        for column in self.columns:
            out[column.name] = _conform_column(frame[column.name], column)
        return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))

    def conform_subset(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Like `conform`, for a frame holding only some of this schema's columns."""
        return pd.DataFrame(
            {name: _conform_column(frame[name], self[name]) for name in frame.columns},
            index=pd.RangeIndex(len(frame)),
        )

    def to_model_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame's columns in numpy dtypes, for libraries that predate pandas' nullable ones.

        numeric -> float64 with NaN; boolean -> object True/False/NaN; datetime -> datetime64;
        every other kind -> object strings with NaN (so a categorical of ints stays categories).
        """
        out = {}
        for column in self.columns:
            if column.name not in frame.columns:  # e.g. identifiers, which models never see
                continue
            values = frame[column.name]
            if column.kind == "numeric":
                out[column.name] = values.astype("float64")
            elif column.kind == "datetime":
                out[column.name] = values
            elif column.kind == "boolean":
                out[column.name] = values.astype(object).where(values.notna(), np.nan)
            else:
                out[column.name] = (
                    values.astype("string").astype(object).where(values.notna(), np.nan)
                )
        return pd.DataFrame(out, index=frame.index)

    def to_arrow(self, frame: pd.DataFrame) -> pa.Table:
        """Convert a conformed frame to Arrow with the input's exact types."""
        conformed = self.conform(frame)
        arrays = []
        for target in self.arrow_schema:
            values = conformed[target.name]
            if pa.types.is_decimal(target.type):  # round to the column's scale before casting
                values = values.round(target.type.scale)
            if pa.types.is_struct(target.type):  # images: {bytes, path} dicts
                array = pa.array(values.tolist(), type=target.type)
            else:
                array = pa.array(values, from_pandas=True)
            # Timestamps are truncated to the input's unit (ns -> us, say): that is the unit's
            # meaning, not a loss; every other cast must be exact.
            safe = not pa.types.is_timestamp(target.type)
            arrays.append(array.cast(target.type, safe=safe))
        return pa.Table.from_arrays(arrays, schema=self.arrow_schema.remove_metadata())


def _conform_column(values: pd.Series, column: Column) -> pd.Series:
    values = values.reset_index(drop=True)
    if column.kind == "numeric":
        # In numpy, not pandas: per-column overhead decides the speed of a wide table.
        if not (
            pd.api.types.is_float_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype)
        ):
            values = pd.to_numeric(values, errors="coerce")
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        if column.minimum is not None:
            numbers = np.clip(numbers, column.minimum, column.maximum)  # NaN stays NaN
        if column.is_integer:
            numbers = np.round(numbers)
        return pd.Series(pd.array(numbers, dtype="Float64")).astype(column.dtype)
    if column.kind == "boolean":
        if not pd.api.types.is_bool_dtype(values.dtype):  # e.g. "True"/"False" labels
            values = values.astype("string").str.strip().str.lower().map(BOOLEAN_WORDS)
        return values.astype("boolean")
    if column.kind == "datetime":
        parsed = _align_timezone(pd.to_datetime(values, errors="coerce"), column.dtype)
        if column.minimum is not None:
            low, high = pd.Timestamp(column.minimum), pd.Timestamp(column.maximum)
            parsed = parsed.clip(low, high)
        return parsed.astype(column.dtype)
    if column.kind == "categorical" and column.categories is not None:
        strings = values.astype("string")
        return strings.where(strings.isin(column.categories)).astype(column.dtype)
    if column.kind == "image":  # {bytes, path} dicts, kept as they are
        return values.astype(object)
    return values.astype(column.dtype)


def _align_timezone(parsed: pd.Series, dtype: str) -> pd.Series:
    """Give `parsed` the time zone of `dtype`; naive values are taken to be UTC (as SDV emits)."""
    target = pd.api.types.pandas_dtype(dtype)
    aware = isinstance(parsed.dtype, pd.DatetimeTZDtype)
    if isinstance(target, pd.DatetimeTZDtype):
        return (parsed if aware else parsed.dt.tz_localize("UTC")).dt.tz_convert(target.tz)
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None) if aware else parsed


def normalize_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Move a frame to nullable dtypes: ints -> Int64, floats -> Float64, text -> string.

    A float NaN becomes a missing value (`pd.NA`), as it is in every other path in.
    """
    out = frame.convert_dtypes(
        infer_objects=True,
        convert_string=True,
        convert_integer=False,  # a float column of whole numbers stays a float column
        convert_boolean=True,
        convert_floating=False,
    )
    changed = {}  # set all at once: one assignment per column fragments a wide frame
    for position, name in enumerate(out.columns):
        column = out.iloc[:, position]
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype):  # e.g. Parquet dictionary columns
            changed[position] = column.astype(object).astype("string")
        elif pd.api.types.is_integer_dtype(dtype) and not isinstance(
            dtype, pd.api.extensions.ExtensionDtype
        ):
            changed[position] = column.astype(str(dtype).capitalize().replace("Uint", "UInt"))
        elif pd.api.types.is_float_dtype(dtype):
            numbers = column.to_numpy(dtype="float64", na_value=np.nan)
            if dtype != "Float64" or np.isnan(numbers).any():
                changed[position] = pd.Series(
                    pd.array(numbers, dtype="Float64"), index=column.index, name=name
                )
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            # One unit everywhere: generators and encoders read datetimes as int64
            # nanoseconds; to_arrow casts back to the input's unit.
            try:
                changed[position] = column.dt.as_unit("ns")
            except (OverflowError, pd.errors.OutOfBoundsDatetime):
                raise DataError(
                    f"column '{name}' holds dates outside {pd.Timestamp.min.year}-"
                    f"{pd.Timestamp.max.year}, the range synthpipe's nanosecond timestamps "
                    f"hold; cast it to text or numbers, or list it under data.drop"
                ) from None
        elif pd.api.types.is_object_dtype(dtype):
            present = column.dropna()
            if len(present) and all(isinstance(v, decimal.Decimal) for v in present.iloc[:100]):
                changed[position] = column.astype("float64").astype("Float64")
            else:  # mixed types (e.g. JSON ints and strings in one field): keep as text
                changed[position] = column.astype("string")
    if not changed:
        return out
    if len(changed) == out.shape[1] and out.columns.is_unique:
        return pd.DataFrame({out.columns[i]: changed[i] for i in range(out.shape[1])})
    out = out.copy()
    for position, column in changed.items():
        out.isetitem(position, column)
    return out


_PLAIN_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)"
_GROUPED_NUMBER = r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?"  # "1,234" and "-12,345,678.9"


def parse_number_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn string columns of numbers written with thousands separators ("1,234") into numbers.

    Only when every present value is a number and at least one has separators; a column
    with a single word in it stays text.
    """
    out = None
    for position, name in enumerate(frame.columns):
        values = frame.iloc[:, position]
        if not pd.api.types.is_string_dtype(values.dtype):
            continue
        present = values.dropna()
        if present.empty:
            continue
        probe = present.iloc[:1000].astype(str).str.strip()  # most columns fail here, cheaply
        if not probe.str.fullmatch(f"{_GROUPED_NUMBER}|{_PLAIN_NUMBER}").all():
            continue
        text = present.astype(str).str.strip()
        grouped = text.str.fullmatch(_GROUPED_NUMBER)
        if not grouped.any() or not (grouped | text.str.fullmatch(_PLAIN_NUMBER)).all():
            continue
        numbers = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
        whole = not text.str.contains(".", regex=False).any()
        dtype = "Int64" if whole and numbers.abs().max() < 2**53 else "Float64"
        parsed = pd.Series(pd.NA, index=values.index, dtype=dtype, name=name)
        parsed[present.index] = numbers.astype("float64").astype(dtype)
        if out is None:
            out = frame.copy()
        out.isetitem(position, parsed)
    return frame if out is None else out


def parse_datetime_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn string columns whose values are nearly all dates or times into datetime columns."""
    out = frame.copy()
    for name in out.columns:
        values = out[name]
        if not pd.api.types.is_string_dtype(values.dtype):
            continue
        present = values.dropna()
        if present.empty:
            continue
        probe = present.iloc[: min(len(present), 1000)].astype(str)
        # Plain numbers ("2019", "17") also parse as dates; they are not datetimes. Nor are
        # times of day ("08:15"), which pandas would date to the day of the run.
        if probe.str.fullmatch(r"[+-]?\d+(\.\d+)?").mean() > 0.5:
            continue
        if probe.str.fullmatch(_TIME_OF_DAY).mean() > 0.5:
            continue
        parsed = _to_datetime(probe)
        if parsed is None or parsed.notna().mean() < DATETIME_MIN_PARSED_SHARE:
            # Dates but for some that have a date's shape and are no dates (0000-00-00,
            # 2021-02-30): kept as text they would be synthesised as categories.
            shaped = probe.str.strip().str.fullmatch(_DATE_SHAPE).to_numpy()
            valid = _loose_dates(probe).notna().to_numpy()
            invalid = shaped & ~valid
            if invalid.any() and (valid | shaped).mean() >= DATETIME_MIN_PARSED_SHARE:
                bad = probe[invalid]
                raise DataError(
                    f"column '{name}' holds dates but some values are not valid dates (e.g. "
                    f"{[v[:30] for v in bad.unique()[:3]]}); fix them, add them to "
                    "data.na_values to read them as missing, or list the column under data.drop"
                )
        if parsed is None or parsed.notna().mean() < DATETIME_MIN_PARSED_SHARE:
            continue
        _check_one_offset_style(name, present.astype(str).str.strip())
        full = _to_datetime(values.astype(object).where(values.notna(), None))
        # Convert only when every present value parses: never turn data into missing values.
        if full is not None and full.notna().sum() == len(present):
            out[name] = full
        elif full is not None:  # dates but for a few: say which, rather than keep it as text
            bad = present[full[present.index].isna()].astype(str)
            raise DataError(
                f"column '{name}' holds dates but {len(bad)} of {len(present)} values are not "
                f"valid dates (e.g. {[v[:30] for v in bad.unique()[:3]]}); fix them, add them "
                "to data.na_values to read them as missing, or list the column under data.drop"
            )
    return out


_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"


def check_number_strings(frame: pd.DataFrame) -> None:
    """Refuse a text column whose every value is written as a number, but which pandas could
    not read as numbers: some overflow float64 (1e309) or int64 (20-digit integers). Kept as
    text, it would be synthesised as categories with nothing said."""
    for name in frame.columns:
        values = frame[name]
        if not pd.api.types.is_string_dtype(values.dtype):
            continue
        present = values.dropna().astype(str).str.strip()
        if present.empty or not present.iloc[:1000].str.fullmatch(_NUMBER).all():
            continue
        if not present.str.fullmatch(_NUMBER).all():
            continue
        with np.errstate(over="ignore"):
            numbers = present.astype(float)
        huge = present[~np.isfinite(numbers) | (numbers.abs() > 2.0**63)]
        if len(huge):
            raise DataError(
                f"column '{name}' holds numbers too large for 64-bit numbers (e.g. "
                f"{[v[:30] for v in huge.unique()[:3]]}); fix them, add them to "
                "data.na_values to read them as missing, or list the column under data.drop"
            )


def _check_one_offset_style(name: str, text: pd.Series) -> None:
    """Refuse a column where some times carry a UTC offset and others do not: pandas reads
    the naive ones with the last offset it saw, so 09:00 would silently become 03:30 UTC."""
    with_offset = text.str.fullmatch(_WITH_OFFSET)
    if with_offset.any() and not with_offset.all():
        aware, naive = text[with_offset].iloc[0], text[~with_offset].iloc[0]
        raise DataError(
            f"column '{name}' mixes times with a UTC offset ({aware[:40]!r}, "
            f"{int(with_offset.sum())} values) and without one ({naive[:40]!r}, "
            f"{int((~with_offset).sum())} values), whose zone would be guessed; give every "
            "value an offset (or none), or list the column under data.drop"
        )


def apply_declared_kinds(frame: pd.DataFrame, kinds: dict[str, Kind]) -> pd.DataFrame:
    """`frame` with its text columns declared `boolean` (data.schema) read as booleans:
    true/false, yes/no, y/n, t/f, 1/0 in any case. Any other value is a DataError naming
    the column and the values (never read as missing). Other columns are returned as they are.
    """
    out = frame
    for name, kind in kinds.items():
        if kind != "boolean" or name not in frame.columns:
            continue
        values = frame[name]
        if pd.api.types.is_bool_dtype(values.dtype):
            continue
        present = values.dropna()
        words = present.astype(str).str.strip().str.lower()
        unknown = present[~words.isin(list(BOOLEAN_WORDS))]
        if len(unknown):
            found = [str(v)[:20] for v in unknown.unique()[:4]]
            raise DataError(
                f"column '{name}' is declared boolean but holds values such as {found} "
                f"({len(unknown)} of {len(present)}); booleans are one of "
                "true/false, yes/no, y/n, t/f, 1/0: fix the values, add them to "
                f"data.na_values, or declare data.schema.{name} categorical"
            )
        parsed = values.astype("string").str.strip().str.lower().map(BOOLEAN_WORDS)
        if out is frame:
            out = frame.copy()
        out[name] = parsed.astype("boolean")
    return out


def _loose_dates(values: pd.Series) -> pd.Series:
    """Each value parsed on its own (NaT where it is no date): for messages, not for data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
        except (ValueError, TypeError, OverflowError):
            return pd.Series(pd.NaT, index=values.index)


def _to_datetime(values: pd.Series) -> pd.Series | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it guesses a format
        # "mixed" parses each value on its own: slower, so only after the fast formats fail.
        for fmt in ("ISO8601", None, "mixed"):
            try:
                parsed = pd.to_datetime(values, errors="coerce", format=fmt)
                if parsed.dtype == object:  # several UTC offsets: keep the instants, in UTC
                    parsed = pd.to_datetime(values, errors="coerce", format=fmt, utc=True)
            except (ValueError, TypeError, OverflowError):
                continue
            if parsed.notna().mean() >= DATETIME_MIN_PARSED_SHARE * values.notna().mean():
                if isinstance(parsed.dtype, pd.DatetimeTZDtype):
                    return parsed
                return parsed.astype("datetime64[ns]")
    return None


def infer_schema(
    frame: pd.DataFrame,
    overrides: dict[str, Kind] | None = None,
    arrow_schema: pa.Schema | None = None,
) -> Schema:
    """Infer each column's kind from a frame in nullable dtypes (see `normalize_dtypes`).

    Rules, in order: bool dtype -> boolean; datetime dtype -> datetime; numbers -> numeric,
    unless every value is distinct and the name looks like an identifier -> id; strings ->
    text when long (>= 5 words or 40 characters on average) and mostly distinct, id when
    every value is distinct, else categorical. `overrides` (column -> kind) wins.
    """
    overrides = dict(overrides or {})
    unknown = [name for name in overrides if name not in frame.columns]
    if unknown:
        raise DataError(
            f"data.schema names columns {unknown} that are not in the table; "
            f"columns are {list(frame.columns)}"
        )
    if arrow_schema is None:
        arrow_schema = pa.Schema.from_pandas(frame, preserve_index=False)
    arrow_schema = arrow_schema.remove_metadata()
    columns = []
    for name in frame.columns:
        values = frame[name]
        kind = overrides.get(name) or _infer_kind(name, values)
        columns.append(_describe(name, kind, values))
    return Schema(tuple(columns), arrow_schema)


def _infer_kind(name: str, values: pd.Series) -> Kind:
    dtype = values.dtype
    present = values.dropna()
    n_unique = present.nunique()
    all_distinct = len(present) >= ID_MIN_ROWS and n_unique == len(present)
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype):
        words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("-", "_").split("_")
        looks_like_id = any(part in _ID_NAME_HINTS for part in words)
        integer = pd.api.types.is_integer_dtype(dtype)
        return "id" if all_distinct and integer and looks_like_id else "numeric"
    strings = present.astype(str)
    if len(strings):
        mean_words = strings.str.split().str.len().mean()
        mean_chars = strings.str.len().mean()
        mostly_distinct = n_unique >= 0.5 * len(strings)
        if mostly_distinct and (
            mean_words >= TEXT_MIN_MEAN_WORDS or mean_chars >= TEXT_MIN_MEAN_CHARS
        ):
            return "text"
    return "id" if all_distinct else "categorical"


def _describe(name: str, kind: Kind, values: pd.Series) -> Column:
    present = values.dropna()
    if kind == "numeric":
        if not pd.api.types.is_numeric_dtype(values.dtype):
            text = present.astype(str)
            words = text[pd.to_numeric(text, errors="coerce").isna()]
            if len(words) and len(words) < 0.5 * len(text):
                raise DataError(
                    f"column '{name}' is declared numeric but some values are not numbers "
                    f"(e.g. {words.unique()[:3].tolist()}); add them to data.na_values to "
                    "read them as missing, or fix them at the source"
                )
            raise DataError(
                f"column '{name}' is declared numeric but holds {values.dtype} values "
                f"such as {present.iloc[:3].tolist()}; fix data.schema.{name}"
            )
        if pd.api.types.is_integer_dtype(values.dtype) and len(present):
            widest = max(abs(int(present.min())), abs(int(present.max())))
            if widest > MAX_EXACT_INTEGER:
                raise DataError(
                    f"column '{name}' holds integers up to {widest}, beyond 2**53, which "
                    "the generators' floating-point arithmetic cannot carry exactly (the "
                    "largest would come back wrong); declare data.schema."
                    f"{name} id or categorical, or list it under data.drop"
                )
        low, high = (float(present.min()), float(present.max())) if len(present) else (None, None)
        return Column(name, kind, str(values.dtype), low, high)
    if kind == "datetime":
        if not pd.api.types.is_datetime64_any_dtype(values.dtype):
            raise DataError(
                f"column '{name}' is declared datetime but its values do not parse as dates "
                f"(e.g. {present.iloc[:3].tolist()}); fix data.schema.{name}"
            )
        low, high = (
            (present.min().isoformat(), present.max().isoformat()) if len(present) else (None, None)
        )
        return Column(name, kind, str(values.dtype), low, high)
    if kind == "categorical":
        categories = tuple(sorted(present.astype(str).unique()))
        return Column(name, kind, str(values.dtype), categories=categories)
    if kind == "boolean":
        if not pd.api.types.is_bool_dtype(values.dtype):
            apply_declared_kinds(values.to_frame(name), {name: "boolean"})  # refuses misfits
        return Column(name, kind, "boolean")
    if kind == "id" and not (
        pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)
    ):
        raise DataError(
            f"column '{name}' is an identifier of type {values.dtype}; identifiers are re-issued "
            f"as integers or strings: set data.schema.{name} to numeric or categorical"
        )
    return Column(name, kind, str(values.dtype))
