"""Same seed, same output, also when threads sample at once (Prefect's thread runner, a
batch of configs in threads): the global RNGs are seeded one thread at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from generators.registry import make_generator


def test_concurrent_samples_equal_sequential_ones(model_frame_shared, model_schema):
    generator = make_generator("gmm", {"max_components": 3}, device="cpu")
    generator.fit(model_frame_shared, model_schema, seed=0)
    seeds = list(range(12))
    sequential = [generator.sample(300, seed=seed) for seed in seeds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda seed: generator.sample(300, seed=seed), seeds))
    for expected, got in zip(sequential, concurrent, strict=True):
        pd.testing.assert_frame_equal(expected, got)
