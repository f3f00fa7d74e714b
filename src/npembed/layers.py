"""Small dense layers used around an embedding table: masked mean pooling and a linear map."""

from __future__ import annotations

import math
from typing import Any, Union

import numpy as np

from ._checks import FLOAT_DTYPES, check_float_dtype, check_positive_int
from .embedding import as_generator
from .kernels import masked_mean, masked_mean_backward
from .parameter import Parameter

__all__ = ["MeanPool", "Linear"]


class MeanPool:
    """Mean over the sequence axis of the positions a mask keeps (padding ignored).

    Shape
    -----
    ``x`` (batch, seq, dim) and ``mask`` (batch, seq) of bool  ->  (batch, dim).
    A row whose mask is all false pools to zeros.

    Notes
    -----
    ``out[b] = sum_t mask[b, t] x[b, t] / n_b`` with ``n_b = sum_t mask[b, t]``; its gradient is
    ``grad[b] / n_b`` at every kept position and zero at the others.

    Example
    -------
    >>> import numpy as np, npembed
    >>> pool = npembed.MeanPool()
    >>> x = np.array([[[1.0], [3.0], [100.0]]], dtype=np.float32)
    >>> pool(x, np.array([[True, True, False]])).tolist()
    [[2.0]]
    """

    def __init__(self) -> None:
        self._mask: np.ndarray | None = None
        self._counts: np.ndarray | None = None

    def forward(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"`x` must be a float32 or float64 array; got dtype {x.dtype}.")
        x = np.ascontiguousarray(x)
        mask = np.asarray(mask)
        if x.ndim != 3:
            raise ValueError(f"`x` must be 3-D (batch, seq, dim); got shape {x.shape}.")
        if mask.dtype != np.bool_:
            raise TypeError(f"`mask` must be a bool array; got dtype {mask.dtype}.")
        if mask.shape != x.shape[:2]:
            raise ValueError(f"`mask` must have shape {x.shape[:2]} (batch, seq); got {mask.shape}.")
        mask = np.ascontiguousarray(mask)
        out, counts = masked_mean(x, mask)
        self._mask, self._counts, self._x_dtype, self._dim = mask, counts, x.dtype, x.shape[2]
        return out

    __call__ = forward

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        if self._mask is None:
            raise RuntimeError("MeanPool.backward called before forward.")
        expected = (self._mask.shape[0], self._dim)
        grad_output = np.asarray(grad_output)
        if grad_output.shape != expected:
            raise ValueError(f"`grad_output` must have shape {expected} (batch, dim); got {grad_output.shape}.")
        if grad_output.dtype.kind not in "fiu":
            raise TypeError(f"`grad_output` must hold numbers; got dtype {grad_output.dtype}.")
        return masked_mean_backward(grad_output.astype(self._x_dtype, copy=False), self._mask, self._counts)

    def parameters(self) -> list[Parameter]:
        return []

    def __repr__(self) -> str:
        return "MeanPool()"


class Linear:
    """``y = x @ weight.T + bias``, with PyTorch's layout and default initialisation.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    rng : np.random.Generator or int, optional
        ``weight`` and ``bias`` are drawn from U(-k, k) with ``k = 1 / sqrt(in_features)``
        (PyTorch's ``nn.Linear`` default).
    dtype : dtype, default float32

    Shape
    -----
    ``(*, in_features) -> (*, out_features)``; ``weight`` is ``(out_features, in_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        rng: Union[np.random.Generator, int, None] = None,
        dtype: Any = np.float32,
    ):
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.dtype = check_float_dtype(dtype)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"`bias` must be True or False; got {bias!r}.")
        gen = as_generator(rng)
        k = 1.0 / math.sqrt(self.in_features)
        w = gen.uniform(-k, k, size=(self.out_features, self.in_features)).astype(self.dtype)
        self.weight = Parameter(w, name="weight")
        self.bias = Parameter(gen.uniform(-k, k, size=self.out_features).astype(self.dtype), name="bias") if bias else None
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"`x` must have last axis {self.in_features} (in_features); got shape {x.shape}.")
        self._x = x
        y = x @ self.weight.data.T
        if self.bias is not None:
            y += self.bias.data
        return y

    __call__ = forward

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward.")
        g = np.asarray(grad_output)
        if g.shape != self._x.shape[:-1] + (self.out_features,):
            raise ValueError(
                f"`grad_output` must have shape {self._x.shape[:-1] + (self.out_features,)}; got {g.shape}."
            )
        g2 = g.reshape(-1, self.out_features)
        x2 = self._x.reshape(-1, self.in_features)
        self.weight.accumulate(g2.T @ x2)
        if self.bias is not None:
            self.bias.accumulate(g2.sum(axis=0))
        return g @ self.weight.data

    def parameters(self) -> list[Parameter]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def state_dict(self) -> dict:
        return {"weight": self.weight.data.copy(), "bias": None if self.bias is None else self.bias.data.copy()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output in place."""
        for p, key in ((self.weight, "weight"), (self.bias, "bias")):
            if p is None:
                continue
            a = np.asarray(state[key])
            if a.shape != p.data.shape:
                raise ValueError(f"`{key}` in the state has shape {a.shape}; this layer's is {p.data.shape}.")
            p.data[...] = a

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"
