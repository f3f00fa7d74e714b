"""A 2-D picture of an embedding table: PCA projection, the most frequent items labelled."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

__all__ = ["pca_2d", "plot_embeddings"]


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project rows onto the first two principal components (computed in float64).

    The sign of each component is fixed (largest loading positive) so the picture is reproducible.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"`vectors` must be 2-D with at least 2 rows; got shape {x.shape}.")
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    if comps.shape[0] < 2:
        comps = np.vstack([comps, np.zeros_like(comps[0])])
    signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(axis=1)])
    signs[signs == 0] = 1
    return x @ (comps * signs[:, None]).T


def plot_embeddings(
    vectors: np.ndarray,
    keys: Sequence[str],
    counts: Sequence[int],
    path: str,
    label_top: int = 40,
    title: str = "Item vectors, PCA to 2-D",
) -> None:
    """Write a PNG scatter of ``vectors`` in 2-D, labelling the ``label_top`` most frequent keys."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xy = pca_2d(vectors)
    counts = np.asarray(counts)
    fig = Figure(figsize=(10, 8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    sizes = 6 + 40 * np.sqrt(counts / max(counts.max(), 1))
    ax.scatter(xy[:, 0], xy[:, 1], s=sizes, c="#4c72b0", alpha=0.45, linewidths=0)
    top = np.argsort(-counts, kind="stable")[:label_top]
    for i in top:
        # parse_math=False: item names are plain text ("$5 wine" must not be read as TeX).
        ax.annotate(keys[i], xy[i], fontsize=7, xytext=(3, 2), textcoords="offset points", parse_math=False)
    ax.set_title(f"{title} ({len(keys)} items; the {len(top)} most frequent labelled)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # e.g. CJK item names
        fig.tight_layout()
        fig.savefig(path, format="png")
