"""The embedding layer: a learnable ``(num_embeddings, embedding_dim)`` table looked up by id."""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from . import init as _init
from ._alloc import table_copy
from ._checks import check_float_dtype, check_ids, check_positive_int
from .kernels import gather_checked, gather_rows
from .parameter import Parameter, RowSparseGrad

__all__ = ["Embedding", "as_generator"]


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


class _Pretrained:
    """A matrix given to ``from_pretrained``: copied as is, padding row included."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix


def _normalize_padding_idx(padding_idx: Any, num_embeddings: int, name: str = "padding_idx") -> int | None:
    if padding_idx is None:
        return None
    if isinstance(padding_idx, (bool, np.bool_)) or not isinstance(padding_idx, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int or None; got {padding_idx!r}.")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(
            f"`{name}` must be in [-{num_embeddings}, {num_embeddings}) (negative counts from the end); "
            f"got {padding_idx}."
        )
    return int(padding_idx) % num_embeddings


INVALID_POLICIES = ("raise", "zero", "fallback")
MAX_NORM_MODES = ("renorm", "clip")
SPECIAL_RULES = ("frozen", "trainable")


def _norm_type(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`norm_type` must be a number; got {value!r}.")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"`norm_type` must be a finite number > 0 (2 for the Euclidean norm); got {value}.")
    return float(value)


def _row_norms(rows: np.ndarray, p: float) -> np.ndarray:
    a = np.abs(rows.astype(np.float64, copy=False))
    if p == 2.0:
        return np.sqrt(np.einsum("ij,ij->i", a, a))
    return (a**p).sum(axis=1) ** (1.0 / p)


class Embedding:
    """A lookup table of ``num_embeddings`` learned vectors of size ``embedding_dim``.

    Parameters
    ----------
    num_embeddings : int
        Number of rows (the vocabulary size, padding and special rows included).
    embedding_dim : int
        Size of each vector.
    padding_idx : int, optional
        Row whose vector starts at zero and never receives a gradient (negative values count from
        the end, as in PyTorch). ``EmbeddingBag`` also leaves it out of its reductions.
    special_ids : dict of int to {"frozen", "trainable"}, optional
        Further special rows (e.g. a mask or unknown token). Each starts at zero (``from_pretrained``
        keeps the given rows, as for the padding row); a "frozen" one never receives a gradient, a
        "trainable" one learns. Negative ids count from the end.
    max_norm : float, optional
        Keep looked-up vectors at most this long in the ``norm_type`` norm. Two modes:
        ``max_norm_mode="renorm"`` (default) is PyTorch's: before the lookup, every table row the
        batch references whose norm exceeds ``max_norm`` is rescaled *in the table* by
        ``max_norm / (norm + 1e-7)``; the rescaling itself has no gradient.
        ``max_norm_mode="clip"`` leaves the table alone and scales each *output* vector the same
        way, differentiably (its backward includes the derivative of the norm).
    norm_type : float, default 2
    scale_grad_by_freq : bool, default False
        Divide each row's gradient by how often its id occurs in the batch (as PyTorch).
    invalid_ids : {"raise", "zero", "fallback"}, default "raise"
        What an id outside ``[0, num_embeddings)`` does: raise ``IndexError`` (naming position,
        value and range); look up a zero vector that gets no gradient; or look up row
        ``fallback_idx`` instead. ``num_embeddings`` itself, ``-1`` (never wrapped around to the
        last row) and huge values are all invalid. Float or bool ids are a ``TypeError`` whatever
        the policy. An empty id array gives an empty output.
    fallback_idx : int, optional
        The row used for invalid ids when ``invalid_ids="fallback"``.
    init : str or callable or ndarray, default "normal"
        Initialiser (see :mod:`npembed.init`): ``"normal"`` draws N(0, 1) like PyTorch's
        ``nn.Embedding``; ``"uniform"``, ``"xavier_uniform"``, ``"zeros"``; a callable
        ``(shape, rng, dtype) -> array`` such as ``npembed.init.uniform(-0.1, 0.1)``; or a
        ``(num_embeddings, embedding_dim)`` array to copy.
    rng : np.random.Generator or int, optional
        Source of every random draw; ``None`` means ``np.random.default_rng(0)``.
    dtype : float32 (default) or float64
    freeze : bool, default False
        If true the table gets no gradient (``weight.requires_grad`` is false).
        :meth:`freeze_rows` and :meth:`set_lr_scale` act on single rows.

    Shape
    -----
    ``ids`` of any shape ``(*)``  ->  ``(*, embedding_dim)``.

    Raises
    ------
    TypeError
        For float or bool ids.
    IndexError
        For ids outside ``[0, num_embeddings)`` under ``invalid_ids="raise"``, naming the first
        bad position and value. Negative ids are never wrapped around.

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
        special_ids: dict | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        max_norm_mode: str = "renorm",
        scale_grad_by_freq: bool = False,
        invalid_ids: str = "raise",
        fallback_idx: int | None = None,
        init: Union[str, _init.Initializer, np.ndarray] = "normal",
        rng: Union[np.random.Generator, int, None] = None,
        dtype: Any = np.float32,
        freeze: bool = False,
    ):
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.padding_idx = _normalize_padding_idx(padding_idx, self.num_embeddings)
        self.special_ids = self._check_special_ids(special_ids)
        if max_norm is not None:
            if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float, np.integer, np.floating)):
                raise TypeError(f"`max_norm` must be a positive number or None; got {max_norm!r}.")
            if not (np.isfinite(max_norm) and max_norm > 0):
                raise ValueError(f"`max_norm` must be a positive, finite number or None; got {max_norm}.")
            max_norm = float(max_norm)
        self.max_norm = max_norm
        self.norm_type = _norm_type(norm_type)
        if max_norm_mode not in MAX_NORM_MODES:
            raise ValueError(f"`max_norm_mode` must be one of {MAX_NORM_MODES}; got {max_norm_mode!r}.")
        self.max_norm_mode = max_norm_mode
        self.scale_grad_by_freq = bool(scale_grad_by_freq)
        if invalid_ids not in INVALID_POLICIES:
            raise ValueError(f"`invalid_ids` must be one of {INVALID_POLICIES}; got {invalid_ids!r}.")
        self.invalid_ids = invalid_ids
        if invalid_ids == "fallback":
            if fallback_idx is None:
                raise ValueError("`invalid_ids='fallback'` needs `fallback_idx`, the row to use for invalid ids.")
            fallback_idx = _normalize_padding_idx(fallback_idx, self.num_embeddings, name="fallback_idx")
        elif fallback_idx is not None:
            raise ValueError("`fallback_idx` is used only with invalid_ids='fallback'.")
        self.fallback_idx = fallback_idx
        self.dtype = check_float_dtype(dtype)
        self._init = init if isinstance(init, (np.ndarray, _Pretrained)) else _init.resolve(init)
        self._rng = as_generator(rng)
        self.weight = Parameter(np.empty((0, 0), self.dtype), requires_grad=not freeze, name="weight")
        # Rows that never receive a gradient (padding, frozen special ids, freeze_rows), and the
        # per-row learning-rate multipliers; both made only when first needed.
        # `_frozen` is what the gradient skips: rows frozen outright (padding, frozen special ids,
        # freeze_rows) or by a learning-rate scale of 0; `_frozen_rows` keeps the first kind alone.
        self._frozen: np.ndarray | None = None
        self._frozen_rows: np.ndarray | None = None
        self._lr_scale: np.ndarray | None = None
        fixed = self._always_frozen()
        if fixed:
            self._frozen_rows = np.zeros(self.num_embeddings, dtype=np.bool_)
            self._frozen_rows[fixed] = True
            self._update_frozen()
        self._ids: np.ndarray | None = None
        self._shape: tuple = ()
        self._clip: tuple | None = None
        self.reset_parameters()

    def _always_frozen(self) -> list:
        """The rows no rule may unfreeze: the padding row and the "frozen" special ids."""
        rows = [i for i, rule in self.special_ids.items() if rule == "frozen"]
        return rows if self.padding_idx is None else [self.padding_idx] + rows

    def _check_special_ids(self, special_ids) -> dict:
        if special_ids is None:
            return {}
        if not isinstance(special_ids, dict):
            raise TypeError(f"`special_ids` must be a dict of id -> 'frozen' or 'trainable'; got {type(special_ids).__name__}.")
        out = {}
        for key, rule in special_ids.items():
            r = _normalize_padding_idx(key, self.num_embeddings, name="special_ids key")
            if r in out:
                raise ValueError(f"`special_ids` names row {r} twice (negative ids count from the end).")
            if rule not in SPECIAL_RULES:
                raise ValueError(f"`special_ids[{key}]` must be one of {SPECIAL_RULES}; got {rule!r}.")
            if r == self.padding_idx:
                raise ValueError(f"`special_ids` repeats padding_idx {key}; the padding row is already frozen at zero.")
            out[r] = rule
        return out

    def _update_frozen(self) -> None:
        frozen = self._frozen_rows
        if self._lr_scale is not None:
            zero = self._lr_scale == 0
            frozen = zero if frozen is None else frozen | zero
        self._frozen = frozen if frozen is not None and frozen.any() else None
        self.weight.row_frozen = self._frozen
        self.weight.row_lr_scale = self._lr_scale

    def reset_parameters(self) -> None:
        """Draw the table again from the initialiser (padding and special rows set to zero)."""
        shape = (self.num_embeddings, self.embedding_dim)
        if isinstance(self._init, _Pretrained):
            # from_pretrained keeps the given padding row, as PyTorch does.
            self.weight.data = table_copy(self._init.matrix, self.dtype)
            self.weight.grad = None
            return
        if isinstance(self._init, np.ndarray):
            if self._init.shape != shape:
                raise ValueError(f"`init` array must have shape {shape}; got {self._init.shape}.")
            if self._init.dtype.kind not in "fiu":
                raise TypeError(f"`init` array must hold numbers; got dtype {self._init.dtype}.")
            table = table_copy(self._init, self.dtype)
            if not np.isfinite(table).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(table))[0])
                raise ValueError(f"`init` array must be finite; got {table[bad]} at position {bad}.")
        else:
            table = _init.apply(self._init, shape, self._rng, self.dtype)
            if not getattr(self._init, "fresh_table", False):
                # A user's initialiser's array: copied, so rows start on cache lines (see
                # npembed._alloc) and the padding row is never zeroed in the caller's array.
                table = table_copy(table)
        if self.padding_idx is not None:
            table[self.padding_idx] = 0
        for r in self.special_ids:
            table[r] = 0
        self.weight.data = table
        self.weight.grad = None

    @classmethod
    def from_pretrained(
        cls,
        matrix: np.ndarray,
        freeze: bool = True,
        padding_idx: int | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> "Embedding":
        """An embedding whose table is a copy of ``matrix`` (2-D).

        As in PyTorch, ``freeze=True`` by default and the ``padding_idx`` row keeps its given values
        (it only stops receiving gradient). Other keyword arguments (``max_norm``,
        ``invalid_ids``, ...) are passed to the constructor.
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
            arr.shape[0], arr.shape[1], padding_idx=padding_idx, init=_Pretrained(arr), dtype=dtype, freeze=freeze, **kwargs
        )

    # ---- per-row training controls -------------------------------------------------------

    def freeze_rows(self, ids: Any, frozen: bool = True) -> None:
        """Stop (or, with ``frozen=False``, resume) gradients for the rows ``ids``.

        E.g. keep 400,000 loaded pre-trained rows fixed while new rows train. The padding row
        and ``"frozen"`` special ids always stay frozen.
        """
        rows = check_ids(ids, self.num_embeddings).reshape(-1)
        # A new array, never a change in place: a gradient of an earlier backward that is not yet
        # summed per id keeps the rules in force when it was computed, whether it was summed at
        # once or is summed at the step.
        new = np.zeros(self.num_embeddings, dtype=np.bool_) if self._frozen_rows is None else self._frozen_rows.copy()
        new[rows] = bool(frozen)
        new[self._always_frozen()] = True  # padding and "frozen" special ids stay frozen
        self._frozen_rows = new
        self._update_frozen()

    def set_lr_scale(self, ids: Any, scale: float | np.ndarray) -> None:
        """Multiply the optimizer's step for rows ``ids`` by ``scale`` (>= 0), one number or one per id.

        Works with every optimizer's row-sparse update: SGD's step and Adam's step are scaled. A
        scale of 0 freezes a row (its moments do not advance) until a later non-zero scale.
        """
        rows = check_ids(ids, self.num_embeddings).reshape(-1)
        sc = np.asarray(scale, dtype=np.float64)
        if sc.ndim:
            if sc.size != rows.size:
                raise ValueError(f"`scale` must be one number or one per id ({rows.size}); got shape {sc.shape}.")
            sc = sc.reshape(-1)
        sc = np.broadcast_to(sc, rows.shape)
        if not np.all(np.isfinite(sc)) or np.any(sc < 0):
            raise ValueError(f"`scale` must be finite and >= 0; got {scale!r}.")
        new = np.ones(self.num_embeddings, dtype=np.float64) if self._lr_scale is None else self._lr_scale.copy()
        new[rows] = sc  # a new array, as in freeze_rows
        self._lr_scale = new
        self._update_frozen()

    @property
    def frozen_rows(self) -> np.ndarray:
        """Sorted ids of the rows that receive no gradient."""
        return np.empty(0, np.int64) if self._frozen is None else np.flatnonzero(self._frozen)

    # ---- ids --------------------------------------------------------------------------------

    def _fast_forward(self, ids: Any):
        """The common case in one compiled pass: integer ids, all in range, no exact-mode sync,
        no max_norm. Returns None to take the general path (which also raises the errors)."""
        if self.invalid_ids != "raise" or self.max_norm is not None or self.weight._syncs:
            return None
        # np.asarray: a subclass (np.matrix stays 2-D when flattened) becomes a plain view.
        arr = np.asarray(ids) if isinstance(ids, np.ndarray) else None
        if arr is None or arr.dtype.kind not in "iu" or arr.dtype == np.uint64 or not arr.dtype.isnative:
            return None
        res = gather_checked(self.weight.data, arr.reshape(-1))
        if res is None:
            return None  # an id out of range: the general path names it
        out, flat = res
        self._clip = None
        self._ids, self._shape = flat, arr.shape
        return out.reshape(arr.shape + (self.embedding_dim,))

    def _resolve_ids(self, ids: Any) -> np.ndarray:
        """Checked ids as int64 of the same shape; under invalid_ids="zero" an invalid id is -1."""
        if self.invalid_ids == "raise":
            return np.array(check_ids(ids, self.num_embeddings), dtype=np.int64)
        arr = np.asarray(ids)
        if arr.dtype == object:
            vals = list(arr.flat)
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in vals):
                check_ids(arr, self.num_embeddings)  # raises the TypeError
            bad = np.array([not 0 <= v < self.num_embeddings for v in vals], dtype=bool).reshape(arr.shape)
            out = np.where(bad, 0, arr).astype(np.int64)
        else:
            check_ids(np.zeros(0, dtype=arr.dtype) if arr.dtype.kind in "iu" else arr, self.num_embeddings)
            bad = (arr < 0) | (arr >= self.num_embeddings)
            out = np.where(bad, 0, arr).astype(np.int64)
        out[bad] = -1 if self.invalid_ids == "zero" else self.fallback_idx
        return out

    def _renorm(self, flat: np.ndarray) -> None:
        """PyTorch's max_norm: rescale, in the table, the referenced rows longer than max_norm."""
        rows = np.unique(flat[flat >= 0])
        w = self.weight.data
        norms = _row_norms(w[rows], self.norm_type)
        over = norms > self.max_norm
        if over.any():
            scale = self.max_norm / (norms[over] + 1e-7)
            w[rows[over]] *= scale[:, None].astype(w.dtype)

    # ---- forward / backward -----------------------------------------------------------------

    def forward(self, ids: Any) -> np.ndarray:
        """Look up ``ids`` of any shape; keeps them for :meth:`backward`."""
        self._ids = None  # a forward that fails leaves nothing for backward to reuse
        fast = self._fast_forward(ids)
        if fast is not None:
            return fast
        resolved = self._resolve_ids(ids)
        flat = resolved.reshape(-1)
        if self.weight._syncs and flat.size:
            self.weight.sync(np.unique(flat[flat >= 0]))  # exact-mode optimizers: no stale rows read
        if self.max_norm is not None and self.max_norm_mode == "renorm" and flat.size:
            self._renorm(flat)
        invalid = flat < 0
        any_invalid = bool(invalid.any())
        out = gather_rows(self.weight.data, np.where(invalid, 0, flat) if any_invalid else flat)
        if any_invalid:
            out[invalid] = 0
        self._clip = None
        if self.max_norm is not None and self.max_norm_mode == "clip" and flat.size:
            norms = _row_norms(out, self.norm_type)
            over = norms > self.max_norm
            if over.any():
                self._clip = (out.copy(), norms, over)
                out[over] *= (self.max_norm / (norms[over] + 1e-7))[:, None].astype(out.dtype)
        self._ids, self._shape = flat, resolved.shape
        return out.reshape(resolved.shape + (self.embedding_dim,))

    __call__ = forward

    def _clip_backward(self, g: np.ndarray) -> np.ndarray:
        """Gradient through ``out = e * c / (n + eps)`` for rows with ``n = ||e||_p > c``."""
        e_all, norms, over = self._clip
        e = e_all[over].astype(np.float64)
        n = norms[over][:, None]
        gi = g[over].astype(np.float64)
        c, p = self.max_norm, self.norm_type
        # d n / d e = sign(e) |e|^(p-1) / n^(p-1)
        # (a zero component gets 0, the subgradient, also for p < 1 where |e|^(p-1) is infinite there)
        with np.errstate(divide="ignore", invalid="ignore"):  # the inf * 0 at zeros is replaced below
            dn = np.where(e == 0, 0.0, np.sign(e) * np.abs(e) ** (p - 1)) / n ** (p - 1)
        ge = gi * c / (n + 1e-7) - (c * (gi * e).sum(axis=1, keepdims=True) / (n + 1e-7) ** 2) * dn
        g = g.copy()
        g[over] = ge.astype(g.dtype)
        return g

    def backward(self, grad_output: np.ndarray, *, donate: bool = False) -> None:
        """Accumulate the row-sparse table gradient into ``weight.grad``; ids have no gradient.

        The gradient keeps one row of ``grad_output`` per looked-up position until the optimizer
        step reads it. By default nothing of ``grad_output`` is kept, so the caller may change
        or reuse it at once: the rows are copied, or summed per id at once when every optimizer
        over the table would sum them (all but SGD; the same bits). ``donate=True`` hands the
        array over instead: no copy (at d = 256 the copy is a quarter to a third of backward +
        SGD step), and the caller must not change it before the step, nor refill it for another
        backward before the step (with gradient accumulation, rows are read when the next
        gradient is added). PyTorch's sparse gradients keep the caller's array the same way.
        npembed never writes into it.
        """
        if not isinstance(donate, (bool, np.bool_)):
            raise TypeError(f"`donate` must be True or False; got {donate!r}.")
        if self._ids is None:
            raise RuntimeError("Embedding.backward called before forward: call the layer on ids first.")
        expected = self._shape + (self.embedding_dim,)
        grad_output = np.asarray(grad_output)
        if grad_output.shape != expected:
            raise ValueError(
                f"`grad_output` must have shape {expected} (ids.shape + (embedding_dim,)); got {grad_output.shape}."
            )
        if not self.weight.requires_grad:
            return None
        g = grad_output.astype(self.dtype, copy=False).reshape(-1, self.embedding_dim)
        if self._clip is not None:
            g = self._clip_backward(g)
        # A converted or clipped gradient is already a new array: nothing to protect.
        keep = bool(donate) or not np.may_share_memory(g, grad_output)
        self.weight.accumulate(self._row_grad(self._ids, g, keep))
        return None

    def _row_grad(self, flat: np.ndarray, rows: np.ndarray, keep: bool = False) -> RowSparseGrad:
        """The table gradient from one gradient row per looked-up position (invalid ids are -1,
        already checked in forward): summed on first use, or added straight in by plain SGD.
        ``keep``: ``rows`` may be kept as they are (nobody else will change them)."""
        if not self.scale_grad_by_freq:
            return RowSparseGrad._deferred(flat, rows, (self.num_embeddings, self.embedding_dim), -1, self._frozen,
                                           self._lr_scale, copy=not keep, sum_now=not self.weight._reads_position_rows)
        valid = flat >= 0
        if not valid.all():  # invalid_ids="zero": those positions looked up nothing
            flat, rows = flat[valid], rows[valid]
        return RowSparseGrad.from_rows(
            flat,
            rows,
            (self.num_embeddings, self.embedding_dim),
            frozen=self._frozen,
            scale_by_freq=self.scale_grad_by_freq,
            lr_scale=self._lr_scale,
        )

    def attend(self, x: np.ndarray) -> np.ndarray:
        """Scores of ``x`` against every row: ``x @ weight.T``, ``(*, embedding_dim) -> (*, num_embeddings)``.

        Lets an output layer share the table (tied weights); :meth:`attend_backward` gives the
        gradients.
        """
        x = np.asarray(x)
        if x.shape[-1:] != (self.embedding_dim,):
            raise ValueError(f"`x` must have last axis {self.embedding_dim} (embedding_dim); got shape {x.shape}.")
        if x.dtype.kind != "f":
            raise TypeError(f"`x` must be a float array; got dtype {x.dtype}.")
        self._attend_x = x
        self.weight.sync(None)
        return x @ self.weight.data.T

    def attend_backward(self, grad_scores: np.ndarray) -> np.ndarray:
        """Accumulate the table gradient of :meth:`attend` (every row but frozen ones) and return ``d x``."""
        x = getattr(self, "_attend_x", None)
        if x is None:
            raise RuntimeError("Embedding.attend_backward called before attend.")
        g = np.asarray(grad_scores)
        if g.shape != x.shape[:-1] + (self.num_embeddings,):
            raise ValueError(f"`grad_scores` must have shape {x.shape[:-1] + (self.num_embeddings,)}; got {g.shape}.")
        g2 = g.reshape(-1, self.num_embeddings)
        if self.weight.requires_grad:
            dense = (g2.T @ x.reshape(-1, self.embedding_dim)).astype(self.dtype, copy=False)
            keep = np.arange(self.num_embeddings) if self._frozen is None else np.flatnonzero(~self._frozen)
            scale = None if self._lr_scale is None else self._lr_scale[keep]
            self.weight.accumulate(RowSparseGrad(keep, dense[keep], (self.num_embeddings, self.embedding_dim), scale))
        return (g2 @ self.weight.data).reshape(x.shape)

    def parameters(self) -> list[Parameter]:
        return [self.weight]

    def state_dict(self) -> dict:
        """Copies of the table and the per-row rules (frozen rows, learning-rate multipliers).

        An exact-mode optimizer first brings idle rows up to date, so the table saved is the
        one its state describes, whichever of the two is saved first."""
        self.weight.sync(None)
        return {
            "weight": self.weight.data.copy(),
            "frozen_rows": None if self._frozen_rows is None else self._frozen_rows.copy(),
            "lr_scale": None if self._lr_scale is None else self._lr_scale.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output; the table is written in place (optimizers keep it)."""
        w = np.asarray(state["weight"])
        if w.shape != self.weight.data.shape:
            raise ValueError(f"`weight` in the state has shape {w.shape}; this layer's is {self.weight.data.shape}.")
        if w.dtype.kind != "f" or not np.isfinite(w).all():
            raise ValueError("`weight` in the state must hold finite floats.")
        for key in ("frozen_rows", "lr_scale"):
            v = state.get(key)
            if v is not None and np.shape(v) != (self.num_embeddings,):
                raise ValueError(f"`{key}` in the state must have shape ({self.num_embeddings},); got {np.shape(v)}.")
        lr_scale = None if state.get("lr_scale") is None else np.array(state["lr_scale"], dtype=np.float64)
        if lr_scale is not None and not (np.isfinite(lr_scale).all() and (lr_scale >= 0).all()):
            raise ValueError("`lr_scale` in the state must be finite and >= 0.")
        frozen = None if state.get("frozen_rows") is None else np.array(state["frozen_rows"], dtype=np.bool_)
        # The layer's own fixed rows (padding, frozen special ids) stay frozen whatever the state says.
        fixed = self._always_frozen()
        if fixed:
            frozen = np.zeros(self.num_embeddings, dtype=np.bool_) if frozen is None else frozen
            frozen[fixed] = True
        self.weight.data[...] = w
        self._frozen_rows, self._lr_scale = frozen, lr_scale
        self._update_frozen()

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.special_ids:
            s += f", special_ids={self.special_ids}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}, max_norm_mode={self.max_norm_mode!r}"
            if self.norm_type != 2.0:
                s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        if self.invalid_ids != "raise":
            s += f", invalid_ids={self.invalid_ids!r}"
        if not self.weight.requires_grad:
            s += ", freeze=True"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s

    def __repr__(self) -> str:
        return f"Embedding({self.extra_repr()})"
