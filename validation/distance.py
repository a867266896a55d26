"""A mixed-type distance between rows, and chunked nearest-neighbour search in torch.

The distance (used by every privacy metric; anchored on SDMetrics' DCR and anonymeter's
mixed distance, but Euclidean so it runs as matrix products on a GPU or BLAS):

    d(a, b) = sqrt( sum over columns of c(a, b) ) / sqrt(number of columns)

    numeric, datetime:    c = ((a - b) / range_in_train)^2, plus 1 if exactly one is missing
                          (a missing value is imputed with the training median)
    categorical, boolean: c = 0 if equal else 1 (missing is its own category)

so every column contributes at most about 1, and d is in [0, ~1]. Identifier and free-text
columns are left out. Nearest neighbours are computed in blocks of query rows x reference
rows, so memory stays bounded for any table size; the search runs on CUDA when present.

A categorical column is one-hot encoded (its mismatch becomes part of one matrix product)
up to ONE_HOT_MAX_CATEGORIES categories; past that its integer code is kept instead and
mismatches are counted by comparing codes, block by block: a column of 15,000 categories
would otherwise make every row 15,000 floats wide and every distance 15,000 products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from generators.data.schema import Schema
from generators.data.values import as_float, as_labels

# Block sizes keep one distance block at 2048 x 32768 float32 = 256 MiB.
QUERY_BLOCK_ROWS = 2048
REFERENCE_BLOCK_ROWS = 32768
RERANK_EXTRA = 8
ONE_HOT_MAX_CATEGORIES = 128
# Codes travel in the float32 matrix: exact up to 2**24.
MAX_CODED_CATEGORIES = 2**24


@dataclass
class DistanceEncoder:
    """Turns frames into float32 matrices: one-hot and scaled numeric features first, whose
    squared Euclidean distance is their part of the sum above, then one code per `coded`
    column (high-cardinality categoricals), compared for equality. Pass `search` to
    nearest_neighbors so it knows that layout."""

    numeric: list[str]
    categorical: list[str]  # one-hot
    centers: dict[str, float]  # training median, imputed for missing values
    scales: dict[str, float]  # training range
    categories: dict[str, list[str]]
    coded: list[str] = field(default_factory=list)  # categoricals kept as codes

    @classmethod
    def fit(cls, train: pd.DataFrame, schema: Schema) -> DistanceEncoder:
        numeric = schema.names_of("numeric", "datetime")
        categorical = schema.names_of("categorical", "boolean")
        centers, scales, categories = {}, {}, {}
        for name in numeric:
            values = as_float(train[name])
            present = values[~np.isnan(values)]
            centers[name] = float(np.median(present)) if len(present) else 0.0
            spread = float(present.max() - present.min()) if len(present) else 0.0
            scales[name] = spread if spread > 0 else 1.0
        for name in categorical:
            categories[name] = sorted(as_labels(train[name]).unique().tolist())
            if len(categories[name]) > MAX_CODED_CATEGORIES:
                raise ValueError(f"{name}: over {MAX_CODED_CATEGORIES} categories")
        coded = [name for name in categorical if len(categories[name]) > ONE_HOT_MAX_CATEGORIES]
        one_hot = [name for name in categorical if name not in coded]
        return cls(numeric, one_hot, centers, scales, categories, coded)

    @property
    def n_columns(self) -> int:
        return len(self.numeric) + len(self.categorical) + len(self.coded)

    @property
    def search(self) -> dict[str, int]:
        """The layout nearest_neighbors needs: `nearest_neighbors(q, r, k, **enc.search)`."""
        return {"n_columns": self.n_columns, "codes": len(self.coded)}

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows x features, float32. Categories unseen in training get a zero vector."""
        blocks = []
        for name in self.numeric:
            values = as_float(frame[name])
            missing = np.isnan(values)
            scaled = (
                np.where(missing, self.centers[name], values) - self.centers[name]
            ) / self.scales[name]
            blocks += [scaled[:, None], missing[:, None].astype(float)]
        # One-hot scaled by 1/sqrt(2): two different categories are at squared distance 1.
        for name in self.categorical:
            codes = pd.Categorical(as_labels(frame[name]), categories=self.categories[name]).codes
            onehot = np.zeros((len(frame), len(self.categories[name])), dtype=np.float32)
            seen = codes >= 0
            onehot[np.flatnonzero(seen), codes[seen]] = 1 / math.sqrt(2)
            # An unseen category is at squared distance 1/2 from every seen one; give it a
            # private coordinate so it is at 1, like any other mismatch.
            blocks += [onehot, (~seen)[:, None] / math.sqrt(2)]
        # A category unseen in training gets code -1: equal to another unseen one, as the
        # one-hot's private coordinate makes it.
        for name in self.coded:
            codes = pd.Categorical(as_labels(frame[name]), categories=self.categories[name]).codes
            blocks.append(codes[:, None].astype(np.float32))
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)


def nearest_neighbors(
    queries: np.ndarray,
    reference: np.ndarray,
    k: int = 1,
    *,
    n_columns: int,
    codes: int = 0,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (queries x k, ascending) and indices of each query's k nearest reference rows.

    `n_columns` normalises the distance (see the module docstring); the last `codes` features
    are category codes, each adding 1 where they differ (DistanceEncoder.search gives both).
    Exact search, in blocks.
    """
    if len(reference) < k:
        raise ValueError(f"need at least {k} reference rows, got {len(reference)}")
    # Ranking by |q|^2 + |r|^2 - 2 q.r in float32 rounds at ~1e-7 of the norms, which can put
    # a row 1e-4 away ahead of an exact copy; search a few extra candidates and re-rank them
    # by their exact float64 distance.
    wide = min(k + RERANK_EXTRA, len(reference))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dense = reference.shape[1] - codes
    ref = torch.from_numpy(np.ascontiguousarray(reference[:, :dense])).to(device)
    ref_codes = torch.from_numpy(np.ascontiguousarray(reference[:, dense:])).to(device)
    ref_norms = (ref * ref).sum(1)
    out_d = np.empty((len(queries), k), dtype=np.float32)
    out_i = np.empty((len(queries), k), dtype=np.int64)
    for q_start in range(0, len(queries), QUERY_BLOCK_ROWS):
        block_rows = queries[q_start : q_start + QUERY_BLOCK_ROWS]
        q = torch.from_numpy(np.ascontiguousarray(block_rows[:, :dense])).to(device)
        q_codes = torch.from_numpy(np.ascontiguousarray(block_rows[:, dense:])).to(device)
        q_norms = (q * q).sum(1, keepdim=True)
        best_d = torch.full((len(q), wide), float("inf"), device=device)
        best_i = torch.zeros((len(q), wide), dtype=torch.long, device=device)
        for r_start in range(0, len(ref), REFERENCE_BLOCK_ROWS):
            block = ref[r_start : r_start + REFERENCE_BLOCK_ROWS]
            squared = q_norms + ref_norms[r_start : r_start + len(block)] - 2.0 * (q @ block.T)
            for column in range(codes):
                block_codes = ref_codes[r_start : r_start + len(block), column]
                squared += q_codes[:, column, None] != block_codes[None, :]
            d, i = torch.topk(squared, min(wide, len(block)), dim=1, largest=False)
            merged_d = torch.cat([best_d, d], 1)
            merged_i = torch.cat([best_i, i + r_start], 1)
            order = torch.topk(merged_d, wide, dim=1, largest=False).indices
            best_d, best_i = merged_d.gather(1, order), merged_i.gather(1, order)
        # candidates: (queries, wide, features) in float64, exact distances, keep the k best
        exact = ((q.double()[:, None, :] - ref[best_i].double()) ** 2).sum(2)
        if codes:
            exact += (q_codes[:, None, :] != ref_codes[best_i]).sum(2)
        exact, order = torch.sort(exact, dim=1, stable=True)
        best_d, best_i = exact[:, :k], best_i.gather(1, order[:, :k])
        distances = torch.sqrt(best_d.clamp_min(0) / max(n_columns, 1))
        out_d[q_start : q_start + len(q)] = distances.cpu().numpy()
        out_i[q_start : q_start + len(q)] = best_i.cpu().numpy()
    return out_d, out_i
