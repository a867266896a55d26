"""Tokens: word splitting and joining, and the `Tokenizer` of text generators."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

TokenLevel = Literal["char", "word"]
UNKNOWN = "<unk>"
# Words (with inner apostrophes: "o'er", "don't"), single punctuation marks, and newlines,
# so a paragraph keeps its line breaks when generated word by word.
_WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]|\n")
_NO_SPACE_BEFORE = set(".,;:!?)]}'’\"")
_NO_SPACE_AFTER = set("([{")


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
