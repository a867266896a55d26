"""Spread tied values over their whole quantile interval before a model sees them.

`TabularEncoder` maps a value to the right end of the ranks its ties occupy: in Adult 92% of
`capital_gain` is 0 and encodes to one point, z = 1.38, and every age or hour value to a
spike of its own. A model with continuous outputs (a Gaussian part, a GAN's linear head)
then has to reproduce spikes, and any spread it puts around a spike decodes half into the
next interval: invented small capital gains. Redrawing each tied value's rank uniformly
within its interval [first tie, last tie] (dequantisation) makes every encoded column
close to N(0, 1) and smooth, and decoding is unchanged: the whole interval maps back to the
tied value, because the encoder's knots are flat there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtri

from generators.data.values import as_float
from generators.table.encoding import TabularEncoder

_CLIP = 1e-6  # the encoder's own clip on ranks, so the encoded range is unchanged


def spread_ties(
    encoder: TabularEncoder, data: pd.DataFrame, matrix: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Return `matrix` (= encoder.transform(data)) with each continuous value's normal score
    redrawn uniformly within its tie interval. Missing values keep their 0."""
    out = matrix.copy()
    spans = iter(encoder.spans)
    for entry in encoder.columns:
        span = next(spans)
        if entry["kind"] != "continuous":
            continue
        if entry["has_missing"]:
            next(spans)
        numbers = as_float(data[entry["name"]])
        present = ~np.isnan(numbers)
        knots = np.asarray(entry["knots"])
        grid = np.linspace(0, 1, len(knots))
        values = numbers[present]
        last = np.interp(values, knots, grid)  # np.interp picks the last of tied knots
        first = 1.0 - np.interp(-values, -knots[::-1], grid)
        ranks = first + rng.random(len(values)) * (last - first)
        out[present, span.start] = ndtri(np.clip(ranks, _CLIP, 1 - _CLIP))
    return out
