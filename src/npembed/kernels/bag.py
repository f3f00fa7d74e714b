"""Bag reductions (EmbeddingBag): fused gather + reduce, and their backward, compiled with numba.

Bags are in CSR form: bag ``b`` holds positions ``offsets[b]:offsets[b + 1]`` of ``ids``. A position
whose id equals ``skip`` (the padding id, when it is left out) or is negative (an invalid id under
``invalid_ids="zero"``) takes no part. Work is split by bag, so each thread writes its own rows and
the result does not depend on the thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from . import _dual, id_groups, table_work
from ._prefetch import distance, prefetch_row

__all__ = ["MODES", "bag_forward", "bag_sum_checked", "bag_groups", "bag_table_grad", "bag_weight_grad"]

MODES = {"sum": 0, "mean": 1, "sqrtn": 2, "max": 3, "min": 4}


@_dual
def _bag_forward(weight, ids, offsets, psw, mode, skip, empty_value, out, arg, wsum, counts):  # pragma: no cover
    nbags = offsets.shape[0] - 1
    d = weight.shape[1]
    n = ids.shape[0]
    ahead = distance(weight)
    for b in nb.prange(nbags):
        lo, hi = offsets[b], offsets[b + 1]
        c = 0
        acc = 0.0
        for i in range(lo, hi):
            if ahead and i + ahead < n and ids[i + ahead] >= 0:
                prefetch_row(weight, ids[i + ahead])
            r = ids[i]
            if r == skip or r < 0:
                continue
            w = psw[i]  # an array of ones when there are no weights: keeps the arithmetic in the table's dtype
            if mode <= 2:
                for j in range(d):
                    out[b, j] += w * weight[r, j]
                wf = np.float64(w)  # the sums of weights (and of their squares) in float64: no overflow
                acc += wf if mode == 1 else wf * wf
            elif c == 0:
                for j in range(d):
                    out[b, j] = weight[r, j]
                    arg[b, j] = i
            else:
                for j in range(d):
                    v = weight[r, j]
                    # Strict comparison: on a tie the earliest position in the bag keeps the gradient.
                    if (mode == 3 and v > out[b, j]) or (mode == 4 and v < out[b, j]):
                        out[b, j] = v
                        arg[b, j] = i
            c += 1
        counts[b] = c
        wsum[b] = acc
        if c == 0:
            for j in range(d):
                out[b, j] = empty_value
                if mode >= 3:
                    arg[b, j] = -1
        elif mode == 1 and acc != 0.0:
            for j in range(d):
                out[b, j] /= acc
        elif mode == 2 and acc != 0.0:
            s = np.sqrt(acc)
            for j in range(d):
                out[b, j] /= s


@nb.njit(inline="always", nogil=True)
def _bag_distance(weight):  # pragma: no cover - compiled
    """How far ahead the plain bag kernel asks for rows: twice :func:`distance` for rows of up to
    256 bytes. A bag reads many rows back to back, so the requests must run further ahead than a
    lookup's: measured on 4,096 bags of 20 ids, 1,000,000 x 64, Zipf ids, 0.30-0.31 ms asking 32
    positions on against 0.33-0.39 ms at 16 (PyTorch 0.25-0.34 ms in the same runs); at d = 256,
    16 positions against 8: 1.05 against 1.18 ms."""
    ahead = distance(weight)
    return 2 * ahead if weight.shape[1] * weight.itemsize <= 256 else ahead


@nb.njit(inline="always", nogil=True)
def _ask_rows(weight, ids, i, k, ahead, n):  # pragma: no cover - compiled
    """Ask for the rows of positions ``i + ahead .. i + ahead + k - 1`` (those inside ``ids``)."""
    if ahead:
        for t in range(i + ahead, min(i + ahead + k, n)):
            q = ids[t]
            if q >= 0:
                prefetch_row(weight, q)


@nb.njit(inline="always", nogil=True)
def _all_valid(ids, i, k, skip):  # pragma: no cover - compiled
    """Whether positions ``i .. i + k - 1`` hold neither the skipped id nor an invalid one."""
    ok = True
    for t in range(i, i + k):
        r = ids[t]
        ok = ok and r >= 0 and r != skip
    return ok


@_dual
def _bag_sum_plain(weight, ids, offsets, skip, mean, empty_value, out, wsum, counts, ids_out, bad):  # pragma: no cover
    # Unweighted sum and mean, the common case: nothing in the inner loop but the adds (the
    # general kernel's per-position weight and mode tests cost about 2x here, measured). Eight
    # ids per pass, then four, then one (one load and store of the output row per eight table
    # rows): measured on 4,096 bags of 20 ids, 1,000,000 x 64, 0.73-0.90 ms uniform and 0.31 ms
    # Zipf, against 0.97-1.15 and 0.33 ms four ids per pass (2.1 ms two per pass, 2.9 ms one at a
    # time). A group holding a padding or invalid id is added one id at a time.
    # With a non-empty `ids_out` the ids are unchecked: each bag's ids are first range-checked and
    # copied there (as int64, for backward) while they are in L1; a bag with a bad id sets `bad`.
    nbags = offsets.shape[0] - 1
    d = weight.shape[1]
    n = ids.shape[0]
    rows = weight.shape[0]
    checking = ids_out.shape[0] > 0
    ahead = _bag_distance(weight)
    for b in nb.prange(nbags):
        lo, hi = offsets[b], offsets[b + 1]
        if checking:
            ok = True
            for i in range(lo, hi):
                r = np.int64(ids[i])
                ids_out[i] = r
                ok = ok and r >= 0 and r < rows
            if not ok:
                bad[0] = 1  # every writer writes the same value: no race on what is read
                continue
        for j in range(d):
            out[b, j] = 0
        c = 0
        i = lo
        while i + 7 < hi:
            _ask_rows(weight, ids, i, 8, ahead, n)
            if _all_valid(ids, i, 8, skip):
                c += 8
                r0, r1, r2, r3 = ids[i], ids[i + 1], ids[i + 2], ids[i + 3]
                r4, r5, r6, r7 = ids[i + 4], ids[i + 5], ids[i + 6], ids[i + 7]
                for j in range(d):
                    out[b, j] += ((weight[r0, j] + weight[r1, j]) + (weight[r2, j] + weight[r3, j])) + (
                        (weight[r4, j] + weight[r5, j]) + (weight[r6, j] + weight[r7, j]))
                i += 8
            else:
                break  # the rest of the bag goes four or one at a time
        while i + 3 < hi:
            _ask_rows(weight, ids, i, 4, ahead, n)
            if _all_valid(ids, i, 4, skip):
                c += 4
                r0, r1, r2, r3 = ids[i], ids[i + 1], ids[i + 2], ids[i + 3]
                for j in range(d):
                    out[b, j] += (weight[r0, j] + weight[r1, j]) + (weight[r2, j] + weight[r3, j])
            else:
                for k in range(4):
                    r = ids[i + k]
                    if r == skip or r < 0:
                        continue
                    c += 1
                    for j in range(d):
                        out[b, j] += weight[r, j]
            i += 4
        for i in range(i, hi):
            _ask_rows(weight, ids, i, 1, ahead, n)
            r = ids[i]
            if r == skip or r < 0:
                continue
            c += 1
            for j in range(d):
                out[b, j] += weight[r, j]
        counts[b] = c
        wsum[b] = c
        if c == 0:
            for j in range(d):
                out[b, j] = empty_value
        elif mean:
            acc = np.float64(c)
            for j in range(d):
                out[b, j] /= acc


_NO_IDS = np.zeros(0, dtype=np.int64)
_NO_FLAG = np.zeros(1, dtype=np.uint8)


def bag_sum_checked(weight, ids, offsets, mean: bool, skip: int, empty_value: float):
    """Unweighted sum or mean of bags of unchecked 1-D integer ``ids`` (valid CSR ``offsets``):
    ``(out, wsum, counts, ids as int64)``, the ids range-checked and copied in the same pass, or
    ``None`` if any id is outside ``[0, len(weight))`` (the caller then reports which)."""
    nbags = offsets.shape[0] - 1
    d = weight.shape[1]
    n = ids.shape[0]
    out = np.empty((nbags, d), dtype=weight.dtype)  # the kernel writes every row
    wsum = np.zeros(nbags, dtype=np.float64)
    counts = np.zeros(nbags, dtype=np.int64)
    ids_out = np.empty(n, dtype=np.int64)
    bad = np.zeros(1, dtype=np.uint8)
    _bag_sum_plain(table_work(n * d, weight.nbytes), weight, np.ascontiguousarray(ids), offsets, np.int64(skip), bool(mean),
                   weight.dtype.type(empty_value), out, wsum, counts, ids_out, bad)
    return None if bad[0] else (out, wsum, counts, ids_out)


def bag_forward(weight, ids, offsets, psw, mode: str, skip: int, empty_value: float):
    """Reduce each bag: returns ``out`` (bags, d), ``arg`` (bags, d) positions for max/min, the
    per-bag weight sums (sum of w for mean, of w^2 for sqrtn) and the per-bag counts."""
    nbags = offsets.shape[0] - 1
    d = weight.shape[1]
    wsum = np.zeros(nbags, dtype=np.float64)
    counts = np.zeros(nbags, dtype=np.int64)
    if psw is None and mode in ("sum", "mean"):
        out = np.empty((nbags, d), dtype=weight.dtype)  # the kernel writes every row
        arg = np.full((0, 0), -1, dtype=np.int64)
        _bag_sum_plain(table_work(ids.shape[0] * d, weight.nbytes), weight, ids, offsets, np.int64(skip), mode == "mean",
                       weight.dtype.type(empty_value), out, wsum, counts, _NO_IDS, _NO_FLAG)
        return out, arg, wsum, counts
    out = np.zeros((nbags, d), dtype=weight.dtype)
    arg = np.full((nbags, d) if MODES[mode] >= 3 else (0, 0), -1, dtype=np.int64)
    w = psw if psw is not None else np.ones(ids.shape[0], dtype=weight.dtype)
    arg_k = arg if MODES[mode] >= 3 else np.zeros((0, 0), dtype=np.int64)
    _bag_forward(table_work(ids.shape[0] * d, weight.nbytes), weight, ids, offsets, w, MODES[mode], np.int64(skip),
                 weight.dtype.type(empty_value), out, arg_k, wsum, counts)
    return out, arg, wsum, counts


@nb.njit(inline="always", nogil=True)
def _denominator(mode, wsum_b):  # pragma: no cover - compiled
    """What a bag's weighted sum is divided by: 1 (sum), the weight sum (mean), or the root of the
    squared weights' sum (sqrtn)."""
    if mode == 0:
        return 1.0
    if mode == 1:
        return wsum_b
    return np.sqrt(wsum_b)


@_dual
def _bag_table_grad(starts, sorted_pos, bag_of, psw, mode, grad, arg, wsum, out):  # pragma: no cover
    """The table gradient, already summed per unique id: group ``u`` (one id) adds, position by
    position in input order, what each of its positions receives. Threads split the groups."""
    d = grad.shape[1]
    for u in nb.prange(out.shape[0]):
        for t in range(starts[u], starts[u + 1]):
            i = sorted_pos[t]
            b = bag_of[i]
            if mode >= 3:
                for j in range(d):
                    if arg[b, j] == i:
                        out[u, j] += grad[b, j]
                continue
            denom = _denominator(mode, wsum[b])
            scale = psw[i] / denom
            for j in range(d):
                out[u, j] += scale * grad[b, j]


@_dual
def _bag_weight_grad(weight, ids, offsets, psw, mode, skip, grad, out, wsum, counts, gw):  # pragma: no cover
    nbags = offsets.shape[0] - 1
    d = weight.shape[1]
    for b in nb.prange(nbags):
        if counts[b] == 0:
            continue
        denom = _denominator(mode, wsum[b])
        dot_o = 0.0
        if mode >= 1:
            for j in range(d):
                dot_o += grad[b, j] * out[b, j]
        for i in range(offsets[b], offsets[b + 1]):
            r = ids[i]
            if r == skip or r < 0:
                continue
            dot_e = 0.0
            for j in range(d):
                dot_e += grad[b, j] * weight[r, j]
            if mode == 0:
                gw[i] = dot_e
            elif mode == 1:
                gw[i] = (dot_e - dot_o) / denom
            else:
                gw[i] = dot_e / denom - dot_o * psw[i] / (denom * denom)


def bag_groups(ids, offsets, num_rows: int, skip: int, frozen=None):
    """Group the positions of the bags' ids by id once per backward (see :func:`id_groups`), and
    map each position to its bag. Ids after the last bag (all of them when there are no bags:
    ``offsets == [len(ids)]``) are in none and take no part; bags start at position 0."""
    end = offsets[-1] if offsets.shape[0] > 1 else 0
    uniq, starts, sorted_pos = id_groups(ids[:end], num_rows, skip, frozen)
    bag_of = np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64), np.diff(offsets))
    return uniq, starts, sorted_pos, bag_of


def bag_table_grad(groups, psw, mode: str, grad, arg, wsum, out) -> None:
    """Add one mode's table gradient into ``out`` (one row per unique id of ``groups``)."""
    uniq, starts, sorted_pos, bag_of = groups
    if not uniq.shape[0]:
        return
    w = psw if psw is not None else np.ones(bag_of.shape[0], dtype=out.dtype)
    arg_k = arg if MODES[mode] >= 3 else np.zeros((0, 0), dtype=np.int64)
    _bag_table_grad(sorted_pos.shape[0] * out.shape[1], starts, sorted_pos, bag_of, w, MODES[mode],
                    np.ascontiguousarray(grad, dtype=out.dtype), arg_k, wsum, out)


def bag_weight_grad(weight, ids, offsets, psw, mode: str, skip: int, grad, out, wsum, counts) -> np.ndarray:
    """The gradient of the per-sample weights (float64, one per position) for sum, mean, sqrtn."""
    gw = np.zeros(ids.shape[0], dtype=np.float64)
    _bag_weight_grad(ids.shape[0] * weight.shape[1], weight, ids, offsets, psw, MODES[mode], np.int64(skip),
                     np.ascontiguousarray(grad, dtype=weight.dtype), out, wsum, counts, gw)
    return gw
