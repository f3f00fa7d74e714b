"""How many threads npembed's kernels and the BLAS calls under it use.

The default is every core this process may run on. :func:`set_num_threads` changes it for the
compiled kernels (numba; the setting belongs to the calling thread, as numba's does) and for the
BLAS library NumPy calls (OpenBLAS, MKL, ... through ``threadpoolctl``). Results do not depend on
it: parallel kernels split work by output row, so the same inputs give the same bits at any
thread count.
"""

from __future__ import annotations

import contextlib
import os

import numba as nb

__all__ = ["available_cores", "get_num_threads", "set_num_threads", "num_threads"]

_blas_limit = None  # the threadpoolctl handle of the current BLAS limit


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return max(os.cpu_count() or 1, 1)


def _check(n) -> int:
    import numpy as np

    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of threads must be a positive integer or None (all cores); got {n!r}.")
    n = int(n)
    top = nb.config.NUMBA_NUM_THREADS
    if n > top:
        raise ValueError(
            f"{n} threads asked for, but numba started with at most {top}; set the environment variable "
            f"NUMBA_NUM_THREADS={n} before Python starts to allow more."
        )
    return n


def _resolve(n) -> int:
    return min(available_cores(), nb.config.NUMBA_NUM_THREADS) if n is None else _check(n)


def set_num_threads(n: int | None = None) -> int:
    """Use ``n`` threads (``None``: all available cores, capped by numba's limit) in the kernels and
    in BLAS. Returns the number set."""
    global _blas_limit
    n = _resolve(n)
    from threadpoolctl import threadpool_limits

    nb.set_num_threads(n)
    if _blas_limit is not None:
        _blas_limit.restore_original_limits()
    _blas_limit = threadpool_limits(limits=n, user_api="blas")
    return n


def get_num_threads() -> int:
    """The number of threads the kernels use now (numba's setting for the calling thread)."""
    return nb.get_num_threads()


@contextlib.contextmanager
def num_threads(n: int | None):
    """``with npembed.num_threads(1): ...`` runs a block with ``n`` threads (kernels and BLAS),
    then restores what was set before."""
    n = _resolve(n)
    from threadpoolctl import threadpool_limits

    before = nb.get_num_threads()
    blas = threadpool_limits(limits=n, user_api="blas")
    nb.set_num_threads(n)
    try:
        yield n
    finally:
        nb.set_num_threads(before)
        blas.restore_original_limits()
