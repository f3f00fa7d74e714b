"""Memory for tables and optimizer states: aligned rows, and huge pages for large tables.

A lookup or a row update touches rows at random places in a table, and every cache line a row
spans is a separate trip to memory. NumPy places a large array 16 bytes past a page boundary, so a
row of 64 bytes (16 float32) spans two cache lines instead of one: measured on a 2-core VM, a
lookup of 12,800 rows of a 1,000,000 x 16 table took 0.68 ms there and 0.23 ms with the table
starting on a cache line. Tables from here therefore start on a 64-byte boundary.

Tables of :data:`HUGE_MIN_BYTES` or more (past the last-level cache) are also mapped anonymously,
start on a 2 MiB boundary and are marked ``MADV_HUGEPAGE``, so that Linux backs them with huge pages
when ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` or ``always``: fewer TLB misses
(measured: up to 20% on the same lookup). NumPy marks its own large arrays the same way by default;
``NPEMBED_HUGE_PAGES=0`` in the environment stops npembed from doing it (alignment stays). These
are placement choices only: results never depend on them.
"""

from __future__ import annotations

import mmap
import os
import weakref

import numpy as np

from .kernels._prefetch import BIG_TABLE

__all__ = ["HUGE_MIN_BYTES", "ALIGN", "huge_pages_enabled", "in_huge_pages", "owns", "table_empty",
           "table_zeros", "table_copy", "table_full"]

HUGE_MIN_BYTES = BIG_TABLE  # past the last-level cache: the tables whose rows miss the TLB too
ALIGN = 64  # bytes: one cache line
_HUGE = 2 << 20  # bytes in one huge page (x86-64, arm64 with 4 KiB base pages)
_MADV = getattr(mmap, "MADV_HUGEPAGE", None)
# The buffers behind the arrays made here, by id (an entry leaves with its buffer).
_OWNED: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


_ON, _OFF = ("", "1", "true", "yes", "on"), ("0", "false", "no", "off")


def huge_pages_enabled() -> bool:
    """Whether large tables are mapped with the huge-page hint (Linux, and ``NPEMBED_HUGE_PAGES``
    not 0 / false / no / off, in any case)."""
    value = os.environ.get("NPEMBED_HUGE_PAGES", "1").strip().lower()
    if value not in _ON + _OFF:
        raise ValueError(
            f"the environment variable NPEMBED_HUGE_PAGES must be 1 / true / yes / on or 0 / false / no / off; "
            f"got {os.environ['NPEMBED_HUGE_PAGES']!r}."
        )
    return _MADV is not None and value in _ON


def _root(arr: np.ndarray):
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base  # np.frombuffer's owner


def owns(arr: np.ndarray) -> bool:
    """Whether ``arr`` lies in memory from :func:`table_empty`."""
    root = _root(arr)
    return _OWNED.get(id(root)) is root


def in_huge_pages(arr: np.ndarray) -> bool:
    """Whether ``arr`` lies in memory that :func:`table_empty` marked for huge pages."""
    return isinstance(_root(arr), mmap.mmap) and owns(arr)


def _carve(raw: np.ndarray, nbytes: int, align: int, shape: tuple, dtype: np.dtype) -> np.ndarray:
    start = -raw.ctypes.data % align
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _marked_region(nbytes: int):
    """An anonymous private mapping of ``nbytes`` marked for huge pages, or None where this system
    has no such mapping or hint (the caller then uses ordinary memory)."""
    try:
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(_MADV)
    except (OSError, ValueError, AttributeError):
        return None
    return region


def table_empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` starting on a cache line; a
    large one on a huge-page boundary, in memory marked for huge pages (zero-filled, as fresh
    anonymous memory is)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    # One huge page more than needed, so the table can start on a huge-page boundary; pages
    # never touched take no memory.
    region = _marked_region(nbytes + _HUGE) if nbytes >= HUGE_MIN_BYTES and huge_pages_enabled() else None
    if region is not None:
        _OWNED[id(region)] = region
        return _carve(np.frombuffer(region, dtype=np.uint8), nbytes, _HUGE, shape, dtype)
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    _OWNED[id(raw)] = raw
    return _carve(raw, nbytes, ALIGN, shape, dtype)


def table_zeros(shape: tuple, dtype) -> np.ndarray:
    """``np.zeros(shape, dtype)`` placed as :func:`table_empty` places it (fresh mapped memory is
    already zero: its pages are zeroed when first touched)."""
    out = table_empty(shape, dtype)
    if not in_huge_pages(out):
        out.fill(0)
    return out


def table_copy(arr: np.ndarray, dtype=None) -> np.ndarray:
    """A C-contiguous copy of ``arr`` (cast to ``dtype`` if given), placed as :func:`table_empty`."""
    arr = np.asarray(arr)
    out = table_empty(arr.shape, arr.dtype if dtype is None else dtype)
    np.copyto(out, arr, casting="unsafe")
    return out


def table_full(shape: tuple, value, dtype) -> np.ndarray:
    """An array of ``shape`` filled with ``value`` (every page written now), placed as :func:`table_empty`."""
    out = table_empty(shape, dtype)
    out.fill(value)
    return out
