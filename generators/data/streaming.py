"""Training data larger than memory: a Parquet file, folder or dataset read in bounded batches.

`ParquetSource` never loads the whole table. It knows every row group's row count from the
Parquet metadata, so rows have fixed *global row numbers* without reading any data: files
in path order (a folder's files sorted by path), row groups in file order, rows in order,
counting from 0. Everything random about a source is a function of row numbers and seeds,
so the same files and seeds give the same rows on any machine:

- `sample(rows, seed)`: a uniform sample without replacement. Every row gets a seeded key
  U(seed, row number) and the `rows` smallest keys are kept (bottom-k sampling), computed
  over row numbers in chunks; then only the row groups that hold a chosen row are read.
  The sample comes back in key order, itself a random order, so `sample(k, seed)` is the
  first k rows of `sample(n, seed)` for k <= n (a validation set can be a prefix).
- `batches(batch_rows, seed=, epoch=)`: one pass over the rows as frames of `batch_rows`
  rows (the epoch's last may be smaller). Row groups are visited in a seeded order per
  epoch, `buffer_batches` of them are read at once and interleaved, and a seeded shuffle
  buffer of `buffer_batches * batch_rows` rows mixes them, so a frame holds rows from
  several places of the files even when the files are sorted.
- `scan(batch_rows)`: one pass in row-number order, for counts and maxima.
- a holdout rule (`Holdout`): row r is in the holdout when U(seed, r) < fraction, with U
  the splitmix64 hash of (seed, r) mapped to [0, 1) (`row_uniforms`). Deterministic per
  row, independent between rows, so the holdout is a Bernoulli(fraction) sample of the
  rows (its size is binomial around fraction x rows) that any reader finds again without
  a list of row numbers. A source's `part` is "train" (the rows outside the holdout) or
  "holdout"; `excluding(rows)` further leaves out explicit row numbers (a validation set).

Which files, for a local path and a URL (s3://, gs://, memory://...) alike: a file is
itself; a folder is its files whose names end .parquet or .pq (any case), recursively; a
glob is its matching files; a list is its files. Below a folder, or below a glob's fixed
part, a path with a component starting with _ or . is skipped (Spark's and Hadoop's
_SUCCESS and _temporary/, hidden files). One schema is read for all of them at open: each
file's footer, unified as Arrow's permissive promotion does (int32 and int64 -> int64,
int64 and float64 -> float64, an all-null column and string -> string, dictionary-encoded
strings and plain ones -> string); a column missing from some files is null in their
rows. Types that cannot be one column (int64 and string, timestamps with and without a
time zone, integers beyond what the unified type holds exactly, per the footers'
statistics) are a DataError at open naming the column, the two types and the files, not
an Arrow error in the middle of a pass (a file without statistics: a DataError naming it
when that row group is read).

Memory: one pass holds at most (buffer_batches + 1) x batch_rows rows as Arrow data
(`peak_buffered_rows` records the largest count seen, for tests), plus, per open row group,
what Arrow's Parquet reader holds of it (its compressed column chunks: write files with
row groups of ~100k-1M rows); `sample` holds its rows plus one read batch. Columns come
back in the nullable dtypes the rest of the code uses, converted as
`generators.data.tables.read_table` converts Parquet; given a `Schema`, each column is cast to
the schema's dtype so every batch has the same dtypes; a value the dtype cannot hold (a
non-integer in a column the schema made Int64) is a DataError naming the column and value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem, make_path_posix

from generators.data.remote import filesystem as remote_filesystem
from generators.data.remote import is_url
from generators.data.schema import (
    Schema,
    apply_declared_kinds,
    normalize_dtypes,
    parse_datetime_strings,
    parse_number_strings,
)
from generators.data.tables import _NULLABLE_TYPES
from generators.errors import DataError

# Row numbers are hashed this many at a time (8 MiB of int64) when counting or sampling.
_HASH_CHUNK_ROWS = 1 << 20
# Rows per read batch when fetching sampled rows.
_READ_ROWS = 65_536
# Salts keep the holdout rule, the sample keys and the pass orders apart for one seed.
_SALT_HOLDOUT, _SALT_SAMPLE, _SALT_ORDER = 0x5EED0001, 0x5EED0002, 0x5EED0003
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_PARQUET = ds.ParquetFileFormat()
# A folder's files that are read (any case), and the path components below a folder or a
# glob's fixed part that are skipped, for local paths and URLs alike.
_PARQUET_SUFFIXES = (".parquet", ".pq")
_HIDDEN_PREFIXES = ("_", ".")
_GLOB_CHARS = "*?["


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (wrapping arithmetic): a bijection that mixes bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_uniforms(seed: int, rows: np.ndarray, salt: int = _SALT_HOLDOUT) -> np.ndarray:
    """U(seed, r) in [0, 1) for each row number r (float64, 53 random bits each).

    splitmix64: the stream's state is mix(seed, salt), row r's value is
    mix(state + (r + 1) * 0x9E3779B97F4A7C15), whose top 53 bits over 2**53 give U."""
    state = _splitmix(np.array([(seed * 0x100000001B3 + salt) % 2**64], dtype=np.uint64))
    with np.errstate(over="ignore"):
        x = state + (np.asarray(rows, dtype=np.int64).astype(np.uint64) + np.uint64(1)) * _GOLDEN
        return (_splitmix(x) >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class Holdout:
    """Row r is held out when row_uniforms(seed, r) < fraction (see the module docstring)."""

    fraction: float
    seed: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise DataError(f"holdout fraction must be in [0, 1), got {self.fraction!r}")

    def contains(self, rows: np.ndarray) -> np.ndarray:
        """Boolean mask: which of these global row numbers are in the holdout."""
        return row_uniforms(self.seed, rows, _SALT_HOLDOUT) < self.fraction


@dataclass(frozen=True)
class _Unit:
    """One row group: the fragment (file) it is in, its id there, its first global row."""

    fragment: int
    row_group: int
    start: int
    rows: int


class ParquetSource:
    """Rows of a Parquet file, a folder of Parquet files, a glob or a list of files, read in
    bounded batches (see the module docstring).

    `columns` selects columns (default: all, in the files' order); `schema` casts them to
    its dtypes; `holdout` and `part` pick the training or the holdout rows; `exclude` drops
    explicit global row numbers. Views (`select`, `excluding`, `holdout_part`) share the
    files' metadata.
    """

    def __init__(
        self,
        path: str | Path | Sequence[str | Path],
        *,
        columns: Sequence[str] | None = None,
        schema: Schema | None = None,
        holdout: Holdout | None = None,
        part: Literal["train", "holdout"] = "train",
        exclude: np.ndarray | None = None,
    ) -> None:
        self.path = path
        self._dataset, self._fragments, self._units, self._file_labels = _open(path)
        names = self._dataset.schema.names
        self.columns = list(names if columns is None else columns)
        unknown = [name for name in self.columns if name not in names]
        if unknown:
            raise DataError(f"{path}: columns {unknown} are not in the files; columns: {names}")
        if part not in ("train", "holdout"):
            raise DataError(f"part must be 'train' or 'holdout', got {part!r}")
        if part == "holdout" and holdout is None:
            raise DataError("a holdout part needs a holdout rule")
        self.schema, self.holdout, self.part = schema, holdout, part
        self.exclude = np.unique(np.asarray([] if exclude is None else exclude, dtype=np.int64))
        self.peak_buffered_rows = 0  # the most rows a pass of `batches` held at once
        self._count: int | None = None

    # -- views -----------------------------------------------------------------------------
    def _view(self, **changes) -> ParquetSource:
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.__dict__.update(changes)
        view.peak_buffered_rows, view._count = 0, None
        return view

    def select(self, columns: Sequence[str], schema: Schema | None = None) -> ParquetSource:
        """The same rows, only these columns (cast to `schema`'s dtypes when given)."""
        unknown = [name for name in columns if name not in self._dataset.schema.names]
        if unknown:
            raise DataError(f"{self.path}: columns {unknown} are not in the files")
        return self._view(columns=list(columns), schema=schema or self.schema)

    def excluding(self, rows: np.ndarray) -> ParquetSource:
        """These rows also left out (global row numbers), e.g. a validation sample."""
        extra = np.asarray(rows, dtype=np.int64)
        return self._view(exclude=np.union1d(self.exclude, extra))

    def holdout_part(self) -> ParquetSource:
        """The holdout rows (the rule's complement of the training part), nothing excluded."""
        if self.holdout is None:
            raise DataError("this source has no holdout rule")
        return self._view(part="holdout", exclude=np.empty(0, dtype=np.int64))

    # -- sizes -----------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        """Rows in the files, from the Parquet metadata (both parts, nothing excluded)."""
        return sum(unit.rows for unit in self._units)

    def fingerprint(self) -> str:
        """A hash of the files as their footers describe them: paths, and every row group's
        rows, bytes and column statistics. New, removed or rewritten files change it (an
        edit that keeps every row group's size and statistics can escape it); no data is
        read. Keys a streamed fit's checkpoints to the data it trained on."""
        digest = hashlib.sha256()
        for label, fragment in zip(self._file_labels, self._fragments, strict=True):
            digest.update(str(label).encode())
            metadata = fragment.metadata
            for index in range(metadata.num_row_groups):
                group = metadata.row_group(index).to_dict()
                for column in group["columns"]:
                    column.pop("file_offset", None)
                digest.update(json.dumps(group, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]

    @property
    def arrow_schema(self) -> pa.Schema:
        """The selected columns' Arrow types, as the files hold them."""
        schema = self._dataset.schema
        return pa.schema([schema.field(name) for name in self.columns]).remove_metadata()

    def __len__(self) -> int:
        """Rows of this part, excluded rows left out (hashes row numbers; no data read)."""
        if self._count is None:
            if self.holdout is None and not len(self.exclude):
                self._count = self.num_rows
            else:
                self._count = sum(int(self._keep(r).sum()) for r in self._row_chunks())
        return self._count

    def _row_chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.num_rows, _HASH_CHUNK_ROWS):
            yield np.arange(start, min(start + _HASH_CHUNK_ROWS, self.num_rows), dtype=np.int64)

    def _keep(self, rows: np.ndarray) -> np.ndarray:
        """Boolean mask: which of these global row numbers belong to this view."""
        keep = np.ones(len(rows), dtype=bool)
        if self.holdout is not None:
            held = self.holdout.contains(rows)
            keep = held if self.part == "holdout" else ~held
        if len(self.exclude):
            position = np.searchsorted(self.exclude, rows).clip(max=len(self.exclude) - 1)
            keep &= self.exclude[position] != rows
        return keep

    # -- sampling --------------------------------------------------------------------------
    def sample_row_numbers(self, rows: int, seed: int) -> np.ndarray:
        """Global row numbers of a uniform sample without replacement of min(rows, len)
        rows of this view, in a random order (ascending keys U(seed, r)); no data read."""
        if rows < 0:
            raise DataError(f"sample rows must be >= 0, got {rows}")
        best_rows = np.empty(0, dtype=np.int64)
        best_keys = np.empty(0, dtype=np.float64)
        for chunk in self._row_chunks():
            chunk = chunk[self._keep(chunk)]
            keys = row_uniforms(seed, chunk, _SALT_SAMPLE)
            if len(best_keys) == rows and rows:
                below = keys < best_keys.max()
                chunk, keys = chunk[below], keys[below]
            best_rows = np.concatenate([best_rows, chunk])
            best_keys = np.concatenate([best_keys, keys])
            if len(best_keys) > rows:
                kept = np.argpartition(best_keys, rows - 1)[:rows] if rows else []
                best_rows, best_keys = best_rows[kept], best_keys[kept]
        return best_rows[np.lexsort((best_rows, best_keys))]

    def read_rows(self, row_numbers: np.ndarray) -> pd.DataFrame:
        """The rows with these global numbers, in the order given (each at most once); only
        the row groups holding one are read, a batch at a time."""
        row_numbers = np.asarray(row_numbers, dtype=np.int64)
        wanted = np.unique(row_numbers)
        if len(wanted) != len(row_numbers):
            raise DataError("read_rows: a row number is given twice")
        pieces: list[pa.RecordBatch] = []
        starts = np.array([unit.start for unit in self._units], dtype=np.int64)
        for index in np.unique(np.searchsorted(starts, wanted, side="right") - 1):
            unit = self._units[index]
            inside = wanted[(wanted >= unit.start) & (wanted < unit.start + unit.rows)]
            offset = unit.start
            for batch in self._read_unit(unit, _READ_ROWS):
                local = inside[(inside >= offset) & (inside < offset + batch.num_rows)] - offset
                if len(local):
                    pieces.append(batch.take(pa.array(local)))
                offset += batch.num_rows
        table = pa.Table.from_batches(pieces, schema=self._read_schema())
        # `table` is in ascending row order; put it in the order asked for.
        table = table.take(pa.array(np.searchsorted(wanted, row_numbers)))
        return self._to_frame(table)

    def sample(self, rows: int, seed: int) -> pd.DataFrame:
        """A seeded uniform sample of min(rows, len) rows of this view, in random order."""
        return self.read_rows(self.sample_row_numbers(rows, seed))

    # -- passes ----------------------------------------------------------------------------
    def scan(self, batch_rows: int = _READ_ROWS) -> Iterator[pd.DataFrame]:
        """One pass in row-number order, frames of at most `batch_rows` rows of this view."""
        for unit in self._units:
            for batch in self._kept_batches(unit, batch_rows):
                if batch.num_rows:
                    yield self._to_frame(pa.Table.from_batches([batch]))

    def batches(
        self, batch_rows: int, *, seed: int, epoch: int = 0, buffer_batches: int = 4
    ) -> Iterator[pd.DataFrame]:
        """One pass over this view's rows in a seeded, mixed order: frames of `batch_rows`
        rows (the pass's last may be smaller). Each row comes exactly once per pass.

        Row groups are taken in an order drawn from (seed, epoch); `buffer_batches` of them
        are open at once and read in random turns, a batch at a time, into a buffer; once
        the buffer holds buffer_batches x batch_rows rows, a random `batch_rows` of them
        leave as the next frame. At most (buffer_batches + 1) x batch_rows rows are held.
        """
        if batch_rows < 1 or buffer_batches < 1:
            raise DataError(f"batch_rows and buffer_batches must be >= 1, got {batch_rows}")
        rng = np.random.default_rng([seed % 2**63, epoch, _SALT_ORDER])
        pending = iter(rng.permutation(len(self._units)).tolist())
        streams: list[Iterator[pa.RecordBatch]] = []
        buffer: list[pa.RecordBatch] = []
        held, capacity = 0, buffer_batches * batch_rows
        schema = self._read_schema()
        while True:
            while len(streams) < buffer_batches:
                index = next(pending, None)
                if index is None:
                    break
                streams.append(self._kept_batches(self._units[index], batch_rows))
            if not streams:
                break
            turn = int(rng.integers(len(streams)))
            batch = next(streams[turn], None)
            if batch is None:
                del streams[turn]
                continue
            if not batch.num_rows:
                continue
            buffer.append(batch)
            held += batch.num_rows
            self.peak_buffered_rows = max(self.peak_buffered_rows, held)
            if held >= capacity:
                table = pa.Table.from_batches(buffer, schema=schema)
                order = rng.permutation(held)
                yield self._to_frame(table.take(pa.array(order[:batch_rows])))
                rest = table.take(pa.array(np.sort(order[batch_rows:])))
                buffer = rest.combine_chunks().to_batches()
                held -= batch_rows
        if held:
            table = pa.Table.from_batches(buffer, schema=schema)
            order = rng.permutation(held)
            for start in range(0, held, batch_rows):
                part = order[start : start + batch_rows]
                yield self._to_frame(table.take(pa.array(part)))

    # -- reading ---------------------------------------------------------------------------
    def _read_schema(self) -> pa.Schema:
        schema = self._dataset.schema
        return pa.schema([schema.field(name) for name in self.columns])

    def _read_unit(self, unit: _Unit, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """A row group's rows in order, in batches of at most `batch_rows` (one thread, one
        batch read ahead: memory stays one row group's column chunks plus a batch)."""
        fragment = self._fragments[unit.fragment].subset(row_group_ids=[unit.row_group])
        scanner = ds.Scanner.from_fragment(
            fragment,
            schema=self._dataset.schema,
            columns=self.columns,
            batch_size=batch_rows,
            batch_readahead=1,
            fragment_readahead=1,
            use_threads=False,
        )
        try:
            yield from scanner.to_batches()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            # What the checks at open cannot see (an integer column without statistics
            # beyond what the unified type holds, a corrupt page): one line naming the file.
            raise DataError(
                f"{self._file_labels[unit.fragment]}: row group {unit.row_group} cannot be "
                f"read ({_detail(error)}); check the file, and that each column has one type "
                "in every file"
            ) from None

    def _kept_batches(self, unit: _Unit, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """A row group's batches, this view's rows only."""
        offset = unit.start
        for batch in self._read_unit(unit, batch_rows):
            rows = np.arange(offset, offset + batch.num_rows, dtype=np.int64)
            offset += batch.num_rows
            keep = self._keep(rows)
            yield batch if keep.all() else batch.filter(pa.array(keep))

    def _to_frame(self, table: pa.Table) -> pd.DataFrame:
        """Arrow -> pandas nullable dtypes as read_table makes them; cast to the schema."""
        frame = normalize_dtypes(table.to_pandas(types_mapper=_NULLABLE_TYPES.get))
        if self.schema is None:
            return normalize_dtypes(parse_number_strings(parse_datetime_strings(frame)))
        return cast_to_schema(frame, self.schema)


def cast_to_schema(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """`frame`'s columns in the schema's dtypes (strings parsed as dates or numbers where the
    schema says so), so every batch of a pass has the same dtypes; values are not clipped
    and categories are not filtered (unlike `Schema.conform`).

    A value the dtype cannot hold (a non-integer such as "1,234.5" or 3.5 in a column the
    schema made Int64 from a sample of whole numbers, a number out of the integer's range)
    is a one-line DataError naming the column and the value: never rounded, never a raw
    pandas error in the middle of a pass."""
    out = {}
    for name in frame.columns:
        values = frame[name]
        column = schema[name] if name in schema.names else None
        if column is None or str(values.dtype) == column.dtype:
            out[name] = values
        elif column.kind == "datetime":
            out[name] = pd.to_datetime(values, errors="coerce").astype(column.dtype)
        elif column.kind == "boolean" and not pd.api.types.is_bool_dtype(values.dtype):
            # A declared boolean of yes/no, y/n, t/f, 1/0 words: read as the in-memory
            # readers do (apply_declared_kinds), in every batch; other values are refused.
            out[name] = apply_declared_kinds(values.to_frame(name), {name: "boolean"})[name]
        elif column.kind == "numeric" and pd.api.types.is_string_dtype(values.dtype):
            numbers = pd.to_numeric(values.str.replace(",", "", regex=False), errors="coerce")
            out[name] = _as_dtype(numbers.astype("float64"), column, values)
        else:
            out[name] = _as_dtype(values, column, values)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def _as_dtype(values: pd.Series, column, shown: pd.Series) -> pd.Series:
    """`values` in `column.dtype`; a value it cannot hold is a DataError quoting `shown`'s."""
    bad = None
    if column.is_integer and pd.api.types.is_numeric_dtype(values.dtype):
        info = np.iinfo(pd.api.types.pandas_dtype(column.dtype).type)
        if pd.api.types.is_bool_dtype(values.dtype):
            pass  # 0 and 1 fit every integer dtype
        elif pd.api.types.is_integer_dtype(values.dtype):
            have = np.iinfo(values.dtype.type)
            if have.min < info.min or have.max > info.max:  # e.g. Int64 values, Int32 dtype
                present = values.dropna().astype(object)
                bad = present[(present < int(info.min)) | (present > int(info.max))]
        else:
            numbers = values.astype("float64")
            numbers = numbers[~np.isnan(numbers.to_numpy())]
            whole = np.isfinite(numbers) & (numbers == np.trunc(numbers))
            # info.max + 1 and info.min are powers of two: exact as floats.
            inside = (numbers >= float(info.min)) & (numbers < float(info.max) + 1.0)
            bad = numbers[~(whole & inside)]
    if bad is not None and len(bad):
        value = shown.loc[bad.index[0]]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(
            f"column '{column.name}': value {value!r} does not fit the schema's dtype "
            f"{column.dtype} (whole numbers in its range); set the column's kind or dtype in "
            f"the schema (data.schema.{column.name}; with data.stream it comes from a sample, "
            "which a larger data.stream.sample_rows widens) or fix the file"
        )
    try:
        return values.astype(column.dtype)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"column '{column.name}': its {values.dtype} values cannot be cast to the "
            f"schema's dtype {column.dtype} ({_detail(error)}); set the column's kind or "
            f"dtype in the schema (data.schema.{column.name}) or fix the file"
        ) from None


def _open(path) -> tuple[ds.Dataset, list, list[_Unit], list[str]]:
    """The dataset (the files' unified schema), its file fragments in path order, their row
    groups as units, and each fragment's name for messages (its URL for a URL)."""
    if isinstance(path, str | Path):
        fs, files = _list_files(str(path))
    else:  # an explicit list of local files: read as given, in path order
        fs, files = LocalFileSystem(), []
        for item in path:
            file = make_path_posix(str(item))
            if not fs.isfile(file):
                raise DataError(f"data.path: not found: {item}")
            files.append(file)
        if not files:
            raise DataError("data.path: an empty list of files")
        files.sort()
    local = isinstance(fs, LocalFileSystem)
    # Local files through Arrow's own filesystem; an object store in place through fsspec's
    # (row groups on demand, never copied whole).
    filesystem = pafs.LocalFileSystem() if local else pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    labels = [file if local else fs.unstrip_protocol(file) for file in files]
    fragments = []
    for file, label in zip(files, labels, strict=True):
        try:
            fragment = _PARQUET.make_fragment(file, filesystem)
            fragment.ensure_complete_metadata()  # the footer: schema and row groups, read once
        except (pa.ArrowInvalid, OSError, ValueError) as error:
            raise DataError(
                f"{label}: cannot read as Parquet ({_detail(error)}); check the file, or "
                "leave it out of data.path"
            ) from None
        fragments.append(fragment)
    schema = _unified_schema(fragments, labels)
    dataset = ds.FileSystemDataset(fragments, schema, _PARQUET, filesystem)
    units, start = [], 0
    for index, fragment in enumerate(fragments):
        for group in fragment.row_groups:
            if group.num_rows:
                units.append(_Unit(index, group.id, start, group.num_rows))
                start += group.num_rows
    return dataset, fragments, units, labels


def _list_files(text: str) -> tuple[object, list[str]]:
    """The fsspec filesystem of `text` (a local path or a URL) and the Parquet files it
    names, in path order; one rule for local paths and URLs alike (module docstring): the
    file itself; a glob's matching files; a folder's files ending .parquet or .pq,
    recursively. Below the folder (or the glob's fixed part), a path with a component
    starting with _ or . is skipped."""
    if is_url(text):
        fs, root = remote_filesystem(text, "data.path")
    else:
        fs, root = LocalFileSystem(), make_path_posix(text)
    try:
        if any(char in root for char in _GLOB_CHARS):
            fixed = root[: min(root.index(char) for char in _GLOB_CHARS if char in root)]
            base = fixed.rpartition("/")[0]
            matches = fs.glob(root, detail=True)
            files = [f for f, info in matches.items() if info.get("type") == "file"]
            files = [f for f in files if not _hidden(f, base)]
            if not files:
                raise DataError(f"data.path: no file matches '{text}'; check the pattern")
        elif fs.isdir(root):
            files = [
                f
                for f in fs.find(root)
                if f.lower().endswith(_PARQUET_SUFFIXES) and not _hidden(f, root)
            ]
            if not files:
                raise DataError(
                    f"data.path: {text} holds no Parquet files (names ending .parquet or .pq; "
                    "names starting with _ or . are skipped)"
                )
        elif fs.exists(root):
            files = [root]
        else:
            raise DataError(f"data.path: not found: {text}")
    except DataError:
        raise
    except Exception as error:  # credentials, a missing bucket: the store's own words
        raise DataError(f"data.path: cannot list {text} ({_detail(error)})") from None
    return fs, sorted(files)


def _hidden(file: str, root: str) -> bool:
    """Whether a component of `file`'s path below `root` starts with _ or . (Spark's and
    Hadoop's _SUCCESS and _temporary/, hidden files such as .part-0.parquet.crc)."""
    base = root.rstrip("/") + "/"
    relative = file[len(base) :] if file.startswith(base) else file
    return any(part.startswith(_HIDDEN_PREFIXES) for part in relative.split("/") if part)


def _unified_schema(fragments: list, labels: list[str]) -> pa.Schema:
    """One Arrow schema for all the files, so that every row group reads in the same types.

    Columns in order of first appearance. A column's types in the files are unified as
    `pa.unify_schemas(promote_options="permissive")` does (int32 and int64 -> int64, int64
    and float64 -> float64, null and string -> string, ...), a dictionary column with its
    value type decoded where the two differ; a column missing from some files is null in
    their rows. Types that cannot be unified (int64 and string, bool and int64, timestamps
    with and without a time zone), and integers that do not fit the unified type exactly
    (per the row groups' statistics), are refused here, at open, not in the middle of a pass.
    """
    fields: dict[str, pa.Field] = {}
    origin: dict[str, tuple[int, pa.DataType]] = {}  # a file of the column, and its type there
    present: dict[str, int] = {}
    for index, fragment in enumerate(fragments):
        for field in fragment.physical_schema:
            name = field.name
            present[name] = present.get(name, 0) + 1
            known = fields.get(name)
            if known is None:
                fields[name], origin[name] = field, (index, field.type)
                continue
            try:
                merged = _merge_types(known.type, field.type)
            except _Incompatible:
                raise DataError(
                    f"data.path: column '{name}' is {origin[name][1]} in "
                    f"{labels[origin[name][0]]} but {field.type} in {labels[index]}, which "
                    "cannot be read as one column; write it with one type in every file, or "
                    "leave the odd files out of data.path"
                ) from None
            if merged == field.type != known.type:
                origin[name] = (index, field.type)
            fields[name] = known.with_type(merged).with_nullable(known.nullable or field.nullable)
    schema = pa.schema(
        [
            field.with_nullable(True) if present[name] < len(fragments) else field
            for name, field in fields.items()
        ],
        metadata=fragments[0].physical_schema.metadata,
    )
    for fragment, label in zip(fragments, labels, strict=True):
        _check_integers_fit(fragment, schema, label)
    return schema


class _Incompatible(Exception):
    pass


def _merge_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type both `a` and `b` values read as (permissive promotion), or _Incompatible."""
    if a == b:
        return a
    one = [pa.schema([pa.field("c", t)]) for t in (a, b)]
    try:
        return pa.unify_schemas(one, promote_options="permissive").field("c").type
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if pa.types.is_dictionary(a) or pa.types.is_dictionary(b):
            return _merge_types(*(t.value_type if pa.types.is_dictionary(t) else t for t in (a, b)))
        raise _Incompatible from None


def _check_integers_fit(fragment, schema: pa.Schema, label: str) -> None:
    """Refuse an integer column whose unified type cannot hold its values exactly (int64
    beyond +-2**53 read as float64, uint64 beyond 2**63 - 1 read as int64): Arrow would fail
    on them mid-pass. Checked against the row groups' min/max statistics, where written."""
    for field in fragment.physical_schema:
        target = schema.field(field.name).type
        if not pa.types.is_integer(field.type) or target == field.type:
            continue
        if pa.types.is_floating(target):
            digits = {16: 11, 32: 24, 64: 53}[target.bit_width]
            low, high = -(2**digits), 2**digits
        elif pa.types.is_integer(target):
            info = np.iinfo(target.to_pandas_dtype())
            low, high = int(info.min), int(info.max)
        else:
            continue
        for group in fragment.row_groups:
            stats = (group.statistics or {}).get(field.name) or {}
            for value in (stats.get("min"), stats.get("max")):
                if value is not None and not low <= value <= high:
                    raise DataError(
                        f"data.path: column '{field.name}' is {field.type} in {label} and "
                        f"{target} in other files; its value {value} does not fit {target} "
                        "exactly, so they cannot be read as one column; write it with one "
                        "type in every file, or leave the odd files out of data.path"
                    )


def _detail(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]
