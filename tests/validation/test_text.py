"""Text privacy (memorisation, duplicates, PII), per-document features and text fidelity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.errors import DataError
from validation.text import (
    NgramIndex,
    TextPrivacy,
    luhn_valid,
    mask_pii,
    pii_counts,
    text_features,
    text_fidelity_report,
    text_privacy_report,
    vocabulary_of,
)

ADJECTIVES = "old young proud gentle wicked noble weary bold fair grim".split()
ADJECTIVES += "sad merry false true pale dark wise mad poor rich".split()
NOUNS = "king fool lord queen army ghost horse knight priest maid".split()
NOUNS += "duke nurse friar page clown witch soldier bishop prince sailor".split()
CONNECTORS = ["and", "but", "while", "for", "yet"]
VERBS = "speaks of|rides to|dreams of|fights for|weeps at|laughs at|waits by|sings to".split("|")
VERBS += "calls|hunts|guards|fears|loves|betrays|follows".split("|")
# 400 subjects x 15 verbs x 400 objects, joined by 5 connectors: unseen sentences rarely
# share 8 words or 50 characters with the training ones.
SUBJECTS = [f"the {a} {n}" for a in ADJECTIVES for n in NOUNS]
OBJECTS = [f"a {a} {n}" for a in ADJECTIVES for n in NOUNS]


def corpus(n: int, seed: int) -> pd.DataFrame:
    """Sentences of 2-4 random clauses, long enough for 8-word n-grams."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        clauses = [
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
            for _ in range(rng.integers(2, 5))
        ]
        joined = clauses[0]
        for clause in clauses[1:]:
            joined += f", {rng.choice(CONNECTORS)} {clause}"
        texts.append(joined + ".")
    return pd.DataFrame({"text": pd.array(texts, dtype="string")})


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = corpus(1200, seed=0)
    return frame.iloc[:900].reset_index(drop=True), frame.iloc[900:].reset_index(drop=True)


def test_copy_baseline_is_caught_and_unseen_real_text_passes(split):
    train, holdout = split
    # What the `copy` baseline returns: training rows, resampled. (CopyGenerator itself is a
    # table generator, which base.Generator.fit refuses free text.)
    copies = train.sample(300, replace=True, random_state=0).reset_index(drop=True)
    report = text_privacy_report(train, holdout, copies, TextPrivacy(), seed=0)
    assert not report.passed and report.name == "privacy"
    assert report.metrics["duplicate_share"] == 1.0
    assert report.metrics["memorised_share"] > 0.9  # most copies are >= 8 words long
    assert any("copies its training text" in failure for failure in report.failures)
    fresh = corpus(300, seed=1)
    report = text_privacy_report(train, holdout, fresh, TextPrivacy(), seed=0)
    assert report.passed, report.failures
    assert report.metrics["memorised_share"] < 0.1
    assert report.metrics["pii.email"] == 0


def test_memorised_spans_are_found_inside_new_text(split):
    train, _ = split
    index = NgramIndex(train["text"].tolist(), ngram_words=8, ngram_chars=50)
    copied = str(train["text"][0])
    words = copied.split()
    assert len(words) >= 8
    # Eight copied words inside new text, with punctuation and case changed: found.
    spliced = "Hark! " + " ".join(words[:8]).upper().replace(",", ";") + " -- quoth nobody."
    # Seven copied words (and under 50 characters): not found.
    short = "Hark! " + " ".join(words[:7])[:45] + " zzz quoth nobody."
    assert index.memorised([spliced, short, "wholly new words here"]).tolist() == [
        True,
        False,
        False,
    ]


def test_pii_is_found_counted_and_masked():
    texts = [
        "write to jane.doe@example.co.uk today",
        "card 4111 1111 1111 1111 and 4111-1111-1111-1112",  # the second fails Luhn
        "ssn 123-45-6789, NI AB 12 34 56 C, call +44 20 7946 0958 or (555) 123-4567",
        "In 1603 the year 2020-01-01 had 12 34 kings",
    ]
    counts = pii_counts(texts)
    assert counts == {"email": 1, "card_number": 1, "national_id": 2, "phone": 2}
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    masked = mask_pii(pd.Series([*texts, None], dtype="string"))
    assert masked.dtype == "string" and masked.isna().tolist()[-1]
    assert masked[0] == "write to <EMAIL> today"
    assert masked[1] == "card <CARD> and 4111-1111-1111-1112"
    assert pii_counts(masked.dropna()) == {
        "email": 0,
        "card_number": 0,
        "national_id": 0,
        "phone": 0,
    }
    assert masked[3] == texts[3]  # dates and small numbers are not PII


def test_pii_in_synthetic_text_fails_the_gate(split):
    train, holdout = split
    leaky = corpus(100, seed=2)
    leaky.loc[0, "text"] = "mail the king at king@castle.example.com"
    report = text_privacy_report(train, holdout, leaky, TextPrivacy(), seed=0)
    assert not report.passed and report.metrics["pii.email"] == 1
    assert "personal data" in report.failures[0]
    quiet = text_privacy_report(train, holdout, leaky, TextPrivacy(pii_scan=False), seed=0)
    assert quiet.passed and "pii.email" not in quiet.metrics


def test_privacy_needs_enough_documents(split):
    train, holdout = split
    with pytest.raises(DataError, match="synthetic text has 3 documents"):
        text_privacy_report(train, holdout, corpus(3, seed=4), TextPrivacy(), seed=0)
    with pytest.raises(ValueError, match="extra"):
        TextPrivacy(ngram=5)


def test_text_features(split):
    train, _ = split
    frame = pd.DataFrame(
        {
            "text": pd.array(["Hello, world 42!", "", "the king rides"], dtype="string"),
            "label": ["a", "b", "a"],
        }
    )
    features = text_features(frame, vocabulary=vocabulary_of(train["text"]), label_column="label")
    assert features["chars"].tolist() == [16, 0, 14]
    assert features["words"].tolist() == [3, 0, 3]
    assert str(features["chars"].dtype) == "Int64" and str(features["oov_share"].dtype) == "Float64"
    assert features.loc[0, "digit_share"] == pytest.approx(2 / 16)
    assert features.loc[0, "punctuation_share"] == pytest.approx(2 / 16)
    assert features.loc[0, "letter_share"] == pytest.approx(10 / 16)
    assert features["oov_share"].tolist() == [1.0, 0.0, 0.0]
    assert features["label"].tolist() == ["a", "b", "a"]
    assert "oov_share" not in text_features(frame).columns


def test_fidelity_ranks_real_text_above_scrambled_text(split):
    train, holdout = split
    fresh = corpus(300, seed=3)
    good = text_fidelity_report(train, holdout, fresh, seed=0)
    assert good.name == "fidelity" and good.passed and not good.blocking
    rng = np.random.default_rng(0)
    scrambled = fresh.assign(
        text=[" ".join(rng.permutation(str(t).split())) for t in fresh["text"]]
    )
    bad = text_fidelity_report(train, holdout, scrambled, seed=0)
    # Same words, so the unigram distance is the same; word order is not.
    assert bad.metrics["js_words"] == pytest.approx(good.metrics["js_words"])
    assert bad.metrics["js_word_bigrams"] > good.metrics["js_word_bigrams"] + 0.1
    assert bad.metrics["js_char_trigrams"] > good.metrics["js_char_trigrams"]
    # A fresh real sample scores like the holdout ceiling.
    assert good.metrics["js_word_bigrams"] < 1.5 * good.metrics["js_word_bigrams_holdout"]
    assert good.metrics["real_word_share"] == 1.0
    letters = fresh.assign(text=["".join(rng.permutation(list(str(t)))) for t in fresh["text"]])
    assert text_fidelity_report(train, holdout, letters, seed=0).metrics["real_word_share"] < 0.5


def test_feature_suite_passes_unseen_real_text_and_fails_scrambled_text(split):
    """The features feed the existing expectation machinery unchanged."""
    from generators.data.schema import infer_schema
    from validation.expectations import build_suite, validate_table

    train, holdout = split
    vocabulary = vocabulary_of(train["text"])
    features = text_features(train, vocabulary=vocabulary)
    suite = build_suite(features, infer_schema(features), batch_rows=len(holdout), seed=0)
    assert validate_table(text_features(holdout, vocabulary=vocabulary), suite).report.passed
    rng = np.random.default_rng(0)
    scrambled = holdout.assign(
        text=["".join(rng.permutation(list(str(t)))) for t in holdout["text"]]
    )
    outcome = validate_table(text_features(scrambled, vocabulary=vocabulary), suite).report
    assert not outcome.passed
    assert "oov_share" in outcome.details["failed_columns"]
