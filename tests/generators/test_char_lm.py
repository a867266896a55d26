"""The character-level GRU: a tiny corpus (fast), labels, seeds, save/load, and Tiny
Shakespeare (shared data, ~2 minutes on one thread)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import infer_schema
from generators.errors import DataError
from generators.text.char_lm import CharLMGenerator
from generators.text.data import read_text

SMALL = dict(embed=16, hidden=64, context=32, batch_size=16, eval_every=50)
PHRASES = {
    "cat": ["the cat sat on the mat", "the cat ate the rat"],
    "sea": ["ships sail over waves", "storms toss ships at sea"],
}


def words_of(texts) -> list[str]:
    return re.findall(r"[a-z']+", " ".join(texts).lower())


@pytest.fixture(scope="module")
def labelled() -> tuple[CharLMGenerator, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows = [(rng.choice(PHRASES[label]), label) for label in rng.choice(list(PHRASES), 400)]
    frame = pd.DataFrame(rows, columns=["text", "label"]).astype("string")
    schema = infer_schema(frame, {"text": "text", "label": "categorical"})
    generator = CharLMGenerator(device="cpu", max_steps=300, learning_rate=1e-2, **SMALL)
    return generator.fit(frame, schema, seed=0), frame


def test_tiny_corpus_words_are_learned_and_labels_condition_the_text(labelled):
    generator, frame = labelled
    sample = generator.sample(200, seed=0)
    assert list(sample.columns) == ["text", "label"] and sample["text"].dtype == "string"
    vocabulary = set(words_of(frame["text"]))
    produced = words_of(sample["text"])
    assert np.mean([w in vocabulary for w in produced]) > 0.9
    for label, phrases in PHRASES.items():
        own = set(words_of(phrases))
        other = set(words_of(p for key, ps in PHRASES.items() if key != label for p in ps)) - own
        words = words_of(sample.loc[sample["label"] == label, "text"])
        assert np.mean([w in own for w in words]) > 0.85
        assert np.mean([w in other for w in words]) < 0.1
    # The validation loss fell, and the best weights were kept.
    valid = [record["valid"] for record in generator.losses_]
    assert min(valid) < 0.5 * valid[0]


def test_seeded_sampling_temperature_and_save_load(labelled, tmp_path):
    generator, frame = labelled
    first = generator.sample(30, seed=4)
    pd.testing.assert_frame_equal(first, generator.sample(30, seed=4))
    assert not first.equals(generator.sample(30, seed=5))
    generator.save(tmp_path / "lm")
    loaded = CharLMGenerator.load(tmp_path / "lm")
    pd.testing.assert_frame_equal(first, loaded.sample(30, seed=4))
    texts, labels = frame["text"].head(20).tolist(), frame["label"].head(20).tolist()
    total, count = loaded.log_likelihood(texts, labels)
    assert total == pytest.approx(generator.log_likelihood(texts, labels)[0])
    assert count == sum(len(t) + 1 for t in texts)
    # Batched scoring equals scoring one document at a time; the right label fits better.
    pairs = zip(texts, labels, strict=True)
    one_by_one = sum(loaded.log_likelihood([t], [lab])[0] for t, lab in pairs)
    assert total == pytest.approx(one_by_one, rel=1e-5)
    swapped = ["sea" if lab == "cat" else "cat" for lab in labels]
    assert loaded.perplexity(texts, labels) < loaded.perplexity(texts, swapped)
    # A near-zero temperature is near-greedy: far fewer distinct documents than at 1.5.
    greedy = CharLMGenerator.load(tmp_path / "lm")
    greedy.params = greedy.params.model_copy(update={"temperature": 0.05, "top_k": 3})
    hot = CharLMGenerator.load(tmp_path / "lm")
    hot.params = hot.params.model_copy(update={"temperature": 1.5})
    assert greedy.sample(100, seed=0)["text"].nunique() < hot.sample(100, seed=0)["text"].nunique()


def test_too_short_a_corpus_names_the_setting():
    frame = pd.DataFrame({"text": pd.array(["short one", "and two"] * 5, dtype="string")})
    schema = infer_schema(frame, {"text": "text"})
    with pytest.raises(DataError, match="generator.params.context"):
        CharLMGenerator(device="cpu", context=200).fit(frame, schema, seed=0)


@pytest.mark.shared_data
@pytest.mark.slow
def test_tiny_shakespeare_gives_recognisable_english(shared_data):
    """250 steps of the default model on 100-character windows (~60 s on one idle CPU
    thread): most generated words are words of the corpus (character noise scores ~0.1)."""
    frame = read_text(shared_data / "tiny_shakespeare" / "input.txt")
    schema = infer_schema(frame, {"text": "text"})
    generator = CharLMGenerator(device="cpu", max_steps=250, context=100, eval_every=125)
    sample = generator.fit(frame, schema, seed=0).sample(200, seed=1)
    vocabulary = set(words_of(frame["text"]))
    produced = words_of(sample["text"])
    assert len(produced) > 500
    assert np.mean([w in vocabulary for w in produced]) > 0.6
