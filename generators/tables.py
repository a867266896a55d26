"""Reading tables from files, the seeded train/holdout split, and atomic Parquet writes.

Plain functions: the flow calls them, tests call them directly. Every problem with the
input is a `DataError` that names the file and column and says what to do.
"""

from __future__ import annotations

import glob as globbing
import gzip
import io
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from generators.errors import DataError
from generators.schema import normalize_dtypes, parse_datetime_strings

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


def resolve_paths(path: str) -> list[Path]:
    """A file, or every file a glob matches (sorted), or a clear error."""
    if any(char in path for char in "*?["):
        matches = sorted(Path(p) for p in globbing.glob(path) if Path(p).is_file())
        if not matches:
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
    """
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
                table = pq.read_table(file)
                _check_names(file, table.column_names)
                arrow_schema = table.schema
                frame = table.to_pandas(types_mapper=_NULLABLE_TYPES.get)
            elif fmt == "jsonl":
                frame = pd.read_json(
                    file,
                    lines=True,
                    dtype_backend="numpy_nullable",
                    convert_dates=False,
                    encoding=encoding,
                )
                arrow_schema = None
            else:
                raise DataError(f"data.format: unknown format '{fmt}'")
        except DataError:
            raise
        except UnicodeDecodeError:
            raise DataError(
                f"{file}: not valid {encoding} text; set data.encoding (e.g. latin-1)"
            ) from None
        except (pd.errors.ParserError, pa.ArrowInvalid, ValueError, OSError, EOFError) as error:
            detail = " ".join(str(error).split())[:200]
            raise DataError(f"{file}: cannot read as {fmt} ({detail})") from None
        frames.append((file, frame))
        arrow_schemas.append(arrow_schema)

    first_file, first = frames[0]
    for file, frame in frames[1:]:
        if list(frame.columns) != list(first.columns):
            raise DataError(
                f"{file}: columns {list(frame.columns)} differ from {first_file}'s "
                f"{list(first.columns)}; every file of a glob must share one header"
            )
    frame = pd.concat([f for _, f in frames], ignore_index=True) if len(frames) > 1 else first
    source = str(first_file) if len(files) == 1 else path

    missing = [name for name in drop if name not in frame.columns]
    if missing:
        raise DataError(
            f"data.drop: columns {missing} are not in {source}; columns are {list(frame.columns)}"
        )
    frame = frame.drop(columns=list(drop))
    if frame.shape[1] == 0:
        raise DataError(f"{source}: no columns left to synthesise")
    if len(frame) == 0:
        raise DataError(f"{source}: the table has no data rows")
    empty = [name for name in frame.columns if frame[name].isna().all()]
    if empty:
        raise DataError(
            f"{source}: column(s) {empty} are entirely empty; nothing can be learned from them: "
            f"list them under data.drop"
        )
    frame = normalize_dtypes(parse_datetime_strings(normalize_dtypes(frame)))
    infinite = [
        name
        for name in frame.columns
        if pd.api.types.is_float_dtype(frame[name].dtype)
        and np.isinf(frame[name].astype("float64").to_numpy(na_value=np.nan)).any()
    ]
    if infinite:
        raise DataError(
            f"{source}: column(s) {infinite} hold infinite values; fix them at the source, or "
            "add 'inf' and '-inf' to data.na_values to read them as missing"
        )
    arrow_schema = arrow_schemas[0]
    if arrow_schema is not None:
        arrow_schema = pa.schema([arrow_schema.field(name) for name in frame.columns])
    else:
        arrow_schema = pa.Schema.from_pandas(frame, preserve_index=False).remove_metadata()
    return frame, arrow_schema


def _read_csv(
    file: Path,
    columns: Sequence[str] | None,
    header: bool | None,
    separator: str,
    na_values: list[str],
    encoding: str,
    gzipped: bool,
) -> pd.DataFrame:
    first_row = _first_row(file, separator, encoding, gzipped)
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
        has_header = True
    # Two-character separators such as Adult's ", " are a comma plus skipped spaces.
    skip_spaces = separator.endswith(" ") and len(separator) > 1
    sep = separator.rstrip(" ") if skip_spaces else separator
    return pd.read_csv(
        file,
        sep=sep,
        header=0 if has_header else None,
        names=list(columns) if columns is not None else None,
        na_values=na_values or None,
        skipinitialspace=skip_spaces,
        dtype_backend="numpy_nullable",
        encoding="utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding,
        compression="gzip" if gzipped else None,
        low_memory=False,
    )


def _first_row(file: Path, separator: str, encoding: str, gzipped: bool) -> list[str] | None:
    opener = gzip.open if gzipped else open
    with opener(file, "rb") as handle:
        for raw_line in handle:
            line = raw_line.decode(encoding).lstrip("\ufeff").rstrip("\r\n")
            if line.strip():
                sep = separator.rstrip(" ") or separator
                reader = pd.read_csv(
                    io.StringIO(line),
                    sep=sep,
                    header=None,
                    dtype=str,
                    keep_default_na=False,
                    skipinitialspace=True,
                )
                return [str(value).strip() for value in reader.iloc[0].tolist()]
    return None


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
            f"{file}: {key} has empty column name(s) at position(s) {blank}; name every column"
        )
    seen, duplicates = set(), []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise DataError(
            f"{file}: {key} repeats column name(s) {duplicates}; make every name unique"
        )


def split_holdout(
    frame: pd.DataFrame, fraction: float, seed: int, target: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split into (train, holdout); stratified on `target` when given.

    The holdout is real data the generator never sees: the privacy and validation checks
    compare the synthetic data with it.
    """
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"the table has {len(frame)} rows; at least {MIN_ROWS} are needed to hold out "
            "real rows "
            "for the privacy and validation checks"
        )
    if target is not None and target not in frame.columns:
        raise DataError(
            f"data.target: column '{target}' is not in the table; columns are {list(frame.columns)}"
        )
    rng = np.random.default_rng(seed)
    if target is None:
        groups = [np.arange(len(frame))]
    else:
        codes = pd.factorize(frame[target], use_na_sentinel=False)[0]
        groups = [np.flatnonzero(codes == code) for code in np.unique(codes)]
    holdout_rows = []
    for rows in groups:
        shuffled = rng.permutation(rows)
        take = int(round(fraction * len(shuffled))) if len(shuffled) > 1 else 0
        holdout_rows.append(shuffled[:take])
    holdout_index = np.sort(np.concatenate(holdout_rows))
    if len(holdout_index) == 0 or len(holdout_index) == len(frame):
        take = min(max(1, int(round(fraction * len(frame)))), len(frame) - 1)
        holdout_index = np.sort(rng.permutation(len(frame))[:take])
    is_holdout = np.zeros(len(frame), dtype=bool)
    is_holdout[holdout_index] = True
    train = frame[~is_holdout].reset_index(drop=True)
    holdout = frame[is_holdout].reset_index(drop=True)
    return train, holdout


def write_parquet_atomic(
    table: pa.Table, path: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write `table` to `path` via a temporary file in the same folder and a rename.

    Readers see either no file or the whole file, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({key.encode(): str(value).encode() for key, value in metadata.items()})
        table = table.replace_schema_metadata(merged)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
