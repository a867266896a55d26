"""GPU paths: the same results on CUDA as on the CPU. Skipped where torch sees no GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generators import make_generator
from validation.distance import nearest_neighbors

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_nearest_neighbours_on_cuda_match_the_cpu():
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(3000, 40)).astype(np.float32)
    reference = rng.normal(size=(5000, 40)).astype(np.float32)
    cpu_d, cpu_i = nearest_neighbors(queries, reference, 2, n_columns=40, device="cpu")
    gpu_d, gpu_i = nearest_neighbors(queries, reference, 2, n_columns=40, device="cuda")
    np.testing.assert_array_equal(cpu_i, gpu_i)
    np.testing.assert_allclose(cpu_d, gpu_d, atol=1e-5)


def test_vae_trains_on_cuda_and_samples_anywhere(tmp_path):
    from generators import infer_schema
    from generators.registry import load_generator
    from tests.generators.conftest import make_mixed_frame

    frame = make_mixed_frame()
    schema = infer_schema(frame)
    vae = make_generator("vae", {"epochs": 3, "batch_size": 64}, device="cuda")
    synthetic = vae.fit(frame, schema, seed=0).sample(200, seed=1)
    assert list(synthetic.columns) == schema.names and len(synthetic) == 200
    vae.save(tmp_path / "vae")
    # saved as a CPU state dict: loads and samples identically without a GPU
    assert load_generator(tmp_path / "vae").sample(50, seed=2).equals(vae.sample(50, seed=2))


# -- every torch generator, every modality, on CUDA ---------------------------------------
# The CPU contract (tests/generators/test_contract*.py) holds on CUDA too: the output has
# the schema's columns and Arrow types, the same seed gives the same rows, a saved model
# samples the same rows after loading, and a model trained on CUDA loads on a machine
# without one. Generators that compute with torch must also have put their work on the GPU.
def _cuda_cases() -> list[tuple[str, str]]:
    from generators.registry import BY_MODALITY

    cases = []
    for modality, registry in BY_MODALITY.items():
        for name in sorted(registry):
            if (modality, name) in _CPU_ONLY or name in _SDV_BACKED:
                continue
            cases.append((modality, name))
    return cases


# Work on NumPy / scikit-learn only: `device` does not apply to them.
_CPU_ONLY = {
    ("table", "copy"),
    ("table", "uniform"),
    ("image", "copy"),
    ("image", "gmm"),
    ("text", "copy"),
}
# SDV's synthesizers choose their own device (`cuda` flag); covered by SDV's own tests.
_SDV_BACKED = {"gaussian_copula", "ctgan", "copulagan", "tvae", "par"}


def _cuda_generator(modality: str, name: str):
    from generators.registry import generator_class
    from tests.generators.test_contract import TINY
    from tests.generators.test_contract_modalities import TINY_IMAGE, TINY_SEQUENCE, TINY_TEXT
    from tests.generators.test_sequences import SETTINGS as SEQUENCE_SETTINGS

    cls = generator_class(name, modality)
    if modality == "table":
        return cls(device="cuda", **TINY[name][0])
    if modality == "sequence":
        return cls(device="cuda", sequence=SEQUENCE_SETTINGS, **TINY_SEQUENCE[name])
    return cls(device="cuda", **{"image": TINY_IMAGE, "text": TINY_TEXT}[modality][name])


def _cuda_data(modality: str):
    from generators import infer_schema
    from generators.image.data import image_schema, images_to_frame
    from generators.sequence.data import sequence_schema
    from generators.text.data import read_text
    from tests.conftest import REPO
    from tests.generators.conftest import make_mixed_frame
    from tests.generators.test_images import digits
    from tests.generators.test_sequences import SETTINGS as SEQUENCE_SETTINGS
    from tests.generators.test_sequences import make_sequence_frame

    if modality == "table":
        frame = make_mixed_frame().drop(columns=["customer_id"])
        return frame, infer_schema(frame)
    if modality == "image":
        frame = images_to_frame(*digits(200))
        return frame, image_schema(frame)
    if modality == "text":
        frame = read_text(REPO / "data" / "shakespeare" / "coriolanus.txt").head(300)
        return frame, infer_schema(frame, {"text": "text"})
    frame = make_sequence_frame(n_entities=6, length=20, seed=1)
    return frame, sequence_schema(infer_schema(frame), SEQUENCE_SETTINGS)


@pytest.mark.parametrize(("modality", "name"), _cuda_cases())
def test_generator_keeps_its_contract_on_cuda(modality, name, tmp_path, monkeypatch):
    import pandas as pd

    from generators.registry import load_generator

    frame, schema = _cuda_data(modality)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    generator = _cuda_generator(modality, name).fit(frame, schema, seed=0)
    assert torch.cuda.max_memory_allocated() > 0, f"{modality} {name} did not use the GPU"
    first = generator.sample(40, seed=5)
    assert list(first.columns) == schema.names
    assert schema.to_arrow(first).schema == schema.arrow_schema.remove_metadata()
    pd.testing.assert_frame_equal(first, generator.sample(40, seed=5))
    generator.save(tmp_path / "g")
    pd.testing.assert_frame_equal(load_generator(tmp_path / "g").sample(40, seed=5), first)
    # The same files on a machine without CUDA: they load and sample the schema.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cpu = load_generator(tmp_path / "g").sample(40, seed=5)
    assert list(on_cpu.columns) == schema.names
    # rows of a table, images, documents; whole sequences for the sequence generators
    units = on_cpu[schema.names[0]].nunique() if modality == "sequence" else len(on_cpu)
    assert units == 40
