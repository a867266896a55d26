"""The seeds derived from a run's seed, named in one place. No torch.

Output determinism depends on these values: each function is a bit-exact move of the
expression it replaces, and changing one changes every sample drawn with it.

- `chunk_seed(seed, i)`: the RNG seed of the i-th chunk of one `sample` call (rows drawn
  in shards of `SAMPLE_SHARD_ROWS`, sequences in shards of entities), so a sample does not
  depend on how it is chunked in memory.
- `shard_seed(seed, i)`: the seed of shard i of a sharded sample (`flows/synthesize.py`),
  a function of the run's seed and the index only, whatever the number of workers.
- `round_seed(seed, r)`: the seed of round r of a constrained draw
  (`generators.sampling.constraints`), independent of the per-chunk seeds.
"""

from __future__ import annotations

import numpy as np

# An odd prime stride: chunk seeds of nearby run seeds do not collide for 1_000_003 chunks.
CHUNK_SEED_STRIDE = 1_000_003


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk `index` of one sample call: `seed + 1_000_003 * index`."""
    return seed + CHUNK_SEED_STRIDE * index


def shard_seed(seed: int, index: int) -> int:
    """The seed of shard `index`: a function of the run's seed and the index only, so the
    parts are the same whatever the number of workers or the order they finish in."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def round_seed(seed: int, round_index: int) -> int:
    """Round 0 uses `seed` itself (so rows that all pass equal an unconstrained draw);
    later rounds a seed derived from (seed, round), independent of the generators' own
    per-shard seeds."""
    if round_index == 0:
        return seed
    return int(np.random.SeedSequence([seed % 2**63, round_index]).generate_state(1)[0] >> 1)
