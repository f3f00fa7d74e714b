"""Learnable arrays and their gradients.

A :class:`Parameter` holds ``data`` (a NumPy array, updated in place by optimizers) and ``grad``:
``None`` before any backward, a dense array for small weights, or a :class:`RowSparseGrad` for
embedding tables, where a step touches only a few rows of a large table.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_ids
from .kernels import coalesce_rows

__all__ = ["Parameter", "RowSparseGrad"]


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
    Repeated ids are summed (see :meth:`from_rows`), so an optimizer sees each row once per step
    and adaptive updates are never applied twice. A layer's backward may hand over its per-position
    rows instead and let the summing happen on first use of ``indices`` / ``values``: plain SGD then
    adds the rows straight into the table, in input order, in one pass (no sort, no summed copy).
    """

    __slots__ = ("_indices", "_values", "shape", "_scale", "_raw")

    def __init__(self, indices, values, shape, scale=None) -> None:
        # Optimizers write to `indices` rows with compiled code: an index outside the table would
        # be an out-of-bounds write, and a negative one a silent wrap. Checked here, once.
        shape = tuple(int(n) for n in shape)
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"`shape` must be (num_rows, dim); got {shape}.")
        idx = np.asarray(indices)
        vals = np.asarray(values)
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
        if scale is not None:
            scale = np.ascontiguousarray(scale, dtype=np.float64)
            if scale.shape != idx.shape:
                raise ValueError(f"`scale` must have one entry per index ({idx.shape[0]}); got shape {scale.shape}.")
        self._indices = np.ascontiguousarray(idx, dtype=np.int64)
        self._values = np.ascontiguousarray(vals)
        self.shape = shape
        self._scale = scale
        self._raw = None

    @classmethod
    def _deferred(cls, ids: np.ndarray, rows: np.ndarray, shape, skip: int, frozen, lr_scale,
                  copy: bool = True, sum_now: bool = False) -> "RowSparseGrad":
        """One row per position of checked 1-D int64 ``ids`` (negative ids and ``skip`` take no
        part; nor do rows marked in ``frozen``): summed only when first read. ``copy``: the
        caller may reuse its gradient buffer before the optimizer step reads it, so nothing of it
        may be kept: the rows are copied if ``sum_now`` is false, else summed per id at once (a
        new array, which the optimizer would build at its step anyway). Without ``copy`` they are
        kept as given, and nothing here ever writes to them."""
        obj = cls.__new__(cls)
        obj.shape = (int(shape[0]), int(shape[1]))
        obj._indices = obj._values = obj._scale = None
        rows = np.ascontiguousarray(rows)
        obj._raw = (ids, np.array(rows, copy=True) if copy and not sum_now else rows, int(skip), frozen, lr_scale)
        if copy and sum_now:
            obj._coalesce()
        return obj

    def _coalesce(self) -> None:
        ids, rows, skip, frozen, lr_scale = self._raw
        indices, values = coalesce_rows(ids, rows, skip, frozen, num_rows=self.shape[0])
        self._indices, self._values = indices, values
        self._scale = None if lr_scale is None else np.ascontiguousarray(lr_scale[indices], dtype=np.float64)
        self._raw = None

    @property
    def indices(self) -> np.ndarray:
        if self._raw is not None:
            self._coalesce()
        return self._indices

    @property
    def values(self) -> np.ndarray:
        if self._raw is not None:
            self._coalesce()
        return self._values

    @property
    def scale(self) -> np.ndarray | None:
        if self._raw is not None:
            self._coalesce()
        return self._scale

    def raw_rows(self):
        """``(ids, rows, skip, frozen, lr_scale)`` while the rows are not summed yet, else None."""
        return self._raw

    def __repr__(self) -> str:
        return f"RowSparseGrad(shape={self.shape}, rows={len(self.indices)})"

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
        # The optimizers over this parameter (id -> weak reference; they register themselves).
        # At each backward they are asked whether their step may read a row-sparse gradient as
        # one row per looked-up position (plain SGD adds them straight in) rather than summed
        # per id (every other rule). A layer that may not keep the caller's gradient rows copies
        # them unless every live optimizer here sums them; then it sums them at once, which
        # costs what the step's own sum would and saves the copy (measured, 12,800 ids,
        # 1,000,000-row table, backward + Adam: d = 64 1.43 vs 3.50 ms, d = 256 4.39 vs 8.17 ms).
        # Summing at once gives the same bits as summing at the step, and the copy is what SGD
        # reads either way, so the choice changes speed, not results; with no optimizer (one may
        # be built after the backward) the rows are copied. The one way to see a difference:
        # build a plain SGD between a backward and its step while, at that backward, only
        # summing optimizers were over the table; that SGD then adds the summed rows.
        self._readers: dict = {}
        # Called with the rows about to be read (None: all), so an exact-mode optimizer can first
        # bring them up to date. Keyed by optimizer, so registering twice is harmless.
        self._syncs: dict = {}

    def sync(self, rows: np.ndarray | None = None) -> None:
        """Bring ``rows`` (all if None) up to date before they are read (exact-mode optimizers)."""
        for fn in list(self._syncs.values()):
            fn(rows)

    @property
    def _reads_position_rows(self) -> bool:
        alive = False
        for key, ref in list(self._readers.items()):
            opt = ref()
            if opt is None:
                del self._readers[key]  # that optimizer is gone
                continue
            if opt._reads_position_rows():
                return True
            alive = True
        return not alive

    def __getstate__(self) -> dict:
        # A copy or pickle keeps no optimizer's registration (the optimizers are not copied
        # with it; a copied optimizer registers again, see Optimizer.__setstate__).
        state = self.__dict__.copy()
        state["_readers"], state["_syncs"] = {}, {}
        return state

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
