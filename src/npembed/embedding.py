"""The embedding layer: a learnable ``(num_embeddings, embedding_dim)`` table looked up by id."""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from . import init as _init
from ._checks import check_float_dtype, check_ids, check_positive_int
from .kernels import gather_rows
from .parameter import Parameter, RowSparseGrad

__all__ = ["Embedding", "embedding", "embedding_backward", "as_generator"]


def as_generator(rng: Union[np.random.Generator, int, None]) -> np.random.Generator:
    """A ``np.random.Generator`` from a generator, a seed, or ``None`` (seed 0: deterministic)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"`rng` as a seed must be a non-negative integer; got {rng}.")
        return np.random.default_rng(int(rng))
    raise TypeError(f"`rng` must be a np.random.Generator, an int seed or None; got {type(rng).__name__}.")


def embedding(weight: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Pure lookup: ``(*ids.shape) -> (*ids.shape, embedding_dim)``. ``ids`` must be range-checked."""
    flat = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    return gather_rows(weight, flat).reshape(ids.shape + (weight.shape[1],))


def embedding_backward(
    ids: np.ndarray, grad_output: np.ndarray, num_embeddings: int, padding_idx: int | None = None
) -> RowSparseGrad:
    """Gradient of the lookup for the table: a scatter-add of ``grad_output`` rows onto ``ids``.

    Repeated ids are summed; the ``padding_idx`` row gets nothing.
    """
    d = grad_output.shape[-1]
    return RowSparseGrad.from_rows(ids.reshape(-1), grad_output.reshape(-1, d), (num_embeddings, d), padding_idx)


class _Pretrained:
    """A matrix given to ``from_pretrained``: copied as is, padding row included."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix


def _normalize_padding_idx(padding_idx: Any, num_embeddings: int) -> int | None:
    if padding_idx is None:
        return None
    if isinstance(padding_idx, (bool, np.bool_)) or not isinstance(padding_idx, (int, np.integer)):
        raise TypeError(f"`padding_idx` must be an int or None; got {padding_idx!r}.")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(
            f"`padding_idx` must be in [-{num_embeddings}, {num_embeddings}) (negative counts from the end); "
            f"got {padding_idx}."
        )
    return int(padding_idx) % num_embeddings


class Embedding:
    """A lookup table of ``num_embeddings`` learned vectors of size ``embedding_dim``.

    Parameters
    ----------
    num_embeddings : int
        Number of rows (the vocabulary size, padding row included).
    embedding_dim : int
        Size of each vector.
    padding_idx : int, optional
        Row whose vector starts at zero and never receives a gradient (negative values count from
        the end, as in PyTorch). Use it for the id that pads variable-length inputs.
    init : str or callable or ndarray, default "normal"
        Initialiser (see :mod:`npembed.init`): ``"normal"`` draws N(0, 1) like PyTorch's
        ``nn.Embedding``; ``"uniform"``, ``"xavier_uniform"``, ``"zeros"``; a callable
        ``(shape, rng, dtype) -> array`` such as ``npembed.init.uniform(-0.1, 0.1)``; or a
        ``(num_embeddings, embedding_dim)`` array to copy.
    rng : np.random.Generator or int, optional
        Source of every random draw; ``None`` means ``np.random.default_rng(0)``.
    dtype : dtype, default float32
    freeze : bool, default False
        If true the table gets no gradient (``weight.requires_grad`` is false).

    Shape
    -----
    ``ids`` of any shape ``(*)``, integers in ``[0, num_embeddings)``  ->  ``(*, embedding_dim)``.

    Raises
    ------
    TypeError
        For float or bool ids.
    IndexError
        For ids outside ``[0, num_embeddings)``, naming the first bad position and value.
        Negative ids are never wrapped around.

    Notes
    -----
    The lookup is ``out[...] = weight[ids[...]]``. Its gradient for the table is a scatter-add:
    row ``r`` receives the sum of ``grad_output`` over every position where ``ids == r``.
    :meth:`backward` stores it as a :class:`~npembed.RowSparseGrad` (sorted unique ids plus one
    summed row each), so a step never builds a ``num_embeddings x embedding_dim`` array.

    Example
    -------
    >>> import numpy as np, npembed
    >>> emb = npembed.Embedding(10, 3, padding_idx=0, rng=42)
    >>> out = emb(np.array([[1, 2, 0], [4, 4, 9]]))
    >>> out.shape
    (2, 3, 3)
    >>> emb.backward(np.ones_like(out))
    >>> emb.weight.grad.indices.tolist(), emb.weight.grad.values[:, 0].tolist()
    ([1, 2, 4, 9], [1.0, 1.0, 2.0, 1.0])
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        padding_idx: int | None = None,
        init: Union[str, _init.Initializer, np.ndarray] = "normal",
        rng: Union[np.random.Generator, int, None] = None,
        dtype: Any = np.float32,
        freeze: bool = False,
    ):
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.padding_idx = _normalize_padding_idx(padding_idx, self.num_embeddings)
        self.dtype = check_float_dtype(dtype)
        self._init = init if isinstance(init, (np.ndarray, _Pretrained)) else _init.resolve(init)
        self._rng = as_generator(rng)
        self.weight = Parameter(np.empty((0, 0), self.dtype), requires_grad=not freeze, name="weight")
        self._ids: np.ndarray | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the table again from the initialiser (the padding row set to zero)."""
        shape = (self.num_embeddings, self.embedding_dim)
        if isinstance(self._init, _Pretrained):
            # from_pretrained keeps the given padding row, as PyTorch does.
            self.weight.data = np.array(self._init.matrix, dtype=self.dtype, copy=True)
            self.weight.grad = None
            return
        if isinstance(self._init, np.ndarray):
            if self._init.shape != shape:
                raise ValueError(f"`init` array must have shape {shape}; got {self._init.shape}.")
            if self._init.dtype.kind not in "fiu":
                raise TypeError(f"`init` array must hold numbers; got dtype {self._init.dtype}.")
            table = np.array(self._init, dtype=self.dtype, copy=True)
            if not np.isfinite(table).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(table))[0])
                raise ValueError(f"`init` array must be finite; got {table[bad]} at position {bad}.")
        else:
            table = _init.apply(self._init, shape, self._rng, self.dtype)
        if self.padding_idx is not None:
            table[self.padding_idx] = 0
        self.weight.data = table
        self.weight.grad = None

    @classmethod
    def from_pretrained(
        cls,
        matrix: np.ndarray,
        freeze: bool = True,
        padding_idx: int | None = None,
        dtype: Any = None,
    ) -> "Embedding":
        """An embedding whose table is a copy of ``matrix`` (2-D).

        As in PyTorch, ``freeze=True`` by default and the ``padding_idx`` row keeps its given values
        (it only stops receiving gradient).
        """
        arr = np.asarray(matrix)
        if arr.ndim != 2:
            raise ValueError(f"`matrix` must be 2-D (num_embeddings, embedding_dim); got shape {arr.shape}.")
        if 0 in arr.shape:
            raise ValueError(f"`matrix` must have at least one row and one column; got shape {arr.shape}.")
        if arr.dtype.kind not in "fiu" or (arr.dtype.kind != "f" and dtype is None):
            raise TypeError(f"`matrix` must hold floats; got dtype {arr.dtype}. Pass dtype=np.float32 to convert.")
        if dtype is None:
            try:
                dtype = check_float_dtype(arr.dtype)
            except TypeError:
                raise TypeError(
                    f"`matrix` has dtype {arr.dtype}; npembed computes in float32 or float64. Pass dtype=np.float32 to convert."
                ) from None
        if not np.all(np.isfinite(arr)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            raise ValueError(f"`matrix` must be finite; got {arr[bad]} at position {bad}.")
        return cls(
            arr.shape[0], arr.shape[1], padding_idx=padding_idx, init=_Pretrained(arr), dtype=dtype, freeze=freeze
        )

    def forward(self, ids: Any) -> np.ndarray:
        """Look up ``ids`` of any shape; keeps them for :meth:`backward`."""
        arr = check_ids(ids, self.num_embeddings)
        self._ids = np.array(arr, dtype=np.int64)  # a copy: the caller may reuse its buffer
        return embedding(self.weight.data, self._ids)

    __call__ = forward

    def backward(self, grad_output: np.ndarray) -> None:
        """Accumulate the row-sparse table gradient into ``weight.grad``; ids have no gradient."""
        if self._ids is None:
            raise RuntimeError("Embedding.backward called before forward: call the layer on ids first.")
        expected = self._ids.shape + (self.embedding_dim,)
        grad_output = np.asarray(grad_output)
        if grad_output.shape != expected:
            raise ValueError(
                f"`grad_output` must have shape {expected} (ids.shape + (embedding_dim,)); got {grad_output.shape}."
            )
        if not self.weight.requires_grad:
            return None
        grad = embedding_backward(
            self._ids, grad_output.astype(self.dtype, copy=False), self.num_embeddings, self.padding_idx
        )
        self.weight.accumulate(grad)
        return None

    def parameters(self) -> list[Parameter]:
        return [self.weight]

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if not self.weight.requires_grad:
            s += ", freeze=True"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s

    def __repr__(self) -> str:
        return f"Embedding({self.extra_repr()})"
