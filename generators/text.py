"""Text as a table: reading corpora, tokenizing, and the plumbing every text generator shares.

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
import json
import re
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from generators.base import Generator, Params, resolve_device
from generators.errors import ConfigError, DataError
from generators.remote import is_url, local_copy
from generators.schema import TEXT_MIN_MEAN_CHARS, TEXT_MIN_MEAN_WORDS
from generators.tables import read_table, resolve_paths

TEXT_COLUMN = "text"
Split = Literal["line", "blank_line", "chunk", "file"]
TokenLevel = Literal["char", "word"]
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson")
TEXT_SUFFIXES = (".txt", ".text", ".md")
# A chunk is cut at the last whitespace within its final fifth, so words are rarely split.
CHUNK_BREAK_WINDOW = 0.2
# Share of NUL and other control characters (besides tab, newline, carriage return, form
# feed) above which a ".txt" file is taken to be binary, not text.
BINARY_CONTROL_SHARE = 0.01
UNKNOWN = "<unk>"
TOKENIZER_FILE = "tokenizer.json"
TEXT_STATE_FILE = "text_state.json"
# Words (with inner apostrophes: "o'er", "don't"), single punctuation marks, and newlines,
# so a paragraph keeps its line breaks when generated word by word.
_WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]|\n")
_NO_SPACE_BEFORE = set(".,;:!?)]}'’\"")
_NO_SPACE_AFTER = set("([{")


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


# -- tokens --------------------------------------------------------------------------------
def word_tokens(text: str) -> list[str]:
    """Words, punctuation marks and newlines, in order (what the word level models)."""
    return _WORD_PATTERN.findall(text)


def join_words(tokens: Sequence[str]) -> str:
    """The inverse of `word_tokens` up to spacing: no space before closing punctuation,
    after opening brackets, or around newlines."""
    parts: list[str] = []
    previous = "\n"
    for token in tokens:
        if not (
            previous == "\n"
            or token == "\n"
            or token in _NO_SPACE_BEFORE
            or previous in _NO_SPACE_AFTER
        ):
            parts.append(" ")
        parts.append(token)
        previous = token
    return "".join(parts).strip()


class Tokenizer:
    """Characters or words <-> integer ids, with id 0 for the unknown token.

    The vocabulary is the `max_vocab - 1` most frequent tokens seen at least `min_count`
    times, ties broken by the token itself, so it depends on the data alone (no RNG).
    """

    def __init__(self, level: TokenLevel, vocabulary: Sequence[str]) -> None:
        self.level = level
        self.vocabulary = [UNKNOWN, *[t for t in vocabulary if t != UNKNOWN]]
        self.index = {token: i for i, token in enumerate(self.vocabulary)}

    @classmethod
    def fit(
        cls, texts: Iterable[str], level: TokenLevel, max_vocab: int, min_count: int = 1
    ) -> Tokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text if level == "char" else word_tokens(text))
        ranked = sorted(
            (item for item in counts.items() if item[1] >= min_count),
            key=lambda item: (-item[1], item[0]),
        )
        return cls(level, [token for token, _ in ranked[: max_vocab - 1]])

    def __len__(self) -> int:
        return len(self.vocabulary)

    def tokens(self, text: str) -> list[str]:
        return list(text) if self.level == "char" else word_tokens(text)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(token, 0) for token in self.tokens(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids back to text; unknown tokens are left out."""
        tokens = [self.vocabulary[i] for i in ids if i != 0]
        return "".join(tokens).strip() if self.level == "char" else join_words(tokens)

    def to_dict(self) -> dict:
        return {"level": self.level, "vocabulary": self.vocabulary}

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        return cls(data["level"], data["vocabulary"])


# -- the base of text generators -----------------------------------------------------------
class TextParams(Params):
    level: TokenLevel = "char"
    # Words beyond this many (the most frequent kept) become the unknown token.
    max_vocab: int = Field(5000, ge=2)
    min_count: int = Field(1, ge=1)


class TextGenerator(Generator):
    """Base of the text generators: a text column, at most one label column, and ids.

    Subclasses implement `_fit_tokens(docs, labels)` and `_generate(lengths, labels)` on
    token ids, and `_model_state()` / `_load_model_state()` for their tensors. This class
    fits the tokenizer, keeps every document's length in tokens (sampled documents take
    lengths drawn from the real ones of their label), draws labels by their frequency, and
    decodes the ids into a table. Labels are passed to the model as integer codes;
    `supports_labels = False` models ignore them (labels are still sampled at their real
    frequencies, with lengths of their own).
    """

    modality: ClassVar[str] = "text"
    Params: ClassVar[type[Params]] = TextParams
    supports_labels: ClassVar[bool] = False
    MODEL_FILE: ClassVar[str] = "model.pt"

    # -- table <-> documents -------------------------------------------------------------
    def _columns(self) -> tuple[str, str | None]:
        assert self.schema_ is not None
        modelled = self.modelled_columns
        text = [name for name in modelled if self.schema_[name].kind == "text"]
        if len(text) != 1:
            raise DataError(
                f"{self.name}: needs exactly one text column, found {text or 'none'}; pass "
                'schema overrides such as {"text": "text"} (data.schema) to mark the documents'
            )
        others = [name for name in modelled if name != text[0]]
        if len(others) > 1:
            raise DataError(
                f"{self.name}: besides the text column '{text[0]}' only one label column can be "
                f"modelled, found {others}; drop the others (data.drop)"
            )
        if others and self.schema_[others[0]].kind not in ("categorical", "boolean"):
            raise DataError(
                f"{self.name}: column '{others[0]}' is {self.schema_[others[0]].kind}; a text "
                "table's label must be categorical or boolean (data.schema), or dropped"
            )
        return text[0], (others[0] if others else None)

    def _fit(self, data: pd.DataFrame) -> None:
        text_column, label_column = self._columns()
        texts = data[text_column].fillna("").astype(str).tolist()
        self.device_ = resolve_device(self.device)
        self.tokenizer_ = Tokenizer.fit(
            texts, self.params.level, self.params.max_vocab, self.params.min_count
        )
        docs = [self.tokenizer_.encode(text) for text in texts]
        if label_column is None:
            self.label_values_: list[Any] = []
            codes = np.zeros(len(docs), dtype=np.int64)
        else:
            labels = [
                None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)
                for v in data[label_column].astype(object)
            ]
            values = sorted({v for v in labels if v is not None}, key=str)
            has_missing = any(v is None for v in labels)
            self.label_values_ = values + ([None] if has_missing else [])
            lookup = {v: i for i, v in enumerate(self.label_values_)}
            codes = np.array([lookup[v] for v in labels], dtype=np.int64)
        self.label_column_ = label_column
        self.text_column_ = text_column
        n_labels = max(1, len(self.label_values_))
        self.label_counts_ = np.bincount(codes, minlength=n_labels).tolist()
        lengths = np.array([len(doc) for doc in docs], dtype=np.int64)
        self.lengths_ = [sorted(lengths[codes == k].tolist()) for k in range(n_labels)]
        if lengths.max() == 0:
            raise DataError(f"{self.name}: every document is empty after tokenizing")
        self._fit_tokens(docs, codes if label_column else None)

    def _sample(self, n: int) -> pd.DataFrame:
        probabilities = np.asarray(self.label_counts_, dtype=float)
        codes = np.random.choice(len(probabilities), size=n, p=probabilities / probabilities.sum())
        lengths = np.empty(n, dtype=np.int64)
        for k, real in enumerate(self.lengths_):
            where = np.flatnonzero(codes == k)
            if len(where):
                lengths[where] = np.asarray(real)[np.random.randint(len(real), size=len(where))]
        lengths = np.maximum(lengths, 1)
        ids = self._generate(lengths, codes if self.label_column_ else None)
        frame = pd.DataFrame(
            {self.text_column_: pd.array([self.tokenizer_.decode(d) for d in ids], "string")}
        )
        if self.label_column_ is not None:
            frame[self.label_column_] = pd.Series(
                [self.label_values_[c] for c in codes], dtype=object
            )
        return frame

    # -- saving ---------------------------------------------------------------------------
    def _save(self, path: Path) -> None:
        (path / TOKENIZER_FILE).write_text(json.dumps(self.tokenizer_.to_dict()))
        state = {
            "text_column": self.text_column_,
            "label_column": self.label_column_,
            "label_values": self.label_values_,
            "label_counts": self.label_counts_,
            "lengths": self.lengths_,
            "model": self._model_meta(),
        }
        (path / TEXT_STATE_FILE).write_text(json.dumps(state))
        torch.save({k: v.cpu() for k, v in self._model_state().items()}, path / self.MODEL_FILE)

    def _load(self, path: Path) -> None:
        self.tokenizer_ = Tokenizer.from_dict(json.loads((path / TOKENIZER_FILE).read_text()))
        state = json.loads((path / TEXT_STATE_FILE).read_text())
        self.text_column_ = state["text_column"]
        self.label_column_ = state["label_column"]
        self.label_values_ = state["label_values"]
        self.label_counts_ = state["label_counts"]
        self.lengths_ = state["lengths"]
        self.device_ = resolve_device(self.device)
        tensors = torch.load(path / self.MODEL_FILE, map_location=self.device_, weights_only=True)
        self._load_model_state(tensors, state["model"])

    # -- what each text model implements ------------------------------------------------------
    @abstractmethod
    def _fit_tokens(self, docs: list[list[int]], labels: np.ndarray | None) -> None:
        """Learn from token-id documents (`labels`: one integer code per document, or None)."""

    @abstractmethod
    def _generate(self, lengths: np.ndarray, labels: np.ndarray | None) -> list[list[int]]:
        """One token-id document per entry of `lengths` (its length in tokens, a guide that
        models with an end-of-document token may treat as a cap). RNGs are seeded."""

    @abstractmethod
    def _model_state(self) -> dict[str, torch.Tensor]: ...

    def _model_meta(self) -> dict:
        """Plain values the model needs beside its tensors (JSON)."""
        return {}

    @abstractmethod
    def _load_model_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None: ...


def pad_documents(
    docs: Sequence[Sequence[int]], device: str | torch.device, pad: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, T) int64 padded with `pad`, mask (B, T) bool), T the longest document."""
    lengths = torch.tensor([len(d) for d in docs], dtype=torch.int64)
    width = max(1, int(lengths.max())) if len(docs) else 1
    tokens = torch.full((len(docs), width), pad, dtype=torch.int64)
    if len(docs):
        flat = torch.tensor([t for d in docs for t in d], dtype=torch.int64)
        rows = torch.repeat_interleave(torch.arange(len(docs)), lengths)
        cols = torch.arange(len(flat)) - torch.repeat_interleave(
            torch.cumsum(lengths, 0) - lengths, lengths
        )
        tokens[rows, cols] = flat
    mask = torch.arange(width)[None, :] < lengths[:, None]
    return tokens.to(device), mask.to(device)
