"""Reading tables from files (the split is `generators.data.split`, Parquet writes `.parquet`).

Plain functions: the flow calls them, tests call them directly. Every problem with the
input is a `DataError` that names the file and column and says what to do.
"""

from __future__ import annotations

import codecs
import csv
import glob as globbing
import gzip
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from generators.data.remote import is_url, local_copy
from generators.data.schema import (
    check_number_strings,
    normalize_dtypes,
    parse_datetime_strings,
    parse_number_strings,
)
from generators.errors import DataError

MIN_ROWS = 10  # below this no meaningful holdout can be split off
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".csv.gz": "csv.gz",
    ".tsv.gz": "csv.gz",
    ".data.gz": "csv.gz",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".data": "csv",
}
# Parquet -> pandas nullable dtypes, so an int column with nulls stays an int column.
_NULLABLE_TYPES = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    pa.float32(): pd.Float32Dtype(),
    pa.float64(): pd.Float64Dtype(),
    pa.string(): pd.StringDtype(),
    pa.large_string(): pd.StringDtype(),
}
# A first row where at least this share of fields are plain numbers is data, not a header.
HEADERLESS_NUMERIC_SHARE = 0.3
# The longest CSV field, and the longest physical line of a CSV or JSON Lines file, that is
# read. A table cell is not a document: a longer one is a broken file (an unclosed quote that
# swallows the rest, a binary blob) and would otherwise be held in memory whole, however large,
# before anything could complain. Both are checked while streaming, before pandas reads.
MAX_FIELD_CHARS = 1_000_000
MAX_LINE_CHARS = 16_000_000  # a row of 2,000 columns of 8,000 characters each
# Arrow types a generator can learn and write back; anything else is named and refused.
_NESTED_OR_UNSUPPORTED = (
    pa.types.is_nested,
    pa.types.is_time,
    pa.types.is_duration,
    pa.types.is_interval,
)
# A one-column CSV whose header holds one of these probably uses it as its separator.
_OTHER_SEPARATORS = (";", "\t", "|")


def resolve_paths(path: str) -> list[Path]:
    """A file, or every file a glob matches (sorted), or a clear error."""
    if "\x00" in path:
        raise DataError(f"data.path: {path!r} contains a NUL character; give a file or a glob")
    if any(char in path for char in "*?["):
        found = sorted(Path(p) for p in globbing.glob(path))
        matches = [p for p in found if p.is_file()]
        if not matches:
            if found:
                raise DataError(
                    f"data.path: '{path}' matches only folders ({_listed(map(str, found))}); "
                    "give a pattern that matches files, such as dir/*.csv"
                )
            raise DataError(f"data.path: no file matches '{path}'; check the pattern")
        return matches
    file = Path(path)
    if not file.exists():
        raise DataError(
            f"data.path: file not found: {file} (relative paths are against the config's folder)"
        )
    if not file.is_file():
        raise DataError(f"data.path: {file} is not a file; give a file or a glob such as dir/*.csv")
    return [file]


def infer_format(file: Path) -> str:
    name = file.name.lower()
    for suffix, fmt in sorted(_SUFFIX_FORMATS.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return fmt
    raise DataError(
        f"{file}: cannot tell the format from the suffix; set data.format to one of "
        "csv, csv.gz, parquet, jsonl"
    )


def read_table(
    path: str,
    *,
    format: str | None = None,
    columns: Sequence[str] | None = None,
    header: bool | None = None,
    separator: str = ",",
    na_values: Sequence[str] = (),
    encoding: str = "utf-8",
    drop: Sequence[str] = (),
) -> tuple[pd.DataFrame, pa.Schema]:
    """Read one file or a glob of files of one format into a frame in nullable dtypes.

    Returns the frame (datetimes parsed from strings, ints as Int64, strings as `string`)
    and the Arrow schema the output must keep: the file's own for Parquet, else the
    frame's. `header=None` detects header-less CSV and asks for `data.columns`.
    `path` may be an fsspec URL (s3://bucket/data/*.csv): it is read from a local copy.
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"data.encoding: unknown encoding '{encoding}'; use e.g. utf-8, latin-1 or utf-16"
        ) from None
    if is_url(path):
        with local_copy(path) as copy:
            return read_table(
                copy.path,
                format=format,
                columns=columns,
                header=header,
                separator=separator,
                na_values=na_values,
                encoding=encoding,
                drop=drop,
            )
    files = resolve_paths(path)
    frames, arrow_schemas = [], []
    for file in files:
        fmt = format or infer_format(file)
        try:
            if fmt in ("csv", "csv.gz"):
                gzipped = fmt == "csv.gz" or file.name.lower().endswith(".gz")
                frame = _read_csv(
                    file, columns, header, separator, list(na_values), encoding, gzipped
                )
                arrow_schema = None
            elif fmt == "parquet":
                file_schema = pq.read_schema(file)
                _check_names(file, file_schema.names, key="the schema")
                _check_arrow_types(file, file_schema, drop)
                table = pq.read_table(file)
                arrow_schema = table.schema
                frame = table.to_pandas(types_mapper=_NULLABLE_TYPES.get)
            elif fmt == "jsonl":
                frame = _read_jsonl(file, encoding, drop)
                arrow_schema = None
            else:
                raise DataError(f"data.format: unknown format '{fmt}'")
        except DataError:
            raise
        except UnicodeDecodeError:
            raise DataError(
                f"{file}: not valid {encoding} text; set data.encoding (e.g. latin-1)"
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise DataError(
                f"{file}: the compressed file is truncated or corrupt ({_detail(error)}); "
                "copy or download it again"
            ) from None
        except pd.errors.ParserError as error:
            raise DataError(f"{file}: {_csv_problem(error)}") from None
        except (pa.ArrowInvalid, ValueError, OSError) as error:
            hint = "; check the file, or set data.format if the suffix is wrong"
            raise DataError(f"{file}: cannot read as {fmt} ({_detail(error)}){hint}") from None
        frames.append((file, frame))
        arrow_schemas.append(arrow_schema)

    first_file, first = frames[0]
    for file, frame in frames[1:]:
        if list(frame.columns) != list(first.columns):
            raise DataError(
                f"{file}: columns {_listed(frame.columns)} differ from {first_file}'s "
                f"{_listed(first.columns)}; every file of a glob must share one header"
            )
    frame = pd.concat([f for _, f in frames], ignore_index=True) if len(frames) > 1 else first
    source = str(first_file) if len(files) == 1 else path

    check_drop(drop, frame.columns, source)
    frame = frame.drop(columns=list(drop))
    if frame.shape[1] == 0:
        raise DataError(f"{source}: no columns left to synthesise")
    if len(frame) == 0:
        raise DataError(f"{source}: the table has no data rows")
    check_not_empty(frame, source)
    try:
        frame = normalize_dtypes(frame)
        _check_text_values(frame)
        frame = normalize_dtypes(parse_number_strings(parse_datetime_strings(frame)))
        check_number_strings(frame)
    except DataError as error:
        raise DataError(f"{source}: {error}") from None
    check_finite(frame, source)
    arrow_schema = arrow_schemas[0]
    if arrow_schema is not None:
        arrow_schema = pa.schema([arrow_schema.field(name) for name in frame.columns])
    else:
        arrow_schema = pa.Schema.from_pandas(frame, preserve_index=False).remove_metadata()
    return frame, arrow_schema


def check_drop(drop: Sequence[str], columns: Sequence[str], source: str) -> None:
    """Every column data.drop names is in the table (`source` names it in the message)."""
    missing = [name for name in drop if name not in columns]
    if missing:
        raise DataError(
            f"data.drop: columns {_listed(missing)} are not in {source}; "
            f"columns are {_listed(columns)}"
        )


def _read_csv(
    file: Path,
    columns: Sequence[str] | None,
    header: bool | None,
    separator: str,
    na_values: list[str],
    encoding: str,
    gzipped: bool,
) -> pd.DataFrame:
    try:
        sep, skip_spaces = _delimiter(separator)
    except DataError as error:
        raise DataError(f"{file}: {error}") from None
    first_row = _scan_csv(file, sep, skip_spaces, encoding, gzipped)
    if first_row is None:
        raise DataError(f"{file}: the file is empty")
    if columns is not None:
        if len(columns) != len(first_row):
            raise DataError(
                f"{file}: data.columns names {len(columns)} columns but the file has "
                f"{len(first_row)} fields per row; give one name per field"
            )
        _check_names(file, columns, key="data.columns")
        has_header = bool(header)
    else:
        if header is False:
            raise DataError(f"{file}: data.header is false, so data.columns must name the columns")
        if header is None:
            numeric = sum(_is_number(name) for name in first_row)
            if numeric >= max(1, HEADERLESS_NUMERIC_SHARE * len(first_row)):
                example = next(name for name in first_row if _is_number(name))
                raise DataError(
                    f"{file}: the first row looks like data, not a header (column name "
                    f"'{example}' is a number); set data.columns to name the columns, or "
                    "data.header: true if it really is the header"
                )
        _check_names(file, first_row)
        if len(first_row) == 1:
            guess = next((s for s in _OTHER_SEPARATORS if s in first_row[0] and s != sep), None)
            if guess is not None:
                raise DataError(
                    f"{file}: read as one column named '{_shown(first_row[0])}', which holds "
                    f"{guess!r}; if that separates the fields, set data.separator: {guess!r}"
                )
        has_header = True
    return pd.read_csv(
        file,
        sep=sep,
        header=0 if has_header else None,
        names=list(columns) if columns is not None else None,
        index_col=False,  # never take a first column as the index, even if a row is long
        na_values=na_values or None,
        skipinitialspace=skip_spaces,
        dtype_backend="numpy_nullable",
        encoding=_text_encoding(encoding),
        compression="gzip" if gzipped else None,
        low_memory=False,
    )


def _delimiter(separator: str) -> tuple[str, bool]:
    """The one-character delimiter, and whether spaces after it are skipped.

    Two-character separators such as Adult's ", " are a comma plus skipped spaces.
    """
    if len(separator) == 2 and separator[1] == " " and separator[0] != " ":
        return separator[0], True
    if len(separator) != 1 or separator in ('"', "\n", "\r"):
        raise DataError(
            f"data.separator: {separator!r} cannot separate fields; give one character "
            "(e.g. ',', ';', '\\t'), optionally followed by a space, like ', '"
        )
    return separator, False


def _text_encoding(encoding: str) -> str:
    """utf-8 reads with "utf-8-sig", so that a byte-order mark is not part of the first name."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _open_text(file: Path, encoding: str, gzipped: bool):
    if gzipped:
        return gzip.open(file, "rt", encoding=_text_encoding(encoding), newline="")
    return open(file, encoding=_text_encoding(encoding), newline="")


class _LineTooLong(Exception):
    pass


def _bounded_lines(handle, counter: list[int]) -> Iterator[str]:
    """The handle's lines, each read with a cap, so one huge line is never held whole."""
    while True:
        line = handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        counter[0] += 1
        if len(line) > MAX_LINE_CHARS:
            raise _LineTooLong
        if "\x00" in line:
            raise DataError(
                f"line {counter[0]} holds a NUL byte (\\x00): the file is binary, or text in "
                "another encoding (UTF-16, say); set data.encoding, or remove the NUL bytes"
            )
        yield line


def _scan_csv(
    file: Path, sep: str, skip_spaces: bool, encoding: str, gzipped: bool
) -> list[str] | None:
    """Stream the whole file once, as pandas will parse it, before pandas reads it.

    Returns the first non-blank row's fields (stripped), or None for a file with no rows.
    Refuses, naming the line: undecodable text, NUL bytes, a field or line over the
    limits, and any row whose number of fields differs from the first row's (pandas would
    silently pad a short row with missing values, or take a long first row's extra field
    as the index).
    """
    counter = [0]  # physical lines read, for messages
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    first: list[str] | None = None
    try:
        with _open_text(file, encoding, gzipped) as handle:
            reader = csv.reader(
                _bounded_lines(handle, counter), delimiter=sep, skipinitialspace=skip_spaces
            )
            for fields in reader:
                if len(fields) <= 1 and not "".join(fields).strip():
                    continue  # a blank line: pandas skips it too
                if first is None:
                    first, first_line = fields, reader.line_num
                elif len(fields) != len(first):
                    raise DataError(
                        f"row at line {reader.line_num} has {len(fields)} field(s) but line "
                        f"{first_line} has {len(first)}; fix the row (a missing or extra "
                        f"{sep!r}, or a field holding {sep!r} without quotes)"
                    )
    except DataError as error:
        raise DataError(f"{file}: {error}") from None
    except _LineTooLong:
        raise DataError(
            f"{file}: line {counter[0]} is longer than {MAX_LINE_CHARS:,} characters "
            f"(MAX_LINE_CHARS); is it really {'gzipped ' if gzipped else ''}CSV? A single "
            "field that large is not table data: drop it from the file"
        ) from None
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            raise DataError(
                f"{file}: a field ending near line {counter[0]} is longer than "
                f"{MAX_FIELD_CHARS:,} characters (MAX_FIELD_CHARS); look for an opening "
                "quote that is never closed, or drop the oversized field"
            ) from None
        raise DataError(f"{file}: line {counter[0]}: {error}; check the quoting") from None
    except UnicodeDecodeError as error:
        line = _undecodable_line(file, encoding, gzipped)
        raise DataError(
            f"{file}: {f'line {line}' if line else 'the file'} is not valid {encoding} text "
            f"(byte {error.object[error.start : error.start + 1]!r}); set data.encoding "
            "(e.g. latin-1), or re-save the file as UTF-8"
        ) from None
    finally:
        csv.field_size_limit(previous_limit)
    return None if first is None else [value.strip() for value in first]


def _undecodable_line(file: Path, encoding: str, gzipped: bool) -> int | None:
    """The first line that does not decode (text decoders read ahead, so errors lack it)."""
    if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        return None  # newlines are not single bytes there
    with (gzip.open if gzipped else open)(file, "rb") as handle:
        for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_CHARS), b""), 1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return number
    return None


def _csv_problem(error: pd.errors.ParserError) -> str:
    detail = _detail(error)
    unclosed = re.search(r"EOF inside string starting at row (\d+)", detail)
    if unclosed:
        return (
            f"a quoted field that starts in row {unclosed.group(1)} is never closed; "
            'check the quoting (a stray " character)'
        )
    return f"cannot read as csv ({detail}); check the row it names"


def _read_jsonl(file: Path, encoding: str, drop: Sequence[str]) -> pd.DataFrame:
    """JSON Lines: one JSON object per line, flat (no nested objects or arrays)."""
    counter = [0]
    sample = []  # the first lines, checked one by one for duplicate keys
    try:
        with open(file, encoding=_text_encoding(encoding), newline="") as handle:
            for line in _bounded_lines(handle, counter):
                if line.strip() and len(sample) < 100:
                    sample.append((counter[0], line))
    except DataError as error:
        raise DataError(f"{file}: {error}") from None
    except _LineTooLong:
        raise DataError(
            f"{file}: line {counter[0]} is longer than {MAX_LINE_CHARS:,} characters "
            "(MAX_LINE_CHARS); one record that large is not table data"
        ) from None
    if not sample:
        raise DataError(f"{file}: the file is empty")
    for number, line in sample:
        _parse_json_object(file, number, line)
    try:
        frame = pd.read_json(
            file,
            lines=True,
            dtype_backend="numpy_nullable",
            convert_dates=False,
            encoding=encoding,
        )
    except (ValueError, TypeError, AttributeError) as error:
        # Find the line that broke it, so the message can name it.
        with open(file, encoding=_text_encoding(encoding)) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    _parse_json_object(file, number, line)
        raise DataError(f"{file}: cannot read as jsonl ({_detail(error)})") from None
    _check_names(file, [str(name) for name in frame.columns], key="the JSON")
    nested = [
        name
        for name in frame.columns
        if name not in drop
        and frame[name].dtype == object
        and frame[name].map(lambda value: isinstance(value, dict | list)).any()
    ]
    if nested:
        raise DataError(
            f"{file}: column(s) {_listed(nested)} hold nested JSON objects or arrays; "
            "flatten them into plain columns, or list them under data.drop"
        )
    return frame


def _parse_json_object(file: Path, number: int, line: str) -> None:
    def no_duplicates(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DataError(
                    f"{file}: line {number} repeats the key '{_shown(key)}'; make every key unique"
                )
            seen.add(key)
        return dict(pairs)

    try:
        value = json.loads(line, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as error:
        raise DataError(f"{file}: line {number} is not valid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise DataError(
            f"{file}: line {number} is a JSON {type(value).__name__}, not an object; "
            'JSON Lines needs one object per line, like {"a": 1, "b": "x"}'
        )


def _check_arrow_types(file: Path, schema: pa.Schema, drop: Sequence[str]) -> None:
    refused = [
        f"'{_shown(field.name)}' ({field.type})"
        for field in schema
        if field.name not in drop and any(test(field.type) for test in _NESTED_OR_UNSUPPORTED)
    ]
    if refused:
        raise DataError(
            f"{file}: column(s) {_listed(refused, quote=False)} have types synthpipe cannot "
            "learn (nested, times of day, durations); flatten or cast them (to numbers, "
            "strings or timestamps), or list them under data.drop"
        )


def _check_text_values(frame: pd.DataFrame) -> None:
    """NUL characters are refused in text: one means a broken file, and the missing-value
    label (values.MISSING) starts with one."""
    with_nul = [
        name
        for name in frame.columns
        if pd.api.types.is_string_dtype(frame[name].dtype)
        and frame[name].str.contains("\x00", regex=False).fillna(False).any()
    ]
    if with_nul:
        raise DataError(
            f"column(s) {_listed(with_nul)} hold NUL characters (\\x00); remove them at the "
            "source, or list the column(s) under data.drop"
        )


def _detail(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]


def _shown(name: object, limit: int = 80) -> str:
    text = str(name)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _listed(names, limit: int = 10, quote: bool = True) -> str:
    """A list for a one-line message: at most `limit` names, each at most 80 characters."""
    names = list(names)
    shown = [f"'{_shown(n)}'" if quote else str(n) for n in names[:limit]]
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return "[" + ", ".join(shown) + more + "]"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_names(file: Path, names: Sequence[str], key: str = "the header") -> None:
    blank = [index for index, name in enumerate(names) if not str(name).strip()]
    if blank:
        raise DataError(
            f"{file}: {key} has empty column name(s) at position(s) {blank[:10]}; name every column"
        )
    seen, duplicates = set(), []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise DataError(
            f"{file}: {key} repeats column name(s) {_listed(duplicates)}; make every name unique"
        )


def check_not_empty(frame: pd.DataFrame, source: str, what: str = "entirely empty") -> None:
    """DataError naming the columns of `frame` with no value at all."""
    empty = [name for name, missing in frame.isna().all().items() if missing]
    if empty:
        raise DataError(
            f"{source}: column(s) {_listed(empty)} are {what}; nothing can be learned "
            f"from them: list them under data.drop"
        )


def check_finite(frame: pd.DataFrame, source: str) -> None:
    """DataError naming the float columns of `frame` that hold +-inf."""
    floats = [name for name in frame.columns if pd.api.types.is_float_dtype(frame[name].dtype)]
    infinite = [
        name
        for name in floats
        if np.isinf(frame[name].to_numpy(dtype="float64", na_value=np.nan)).any()
    ]
    if infinite:
        raise DataError(
            f"{source}: column(s) {_listed(infinite)} hold infinite values; fix them at the "
            "source, or add 'inf' and '-inf' to data.na_values to read them as missing"
        )
