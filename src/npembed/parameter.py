"""Learnable arrays and their gradients.

A :class:`Parameter` holds ``data`` (a NumPy array, updated in place by optimizers) and ``grad``:
``None`` before any backward, a dense array for small weights, or a :class:`RowSparseGrad` for
embedding tables, where a step touches only a few rows of a large table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_ids
from .kernels import coalesce_rows

__all__ = ["Parameter", "RowSparseGrad"]


@dataclass(frozen=True)
class RowSparseGrad:
    """Gradient of a ``(num_rows, dim)`` table that is zero outside a few rows.

    Attributes
    ----------
    indices : ndarray of int64, shape (k,)
        Sorted, unique row ids.
    values : ndarray, shape (k, dim)
        The summed gradient of each of those rows.
    shape : tuple of int
        Shape of the full table, ``(num_rows, dim)``.
    scale : ndarray of float, shape (k,), optional
        Per-row learning-rate multipliers (from :meth:`Embedding.set_lr_scale`); optimizers
        multiply each row's step by it. ``None`` means 1 for every row.

    Notes
    -----
    Repeated ids are summed when the gradient is built (see :meth:`from_rows`), so an optimizer
    sees each row once per step and adaptive updates are never applied twice.
    """

    indices: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]
    scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Optimizers write to `indices` rows with compiled code: an index outside the table would
        # be an out-of-bounds write, and a negative one a silent wrap. Checked here, once.
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"`shape` must be (num_rows, dim); got {self.shape}.")
        idx = np.asarray(self.indices)
        vals = np.asarray(self.values)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise TypeError(f"`indices` must be a 1-D integer array; got shape {idx.shape}, dtype {idx.dtype}.")
        if vals.shape != (idx.shape[0], shape[1]):
            raise ValueError(f"`values` must have shape ({idx.shape[0]}, {shape[1]}) to match `indices`; got {vals.shape}.")
        if idx.size:
            if idx[0] < 0 or idx[-1] >= shape[0] or (idx.size > 1 and not np.all(idx[1:] > idx[:-1])):
                raise ValueError(
                    f"`indices` must be sorted, unique and in [0, {shape[0]}); build the gradient with "
                    "RowSparseGrad.from_rows(ids, rows, shape), which sums repeated ids."
                )
        if self.scale is not None:
            sc = np.ascontiguousarray(self.scale, dtype=np.float64)
            if sc.shape != idx.shape:
                raise ValueError(f"`scale` must have one entry per index ({idx.shape[0]}); got shape {sc.shape}.")
            object.__setattr__(self, "scale", sc)
        object.__setattr__(self, "indices", np.ascontiguousarray(idx, dtype=np.int64))
        object.__setattr__(self, "values", np.ascontiguousarray(vals))
        object.__setattr__(self, "shape", shape)

    @classmethod
    def from_rows(
        cls,
        ids: np.ndarray,
        rows: np.ndarray,
        shape: tuple[int, int],
        skip: int | None = None,
        *,
        frozen: np.ndarray | None = None,
        scale_by_freq: bool = False,
        lr_scale: np.ndarray | None = None,
    ) -> "RowSparseGrad":
        """Build from one gradient row per id: repeated ids are summed.

        ``ids`` of any shape ``(*)`` in ``[0, shape[0])``; ``rows`` of shape ``(*, shape[1])``.
        Rows of id ``skip`` and of ids whose entry in the bool array ``frozen`` is true are
        dropped. ``scale_by_freq`` divides each summed row by the number of times its id occurs.
        ``lr_scale`` (one multiplier per table row) fills :attr:`scale` for the rows kept.
        """
        ids = check_ids(ids, int(shape[0]))
        rows = np.asarray(rows)
        if rows.shape != ids.shape + (int(shape[1]),):
            raise ValueError(f"`rows` must have shape {ids.shape + (int(shape[1]),)} (ids.shape + (dim,)); got {rows.shape}.")
        indices, values, counts = coalesce_rows(
            ids.reshape(-1),
            rows.reshape(-1, int(shape[1])),
            -1 if skip is None else int(skip),
            frozen,
            return_counts=True,
            num_rows=int(shape[0]),
        )
        if scale_by_freq and len(indices):
            values /= counts[:, None].astype(values.dtype)
        scale = None if lr_scale is None else lr_scale[indices]
        return cls(indices, values, tuple(shape), scale)

    def __add__(self, other: "RowSparseGrad") -> "RowSparseGrad":
        if not isinstance(other, RowSparseGrad):
            return NotImplemented
        if other.shape != self.shape:
            raise ValueError(f"cannot add row-sparse gradients of shapes {self.shape} and {other.shape}.")
        ids = np.concatenate([self.indices, other.indices])
        rows = np.concatenate([self.values, other.values])
        summed = RowSparseGrad.from_rows(ids, rows, self.shape)
        if self.scale is None and other.scale is None:
            return summed
        ones = np.ones
        scales = np.concatenate([
            self.scale if self.scale is not None else ones(len(self.indices)),
            other.scale if other.scale is not None else ones(len(other.indices)),
        ])
        _, first = np.unique(ids, return_index=True)  # sorted like summed.indices
        return RowSparseGrad(summed.indices, summed.values, self.shape, scales[first])

    def to_dense(self) -> np.ndarray:
        """The full ``shape`` array (for tests and small tables; training never calls this)."""
        dense = np.zeros(self.shape, dtype=self.values.dtype)
        dense[self.indices] = self.values
        return dense


class Parameter:
    """A learnable array.

    Parameters
    ----------
    data : ndarray
        The values; optimizers update this array in place.
    requires_grad : bool
        ``False`` freezes it: layers leave ``grad`` at ``None`` and optimizers skip it.
    name : str
        Used in ``repr`` and in saved files.
    """

    def __init__(self, data: np.ndarray, requires_grad: bool = True, name: str = ""):
        self.data = data
        self.grad: np.ndarray | RowSparseGrad | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        # Per-row rules of a table (kept up to date by its Embedding): rows that must not move, and
        # learning-rate multipliers. Optimizers read them when they replay idle steps.
        self.row_frozen: np.ndarray | None = None
        self.row_lr_scale: np.ndarray | None = None
        # Called with the rows about to be read (None: all), so an exact-mode optimizer can first
        # bring them up to date. Keyed by optimizer, so registering twice is harmless.
        self._syncs: dict = {}

    def sync(self, rows: np.ndarray | None = None) -> None:
        """Bring ``rows`` (all if None) up to date before they are read (exact-mode optimizers)."""
        for fn in list(self._syncs.values()):
            fn(rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def accumulate(self, grad: np.ndarray | RowSparseGrad) -> None:
        """Add ``grad`` to ``self.grad`` (which starts at ``None`` after ``zero_grad``)."""
        if not self.requires_grad:
            return
        if tuple(grad.shape) != self.data.shape:
            raise ValueError(f"gradient of shape {grad.shape} does not match parameter {self.name or ''} of shape {self.data.shape}.")
        if self.grad is None:
            self.grad = grad
        elif isinstance(self.grad, RowSparseGrad) and isinstance(grad, RowSparseGrad):
            self.grad = self.grad + grad
        elif isinstance(self.grad, RowSparseGrad):
            self.grad = self.grad.to_dense() + grad
        elif isinstance(grad, RowSparseGrad):
            self.grad = self.grad.copy()
            self.grad[grad.indices] += grad.values  # indices are unique
        else:
            self.grad = self.grad + grad

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", frozen"
        return f"Parameter({self.name or 'unnamed'}, shape={self.data.shape}, dtype={self.data.dtype}{frozen})"
