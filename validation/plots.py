"""Pictures of fidelity for people: per-column real-vs-synthetic distributions and a heatmap
of how pairwise associations differ. PNG files, written with matplotlib's Agg backend."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from generators.data.schema import Schema  # noqa: E402
from generators.data.values import as_float  # noqa: E402
from validation.fidelity import association_matrix  # noqa: E402

MAX_CATEGORIES_SHOWN = 20
HEATMAP_MAX_COLUMNS = 30


def write_plots(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    folder: Path,
    *,
    max_columns: int = 40,
) -> list[Path]:
    """`folder/columns/<column>.png` for up to `max_columns` columns and
    `folder/association_difference.png`. Returns the paths written, in that order."""
    folder = Path(folder)
    (folder / "columns").mkdir(parents=True, exist_ok=True)
    written = []
    plotted = [c for c in schema.columns if c.kind not in ("id", "text")][:max_columns]
    for column in plotted:
        figure, axis = plt.subplots(figsize=(6, 3.5))
        if column.kind in ("numeric", "datetime"):
            _histograms(axis, real[column.name], synthetic[column.name])
        else:
            _category_bars(axis, real[column.name], synthetic[column.name])
        axis.set_title(f"{column.name} ({column.kind})")
        axis.legend()
        path = folder / "columns" / f"{len(written):03d}_{_file_name(column.name)}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=80)
        plt.close(figure)
        written.append(path)
    names = [c.name for c in plotted][:HEATMAP_MAX_COLUMNS]
    if len(names) >= 2:
        written.append(_association_heatmap(real, synthetic, schema, names, folder))
    return written


def _histograms(axis, real: pd.Series, synthetic: pd.Series) -> None:
    a, b = as_float(real), as_float(synthetic)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0:
        return
    # Bins over the real 0.5-99.5% range, so one extreme value does not squash the plot.
    low, high = np.quantile(a, [0.005, 0.995])
    bins = np.linspace(low, high if high > low else low + 1, 41)
    axis.hist(a, bins=bins, density=True, alpha=0.5, label="real")
    axis.hist(b, bins=bins, density=True, alpha=0.5, label="synthetic")
    if pd.api.types.is_datetime64_any_dtype(real.dtype):
        ticks = axis.get_xticks()
        axis.set_xticks(ticks, [str(pd.Timestamp(int(t)).date()) for t in ticks], rotation=30)


def _category_bars(axis, real: pd.Series, synthetic: pd.Series) -> None:
    p = real.astype("string").fillna("<missing>").value_counts(normalize=True)
    q = synthetic.astype("string").fillna("<missing>").value_counts(normalize=True)
    shown = p.index[:MAX_CATEGORIES_SHOWN].tolist()
    p_shown, q_shown = p.reindex(shown, fill_value=0), q.reindex(shown, fill_value=0)
    if len(p) > len(shown):
        shown.append("(other)")
        p_shown.loc["(other)"] = 1 - p_shown.sum()
        q_shown.loc["(other)"] = 1 - q_shown.sum()
    x = np.arange(len(shown))
    axis.bar(x - 0.2, p_shown.to_numpy(), width=0.4, label="real")
    axis.bar(x + 0.2, q_shown.to_numpy(), width=0.4, label="synthetic")
    axis.set_xticks(x, [label[:18] for label in shown], rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("share")


def _association_heatmap(real, synthetic, schema, names, folder: Path) -> Path:
    difference = np.abs(
        association_matrix(real, schema, names) - association_matrix(synthetic, schema, names)
    )
    size = 2 + 0.35 * len(names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(np.nan_to_num(difference), vmin=0, vmax=1, cmap="Reds")
    axis.set_xticks(range(len(names)), [n[:16] for n in names], rotation=90, fontsize=7)
    axis.set_yticks(range(len(names)), [n[:16] for n in names], fontsize=7)
    axis.set_title("|association real - synthetic|\n(Spearman; Cramer's V where categorical)")
    figure.colorbar(image, ax=axis)
    figure.tight_layout()
    path = folder / "association_difference.png"
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def _file_name(column: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", column).strip("._") or "column"
    return safe[:80]
