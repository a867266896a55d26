"""The shared generator contract for the image and text generators (tables: test_contract.py):
the output table has the input's schema and Arrow types, the same seed gives the same
output, a saved generator samples the same rows after loading, and loading swapped model
files never runs code."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from generators.data.schema import infer_schema
from generators.errors import DataError
from generators.image.data import image_schema, images_to_frame
from generators.registry import (
    IMAGE_GENERATORS,
    SEQUENCE_GENERATORS,
    TEXT_GENERATORS,
    load_generator,
)
from generators.sequence.data import sequence_schema
from generators.text.data import read_text
from tests.conftest import REPO
from tests.generators.test_images import digits
from tests.generators.test_safe_load import _is_plain_data, _RunsCode
from tests.generators.test_sequences import SETTINGS as SEQUENCE_SETTINGS
from tests.generators.test_sequences import make_sequence_frame

TINY_IMAGE = {
    "gmm": {"pca_components": 5, "mixture_components": 2},
    "conv_vae": {"epochs": 1, "width": 4, "batch_size": 32},
    "dcgan": {"epochs": 1, "width": 4, "batch_size": 32},
    "rbm": {"n_hidden": 16, "epochs": 1, "burn_in": 5},
    "dbn": {"hidden_sizes": [16, 8], "epochs": 1, "burn_in": 5},
    "dbm": {"hidden_sizes": [16, 8], "epochs": 1, "burn_in": 5, "pretrain_epochs": 1},
    "copy": {},
}
TINY_TEXT = {
    "hmm": {"n_states": 4, "n_iter": 2},
    "lda": {"n_topics": 2, "max_iter": 2},
    "char_lm": {"hidden": 16, "embed": 8, "context": 16, "max_steps": 10},
    "copy": {},
}
TINY_SEQUENCE = {"hmm": {"n_states": 2, "n_iter": 3}, "par": {"epochs": 1}}
REGISTRIES = {
    "image": (IMAGE_GENERATORS, TINY_IMAGE),
    "text": (TEXT_GENERATORS, TINY_TEXT),
    "sequence": (SEQUENCE_GENERATORS, TINY_SEQUENCE),
}
CASES = [(modality, name) for modality, (names, _) in REGISTRIES.items() for name in sorted(names)]
COLUMN = {"image": "image", "text": "text", "sequence": "temp"}


def test_every_registered_image_and_text_generator_has_tiny_settings():
    assert set(TINY_IMAGE) == set(IMAGE_GENERATORS)
    assert set(TINY_TEXT) == set(TEXT_GENERATORS)
    assert set(TINY_SEQUENCE) == set(SEQUENCE_GENERATORS)


@pytest.fixture(scope="module")
def data():
    pixels, labels = digits(200)
    images = images_to_frame(pixels, labels)
    text = read_text(REPO / "data" / "shakespeare" / "coriolanus.txt").head(300)
    sequences = make_sequence_frame(n_entities=6, length=20, seed=1)
    return {
        "image": (images, image_schema(images)),
        "text": (text, infer_schema(text, {"text": "text"})),
        "sequence": (sequences, sequence_schema(infer_schema(sequences), SEQUENCE_SETTINGS)),
    }


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _make(modality: str, name: str):
    registry, tiny = REGISTRIES[modality]
    if modality == "sequence":
        return registry[name](device="cpu", sequence=SEQUENCE_SETTINGS, **tiny[name])
    return registry[name](device="cpu", **tiny[name])


@pytest.mark.parametrize(("modality", "name"), CASES)
def test_contract(modality, name, data, tmp_path):
    frame, schema = data[modality]
    generator = _make(modality, name).fit(frame, schema, seed=0)
    first = generator.sample(40, seed=5)
    # Schema in = schema out: same columns, order, pandas dtypes and Arrow types.
    assert list(first.columns) == schema.names
    assert schema.to_arrow(first).schema == schema.arrow_schema.remove_metadata()
    # Same seed, same rows; another seed, other rows.
    pd.testing.assert_frame_equal(first, generator.sample(40, seed=5))
    other = generator.sample(40, seed=6)
    column = COLUMN[modality]
    assert first[column].tolist() != other[column].tolist()
    # A saved generator loads (by the modality it records) and samples the same rows.
    generator.save(tmp_path / "g")
    loaded = load_generator(tmp_path / "g", allow_pickle=True)  # saved by this test
    assert type(loaded) is type(generator)
    pd.testing.assert_frame_equal(loaded.sample(40, seed=5), first)


@pytest.mark.parametrize(("modality", "name"), CASES)
def test_a_model_saved_on_a_gpu_worker_loads_without_one(
    modality, name, data, tmp_path, monkeypatch
):
    frame, schema = data[modality]
    generator = _make(modality, name).fit(frame, schema, seed=0)
    generator.save(tmp_path / "g")
    meta_file = tmp_path / "g" / "generator.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "device": "cuda"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pd.testing.assert_frame_equal(
        load_generator(tmp_path / "g", allow_pickle=True).sample(20, seed=4),
        generator.sample(20, seed=4),
    )


SAFE_CASES = [(m, n) for m, n in CASES if not REGISTRIES[m][0][n].unpickles_on_load]


def test_only_the_sdv_par_adapter_unpickles():
    # Documented in SECURITY.md: load SDV models only from a store you trust.
    assert sorted(set(CASES) - set(SAFE_CASES)) == [("sequence", "par")]


@pytest.mark.parametrize(("modality", "name"), SAFE_CASES)
def test_swapped_model_files_are_refused_without_running_code(modality, name, data, tmp_path):
    frame, schema = data[modality]
    folder = tmp_path / "model"
    _make(modality, name).fit(frame, schema, seed=0).save(folder)
    state_files = [f for f in folder.rglob("*") if f.is_file() and not _is_plain_data(f)]
    if not state_files:
        return  # JSON and Parquet only: nothing that could carry code
    marker = tmp_path / "ran"
    for file in state_files:
        torch.save(_RunsCode(marker), file)
    with pytest.raises(DataError, match="never loaded|were not loaded"):
        load_generator(folder)
    assert not marker.exists()
