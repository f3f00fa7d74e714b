"""Memory for large tables: transparent huge pages where the system offers them.

A lookup or a row update touches rows at random places in a table. With ordinary 4 KiB pages
every row of a table past the last-level cache also misses the TLB, and inside a virtual machine a
TLB miss walks two sets of page tables. Tables (and optimizer states) of :data:`HUGE_MIN_BYTES` or
more are therefore mapped anonymously and marked ``MADV_HUGEPAGE``, so that Linux backs them with
2 MiB pages when ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` or ``always``
(measured on a 2-core VM: a lookup of 12,800 rows of a 1,000,000 x 16 table went from 0.31 to
0.13 ms). Elsewhere (no ``MADV_HUGEPAGE``, or ``never``) the same call gives ordinary memory. It
is only a hint: results never depend on it.

``NPEMBED_HUGE_PAGES=0`` in the environment turns it off.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from .kernels._prefetch import BIG_TABLE

__all__ = ["HUGE_MIN_BYTES", "huge_pages_enabled", "in_huge_pages", "as_table", "table_empty", "table_zeros", "table_copy", "table_full"]

HUGE_MIN_BYTES = BIG_TABLE  # past the last-level cache: the tables whose rows miss the TLB too
_HUGE = 2 << 20  # bytes in one huge page (x86-64, arm64 with 4 KiB base pages)
_MADV = getattr(mmap, "MADV_HUGEPAGE", None)


def huge_pages_enabled() -> bool:
    """Whether large tables are allocated with the huge-page hint (Linux, not turned off)."""
    return _MADV is not None and os.environ.get("NPEMBED_HUGE_PAGES", "1").strip() not in ("0", "false", "no", "off")


def table_empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``; a large one lies in memory
    marked for huge pages (zero-filled, as fresh anonymous memory is), a small one is ``np.empty``."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < HUGE_MIN_BYTES or not huge_pages_enabled():
        return np.empty(shape, dtype=dtype)
    try:
        # One huge page more than needed, so the table can start on a huge-page boundary; the
        # pages never touched take no memory.
        region = mmap.mmap(-1, nbytes + _HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(_MADV)
    except (OSError, ValueError, AttributeError):  # no such mapping or hint here: ordinary memory
        return np.empty(shape, dtype=dtype)
    raw = np.frombuffer(region, dtype=np.uint8)  # keeps `region` alive as long as any view of it
    start = -raw.ctypes.data % _HUGE
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def table_zeros(shape: tuple, dtype) -> np.ndarray:
    """``np.zeros(shape, dtype)``, in huge pages when large (pages are zeroed when first touched)."""
    out = table_empty(shape, dtype)
    return out if in_huge_pages(out) else np.zeros(shape, dtype=dtype)


def in_huge_pages(arr: np.ndarray) -> bool:
    """Whether ``arr`` lies in memory allocated by :func:`table_empty` with the huge-page hint."""
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer's owner
        base = base.obj
    return isinstance(base, mmap.mmap)


def table_copy(arr: np.ndarray, dtype=None) -> np.ndarray:
    """A C-contiguous copy of ``arr`` (cast to ``dtype`` if given), in huge pages when large."""
    arr = np.asarray(arr)
    out = table_empty(arr.shape, arr.dtype if dtype is None else dtype)
    np.copyto(out, arr, casting="unsafe")
    return out


def as_table(arr: np.ndarray) -> np.ndarray:
    """``arr`` itself if it is small or already in memory from :func:`table_empty`, else a copy
    of it there (for the arrays that users' initialisers return)."""
    if arr.nbytes < HUGE_MIN_BYTES or not huge_pages_enabled() or in_huge_pages(arr):
        return arr
    return table_copy(arr)


def table_full(shape: tuple, value, dtype) -> np.ndarray:
    """An array of ``shape`` filled with ``value`` (every page written now), in huge pages when large."""
    out = table_empty(shape, dtype)
    out.fill(value)
    return out
