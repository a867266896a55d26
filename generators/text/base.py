"""`TextGenerator`, the base of text generators, and its `TextParams`."""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from generators.base import Generator, Params, resolve_device
from generators.errors import DataError
from generators.text.tokens import Tokenizer, TokenLevel

TOKENIZER_FILE = "tokenizer.json"
TEXT_STATE_FILE = "text_state.json"


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
