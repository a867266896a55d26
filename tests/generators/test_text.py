"""Reading corpora into text tables, the tokenizer, and the text generators' shared plumbing."""

from __future__ import annotations

import pandas as pd
import pytest

from generators.data.schema import infer_schema
from generators.errors import ConfigError, DataError
from generators.text.data import TextSettings, read_text
from generators.text.tokens import Tokenizer, join_words, word_tokens

POEM = (
    "Shall I compare thee\nto a summer's day?\n\n\nThou art more lovely\n  \nand more temperate.\n"
)


def test_read_text_splits_by_line_blank_line_chunk_and_file(tmp_path):
    file = tmp_path / "poem.txt"
    file.write_text(POEM)
    lines = read_text(file)
    assert lines["text"].tolist() == [
        "Shall I compare thee",
        "to a summer's day?",
        "Thou art more lovely",
        "and more temperate.",
    ]
    assert lines["text"].dtype == "string"
    paragraphs = read_text(file, split="blank_line")["text"].tolist()
    assert paragraphs == [
        "Shall I compare thee\nto a summer's day?",
        "Thou art more lovely",
        "and more temperate.",
    ]
    whole = read_text(file, split="file")["text"].tolist()
    assert whole == [POEM.strip()]
    chunks = read_text(file, split="chunk", chunk_chars=30)["text"].tolist()
    assert len(chunks) >= 3 and all(len(c) <= 30 for c in chunks)
    # Cut at a whitespace within the last fifth (6 characters, longer than any word here):
    # every word survives intact.
    assert " ".join(chunks).split() == POEM.split()
    solid = tmp_path / "solid.txt"
    solid.write_text("x" * 50)  # no whitespace at all: cut exactly
    assert read_text(solid, split="chunk", chunk_chars=20)["text"].str.len().tolist() == [
        20,
        20,
        10,
    ]
    assert read_text(file, min_chars=19)["text"].tolist() == [
        "Shall I compare thee",
        "Thou art more lovely",
        "and more temperate.",
    ]


def test_read_text_folder_is_one_document_per_file_in_name_order(tmp_path):
    (tmp_path / "b.txt").write_text("second file\nline two")
    (tmp_path / "a.txt").write_text("first file")
    (tmp_path / "notes.csv").write_text("x\n1\n")  # not a .txt: ignored
    assert read_text(tmp_path)["text"].tolist() == ["first file", "second file\nline two"]
    assert read_text(tmp_path, split="line")["text"].tolist() == [
        "first file",
        "second file",
        "line two",
    ]
    assert read_text(tmp_path / "*.txt")["text"].tolist() == ["first file", "second file\nline two"]
    with pytest.raises(DataError, match="mixes tables"):
        read_text(tmp_path / "*")
    with pytest.raises(DataError, match="no file matches"):
        read_text(tmp_path / "*.md")


def test_read_text_tables_named_and_inferred_column(tmp_path):
    long = [f"review number {i} says the product was fine and arrived on time" for i in range(30)]
    frame = pd.DataFrame({"id": range(30), "stars": ["5", "4"] * 15, "body": long})
    csv = tmp_path / "reviews.csv"
    frame.to_csv(csv, index=False)
    inferred = read_text(csv)
    assert list(inferred.columns) == ["id", "stars", "text"]
    assert inferred["text"].tolist() == long
    assert inferred.attrs["text_column"] == "body"
    jsonl = tmp_path / "reviews.jsonl"
    frame.to_json(jsonl, orient="records", lines=True)
    assert read_text(jsonl, text_column="body")["text"].tolist() == long
    parquet = tmp_path / "reviews.parquet"
    frame.to_parquet(parquet)
    assert read_text(parquet)["text"].tolist() == long
    schema = infer_schema(read_text(parquet))
    assert schema["text"].kind == "text"


def test_read_text_errors_are_one_line_and_name_the_file_or_setting(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    with pytest.raises(DataError, match=r"empty\.txt: the file is empty"):
        read_text(empty)
    binary = tmp_path / "image.txt"
    binary.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(DataError, match=r"image\.txt: .*(binary|utf-8)"):
        read_text(binary)
    nuls = tmp_path / "nuls.txt"
    nuls.write_bytes(b"a\x00b\x00c\x00" * 100)
    with pytest.raises(DataError, match="binary"):
        read_text(nuls)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café au lait\nnaïve".encode("latin-1"))
    with pytest.raises(DataError, match="data.encoding"):
        read_text(latin)
    assert read_text(latin, encoding="latin-1")["text"].tolist() == ["café au lait", "naïve"]
    with pytest.raises(DataError, match="data.encoding: unknown encoding"):
        read_text(latin, encoding="klingon")
    with pytest.raises(DataError, match="not found"):
        read_text(tmp_path / "missing.txt")
    two = pd.DataFrame(
        {"a": ["a fairly long string of many words here"] * 20, "b": ["another long one"] * 20}
    )
    two["b"] = two["b"] + " with many more words in it too"
    table = tmp_path / "two.csv"
    two.to_csv(table, index=False)
    with pytest.raises(DataError, match="set data.text.column"):
        read_text(table)
    with pytest.raises(DataError, match="data.text.column: 'c' is not a column"):
        read_text(table, text_column="c")
    with pytest.raises(ConfigError, match=r"data.text.column: 'body' was set but .*poem"):
        (tmp_path / "poem.txt").write_text(POEM)
        read_text(tmp_path / "poem.txt", text_column="body")


def test_text_settings_are_strict():
    assert TextSettings().split is None
    assert TextSettings(column="body", split="chunk", chunk_chars=500).chunk_chars == 500
    with pytest.raises(ValueError, match="extra"):
        TextSettings(colum="body")
    with pytest.raises(ValueError):
        TextSettings(split="sentence")


def test_tokenizer_round_trips_and_ranks_by_frequency():
    texts = ["to be, or not to be", "that is the question:"]
    chars = Tokenizer.fit(texts, "char", max_vocab=100)
    assert chars.decode(chars.encode(texts[0])) == texts[0]
    assert chars.vocabulary[0] == "<unk>" and chars.vocabulary[1] == " "  # most frequent
    words = Tokenizer.fit(texts, "word", max_vocab=4)
    assert words.vocabulary == ["<unk>", "be", "to", ","]
    assert words.decode(words.encode("to be, to be")) == "to be, to be"
    assert words.encode("question") == [0]
    assert Tokenizer.from_dict(words.to_dict()).vocabulary == words.vocabulary
    assert word_tokens("Don't stop.\nGo!") == ["Don't", "stop", ".", "\n", "Go", "!"]
    assert join_words(word_tokens("Don't stop, (please).\nGo!")) == "Don't stop, (please).\nGo!"


def test_text_generator_plumbing_ids_labels_and_errors(tmp_path):
    """Through the hmm (the cheapest text model): identifiers are re-issued, a label with
    missing values is sampled at its real frequencies, and tables a text model cannot
    take get a clear error."""
    from generators.text.hmm import HMMGenerator

    n = 120
    frame = pd.DataFrame(
        {
            "doc_id": pd.array(range(1000, 1000 + n), dtype="Int64"),
            "text": pd.array([f"line {i} of the text, said the king" for i in range(n)], "string"),
            "flag": pd.array([True, False, None] * (n // 3), dtype="boolean"),
        }
    )
    schema = infer_schema(frame, {"text": "text"})
    assert [c.kind for c in schema.columns] == ["id", "text", "boolean"]
    generator = HMMGenerator(device="cpu", n_states=3, n_iter=3).fit(frame, schema, seed=0)
    sample = generator.sample(300, seed=0)
    assert list(sample.columns) == ["doc_id", "text", "flag"]
    assert str(sample["doc_id"].dtype) == "Int64" and sample["doc_id"].min() >= 1000 + n
    assert str(sample["flag"].dtype) == "boolean"
    shares = sample["flag"].value_counts(dropna=False, normalize=True)
    assert all(abs(share - 1 / 3) < 0.1 for share in shares)
    generator.save(tmp_path / "hmm")
    pd.testing.assert_frame_equal(HMMGenerator.load(tmp_path / "hmm").sample(300, seed=0), sample)
    assert generator.perplexity(frame["text"].tolist()) < len(generator.tokenizer_)

    numeric = frame.assign(score=1.5)
    with pytest.raises(DataError, match="only one label column"):
        HMMGenerator(device="cpu").fit(numeric, infer_schema(numeric, {"text": "text"}))
    no_text = frame.assign(text="short")
    with pytest.raises(DataError, match=r'\{"text": "text"\}'):
        HMMGenerator(device="cpu").fit(no_text[["text"]], infer_schema(no_text[["text"]]))
