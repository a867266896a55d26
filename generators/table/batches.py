"""Torch batching of streamed fits: minibatches of encoded chunks of a `ParquetSource`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from generators.data.streaming import ParquetSource


def minibatches(chunks: Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Minibatches of `batch_size` rows from a pass of encoded chunks (rows x features).

    Each chunk's rows are shuffled (global torch RNG) and cut into minibatches; a chunk's
    last, partial minibatch is completed from the next chunk, so every minibatch but the
    pass's last has exactly `batch_size` rows and each row is in exactly one."""
    carry: torch.Tensor | None = None
    for chunk in chunks:
        if carry is not None and len(carry):
            chunk = torch.cat([carry, chunk])
        chunk = chunk[torch.randperm(len(chunk))]
        whole = len(chunk) // batch_size * batch_size
        yield from chunk[:whole].split(batch_size)
        carry = chunk[whole:]
    if carry is not None and len(carry):
        yield carry


def encoded_chunks(
    source: ParquetSource,
    chunk_rows: int,
    seed: int,
    epoch: int,
    encode: Callable[[pd.DataFrame, np.random.Generator], np.ndarray],
) -> Iterator[torch.Tensor]:
    """One pass of `source.batches(chunk_rows, seed=seed, epoch=epoch)`, each frame encoded
    by `encode(frame, rng)` into a tensor; rng is seeded by (seed, epoch, chunk index), so a
    pass gives the same tensors whenever it runs (a resumed fit included)."""
    for index, frame in enumerate(source.batches(chunk_rows, seed=seed, epoch=epoch)):
        rng = np.random.default_rng([seed % 2**63, epoch, index])
        yield torch.from_numpy(encode(frame, rng))
