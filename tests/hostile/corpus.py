"""A corpus of hostile input files, built into a folder by the tests (nothing big is committed).

Each `Case` writes one input (or a folder of them) and says what must happen when it is read
with `read_table(path, **options)`: either it works, with the given shape and column kinds,
or it fails with a `DataError` of one line that holds the given words (the file's name is
always required; a column's name where one is at fault).
"""

from __future__ import annotations

import datetime
import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 20  # enough rows for inference to see a pattern, few enough to be fast


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]  # writes the input into a folder; returns data.path
    options: dict = field(default_factory=dict)  # read_table keywords, i.e. data: settings
    shape: tuple[int, int] | None = None  # it works: rows x columns
    kinds: dict[str, str] = field(default_factory=dict)  # it works: these columns' kinds
    error: tuple[str, ...] = ()  # it fails: words the one-line message must hold
    names_file: bool = True  # it fails: the message names the file (not for a config key)


def _text(name: str, text: str, encoding: str = "utf-8") -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(text.encode(encoding))
        return path

    return build


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def _parquet(name: str, table: pa.Table) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        pq.write_table(table, path)
        return path

    return build


def _rows(template: Callable[[int], str], n: int = ROWS) -> str:
    return "".join(template(i) for i in range(n))


def truncated_parquet(folder: Path) -> Path:
    path = folder / "cut.parquet"
    pq.write_table(pa.table({"a": np.arange(1000), "b": np.arange(1000.0)}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_gzip(folder: Path) -> Path:
    path = folder / "cut.csv.gz"
    data = gzip.compress(("a,b\n" + _rows(lambda i: f"{i},{i * 7 % 13}\n", 5000)).encode())
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def gzip_with_huge_field(path: Path, field_bytes: int, rows_before: int = 3) -> Path:
    """A .csv.gz whose last row has one field of `field_bytes` repeated bytes.

    Written as concatenated gzip members (a valid gzip stream: readers see one text), each
    member compressing the same 1 MiB block, so a 1 GB field costs about 1 MB of disk and a
    few milliseconds to write.
    """
    block = b"x" * (1 << 20)
    member = gzip.compress(block, compresslevel=9)
    with open(path, "wb") as handle:
        head = "a,b\n" + "".join(f"{i},y{i}\n" for i in range(rows_before)) + "9,"
        handle.write(gzip.compress(head.encode()))
        whole, rest = divmod(field_bytes, len(block))
        for _ in range(whole):
            handle.write(member)
        handle.write(gzip.compress(b"x" * rest + b"\n"))
    return path


def folder_named_like_a_file(folder: Path) -> Path:
    path = folder / "data.csv"
    path.mkdir()
    return path


def glob_of_folders(folder: Path) -> Path:
    (folder / "part-1").mkdir()
    (folder / "part-2").mkdir()
    return folder / "part-*"


def wide(folder: Path) -> Path:
    path = folder / "wide.csv"
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 2000)).round(3)
    pd.DataFrame(values, columns=[f"c{i}" for i in range(2000)]).to_csv(path, index=False)
    return path


LONG_NAME = "long_" + "n" * 995  # 1,000 characters
UNICODE_NAMES = ["名前", "prix €", "emoji 😀", "Ünïcödé"]
MIXED_DATES = ["2020-01-15", "Feb 3 2020", "2020/03/04 10:00", "15 March 2021", "2021-04-05T06:07"]
OFFSETS = ["2020-01-15T10:00:00+01:00", "2020-01-15T10:00:00Z", "2020-06-01T08:30:00-05:00"]

CASES: dict[str, Case] = {
    # -- CSV that works ------------------------------------------------------------------
    "bom": Case(
        _bytes("bom.csv", ("\ufeffa,b\n" + _rows(lambda i: f"{i},{i % 3}\n")).encode()),
        shape=(ROWS, 2),
        kinds={"a": "numeric", "b": "numeric"},
    ),
    "crlf line ends": Case(
        _text("crlf.csv", "a,b\r\n" + _rows(lambda i: f"{i},x{i % 4}\r\n")),
        shape=(ROWS, 2),
        kinds={"b": "categorical"},
    ),
    "one row": Case(_text("one_row.csv", "a,b\n1,x\n"), shape=(1, 2)),
    "one column": Case(
        _text("one_col.csv", "v\n" + _rows(lambda i: f"{i * 1.5}\n")),
        shape=(ROWS, 1),
        kinds={"v": "numeric"},
    ),
    "2,000 columns": Case(wide, shape=(50, 2000), kinds={"c0": "numeric", "c1999": "numeric"}),
    "unicode names": Case(
        _text("unicode.csv", ",".join(UNICODE_NAMES) + "\n" + _rows(lambda i: f"{i},{i},x,y\n")),
        shape=(ROWS, 4),
        kinds={"名前": "numeric", "prix €": "numeric", "emoji 😀": "categorical"},
    ),
    "1,000-character name": Case(
        _text("long.csv", f"{LONG_NAME},b\n" + _rows(lambda i: f"{i},{i % 2}\n")),
        shape=(ROWS, 2),
        kinds={LONG_NAME: "numeric"},
    ),
    "numbers in quotes": Case(
        _text("quoted.csv", "a,b\n" + _rows(lambda i: f'"{i}","{i}.5"\n')),
        shape=(ROWS, 2),
        kinds={"a": "numeric", "b": "numeric"},
    ),
    "thousands separators": Case(
        _text("thousands.csv", "amount,n\n" + _rows(lambda i: f'"{i * 1234:,}",{i}\n')),
        shape=(ROWS, 2),
        kinds={"amount": "numeric"},
    ),
    "NaN text in a numeric column": Case(
        _text("nan.csv", "x,y\n" + _rows(lambda i: f"{'NaN' if i % 4 == 0 else i / 2},{i}\n")),
        shape=(ROWS, 2),
        kinds={"x": "numeric"},
    ),
    "inf read as missing when asked": Case(
        _text("inf_ok.csv", "x,y\n" + _rows(lambda i: f"{'-inf' if i == 3 else i},{i}\n")),
        options={"na_values": ["inf", "-inf"]},
        shape=(ROWS, 2),
        kinds={"x": "numeric"},
    ),
    "as many categories as rows": Case(
        _text("distinct.csv", "label,n\n" + _rows(lambda i: f"cat{i},{i % 5}\n")),
        shape=(ROWS, 2),
        kinds={"label": "id"},  # unique per row: re-issued, never copied as categories
    ),
    "as many categories as rows, few rows": Case(
        _text("distinct_few.csv", "label,n\n" + _rows(lambda i: f"cat{i},{i % 5}\n", 12)),
        shape=(12, 2),
        kinds={"label": "categorical"},
    ),
    "dates in mixed formats": Case(
        _text("dates.csv", "d,n\n" + _rows(lambda i: f'"{MIXED_DATES[i % 5]}",{i}\n')),
        shape=(ROWS, 2),
        kinds={"d": "datetime"},
    ),
    "dates with mixed UTC offsets": Case(
        _text("offsets.csv", "t,n\n" + _rows(lambda i: f"{OFFSETS[i % 3]},{i}\n")),
        shape=(ROWS, 2),
        kinds={"t": "datetime"},
    ),
    # pandas would read the naive values with the last offset it saw (09:00 -> 03:30 UTC).
    "naive times mixed with offset ones": Case(
        _text(
            "naive_mixed.csv",
            "t,n\n"
            + _rows(
                lambda i: ("2024-03-01T09:00:00+05:30" if i < 2 else "2024-03-02 09:00") + f",{i}\n"
            ),
        ),
        error=("column 't' mixes times with a UTC offset", "2 values", "18 values"),
    ),
    "dates mixed with offset times": Case(
        _text(
            "date_and_offset.csv",
            "t,n\n"
            + _rows(lambda i: ("2024-03-01T09:00:00Z" if i % 2 else "2024-03-02") + f",{i}\n"),
        ),
        error=("column 't' mixes times with a UTC offset",),
    ),
    # Kept as text, these were synthesised as categories, with nothing said.
    "a number beyond float64": Case(
        _text(
            "overflow.csv",
            "a,b\n" + _rows(lambda i: ("1e309" if i == 3 else f"{i}.5") + f",{i % 3}\n"),
        ),
        error=("column 'a' holds numbers too large", "1e309"),
    ),
    "a few impossible dates": Case(
        _text(
            "zero_dates.csv",
            "d,n\n"
            + _rows(
                lambda i: ("0000-00-00" if i in (4, 9) else f"2021-03-{i + 1:02d}") + f",{i}\n"
            ),
        ),
        error=("column 'd' holds dates but some values are not valid dates", "0000-00-00"),
    ),
    "stray quote inside a field": Case(
        _text("stray.csv", "a,b\n" + _rows(lambda i: f'{i},5" disk {i % 3}\n')),
        shape=(ROWS, 2),
        kinds={"b": "categorical"},
    ),
    "quoted separators and newlines": Case(
        _text("multiline.csv", "a,b\n" + _rows(lambda i: f'{i},"x, y\nz{i % 2}"\n')),
        shape=(ROWS, 2),
        kinds={"b": "categorical"},
    ),
    "latin-1 with data.encoding": Case(
        _text("latin.csv", "city,n\n" + _rows(lambda i: f"K\u00f6ln{i % 3},{i}\n"), "latin-1"),
        options={"encoding": "latin-1"},
        shape=(ROWS, 2),
    ),
    "utf-16 with data.encoding": Case(
        _text("utf16.csv", "a,b\n" + _rows(lambda i: f"{i},\u00e9{i % 2}\n"), "utf-16"),
        options={"encoding": "utf-16"},
        shape=(ROWS, 2),
    ),
    # -- CSV that fails ------------------------------------------------------------------
    "header only": Case(_text("header.csv", "a,b,c\n"), error=("no data rows",)),
    "empty file": Case(_text("empty.csv", ""), error=("empty",)),
    "row with an extra field": Case(
        _text("long_row.csv", "a,b\n" + _rows(lambda i: f"{i},{i}\n") + "1,2,3\n"),
        error=("line 22", "3 field(s)", "line 1 has 2"),
    ),
    "first data row with an extra field": Case(
        # pandas would silently take the first column as the index and shift every value
        _text("long_first.csv", "a,b\n1,2,3\n" + _rows(lambda i: f"{i},{i}\n")),
        error=("line 2", "3 field(s)"),
    ),
    "row with a missing field": Case(
        # pandas would silently pad it with a missing value
        _text("short_row.csv", "a,b,c\n" + _rows(lambda i: f"{i},{i},{i}\n") + "1,2\n"),
        error=("line 22", "2 field(s)", "line 1 has 3"),
    ),
    "unclosed quote at the end": Case(
        _text("unclosed.csv", "a,b\n" + _rows(lambda i: f"{i},x{i}\n") + '1,"oops\n'),
        error=("never closed", "quot"),
    ),
    "unclosed quote early": Case(
        _text("unclosed_early.csv", 'a,b\n1,"oops\n' + _rows(lambda i: f"{i},x{i}\n")),
        error=("never closed",),
    ),
    "latin-1 bytes in a utf-8 file": Case(
        _bytes(
            "mixed_encoding.csv",
            b"city,n\n"
            + _rows(lambda i: f"caf\u00e9{i % 2},{i}\n").encode()
            + "K\u00f6ln,1\n".encode("latin-1"),
        ),
        error=("line 22", "not valid utf-8", "data.encoding"),
    ),
    "utf-16 without data.encoding": Case(
        _text("utf16_plain.csv", "a,b\n" + _rows(lambda i: f"{i},{i}\n"), "utf-16"),
        error=("not valid utf-8", "data.encoding"),
    ),
    "NUL byte in a field": Case(
        _bytes("nul.csv", b"a,b\n" + _rows(lambda i: f"{i},x{i}\n").encode() + b"1,x\x00y\n"),
        error=("line 22", "NUL"),
    ),
    "NUL byte in the header": Case(
        _bytes("nul_header.csv", b"a\x00,b\n" + _rows(lambda i: f"{i},{i}\n").encode()),
        error=("line 1", "NUL"),
    ),
    "empty column name": Case(
        _text("blank_name.csv", "a,,c\n" + _rows(lambda i: f"{i},{i},{i}\n")),
        error=("empty column name", "position(s) [1]"),
    ),
    "duplicate column names": Case(
        _text("dup.csv", "a,b,a\n" + _rows(lambda i: f"{i},{i},{i}\n")),
        error=("repeats", "'a'"),
    ),
    "infinite values": Case(
        _text("inf.csv", "x,y\n" + _rows(lambda i: f"{'-inf' if i == 3 else i},{i}\n")),
        error=("['x']", "infinite", "data.na_values"),
    ),
    "column entirely empty": Case(
        _text("hollow.csv", "a,hollow\n" + _rows(lambda i: f"{i},\n")),
        error=("['hollow']", "entirely empty", "data.drop"),
    ),
    "semicolon separated": Case(
        _text("semicolon.csv", "a;b\n" + _rows(lambda i: f"{i};{i}\n")),
        error=("'a;b'", "data.separator"),
    ),
    "multi-character separator": Case(
        _text("pipes.csv", "a||b\n" + _rows(lambda i: f"{i}||{i}\n")),
        options={"separator": "||"},
        error=("data.separator",),
    ),
    "unknown encoding": Case(
        _text("enc.csv", "a\n1\n"),
        options={"encoding": "utf-9"},
        error=("data.encoding", "'utf-9'"),
        names_file=False,
    ),
    "truncated gzip": Case(truncated_gzip, error=("truncated or corrupt",)),
    "plain text named .csv.gz": Case(
        _text("plain.csv.gz", "a,b\n1,2\n"), error=("truncated or corrupt",)
    ),
    "directory": Case(folder_named_like_a_file, error=("not a file",)),
    "glob of folders only": Case(glob_of_folders, error=("only folders",)),
    # -- Parquet -------------------------------------------------------------------------
    "parquet NaN and nulls": Case(
        _parquet("nan.parquet", pa.table({"x": [1.0, float("nan"), None, 2.5] * 5})),
        shape=(ROWS, 1),
        kinds={"x": "numeric"},
    ),
    "parquet nested column dropped": Case(
        _parquet(
            "nested_ok.parquet",
            pa.table({"s": pa.array([{"x": 1}] * ROWS), "n": np.arange(ROWS)}),
        ),
        options={"drop": ["s"]},
        shape=(ROWS, 1),
    ),
    "parquet zero rows": Case(
        _parquet("zero.parquet", pa.table({"a": pa.array([], pa.int64())})),
        error=("no data rows",),
    ),
    "parquet duplicate names": Case(
        _parquet("dup.parquet", pa.table([np.arange(ROWS), np.arange(ROWS)], names=["a", "a"])),
        error=("repeats", "'a'"),
    ),
    "parquet empty name": Case(
        _parquet("blank.parquet", pa.table([np.arange(ROWS), np.arange(ROWS)], names=["", "b"])),
        error=("empty column name",),
    ),
    "parquet nested columns": Case(
        _parquet(
            "nested.parquet",
            pa.table(
                {
                    "s": pa.array([{"x": 1}] * ROWS),
                    "l": pa.array([[1, 2]] * ROWS),
                    "n": np.arange(ROWS),
                }
            ),
        ),
        error=("'s' (struct", "'l' (list", "data.drop"),
    ),
    "parquet times of day": Case(
        _parquet(
            "times.parquet",
            pa.table({"t": pa.array([datetime.time(1, i) for i in range(ROWS)], pa.time64("us"))}),
        ),
        error=("'t' (time64",),
    ),
    "parquet dates past 2262": Case(
        _parquet(
            "far.parquet",
            pa.table({"d": pa.array([datetime.datetime(3000, 1, 1)] * ROWS, pa.timestamp("s"))}),
        ),
        error=("'d'", "1677-2262"),
    ),
    "parquet infinite": Case(
        _parquet("inf.parquet", pa.table({"x": [1.0, float("inf")] * 10})),
        error=("['x']", "infinite"),
    ),
    "not parquet": Case(
        _bytes("fake.parquet", b"PK\x03\x04 a zip, not parquet" * 10), error=("cannot read",)
    ),
    "truncated parquet": Case(truncated_parquet, error=("cannot read as parquet",)),
    # -- JSON Lines ----------------------------------------------------------------------
    "jsonl": Case(
        _text("ok.jsonl", _rows(lambda i: f'{{"a": {i}, "b": "x{i % 3}", "c": null}}\n')),
        options={"drop": ["c"]},
        shape=(ROWS, 2),
        kinds={"a": "numeric", "b": "categorical"},
    ),
    "jsonl nested column dropped": Case(
        _text("nested_ok.jsonl", _rows(lambda i: f'{{"a": {i}, "b": {{"x": {i}}}}}\n')),
        options={"drop": ["b"]},
        shape=(ROWS, 1),
    ),
    "empty jsonl": Case(_text("empty.jsonl", ""), error=("empty",)),
    "blank-line jsonl": Case(_text("blank.jsonl", "\n \n\n"), error=("empty",)),
    "jsonl nested objects": Case(
        _text("nested.jsonl", _rows(lambda i: f'{{"a": {i}, "b": {{"x": {i}, "y": [1]}}}}\n')),
        error=("['b']", "nested", "data.drop"),
    ),
    "jsonl arrays": Case(
        _text("arrays.jsonl", _rows(lambda i: f'{{"a": {i}, "tags": ["x", "y{i}"]}}\n')),
        error=("['tags']", "nested"),
    ),
    "jsonl duplicate keys": Case(
        _text("dup.jsonl", _rows(lambda i: f'{{"a": {i}, "a": {i + 1}}}\n')),
        error=("line 1", "repeats", "'a'"),
    ),
    "jsonl empty key": Case(
        _text("blank_key.jsonl", _rows(lambda i: f'{{"": {i}, "b": {i}}}\n')),
        error=("empty column name",),
    ),
    "jsonl scalar lines": Case(
        _text("scalars.jsonl", _rows(lambda i: f"{i}\n")), error=("line 1", "not an object")
    ),
    "jsonl broken line": Case(
        _text("broken.jsonl", _rows(lambda i: f'{{"a": {i}}}\n', 150) + "{not json\n"),
        error=("line 151", "not valid JSON"),
    ),
    "jsonl NUL in a value": Case(
        _text("nul.jsonl", _rows(lambda i: f'{{"a": {i}, "b": "x\\u0000{i}"}}\n')),
        error=("['b']", "NUL"),
    ),
}
