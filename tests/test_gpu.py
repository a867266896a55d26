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
