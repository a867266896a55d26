"""Text as a table: reading corpora (tokens: `generators.text.tokens`; base: `.base`).

A text dataset is a frame with a `text` column (pandas "string" dtype) and optionally an
identifier column and a label column. `read_text` makes one from a `.txt` file (documents
by line, by blank-line paragraph or in fixed-length chunks), a folder of `.txt` files, or
a CSV / JSON Lines / Parquet table with a text column. `TextGenerator` is the base of the
text models (`hmm`, `lda`, `char_lm`): it finds the text and label columns in the schema,
fits a `Tokenizer`, keeps the real distribution of document lengths (per label), and turns
the token ids a model generates back into a table.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from generators.data.remote import is_url, local_copy
from generators.data.schema import TEXT_MIN_MEAN_CHARS, TEXT_MIN_MEAN_WORDS
from generators.data.tables import read_table, resolve_paths
from generators.errors import ConfigError, DataError

TEXT_COLUMN = "text"
Split = Literal["line", "blank_line", "chunk", "file"]
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson")
TEXT_SUFFIXES = (".txt", ".text", ".md")
# A chunk is cut at the last whitespace within its final fifth, so words are rarely split.
CHUNK_BREAK_WINDOW = 0.2
# Share of NUL and other control characters (besides tab, newline, carriage return, form
# feed) above which a ".txt" file is taken to be binary, not text.
BINARY_CONTROL_SHARE = 0.01


class TextSettings(BaseModel):
    """`data.text:` in the run config: where the documents are and how a file is split."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = Field(
        None, description="the text column of a CSV/JSONL/Parquet table; default: inferred"
    )
    split: Split | None = Field(
        None,
        description="how a .txt file becomes documents: line, blank_line (paragraphs), chunk "
        "or file (one document per file); default: line for a file, file for a folder",
    )
    chunk_chars: int = Field(1000, ge=10, description="characters per document with split: chunk")
    min_chars: int = Field(
        1, ge=1, description="documents shorter than this (stripped) are dropped"
    )


# -- reading -------------------------------------------------------------------------------
def read_text(
    path: str | Path,
    *,
    split: Split | None = None,
    chunk_chars: int = 1000,
    text_column: str | None = None,
    encoding: str = "utf-8",
    min_chars: int = 1,
) -> pd.DataFrame:
    """Documents as a frame with a `text` column ("string" dtype), one row per document.

    - a `.txt` file: split by `split` ("line" by default; "blank_line" = paragraphs;
      "chunk" = pieces of about `chunk_chars` characters; "file" = the whole file);
    - a folder, or a glob of `.txt` files: every `.txt` file (sorted by name), each one
      document by default, or split within each file by `split`;
    - a CSV / JSON Lines / Parquet table (or a glob of them): its `text_column`, renamed
      to `text` (the other columns are kept: ids, labels), or the only column of long
      strings when not named.
      The original name is in `frame.attrs["text_column"]`.

    Documents are stripped of surrounding whitespace; those shorter than `min_chars` are
    dropped. Bad input is a one-line `DataError` naming the file or the setting.
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"data.encoding: unknown encoding '{encoding}'; use e.g. utf-8, latin-1 or utf-16"
        ) from None
    if chunk_chars < 1:
        raise ConfigError(f"data.text.chunk_chars must be positive, got {chunk_chars}")
    if is_url(path):  # an fsspec URL: read from a local copy
        with local_copy(str(path)) as copy:
            return read_text(
                copy.path,
                split=split,
                chunk_chars=chunk_chars,
                text_column=text_column,
                encoding=encoding,
                min_chars=min_chars,
            )
    if any(char in str(path) for char in "*?["):
        files = resolve_paths(str(path))
        if all(_is_table_file(f) for f in files):
            return _read_table_text(files, str(path), text_column, encoding, min_chars)
        return _read_files(files, str(path), split, chunk_chars, encoding, min_chars)
    source = Path(path)
    if not source.exists():
        raise DataError(
            f"data.path: not found: {source} (relative paths are against the config's folder)"
        )
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and _is_text_file(p))
        if not files:
            raise DataError(
                f"data.path: the folder {source} holds no .txt files; give a file, or a folder "
                "of .txt files"
            )
        return _read_files(files, str(source), split, chunk_chars, encoding, min_chars)
    if _is_table_file(source):
        return _read_table_text([source], str(source), text_column, encoding, min_chars)
    if text_column is not None:
        raise ConfigError(
            f"data.text.column: '{text_column}' was set but {source} is a plain text file, "
            "not a table; remove the setting or give a CSV, JSON Lines or Parquet file"
        )
    documents = _split(_read_plain(source, encoding), split or "line", chunk_chars)
    frame = _documents_frame(documents, min_chars, source)
    frame.attrs["text_column"] = TEXT_COLUMN
    return frame


def _read_files(
    files: list[Path],
    source: str,
    split: Split | None,
    chunk_chars: int,
    encoding: str,
    min_chars: int,
) -> pd.DataFrame:
    """Several plain text files: one document each, or split within each by `split`."""
    documents = []
    for file in files:
        if _is_table_file(file):
            raise DataError(
                f"data.path: '{source}' mixes tables ({file.name}) and plain text files; "
                "give one kind"
            )
        documents += _split(_read_plain(file, encoding), split or "file", chunk_chars)
    frame = _documents_frame(documents, min_chars, Path(source))
    frame.attrs["text_column"] = TEXT_COLUMN
    return frame


def _is_text_file(path: Path) -> bool:
    return path.name.lower().endswith(TEXT_SUFFIXES)


def _is_table_file(path: Path) -> bool:
    return path.name.lower().endswith(TABLE_SUFFIXES)


def _read_plain(file: Path, encoding: str) -> str:
    raw = file.read_bytes()
    if not raw.strip():
        raise DataError(f"{file}: the file is empty; give a file with text in it")
    try:
        content = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{file}: not valid {encoding} text (byte {error.start}); set data.encoding "
            "(e.g. latin-1 or cp1252) to the file's encoding"
        ) from None
    sample = content[:100_000]
    control = sum(1 for char in sample if ord(char) < 32 and char not in "\t\n\r\f")
    if control > BINARY_CONTROL_SHARE * len(sample):
        raise DataError(
            f"{file}: looks like a binary file, not text ({control} control characters in the "
            f"first {len(sample)}); give a plain text file"
        )
    return content.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def _split(content: str, split: Split, chunk_chars: int) -> list[str]:
    if split == "file":
        return [content]
    if split == "line":
        return content.split("\n")
    if split == "blank_line":
        return re.split(r"\n[ \t]*\n", content)
    if split == "chunk":
        return _chunks(content, chunk_chars)
    raise ConfigError(
        f"data.text.split: unknown value '{split}'; use line, blank_line, chunk, file"
    )


def _chunks(content: str, size: int) -> list[str]:
    """Pieces of at most `size` characters, each cut at a whitespace in its last fifth when
    there is one (so words are rarely split), else exactly at `size`."""
    pieces, start = [], 0
    while start < len(content):
        end = min(start + size, len(content))
        if end < len(content):
            floor = end - max(1, int(size * CHUNK_BREAK_WINDOW))
            cut = max(content.rfind(" ", floor, end), content.rfind("\n", floor, end))
            if cut > start:
                end = cut + 1
        pieces.append(content[start:end])
        start = end
    return pieces


def _documents_frame(documents: Iterable[str], min_chars: int, source: Path) -> pd.DataFrame:
    kept = [doc.strip() for doc in documents]
    kept = [doc for doc in kept if len(doc) >= min_chars]
    if not kept:
        raise DataError(
            f"{source}: no documents of at least {min_chars} characters; check data.text.split "
            "and data.text.min_chars"
        )
    return pd.DataFrame({TEXT_COLUMN: pd.array(kept, dtype="string")})


def _read_table_text(
    files: list[Path], source: str, text_column: str | None, encoding: str, min_chars: int
) -> pd.DataFrame:
    frame, _ = read_table(source, encoding=encoding)
    file = files[0] if len(files) == 1 else source
    strings = [name for name in frame.columns if pd.api.types.is_string_dtype(frame[name].dtype)]
    if text_column is None:
        long = [name for name in strings if _is_long_text(frame[name])]
        if len(long) != 1:
            found = f"columns {long} hold" if long else "no column holds"
            raise DataError(
                f"{file}: {found} long text; set data.text.column to the column with the "
                f"documents (columns: {list(frame.columns)})"
            )
        text_column = long[0]
    elif text_column not in frame.columns:
        raise DataError(
            f"data.text.column: '{text_column}' is not a column of {file}; columns are "
            f"{list(frame.columns)}"
        )
    elif text_column not in strings:
        raise DataError(
            f"data.text.column: '{text_column}' in {file} holds {frame[text_column].dtype} "
            "values, not text; name the column with the documents"
        )
    if text_column != TEXT_COLUMN and TEXT_COLUMN in frame.columns:
        raise DataError(
            f"{file}: has a column named '{TEXT_COLUMN}' besides the text column "
            f"'{text_column}'; rename one or drop it (data.drop)"
        )
    text = frame[text_column].astype("string").str.strip()
    keep = text.notna() & (text.str.len() >= min_chars)
    if not keep.any():
        raise DataError(
            f"{file}: column '{text_column}' has no documents of at least {min_chars} characters"
        )
    frame = frame.assign(**{text_column: text})[keep.to_numpy(dtype=bool)]
    frame = frame.rename(columns={text_column: TEXT_COLUMN}).reset_index(drop=True)
    frame.attrs["text_column"] = text_column
    return frame


def _is_long_text(values: pd.Series) -> bool:
    present = values.dropna().astype(str)
    if present.empty:
        return False
    return bool(
        present.str.split().str.len().mean() >= TEXT_MIN_MEAN_WORDS
        or present.str.len().mean() >= TEXT_MIN_MEAN_CHARS
    )
