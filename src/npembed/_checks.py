"""Shared argument checks, so every error message uses the same wording.

The formula: name the argument, say what was expected, show what was received, and where it helps,
suggest the fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_ids", "check_positive_int", "check_positive_float", "check_float_dtype", "FormatError"]

# The compiled kernels are built for these two; anything else is refused up front rather than
# surfacing as a numba typing error.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class FormatError(ValueError):
    """A data file that cannot be read as asked.

    Carries the file and the 1-based line number so callers can point the user at the problem.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)


def _position(index: tuple[int, ...]) -> str:
    if len(index) == 1:
        return str(index[0])
    return "(" + ", ".join(str(i) for i in index) + ")"


def check_ids(ids: Any, num_embeddings: int, name: str = "ids") -> np.ndarray:
    """Return `ids` as an integer array after checking kind and range.

    Raises
    ------
    TypeError
        If `ids` is not an array of integers (floats and booleans are refused: NumPy would
        silently truncate or treat them as masks).
    IndexError
        If any id is outside ``[0, num_embeddings)``; the message names the first bad position.
        Negative ids are refused, never wrapped around as NumPy indexing would.
    """
    if isinstance(ids, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be integers; got a bool ({ids!r}).")
    try:
        arr = np.asarray(ids)
    except ValueError:
        raise ValueError(
            f"`{name}` must be a rectangular array of integers; ragged nested lists are not "
            "(pad them, or pass 1-D ids with offsets to an EmbeddingBag)."
        ) from None
    if arr.dtype == object and arr.size and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in arr.flat
    ):
        # Python ints beyond int64 land here; report them as out of range, not as a wrong type.
        bad = np.array([not 0 <= v < num_embeddings for v in arr.flat]).reshape(arr.shape)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise IndexError(
                f"`{name}` must be in [0, {num_embeddings}); got {arr[first]} at position {_position(first)}. "
                "Was the data encoded with another vocabulary?"
            )
        arr = arr.astype(np.int64)
    if arr.dtype == np.bool_:
        raise TypeError(
            f"`{name}` must be integers; got dtype bool. Convert a mask to ids with np.flatnonzero(mask)."
        )
    if arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":
            # np.asarray([]) is float64: an empty list is a valid (empty) batch of ids.
            return arr.astype(np.int64)
        raise TypeError(
            f"`{name}` must be integers; got dtype {arr.dtype}. "
            "Cast with ids.astype(np.int64) if the values are whole numbers."
        )
    if arr.size == 0:
        return arr
    lo = arr.min()
    hi = arr.max()
    if lo < 0 or hi >= num_embeddings:
        bad = (arr < 0) | (arr >= num_embeddings)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        value = int(arr[first])
        raise IndexError(
            f"`{name}` must be in [0, {num_embeddings}); got {value} at position {_position(first)}. "
            "Was the data encoded with another vocabulary?"
        )
    return arr


def check_float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """``dtype`` as a native float32 or float64 dtype; anything else is a TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"`{name}` must be float32 or float64; got {dtype!r}.") from None
    native = dt.newbyteorder("=") if dt.kind == "f" else dt
    if native not in FLOAT_DTYPES:
        raise TypeError(f"`{name}` must be float32 or float64; got {dt}.")
    return native


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be a positive integer; got {value!r}.")
    if value <= 0:
        raise ValueError(f"`{name}` must be a positive integer; got {value}.")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a positive number; got {value!r}.")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive, finite number; got {value}.")
    return float(value)
