"""Privacy and fidelity checks for text tables (a `text` column, optional label).

Privacy (`text_privacy_report`, blocking, named "privacy"):

- memorised_share: share of synthetic documents that contain a long n-gram of training
  text: `ngram_words` consecutive words (lower-cased `\\w+` words, so punctuation changes do
  not hide a copy) or `ngram_chars` consecutive characters (whitespace runs collapsed).
  The same share for the real holdout documents is the baseline: real text repeats
  phrases too (quotations, boilerplate, a play's stage directions). The gate fails when
  the synthetic share exceeds the holdout's by more than `memorised_excess_max` and the
  excess is significant (one-sided two-proportion z-test at 95%).
- duplicate_share: share of synthetic documents identical to a training document (after
  stripping and collapsing whitespace), against the holdout's share, gated the same way
  with `duplicate_excess_max` (short real documents repeat: "Exit." in a play).
- pii.<kind>: counts of emails, phone numbers, payment card numbers (13-19 digits passing
  the Luhn check) and national-id-like patterns (US SSN, UK National Insurance number,
  IBAN) in the synthetic documents; any is a failure when `pii_scan` is on. `mask_pii`
  replaces them with placeholders, for masking the input before training.

N-grams are compared by 64-bit rolling hashes (polynomial hash modulo 2^64, computed
with wrapping numpy arithmetic), so a corpus of millions of characters is indexed without
holding its substrings; a hash collision could only add a false "memorised" flag.

Fidelity (`text_fidelity_report`, informational, named "fidelity"): Jensen–Shannon
divergence (base 2, in [0, 1]) between the real and synthetic distributions of words,
word bigrams and character trigrams; the share of generated words that are words of the
training text; Kolmogorov–Smirnov statistics of document length in characters and words.
Each is also computed for the holdout against the training text (`*_holdout`): what a
fresh real sample of the same size scores, the ceiling.

`text_features` gives per-document features for a Great Expectations suite.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import ks_2samp

from generators.errors import DataError
from validation.report import Report

TEXT_COLUMN = "text"
Z95_ONE_SIDED = 1.644854
MIN_DOCS = 10
_WORD = re.compile(r"\w+")
_HASH_BASE = np.uint64(1_000_003)  # odd, so invertible modulo 2^64
_MASK = {
    "email": "<EMAIL>",
    "card_number": "<CARD>",
    "national_id": "<NATIONAL_ID>",
    "phone": "<PHONE>",
}
# Order matters: emails, then card numbers (which would also read as phone numbers), then
# ids, then phones.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_NATIONAL_ID = re.compile(
    r"\b\d{3}-\d{2}-\d{4}\b"  # US social security number
    r"|\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"  # UK National Insurance
    r"|\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?\b"  # IBAN
)
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,4}(?!\w)"
)
PHONE_MIN_DIGITS, PHONE_MAX_DIGITS = 9, 15


class TextPrivacy(BaseModel):
    """`privacy.text:` settings for text runs: memorisation, duplicates and PII (the gate's
    switch and override are privacy.enabled and privacy.override_gate)."""

    model_config = ConfigDict(extra="forbid")

    ngram_words: int = Field(8, ge=2, description="a run of this many training words = memorised")
    ngram_chars: int = Field(50, ge=10, description="or of this many training characters")
    memorised_excess_max: float = Field(
        0.05, ge=0, le=1, description="allowed memorised share above the holdout's"
    )
    duplicate_excess_max: float = Field(
        0.05, ge=0, le=1, description="allowed exact-duplicate share above the holdout's"
    )
    pii_scan: bool = Field(True, description="fail when the synthetic text holds PII patterns")
    mask_pii_input: bool = Field(False, description="mask PII in the input before training")
    max_docs: int = Field(
        20_000, ge=100, description="synthetic and holdout docs checked (seeded sample)"
    )


# -- helpers -------------------------------------------------------------------------------
def _texts(frame: pd.DataFrame | pd.Series | Iterable[str], what: str) -> list[str]:
    if isinstance(frame, pd.DataFrame):
        if TEXT_COLUMN not in frame.columns:
            raise DataError(
                f"the {what} table has no '{TEXT_COLUMN}' column: {list(frame.columns)}"
            )
        frame = frame[TEXT_COLUMN]
    return ["" if pd.isna(t) else str(t) for t in frame]


def _sample(texts: list[str], size: int, rng: np.random.Generator) -> list[str]:
    if len(texts) <= size:
        return texts
    return [texts[i] for i in np.sort(rng.choice(len(texts), size, replace=False))]


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _rolling_hashes(symbols: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash of every window of n consecutive symbols within each sequence, the index of
    the sequence each window belongs to). Symbols are non-negative integers."""
    lengths = np.array([len(s) for s in symbols], dtype=np.int64)
    if not len(symbols) or lengths.max(initial=0) < n:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    flat = np.concatenate(symbols).astype(np.uint64) + np.uint64(1)
    total = len(flat)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(total + 1, _HASH_BASE, dtype=np.uint64))
        powers = np.concatenate([[np.uint64(1)], powers[:-1]])  # B^0 .. B^total
        inverse = np.uint64(pow(int(_HASH_BASE), -1, 2**64))
        inverse_powers = np.cumprod(np.full(total, inverse, dtype=np.uint64))  # B^-1 ..
        # prefix[i] = sum_{j<i} s_j B^(i-1-j) = B^(i-1) * sum_{j<i} s_j B^-j
        weighted = np.cumsum(flat * np.concatenate([[np.uint64(1)], inverse_powers[:-1]]))
        prefix = np.concatenate([[np.uint64(0)], powers[:-1][:total] * weighted])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        windows = np.maximum(lengths - n + 1, 0)
        owner = np.repeat(np.arange(len(symbols)), windows)
        offset = np.arange(windows.sum()) - np.repeat(np.cumsum(windows) - windows, windows)
        first = starts[owner] + offset
        hashes = prefix[first + n] - prefix[first] * powers[n]
    return hashes, owner


def _char_symbols(texts: list[str]) -> list[np.ndarray]:
    return [np.frombuffer(_normalise(t).encode("utf-32-le"), dtype=np.uint32) for t in texts]


def _word_symbols(texts: list[str], index: dict[str, int]) -> list[np.ndarray]:
    out = []
    for text in texts:
        words = _WORD.findall(text.lower())
        out.append(np.array([index.setdefault(w, len(index)) for w in words], dtype=np.int64))
    return out


class NgramIndex:
    """The training text's word and character n-grams, as sorted hash arrays."""

    def __init__(self, train: list[str], ngram_words: int, ngram_chars: int) -> None:
        self.ngram_words, self.ngram_chars = ngram_words, ngram_chars
        self.word_ids: dict[str, int] = {}
        words, _ = _rolling_hashes(_word_symbols(train, self.word_ids), ngram_words)
        chars, _ = _rolling_hashes(_char_symbols(train), ngram_chars)
        self.words, self.chars = np.unique(words), np.unique(chars)

    def memorised(self, texts: list[str]) -> np.ndarray:
        """(len(texts),) bool: does each document contain a training n-gram?"""
        flags = np.zeros(len(texts), dtype=bool)
        ids = dict(self.word_ids)  # unseen words get fresh ids, which match nothing
        for (hashes, owner), known in (
            (_rolling_hashes(_word_symbols(texts, ids), self.ngram_words), self.words),
            (_rolling_hashes(_char_symbols(texts), self.ngram_chars), self.chars),
        ):
            if len(hashes) and len(known):
                hit = np.isin(hashes, known, assume_unique=False)
                flags[np.unique(owner[hit])] = True
        return flags


def _excess_significant(share: float, n: int, baseline: float, m: int) -> bool:
    """One-sided two-proportion z-test: is `share` (of n) above `baseline` (of m)?"""
    pooled = (share * n + baseline * m) / (n + m)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n + 1 / m))
    return (share - baseline) / se > Z95_ONE_SIDED


# -- PII -----------------------------------------------------------------------------------
def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers pass it)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _pii_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every PII match, non-overlapping, earlier kinds first."""
    spans: list[tuple[int, int, str]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _ in spans)

    for match in _EMAIL.finditer(text):
        spans.append((match.start(), match.end(), "email"))
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits) and free(*match.span()):
            spans.append((match.start(), match.end(), "card_number"))
    for match in _NATIONAL_ID.finditer(text):
        if free(*match.span()):
            spans.append((match.start(), match.end(), "national_id"))
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        separated = bool(re.search(r"[\s.()+-]", match.group()))
        if (
            PHONE_MIN_DIGITS <= len(digits) <= PHONE_MAX_DIGITS
            and (separated or len(digits) >= 10)
            and free(*match.span())
        ):
            spans.append((match.start(), match.end(), "phone"))
    return sorted(spans)


def pii_counts(texts: Iterable[str]) -> dict[str, int]:
    """Matches per kind (email, phone, card_number, national_id) over all documents."""
    counts = Counter({kind: 0 for kind in _MASK})
    for text in texts:
        counts.update(kind for _, _, kind in _pii_spans(text))
    return dict(counts)


def mask_pii(series: pd.Series) -> pd.Series:
    """`series` with every PII match replaced by <EMAIL>, <PHONE>, <CARD> or <NATIONAL_ID>;
    missing values stay missing, the dtype and index are kept."""

    def mask(text: str) -> str:
        for start, end, kind in reversed(_pii_spans(text)):
            text = text[:start] + _MASK[kind] + text[end:]
        return text

    return series.map(lambda t: t if pd.isna(t) else mask(str(t))).astype(series.dtype)


# -- privacy ---------------------------------------------------------------------------------
def text_privacy_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    settings: TextPrivacy,
    *,
    seed: int = 0,
) -> Report:
    """Memorisation, duplicates and PII of `synthetic` (each a frame with a `text` column),
    judged against the holdout's own figures. Metrics: memorised_share,
    memorised_share_holdout, duplicate_share, duplicate_share_holdout, pii.<kind>."""
    train_texts = _texts(train, "training")
    rng = np.random.default_rng(seed)
    holdout_texts = _sample(_texts(holdout, "holdout"), settings.max_docs, rng)
    synthetic_texts = _sample(_texts(synthetic, "synthetic"), settings.max_docs, rng)
    for label, texts in (
        ("training", train_texts),
        ("holdout", holdout_texts),
        ("synthetic", synthetic_texts),
    ):
        if len(texts) < MIN_DOCS:
            raise DataError(
                f"the {label} text has {len(texts)} documents; privacy checks need at least "
                f"{MIN_DOCS} (use more data or a larger data.holdout_fraction)"
            )
    index = NgramIndex(train_texts, settings.ngram_words, settings.ngram_chars)
    memorised = index.memorised(synthetic_texts)
    memorised_holdout = index.memorised(holdout_texts)
    seen = {_normalise(t) for t in train_texts}
    duplicate = np.array([_normalise(t) in seen for t in synthetic_texts])
    duplicate_holdout = np.array([_normalise(t) in seen for t in holdout_texts])
    n_syn, n_hold = len(synthetic_texts), len(holdout_texts)
    metrics = {
        "memorised_share": float(memorised.mean()),
        "memorised_share_holdout": float(memorised_holdout.mean()),
        "duplicate_share": float(duplicate.mean()),
        "duplicate_share_holdout": float(duplicate_holdout.mean()),
    }
    failures = []
    for key, limit, what in (
        ("memorised_share", settings.memorised_excess_max, "contain a long run of training text"),
        ("duplicate_share", settings.duplicate_excess_max, "repeat a training document exactly"),
    ):
        share, baseline = metrics[key], metrics[f"{key}_holdout"]
        if share - baseline > limit and _excess_significant(share, n_syn, baseline, n_hold):
            failures.append(
                f"{share:.1%} of synthetic documents {what}, against {baseline:.1%} of unseen "
                f"real ones (allowed excess {limit:.0%}): the generator copies its training text"
            )
    details = {
        "ngram_words": settings.ngram_words,
        "ngram_chars": settings.ngram_chars,
        "documents_checked": {"train": len(train_texts), "holdout": n_hold, "synthetic": n_syn},
        "definitions": {
            "memorised_share": "share of documents containing a training word or char n-gram",
            "duplicate_share": "share of documents equal to a training document",
        },
    }
    if settings.pii_scan:
        counts = pii_counts(synthetic_texts)
        metrics.update({f"pii.{kind}": float(count) for kind, count in counts.items()})
        found = {kind: count for kind, count in counts.items() if count}
        if found:
            listed = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in found.items())
            failures.append(
                f"the synthetic text holds personal data patterns ({listed}); mask the input "
                "(privacy.mask_pii_input) or remove them"
            )
    return Report(
        name="privacy", passed=not failures, metrics=metrics, details=details, failures=failures
    )


# -- features for expectations --------------------------------------------------------------
def vocabulary_of(texts: Iterable[str]) -> set[str]:
    """The lower-cased `\\w+` words of some documents."""
    words: set[str] = set()
    for text in texts:
        words.update(_WORD.findall(str(text).lower()))
    return words


def text_features(
    frame: pd.DataFrame,
    *,
    vocabulary: Iterable[str] | None = None,
    label_column: str | None = None,
) -> pd.DataFrame:
    """One row per document of `frame` (a `text` column) with columns:

    chars, words (Int64); mean_word_length, letter_share, digit_share, punctuation_share,
    whitespace_share, non_ascii_share (Float64; shares of the characters); oov_share
    (Float64, share of words not in `vocabulary`, e.g. `vocabulary_of(train.text)`; only
    with a vocabulary); and `label_column` copied when given. Missing text counts as "".
    """
    texts = _texts(frame, "input")
    known = set(vocabulary) if vocabulary is not None else None
    rows = []
    for text in texts:
        n = len(text)
        words = _WORD.findall(text.lower())
        letters = sum(c.isalpha() for c in text)
        digits = sum(c.isdigit() for c in text)
        spaces = sum(c.isspace() for c in text)
        non_ascii = sum(ord(c) > 127 for c in text)
        row = {
            "chars": n,
            "words": len(words),
            "mean_word_length": float(np.mean([len(w) for w in words])) if words else 0.0,
            "letter_share": letters / n if n else 0.0,
            "digit_share": digits / n if n else 0.0,
            "punctuation_share": (n - letters - digits - spaces) / n if n else 0.0,
            "whitespace_share": spaces / n if n else 0.0,
            "non_ascii_share": non_ascii / n if n else 0.0,
        }
        if known is not None:
            row["oov_share"] = sum(w not in known for w in words) / len(words) if words else 0.0
        rows.append(row)
    out = pd.DataFrame(rows, index=pd.RangeIndex(len(texts)))
    out = out.astype({"chars": "Int64", "words": "Int64"})
    floats = [c for c in out.columns if c not in ("chars", "words")]
    out[floats] = out[floats].astype("Float64")
    if label_column is not None:
        if label_column not in frame.columns:
            raise DataError(f"label column '{label_column}' is not in the table")
        out[label_column] = frame[label_column].reset_index(drop=True)
    return out


# -- fidelity ---------------------------------------------------------------------------------
def _distribution(items: Iterable[str]) -> Counter:
    return Counter(items)


def jensen_shannon(p: Counter, q: Counter) -> float:
    """JS divergence, base 2 (0 = same distribution, 1 = disjoint) of two count tables."""
    total_p, total_q = sum(p.values()), sum(q.values())
    if not total_p or not total_q:
        return 1.0
    keys = list(set(p) | set(q))
    a = np.array([p.get(k, 0) for k in keys], dtype=float) / total_p
    b = np.array([q.get(k, 0) for k in keys], dtype=float) / total_q
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())

    return 0.5 * kl(a) + 0.5 * kl(b)


def _profile(texts: list[str]) -> dict:
    words = [_WORD.findall(t.lower()) for t in texts]
    return {
        "word": _distribution(w for doc in words for w in doc),
        "bigram": _distribution(
            f"{a} {b}" for doc in words for a, b in zip(doc, doc[1:], strict=False)
        ),
        "char3": _distribution(t[i : i + 3] for t in texts for i in range(len(t) - 2)),
        "chars": np.array([len(t) for t in texts]),
        "words": np.array([len(doc) for doc in words]),
        "vocabulary": {w for doc in words for w in doc},
    }


def _compare(reference: dict, other: dict) -> dict[str, float]:
    total = sum(other["word"].values())
    in_vocabulary = sum(c for w, c in other["word"].items() if w in reference["vocabulary"])
    return {
        "js_words": jensen_shannon(reference["word"], other["word"]),
        "js_word_bigrams": jensen_shannon(reference["bigram"], other["bigram"]),
        "js_char_trigrams": jensen_shannon(reference["char3"], other["char3"]),
        "real_word_share": in_vocabulary / total if total else 0.0,
        "ks_chars": float(ks_2samp(reference["chars"], other["chars"]).statistic),
        "ks_words": float(ks_2samp(reference["words"], other["words"]).statistic),
    }


def text_fidelity_report(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    seed: int = 0,
    max_rows: int = 20_000,
) -> Report:
    """How close the synthetic text is to the real text, with the holdout as the ceiling.

    The synthetic and holdout documents are compared with the training text at the same
    sample size (the smaller of the two, at most `max_rows`), since distances between
    empirical distributions shrink with the sample. Metrics: js_words, js_word_bigrams,
    js_char_trigrams, real_word_share, ks_chars, ks_words, each also as `<name>_holdout`.
    """
    rng = np.random.default_rng(seed)
    train_texts = _sample(_texts(train, "training"), max_rows, rng)
    size = min(len(_texts(holdout, "holdout")), len(_texts(synthetic, "synthetic")), max_rows)
    if size < MIN_DOCS:
        raise DataError(f"text fidelity needs at least {MIN_DOCS} holdout and synthetic documents")
    holdout_texts = _sample(_texts(holdout, "holdout"), size, rng)
    synthetic_texts = _sample(_texts(synthetic, "synthetic"), size, rng)
    reference = _profile(train_texts)
    metrics = _compare(reference, _profile(synthetic_texts))
    ceiling = _compare(reference, _profile(holdout_texts))
    metrics.update({f"{key}_holdout": value for key, value in ceiling.items()})
    details = {
        "documents_scored": {"train": len(train_texts), "holdout": size, "synthetic": size},
        "definitions": {
            "js_*": "Jensen-Shannon divergence, base 2, of lower-cased word / word-bigram / "
            "character-trigram frequencies against the training text",
            "real_word_share": "share of word tokens that occur in the training text",
            "ks_*": "Kolmogorov-Smirnov statistic of document lengths against the training text",
        },
    }
    return Report(name="fidelity", passed=True, metrics=metrics, details=details, blocking=False)
