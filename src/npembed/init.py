"""Initialisers for embedding tables and weights.

An initialiser is a callable ``init(shape, rng, dtype) -> ndarray``. Every random draw goes through
the ``np.random.Generator`` passed in, so a seed fixes the table. Strings name the defaults:
``"normal"`` (N(0, 1), PyTorch's ``nn.Embedding`` default), ``"uniform"`` (U(-0.05, 0.05), Keras'
default), ``"xavier_uniform"`` / ``"glorot_uniform"`` and ``"zeros"``.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np

from ._alloc import table_copy, table_empty, table_zeros

__all__ = ["normal", "uniform", "xavier_uniform", "zeros", "resolve", "apply", "Initializer"]

Initializer = Callable[[tuple, np.random.Generator, np.dtype], np.ndarray]


def _floating(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"`dtype` must be a floating-point type such as float32; got {dt}.")
    return dt


def _std_normal(shape, rng, dtype):
    dt = _floating(dtype)
    if dt in (np.float32, np.float64):  # drawn in place: the same numbers as without `out`
        return rng.standard_normal(dtype=dt, out=table_empty(shape, dt))
    return table_copy(rng.standard_normal(shape), dt)


def _std_uniform(shape, rng, dtype):
    dt = _floating(dtype)
    if dt in (np.float32, np.float64):
        return rng.random(dtype=dt, out=table_empty(shape, dt))
    return table_copy(rng.random(shape), dt)


def _number(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number; got {value!r}.")
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite; got {value}.")
    return float(value)


def _fresh(init):
    """Mark a built-in initialiser: it returns a new array of its own, placed for lookups
    (:mod:`npembed._alloc`), that a layer may keep as its table without copying."""
    init.fresh_table = True
    return init


def normal(mean: float = 0.0, std: float = 1.0) -> Initializer:
    """Draw each entry from N(mean, std^2)."""
    mean, std = _number(mean, "mean"), _number(std, "std")
    if not std >= 0:
        raise ValueError(f"`std` must be >= 0; got {std}.")

    def init(shape, rng, dtype=np.float32):
        out = _std_normal(shape, rng, dtype)
        out *= out.dtype.type(std)
        out += out.dtype.type(mean)
        return out

    init.__qualname__ = f"normal(mean={mean}, std={std})"
    return _fresh(init)


def uniform(low: float = -0.05, high: float = 0.05) -> Initializer:
    """Draw each entry from U(low, high)."""
    low, high = _number(low, "low"), _number(high, "high")
    if not high > low:
        raise ValueError(f"`uniform` needs low < high; got low={low}, high={high}.")

    def init(shape, rng, dtype=np.float32):
        out = _std_uniform(shape, rng, dtype)
        out *= out.dtype.type(high - low)
        out += out.dtype.type(low)
        return out

    init.__qualname__ = f"uniform(low={low}, high={high})"
    return _fresh(init)


def xavier_uniform(gain: float = 1.0) -> Initializer:
    """Glorot/Xavier uniform: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    For a 2-D ``(rows, cols)`` array, ``fan_in = cols`` and ``fan_out = rows``, as in PyTorch.
    """

    def init(shape, rng, dtype=np.float32):
        if len(shape) != 2:
            raise ValueError(f"xavier_uniform needs a 2-D shape; got {shape}.")
        a = gain * math.sqrt(6.0 / (shape[0] + shape[1]))
        return uniform(-a, a)(shape, rng, dtype)

    init.__qualname__ = f"xavier_uniform(gain={gain})"
    return _fresh(init)


def zeros() -> Initializer:
    """All zeros."""

    def init(shape, rng, dtype=np.float32):
        return table_zeros(shape, _floating(dtype))

    init.__qualname__ = "zeros()"
    return _fresh(init)


_NAMED = {
    "normal": normal,
    "uniform": uniform,
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "zeros": zeros,
}


def apply(init: Initializer, shape: tuple, rng: np.random.Generator, dtype) -> np.ndarray:
    """Call ``init`` and check that it returned a finite array of ``shape``, cast to ``dtype``."""
    out = init(shape, rng, dtype)
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape):
        got = out.shape if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"the `init` callable must return an array of shape {tuple(shape)}; got {got}.")
    if out.dtype.kind not in "fiu":
        raise TypeError(f"the `init` callable must return numbers; got dtype {out.dtype}.")
    out = np.ascontiguousarray(out, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError("the `init` callable returned NaN or infinite values.")
    return out


def resolve(init: Union[str, Initializer]) -> Initializer:
    """Turn a name or a callable into an initialiser."""
    if isinstance(init, str):
        try:
            return _NAMED[init]()
        except KeyError:
            raise ValueError(
                f"`init` must be one of {sorted(_NAMED)} or a callable; got {init!r}."
            ) from None
    if callable(init):
        return init
    raise TypeError(
        f"`init` must be a name, a callable (shape, rng, dtype) -> array, or use "
        f"Embedding.from_pretrained for a given matrix; got {type(init).__name__}."
    )
