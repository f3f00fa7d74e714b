"""Software prefetch for compiled kernels.

A lookup, a bag reduction or a row update reads rows at random places in a large table; each row's
first cache line is a miss the hardware cannot predict. Kernels therefore ask for the rows a few
positions ahead (``llvm.prefetch``, a hint: it never faults and never changes a result), so their
loads overlap instead of waiting one after the other.
"""

from __future__ import annotations

import numba as nb
from llvmlite import binding as _llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# LLVM 17+ has only opaque pointers (intrinsic suffix ``p0``); older ones name the pointee type.
_NAME = "llvm.prefetch.p0" if _llvm.llvm_version_info[0] >= 17 else "llvm.prefetch.p0i8"
LINE = 64  # bytes per cache line
MAX_LINES = 32  # at most 2 KB of a row ahead: longer rows are streamed by the hardware prefetcher
# Tables of this many bytes or more are past the last-level cache (32 MiB on the machines
# measured): every row read is a miss worth hiding.
BIG_TABLE = 1 << 25


@intrinsic
def _prefetch(typingctx, arr, row, col):
    """Hint that ``arr[row, col]`` (a 2-D array) will be read soon."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    sig = types.void(arr, row, col)

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        inds = [context.cast(builder, args[1], sig.args[1], types.intp), context.cast(builder, args[2], sig.args[2], types.intp)]
        ptr = cgutils.get_item_pointer2(
            context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
            strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout, inds=inds,
            wraparound=False, boundscheck=False,
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _NAME)
        # read (0), locality 2 (x86: prefetcht1, into L2 and below, not L1), data (1). Measured
        # on AMD EPYC, one thread, bag sums of a 1,000,000 x 64 table: 3.0-3.3 ms with locality
        # 2 or 1 against 4.8-5.0 ms with 3 (prefetcht0): a prefetch into L1 holds one of L1's
        # few miss buffers until its line arrives, and the loads it should help wait for them.
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(2), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(inline="always", nogil=True)
def prefetch_row(arr, row):  # pragma: no cover - compiled
    """Hint that row ``row`` of the C-contiguous 2-D ``arr`` will be read soon (every cache line
    of it, up to :data:`MAX_LINES`)."""
    step = max(LINE // arr.itemsize, 1)
    d = arr.shape[1]
    lines = min((d + step - 1) // step, MAX_LINES)
    for c in range(lines):
        _prefetch(arr, row, c * step)


@nb.njit(inline="always", nogil=True)
def distance(arr):  # pragma: no cover - compiled
    """How many positions ahead to prefetch (0: not at all). Rows under two cache lines of a table
    that fits the cache are not worth it (measured: the hints cost more than the misses they hide);
    short rows are asked for further ahead than long ones."""
    row = arr.shape[1] * arr.itemsize
    if row < 2 * LINE and arr.shape[0] * row < BIG_TABLE:
        return 0
    return 16 if row <= 256 else 8
