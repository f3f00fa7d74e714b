"""A 2-D picture of an embedding table: PCA projection, the most frequent items labelled."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

__all__ = ["pca_2d", "plot_embeddings"]


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto the first two principal components (computed in float64).

    Returns the ``(n, 2)`` coordinates and the share of variance each component explains. The sign
    of each component is fixed (largest loading positive) so the picture is reproducible.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"`vectors` must be 2-D with at least 2 rows; got shape {x.shape}.")
    x = x - x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    var = sv**2
    share = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    if comps.shape[0] < 2:
        comps = np.vstack([comps, np.zeros_like(comps[0])])
        share = np.append(share, 0.0)
    signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(axis=1)])
    signs[signs == 0] = 1
    return x @ (comps * signs[:, None]).T, share


# Where a label may sit around its point, in points: right, left, above, below, then diagonals.
_OFFSETS = [(4, 0, "left", "center"), (-4, 0, "right", "center"), (0, 5, "center", "bottom"),
            (0, -5, "center", "top"), (4, 5, "left", "bottom"), (-4, -5, "right", "top"),
            (4, -5, "left", "top"), (-4, 5, "right", "bottom")]


def plot_embeddings(
    vectors: np.ndarray,
    keys: Sequence[str],
    counts: Sequence[int],
    path: str,
    label_top: int = 40,
    title: str = "Item vectors, PCA to 2-D",
) -> None:
    """Write a PNG scatter of ``vectors`` in 2-D, labelling the most frequent keys.

    Labels are placed greedily, most frequent first, at the first spot around their point that
    overlaps no earlier label; a label with no free spot is left out (its point stays marked).
    The view is cut to the central 99% of points so a few outliers do not squeeze the rest.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xy, share = pca_2d(vectors)
    counts = np.asarray(counts)
    fig = Figure(figsize=(11, 9), dpi=110)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    sizes = 6 + 60 * np.sqrt(counts / max(counts.max(), 1))
    ax.scatter(xy[:, 0], xy[:, 1], s=sizes, c="#4c72b0", alpha=0.35, linewidths=0)
    lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    pad = 0.08 * (hi - lo + 1e-12)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    top = np.argsort(-counts, kind="stable")[:label_top]
    ax.scatter(xy[top, 0], xy[top, 1], s=sizes[top], facecolors="none", edgecolors="#c44e52", linewidths=0.8)
    renderer = canvas.get_renderer()
    placed = []
    shown = 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # e.g. CJK item names
        for i in top:
            for dx, dy, ha, va in _OFFSETS:
                # parse_math=False: item names are plain text ("$5 wine" must not be read as TeX).
                t = ax.annotate(keys[i], xy[i], xytext=(dx, dy), textcoords="offset points", fontsize=7.5,
                                ha=ha, va=va, parse_math=False, clip_on=True)
                box = t.get_window_extent(renderer).expanded(1.05, 1.15)
                if not any(box.overlaps(b) for b in placed):
                    placed.append(box)
                    shown += 1
                    break
                t.remove()
        ax.set_title(f"{title}: {len(keys)} items, {shown} of the {len(top)} most frequent labelled (circled)")
        ax.set_xlabel(f"PC 1 ({100 * share[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * share[1]:.1f}% of variance)")
        fig.tight_layout()
        fig.savefig(path, format="png")
