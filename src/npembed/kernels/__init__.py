"""Compiled hot loops (numba), each with a plain NumPy reference in ``tests/test_kernels.py``.

Every kernel is deterministic: for the same inputs and thread count it returns the same bits.
Parallel kernels only split work by output row, so no two threads ever write the same memory and
no floating-point sum depends on scheduling. Compiled code is cached on disk (``cache=True``) so
only the first run after installation pays numba's compile time.
"""

from __future__ import annotations

import os
import types

import numba as nb
import numpy as np

from ._prefetch import BIG_TABLE, distance, prefetch_row

__all__ = [
    "PARALLEL_MIN_WORK",
    "gather_rows",
    "gather_checked",
    "coalesce_rows",
    "id_groups",
    "masked_mean",
    "masked_mean_backward",
    "sgd_rows",
    "sgd_scatter",
    "adam_rows",
    "adam_dense",
    "adam_replay",
    "sgd_replay",
    "adagrad_replay",
    "adagrad_rows",
    "momentum_rows",
    "ordered_pairs",
]


def _start_sleeping_workers() -> None:
    """Start numba's worker threads with OpenMP's passive wait policy, unless the user chose one.

    GNU OpenMP workers otherwise spin for a while after each parallel kernel, on the cores that the
    next BLAS call (or PyTorch, in the same process) needs: measured on 2 cores, a step of the
    main job ran 8x slower, and small parallel kernels sometimes waited a whole scheduler slice
    (8 ms). Sleeping workers cost a wake-up (microseconds) instead. The policy is read once, when
    the OpenMP library loads: it is set for that moment only and the environment is restored, so
    libraries loaded later see the user's own settings.
    """

    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
    except Exception:  # no threading layer here: the kernels run serially anyway  # noqa: BLE001
        return
    finally:
        del os.environ["OMP_WAIT_POLICY"]


_start_sleeping_workers()

# GNU OpenMP cannot run in a child forked from a process whose OpenMP threads are started (numba
# ends such a child with "fork() called from a process already using GNU OpenMP"), and npembed
# starts them on import. A forked child (multiprocessing's default start method on Linux) runs
# every kernel on its calling thread instead: the same bits, as at any thread count.
_FORKED = False


def _after_fork_in_child() -> None:
    global _FORKED
    _FORKED = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# Below this many elements of work a kernel runs on the calling thread: waking worker threads
# costs more than it saves, and idle OpenMP workers that spin-wait steal the core BLAS needs next
# (measured on 2 cores: a training step of the main job ran 8x slower with parallel small kernels).
PARALLEL_MIN_WORK = 1 << 20


# Tables larger than this are past the last-level cache: every row read is a trip to memory, and
# one core's outstanding misses cap a serial kernel (measured: a lookup of 12,800 rows of a
# 1,000,000 x 16 table, 64.0 MB, ran serially and without prefetch at 0.31 ms while the limit was
# 64 MiB, 0.15 ms since it is 32 MiB; PyTorch 0.29-0.33 ms). Kernels over such tables
# count their work 16 times, so they go parallel from 2**16 elements instead of 2**20. Small
# tables (the main job's is 195 KB) stay serial: their rows are cached, and a parallel kernel
# there only risks waiting for a core that another library's spinning thread holds (measured: a
# main-job step took 8 ms instead of 1.6 ms with the threshold at 2**18).
BIG_TABLE_BYTES = BIG_TABLE


def table_work(elements: int, table_bytes: int) -> int:
    """The work a kernel reports to the parallel switch, given the bytes of the table it reads."""
    return elements * 16 if table_bytes >= BIG_TABLE_BYTES else elements


class _Dual:
    """One Python loop body compiled twice: serial, and parallel over ``prange`` (lazily)."""

    def __init__(self, fn):
        self.serial = nb.njit(cache=True, nogil=True)(fn)
        # numba's on-disk cache is keyed by qualified name and signature, not by the parallel flag:
        # the parallel twin needs a name of its own or the two would overwrite each other's cache.
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_parallel"
        self.parallel = nb.njit(parallel=True, cache=True, nogil=True)(twin)

    def __call__(self, work, *args):
        if work >= PARALLEL_MIN_WORK and not _FORKED and nb.get_num_threads() > 1:
            return self.parallel(*args)
        return self.serial(*args)


def _dual(fn):
    return _Dual(fn)


@_dual
def _gather_rows(weight, ids, out):  # pragma: no cover - compiled
    n = ids.shape[0]
    d = weight.shape[1]
    ahead = distance(weight)
    if ahead == 0:  # two loops, not a test per row: the plain one compiles to the tighter code
        for i in nb.prange(n):
            r = ids[i]
            for j in range(d):
                out[i, j] = weight[r, j]
    else:
        for i in nb.prange(n):
            if i + ahead < n:
                prefetch_row(weight, ids[i + ahead])
            r = ids[i]
            for j in range(d):
                out[i, j] = weight[r, j]


@_dual
def _gather_checked(weight, ids, out, ids_out, bad):  # pragma: no cover - compiled
    # One pass: range check, a copy of the ids as int64 (kept for backward), and the gather.
    n = ids.shape[0]
    d = weight.shape[1]
    rows = weight.shape[0]
    ahead = distance(weight)
    if ahead == 0:
        for i in nb.prange(n):
            r = np.int64(ids[i])
            ids_out[i] = r
            if r < 0 or r >= rows:
                bad[0] = 1  # every writer writes the same value: no race on what is read
                continue
            for j in range(d):
                out[i, j] = weight[r, j]
    else:
        for i in nb.prange(n):
            if i + ahead < n:
                q = np.int64(ids[i + ahead])
                if q >= 0 and q < rows:
                    prefetch_row(weight, q)
            r = np.int64(ids[i])
            ids_out[i] = r
            if r < 0 or r >= rows:
                bad[0] = 1
                continue
            for j in range(d):
                out[i, j] = weight[r, j]


def gather_checked(weight: np.ndarray, ids: np.ndarray):
    """``(weight[ids], ids as int64)`` for 1-D integer ``ids``, or ``None`` if any id is outside
    ``[0, len(weight))`` (the caller then reports which); one pass over the ids."""
    n = ids.shape[0]
    out = np.empty((n, weight.shape[1]), dtype=weight.dtype)
    ids_out = np.empty(n, dtype=np.int64)
    bad = np.zeros(1, dtype=np.uint8)
    if n:
        _gather_checked(table_work(out.size, weight.nbytes), weight, np.ascontiguousarray(ids), out, ids_out, bad)
    return None if bad[0] else (out, ids_out)


def gather_rows(weight: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``weight[ids]`` for 1-D, already range-checked ``ids``; returns ``(len(ids), d)``."""
    out = np.empty((ids.shape[0], weight.shape[1]), dtype=weight.dtype)
    if ids.shape[0]:
        _gather_rows(table_work(out.size, weight.nbytes), weight, ids, out)
    return out


@nb.njit(cache=True, nogil=True)
def _stable_argsort(keys, nbits):  # pragma: no cover - compiled
    """Stable argsort of non-negative integer keys below ``2**nbits``: LSD radix sort, passes of
    at most 11 bits (insertion sort for short inputs). Equal keys keep their input order."""
    n = keys.shape[0]
    order = np.arange(n)
    if n <= 32:
        for i in range(1, n):
            o = order[i]
            k = keys[o]
            j = i - 1
            while j >= 0 and keys[order[j]] > k:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = o
        return order
    passes = max(1, (nbits + 10) // 11)
    bits = max(1, (nbits + passes - 1) // passes)
    mask = (1 << bits) - 1
    tmp = np.empty(n, dtype=np.int64)
    count = np.empty((1 << bits) + 1, dtype=np.int64)
    for p in range(passes):
        shift = p * bits
        count[:] = 0
        for i in range(n):
            count[((keys[order[i]] >> shift) & mask) + 1] += 1
        for b in range(1, count.shape[0]):
            count[b] += count[b - 1]
        for i in range(n):
            o = order[i]
            b = (keys[o] >> shift) & mask
            tmp[count[b]] = o
            count[b] += 1
        order, tmp = tmp, order
    return order


@nb.njit(cache=True, nogil=True)
def _groups(ids, skip, frozen, nbits):  # pragma: no cover - compiled
    """The positions of ``ids`` to keep (not ``skip``, not frozen), sorted by id, stable; the
    unique ids and where each one's run starts in that order (``starts`` has one extra end)."""
    n = ids.shape[0]
    use_frozen = frozen.shape[0] > 0
    m = 0
    for i in range(n):
        r = ids[i]
        if r >= 0 and r != skip and not (use_frozen and frozen[r]):
            m += 1
    pos = np.empty(m, dtype=np.int64)
    keys = np.empty(m, dtype=np.int64)
    m = 0
    for i in range(n):
        r = ids[i]
        if r >= 0 and r != skip and not (use_frozen and frozen[r]):
            pos[m] = i
            keys[m] = r
            m += 1
    order = _stable_argsort(keys, nbits)
    k = 0
    for t in range(m):
        if t == 0 or keys[order[t]] != keys[order[t - 1]]:
            k += 1
    uniq = np.empty(k, dtype=np.int64)
    starts = np.empty(k + 1, dtype=np.int64)
    sorted_pos = np.empty(m, dtype=np.int64)
    u = -1
    for t in range(m):
        o = order[t]
        if t == 0 or keys[o] != keys[order[t - 1]]:
            u += 1
            uniq[u] = keys[o]
            starts[u] = t
        sorted_pos[t] = pos[o]
    starts[k] = m
    return uniq, starts, sorted_pos


@_dual
def _sum_groups(rows, starts, sorted_pos, out):  # pragma: no cover - compiled
    # One output row per group, its rows added in input order: the bits do not depend on threads.
    d = rows.shape[1]
    m = sorted_pos.shape[0]
    ahead = distance(rows)
    for u in nb.prange(out.shape[0]):
        s0 = sorted_pos[starts[u]]
        for j in range(d):
            out[u, j] = rows[s0, j]
        for t in range(starts[u] + 1, starts[u + 1]):
            if ahead and t + ahead < m:
                prefetch_row(rows, sorted_pos[t + ahead])
            src = sorted_pos[t]
            for j in range(d):
                out[u, j] += rows[src, j]


_NO_MASK = np.zeros(0, dtype=np.bool_)


def id_groups(ids: np.ndarray, num_rows: int, skip: int = -1, frozen: np.ndarray | None = None):
    """Group equal ids: ``(uniq, starts, sorted_pos)`` where ``uniq`` are the sorted unique ids
    kept, and the positions of ``uniq[u]`` in ``ids`` are ``sorted_pos[starts[u]:starts[u + 1]]``
    in input order. Negative ids, ids equal to ``skip`` and ids marked in ``frozen`` are left out."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    nbits = max(int(num_rows) - 1, 1).bit_length()
    return _groups(ids, np.int64(skip), _NO_MASK if frozen is None else frozen, nbits)


def coalesce_rows(
    ids: np.ndarray,
    rows: np.ndarray,
    skip: int = -1,
    frozen: np.ndarray | None = None,
    return_counts: bool = False,
    num_rows: int | None = None,
):
    """Sum the rows of repeated ids: returns sorted unique ids and one summed row per id.

    ``ids`` is 1-D (n,), ``rows`` is (n, d). Ids equal to ``skip`` (e.g. a padding id), and ids
    whose entry in the bool array ``frozen`` is true, are dropped. With ``return_counts`` the
    number of occurrences of each returned id comes third. ``num_rows`` (an upper bound on the
    ids) lets the radix sort skip passes; without it the largest id is used.
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    rows = np.ascontiguousarray(rows)
    if num_rows is None:
        num_rows = int(ids.max()) + 1 if ids.size else 1
    uniq, starts, sorted_pos = id_groups(ids, num_rows, skip, frozen)
    out = np.empty((uniq.shape[0], rows.shape[1]), dtype=rows.dtype)
    if uniq.shape[0]:
        _sum_groups(sorted_pos.shape[0] * rows.shape[1], rows, starts, sorted_pos, out)
    return (uniq, out, np.diff(starts)) if return_counts else (uniq, out)


@_dual
def _masked_mean(x, mask, out, counts):  # pragma: no cover - compiled
    b, L, d = x.shape
    for i in nb.prange(b):
        c = 0
        for t in range(L):
            if mask[i, t]:
                c += 1
                for j in range(d):
                    out[i, j] += x[i, t, j]
        counts[i] = c
        if c > 0:
            inv = 1.0 / c
            for j in range(d):
                out[i, j] *= inv


def masked_mean(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 1 of ``x`` (batch, seq, d) where ``mask`` (batch, seq) is true.

    Returns the means (batch, d) and the counts (batch,). A row with no true entry gives zeros.
    """
    out = np.zeros((x.shape[0], x.shape[2]), dtype=x.dtype)
    counts = np.empty(x.shape[0], dtype=np.int64)
    _masked_mean(x.size, x, mask, out, counts)
    return out, counts


@_dual
def _masked_mean_backward(grad, mask, counts, out):  # pragma: no cover - compiled
    b, L, d = out.shape
    for i in nb.prange(b):
        if counts[i] == 0:
            continue
        inv = 1.0 / counts[i]
        for t in range(L):
            if mask[i, t]:
                for j in range(d):
                    out[i, t, j] = grad[i, j] * inv


def masked_mean_backward(grad: np.ndarray, mask: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Gradient of :func:`masked_mean` for its input: ``grad / count`` where masked in, else 0."""
    out = np.zeros(mask.shape + (grad.shape[1],), dtype=grad.dtype)
    _masked_mean_backward(out.size, np.ascontiguousarray(grad), mask, counts, out)
    return out


@_dual
def _sgd_rows(weight, idx, rows, lr, scale):  # pragma: no cover - compiled
    d = weight.shape[1]
    scaled = scale.shape[0] > 0
    n = idx.shape[0]
    ahead = distance(weight)
    for i in nb.prange(n):
        if ahead and i + ahead < n:
            prefetch_row(weight, idx[i + ahead])
        r = idx[i]
        step = lr * scale[i] if scaled else lr
        for j in range(d):
            weight[r, j] -= step * rows[i, j]


def _scale_arg(scale, dtype):
    return np.zeros(0, dtype=dtype) if scale is None else np.ascontiguousarray(scale, dtype=dtype)


def sgd_rows(weight: np.ndarray, idx: np.ndarray, rows: np.ndarray, lr: float, scale: np.ndarray | None = None) -> None:
    """In place: ``weight[idx] -= lr * scale[:, None] * rows`` for unique ``idx`` (scale 1 if None)."""
    if idx.shape[0]:
        _sgd_rows(table_work(rows.size, weight.nbytes), weight, idx, rows, weight.dtype.type(lr), _scale_arg(scale, weight.dtype))


@_dual
def _sgd_scatter(weight, ids, rows, lr, skip, frozen, lr_scale, parts):  # pragma: no cover - compiled
    # Each part owns the table rows r with r % parts == part and adds their gradient rows in input
    # order: no two threads write one row, and each row's sum is in the same order at any count.
    n = ids.shape[0]
    d = weight.shape[1]
    use_frozen = frozen.shape[0] > 0
    scaled = lr_scale.shape[0] > 0
    ahead = distance(weight)
    for part in nb.prange(parts):
        for i in range(n):
            if ahead and i + ahead < n:
                q = ids[i + ahead]
                if q >= 0 and q % parts == part:  # a row this part will update
                    prefetch_row(weight, q)
            r = ids[i]
            if r < 0 or r == skip or r % parts != part or (use_frozen and frozen[r]):
                continue
            step = lr * lr_scale[r] if scaled else lr
            for j in range(d):
                weight[r, j] -= step * rows[i, j]


def sgd_scatter(weight, ids, rows, lr: float, skip: int = -1, frozen=None, lr_scale=None) -> None:
    """In place plain SGD straight from one gradient row per position: ``weight[ids[i]] -= lr *
    lr_scale[ids[i]] * rows[i]`` for every ``i`` in order (negative ids, ``skip`` and rows marked in
    ``frozen`` take no part). No sorting, no summed copy: one pass over the rows."""
    if not ids.shape[0]:
        return
    work = table_work(rows.size, weight.nbytes)
    parts = nb.get_num_threads() if work >= PARALLEL_MIN_WORK else 1
    t = weight.dtype.type
    _sgd_scatter(work, weight, ids, rows, t(lr), np.int64(skip), _NO_MASK if frozen is None else frozen,
                 np.zeros(0, dtype=weight.dtype) if lr_scale is None else np.ascontiguousarray(lr_scale, dtype=weight.dtype),
                 np.int64(parts))


@_dual
def _adam_rows(weight, m, v, idx, rows, beta1, beta2, eps, step_size, scale):  # pragma: no cover - compiled
    d = weight.shape[1]
    one = weight.dtype.type(1.0)
    scaled = scale.shape[0] > 0
    n = idx.shape[0]
    ahead = distance(weight)
    for i in nb.prange(n):
        if ahead and i + ahead < n:
            q = idx[i + ahead]
            prefetch_row(weight, q)
            prefetch_row(m, q)
            prefetch_row(v, q)
        r = idx[i]
        step = step_size * scale[i] if scaled else step_size
        for j in range(d):
            g = rows[i, j]
            mj = m[r, j] + (g - m[r, j]) * (one - beta1)
            vj = v[r, j] + (g * g - v[r, j]) * (one - beta2)
            m[r, j] = mj
            v[r, j] = vj
            weight[r, j] -= step * (mj / (np.sqrt(vj) + eps))


def adam_rows(
    weight: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    idx: np.ndarray,
    rows: np.ndarray,
    beta1: float,
    beta2: float,
    eps: float,
    step_size: float,
    scale: np.ndarray | None = None,
) -> None:
    """In place lazy Adam on the rows ``idx`` (unique) only, as ``torch.optim.SparseAdam`` does.

    ``m += (g - m)(1 - beta1)``, ``v += (g^2 - v)(1 - beta2)``,
    ``w -= scale * step_size * m / (sqrt(v) + eps)`` with ``step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``
    (``scale``, one per row, defaults to 1).
    """
    if idx.shape[0]:
        t = weight.dtype.type
        _adam_rows(table_work(rows.size, weight.nbytes), weight, m, v, idx, rows, t(beta1), t(beta2), t(eps), t(step_size), _scale_arg(scale, weight.dtype))


@_dual
def _adam_dense(w, g, m, v, b1, c1, b2, c2, bc2, eps, step):  # pragma: no cover - compiled
    # The dense rule in one pass, element by element with the same float operations, in the same
    # order, as the NumPy expressions it replaces in Adam._update (so the same bits):
    # m = m*b1 + c1*g; v = v*b2 + (c2*g)*g; w -= step * (m / (sqrt(v)/bc2 + eps)).
    for i in nb.prange(w.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + c1 * gi
        vi = v[i] * b2 + (c2 * gi) * gi
        m[i] = mi
        v[i] = vi
        w[i] -= step * (mi / (np.sqrt(vi) / bc2 + eps))


def adam_dense(w, g, m, v, beta1: float, beta2: float, eps: float, lr: float, t: int) -> bool:
    """Adam's dense step (PyTorch's rule) in place on ``w``, ``m``, ``v`` from ``g``, in one compiled
    pass; returns False (nothing done) unless all four are C-contiguous arrays of one shape and
    one dtype, float32 or float64."""
    dt = w.dtype
    if dt not in (np.float32, np.float64) or not all(
        a.dtype == dt and a.shape == w.shape and a.flags.c_contiguous for a in (g, m, v)
    ) or not (w.flags.c_contiguous and w.flags.writeable):
        return False
    f = dt.type
    _adam_dense(w.size, w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), f(beta1), f(1.0 - beta1), f(beta2),
                f(1.0 - beta2), f(np.sqrt(1.0 - beta2**t)), f(eps), f(lr / (1.0 - beta1**t)))
    return True


@_dual
def _adagrad_rows(weight, acc, idx, rows, clr, eps, wd, rowwise, scale):  # pragma: no cover - compiled
    d = weight.shape[1]
    scaled = scale.shape[0] > 0
    n = idx.shape[0]
    ahead = distance(weight)
    for i in nb.prange(n):
        if ahead and i + ahead < n:
            q = idx[i + ahead]
            prefetch_row(weight, q)
            if not rowwise:
                prefetch_row(acc, q)
        r = idx[i]
        step = clr * scale[i] if scaled else clr
        if rowwise:
            ss = 0.0
            for j in range(d):
                g = rows[i, j] + wd * weight[r, j]
                ss += g * g
            a = acc[r, 0] + weight.dtype.type(ss / d)
            acc[r, 0] = a
            std = np.sqrt(a) + eps
            for j in range(d):
                g = rows[i, j] + wd * weight[r, j]
                weight[r, j] -= step * (g / std)
        else:
            for j in range(d):
                g = rows[i, j] + wd * weight[r, j]
                a = acc[r, j] + g * g
                acc[r, j] = a
                weight[r, j] -= step * (g / (np.sqrt(a) + eps))


def adagrad_rows(weight, acc, idx, rows, clr: float, eps: float, weight_decay: float = 0.0, scale=None) -> None:
    """In place lazy Adagrad on the unique rows ``idx``: ``g = rows + weight_decay * w``, then
    ``acc += g^2`` when ``acc`` is shaped like ``weight``, or ``acc += mean_j g^2`` when it has one
    entry per row (row-wise Adagrad), and ``w -= scale * clr * g / (sqrt(acc) + eps)``."""
    if idx.shape[0]:
        t = weight.dtype.type
        rowwise = acc.ndim == 1
        acc2 = acc.reshape(-1, 1) if rowwise else acc
        _adagrad_rows(table_work(rows.size, weight.nbytes), weight, acc2, idx, rows, t(clr), t(eps), t(weight_decay), rowwise,
                      _scale_arg(scale, weight.dtype))


@_dual
def _momentum_rows(weight, buf, idx, rows, lr, momentum, dampening, wd, nesterov, first, scale):  # pragma: no cover
    d = weight.shape[1]
    scaled = scale.shape[0] > 0
    n = idx.shape[0]
    ahead = distance(weight)
    one = weight.dtype.type(1.0)
    for i in nb.prange(n):
        if ahead and i + ahead < n:
            q = idx[i + ahead]
            prefetch_row(weight, q)
            prefetch_row(buf, q)
        r = idx[i]
        step = lr * scale[i] if scaled else lr
        for j in range(d):
            g = rows[i, j] + wd * weight[r, j]
            if first:
                b = g
            else:
                b = buf[r, j] * momentum + (one - dampening) * g
            buf[r, j] = b
            upd = g + momentum * b if nesterov else b
            weight[r, j] -= step * upd


def momentum_rows(weight, buf, idx, rows, lr, momentum, dampening, weight_decay, nesterov, first, scale=None) -> None:
    """In place lazy SGD with momentum on the unique rows ``idx`` (PyTorch's rule, ``first``: the
    parameter's first step, when the buffer starts as the gradient)."""
    if idx.shape[0]:
        t = weight.dtype.type
        _momentum_rows(table_work(rows.size, weight.nbytes), weight, buf, idx, rows, t(lr), t(momentum), t(dampening), t(weight_decay),
                       bool(nesterov), bool(first), _scale_arg(scale, weight.dtype))


@_dual
def _adam_replay(weight, m, v, rows, last, upto, lrs, offset, scale, bc1, bc2s, b1, c1, b2, c2, eps, wd, decoupled):  # pragma: no cover
    # Each row replays, on its own, the zero-gradient dense Adam steps it missed, with the same
    # float operations in the same order as Adam._update: the same bits as the Python replay.
    d = weight.shape[1]
    dt = weight.dtype.type
    zero = dt(0.0)
    scaled = scale.shape[0] > 0
    for i in nb.prange(rows.shape[0]):
        r = rows[i]
        sc = scale[i] if scaled else 1.0
        for k in range(last[r] + 1, upto + 1):
            lr = lrs[k - 1 - offset] * sc
            if decoupled:
                keep = dt(1.0 - lr * wd)
            step = dt(lr / bc1[k])
            for j in range(d):
                if decoupled:
                    weight[r, j] *= keep
                    g = zero
                else:
                    g = zero + dt(wd) * weight[r, j] if wd != 0.0 else zero
                mj = m[r, j] * b1
                mj = mj + c1 * g
                vj = v[r, j] * b2
                vj = vj + c2 * g * g
                m[r, j] = mj
                v[r, j] = vj
                den = np.sqrt(vj)
                den = den / bc2s[k]
                den = den + eps
                weight[r, j] -= step * (mj / den)


def _replay_work(weight, rows, last, upto: int) -> int:
    """Elements a replay touches at most: every row over the longest idle stretch."""
    return int((upto - int(last[rows].min())) * rows.shape[0] * weight.shape[1])


def adam_replay(weight, m, v, rows, last, upto, lrs, offset, scale, betas, eps, weight_decay, decoupled) -> None:
    """Exact-mode Adam: bring ``rows`` (unique) from step ``last[row]`` to ``upto`` with zero
    gradients, as the dense rule would have. ``lrs[k - 1 - offset]`` is step k's learning rate."""
    if not rows.shape[0]:
        return
    import math

    t = weight.dtype.type
    b1, b2 = betas
    first = int(last[rows].min()) + 1
    ks = range(first, upto + 1)
    bc1 = np.zeros(upto + 1, dtype=np.float64)
    bc2s = np.zeros(upto + 1, dtype=weight.dtype)
    for k in ks:  # the per-step constants, computed as Adam._update computes them
        bc1[k] = 1.0 - b1**k
        bc2s[k] = t(math.sqrt(1.0 - b2**k))
    work = _replay_work(weight, rows, last, upto)
    _adam_replay(work, weight, m, v, rows, last, np.int64(upto), np.asarray(lrs, dtype=np.float64), np.int64(offset),
                 _scale_arg(scale, np.float64), bc1, bc2s, t(b1), t(1.0 - b1), t(b2), t(1.0 - b2), t(eps),
                 float(weight_decay), bool(decoupled))


@_dual
def _sgd_replay(weight, buf, rows, last, upto, lrs, offset, scale, momentum, damp1, wd, nesterov):  # pragma: no cover
    # SGD.`_update` with a zero gradient, step by step, per row, the same float operations.
    d = weight.shape[1]
    dt = weight.dtype.type
    zero = dt(0.0)
    scaled = scale.shape[0] > 0
    use_m = momentum != zero
    for i in nb.prange(rows.shape[0]):
        r = rows[i]
        sc = scale[i] if scaled else 1.0
        for k in range(last[r] + 1, upto + 1):
            lr = dt(lrs[k - 1 - offset] * sc)
            for j in range(d):
                g = zero + wd * weight[r, j] if wd != zero else zero
                if use_m:
                    if k == 1:
                        b = g
                    else:
                        b = buf[r, j] * momentum
                        b = b + damp1 * g
                    buf[r, j] = b
                    g = g + momentum * b if nesterov else b
                weight[r, j] -= lr * g


def sgd_replay(weight, buf, rows, last, upto, lrs, offset, scale, momentum, dampening, weight_decay, nesterov) -> None:
    """Exact-mode SGD (momentum and/or weight decay): bring ``rows`` from ``last[row]`` to step
    ``upto`` with zero gradients, as the dense rule would have (``buf``: the momentum buffer)."""
    if not rows.shape[0]:
        return
    t = weight.dtype.type
    work = _replay_work(weight, rows, last, upto)
    _sgd_replay(work, weight, buf, rows, last, np.int64(upto), np.asarray(lrs, dtype=np.float64), np.int64(offset),
                _scale_arg(scale, np.float64), t(momentum), t(1.0 - dampening), t(weight_decay), bool(nesterov))


@_dual
def _adagrad_replay(weight, acc, rows, last, upto, lrs, offset, scale, lr_decay, wd, eps):  # pragma: no cover
    # Adagrad._update with a zero gradient (only weight decay moves a row), per row.
    d = weight.shape[1]
    dt = weight.dtype.type
    scaled = scale.shape[0] > 0
    for i in nb.prange(rows.shape[0]):
        r = rows[i]
        sc = scale[i] if scaled else 1.0
        for k in range(last[r] + 1, upto + 1):
            clr = dt(lrs[k - 1 - offset] * sc / (1.0 + (k - 1) * lr_decay))
            for j in range(d):
                g = dt(0.0) + wd * weight[r, j]
                a = acc[r, j] + g * g
                acc[r, j] = a
                std = np.sqrt(a) + eps
                weight[r, j] -= clr * (g / std)


def adagrad_replay(weight, acc, rows, last, upto, lrs, offset, scale, lr_decay, weight_decay, eps) -> None:
    """Exact-mode element-wise Adagrad with weight decay: the idle steps of ``rows`` up to ``upto``."""
    if not rows.shape[0]:
        return
    t = weight.dtype.type
    work = _replay_work(weight, rows, last, upto)
    _adagrad_replay(work, weight, acc, rows, last, np.int64(upto), np.asarray(lrs, dtype=np.float64), np.int64(offset),
                    _scale_arg(scale, np.float64), float(lr_decay), t(weight_decay), t(eps))


@nb.njit(cache=True, nogil=True)
def _ordered_pairs(flat, offsets, num_items):  # pragma: no cover - compiled
    total = 0
    for b in range(offsets.shape[0] - 1):
        n = offsets[b + 1] - offsets[b]
        total += n * (n - 1)
    keys = np.empty(total, dtype=np.int64)
    k = 0
    for b in range(offsets.shape[0] - 1):
        lo, hi = offsets[b], offsets[b + 1]
        for s in range(lo, hi):
            for t in range(lo, hi):
                if s != t:
                    keys[k] = flat[s] * num_items + flat[t]
                    k += 1
    return keys


def ordered_pairs(flat: np.ndarray, offsets: np.ndarray, num_items: int) -> np.ndarray:
    """Keys ``a * num_items + b`` of every ordered pair of distinct positions inside each basket.

    Baskets are ``flat[offsets[i]:offsets[i + 1]]`` and must hold distinct ids.
    """
    return _ordered_pairs(
        np.ascontiguousarray(flat, dtype=np.int64), np.ascontiguousarray(offsets, dtype=np.int64), np.int64(num_items)
    )
