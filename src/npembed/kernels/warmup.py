"""Compile (or load from numba's on-disk cache) every kernel once, and time it.

The first use of a kernel in a process loads its machine code from the cache numba keeps beside
the package (``__pycache__``, or ``NUMBA_CACHE_DIR``); only the very first run after installing,
or after a change of numba, compiles it. ``npembed compile`` runs this and prints the times.
"""

from __future__ import annotations

import time

import numpy as np

from . import (
    adagrad_replay,
    adagrad_rows,
    adam_dense,
    adam_replay,
    adam_rows,
    coalesce_rows,
    gather_checked,
    gather_rows,
    masked_mean,
    masked_mean_backward,
    momentum_rows,
    ordered_pairs,
    sgd_replay,
    sgd_rows,
    sgd_scatter,
)
from .bag import bag_forward, bag_groups, bag_table_grad, bag_weight_grad

__all__ = ["warm_up"]


def _calls(dtype) -> list:
    """One small call per kernel (the float table/int64 ids signatures the layers use)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3)).astype(dtype)
    ids = np.array([1, 3, 1, 0], dtype=np.int64)
    rows = rng.standard_normal((4, 3)).astype(dtype)
    idx = np.array([0, 2], dtype=np.int64)
    g2 = rows[:2].copy()
    offs = np.array([0, 2, 4], dtype=np.int64)
    mask = np.ones((2, 2), dtype=np.bool_)

    def bag():
        for mode in ("sum", "max"):
            out, arg, wsum, counts = bag_forward(w, ids, offs, None, mode, -1, 0.0)
            groups = bag_groups(ids, offs, 6, -1)
            bag_table_grad(groups, None, mode, out, arg, wsum, np.zeros((len(groups[0]), 3), dtype))
        out, _, wsum, counts = bag_forward(w, ids, offs, np.ones(4, dtype), "mean", -1, 0.0)
        bag_weight_grad(w, ids, offs, np.ones(4, dtype), "mean", -1, out, out, wsum, counts)

    last = np.zeros(6, dtype=np.int64)

    def replays():
        adam_replay(w.copy(), np.zeros_like(w), np.zeros_like(w), idx, last, 2, [0.1, 0.1], 0, None, (0.9, 0.999), 1e-8, 0.0, False)
        sgd_replay(w.copy(), np.zeros_like(w), idx, last, 2, [0.1, 0.1], 0, None, 0.9, 0.0, 0.0, False)
        adagrad_replay(w.copy(), np.zeros_like(w), idx, last, 2, [0.1, 0.1], 0, None, 0.0, 0.1, 1e-10)

    return [
        ("gather_rows", lambda: (gather_rows(w, ids), gather_checked(w, ids))),
        ("sgd_scatter", lambda: sgd_scatter(w.copy(), ids, rows, 0.1)),
        ("exact replays", replays),
        ("coalesce_rows", lambda: coalesce_rows(ids, rows, num_rows=6)),
        ("masked_mean", lambda: masked_mean_backward(masked_mean(rows.reshape(2, 2, 3), mask)[0], mask, np.array([2, 2]))),
        ("sgd_rows", lambda: sgd_rows(w.copy(), idx, g2, 0.1)),
        ("adam_rows", lambda: (adam_rows(w.copy(), np.zeros_like(w), np.zeros_like(w), idx, g2, 0.9, 0.999, 1e-8, 0.1),
                               adam_dense(w.copy(), w.copy(), np.zeros_like(w), np.zeros_like(w), 0.9, 0.999, 1e-8, 0.1, 1))),
        ("adagrad_rows", lambda: adagrad_rows(w.copy(), np.zeros_like(w), idx, g2, 0.1, 1e-10)),
        ("momentum_rows", lambda: momentum_rows(w.copy(), np.zeros_like(w), idx, g2, 0.1, 0.9, 0.0, 0.0, False, True)),
        ("bag kernels", bag),
        ("ordered_pairs", lambda: ordered_pairs(ids[:3], np.array([0, 3]), 6)),
    ]


def warm_up(dtypes=(np.float32,), parallel: bool = True) -> list[tuple[str, float]]:
    """Run every kernel once per dtype, serial and (with ``parallel``) parallel builds; returns
    ``(kernel, seconds)`` pairs: compile time on a cold cache, load time on a warm one."""
    from .. import kernels

    times: dict[str, float] = {}
    saved = kernels.PARALLEL_MIN_WORK
    try:
        for dtype in dtypes:
            for threshold in ((1 << 62, 0) if parallel else (1 << 62,)):
                kernels.PARALLEL_MIN_WORK = threshold
                for name, call in _calls(np.dtype(dtype)):
                    t0 = time.perf_counter()
                    call()
                    times[name] = times.get(name, 0.0) + time.perf_counter() - t0
    finally:
        kernels.PARALLEL_MIN_WORK = saved
    return list(times.items())
