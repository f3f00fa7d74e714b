"""EmbeddingBag: look up bags of ids and reduce each bag to one vector without building ``(n, d)``."""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from ._checks import FLOAT_DTYPES
from .embedding import Embedding
from .kernels.bag import MODES, bag_forward, bag_groups, bag_sum_checked, bag_table_grad, bag_weight_grad
from .parameter import Parameter, RowSparseGrad

__all__ = ["EmbeddingBag"]


def _modes(mode: Union[str, Sequence[str]]) -> tuple[str, ...]:
    if not isinstance(mode, (str, list, tuple)):
        raise TypeError(f"`mode` must be a mode name or a sequence of them, e.g. ('mean', 'max'); got {mode!r}.")
    modes = (mode,) if isinstance(mode, str) else tuple(mode)
    if not modes:
        raise ValueError(f"`mode` must name at least one of {sorted(MODES)}; got an empty sequence.")
    for m in modes:
        if m not in MODES:
            raise ValueError(f"`mode` must be one of {sorted(MODES)} (or a sequence of them); got {m!r}.")
    if len(set(modes)) != len(modes):
        raise ValueError(f"`mode` lists a mode twice: {modes}.")
    return modes


def _as_array(a: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(a)
    except ValueError:
        raise ValueError(
            f"`{name}` must be a rectangular array; ragged nested lists are not (pass 1-D ids with `offsets`)."
        ) from None


def _check_kwargs(kwargs: dict) -> None:
    if kwargs.get("max_norm_mode", "renorm") != "renorm":
        raise ValueError("EmbeddingBag supports max_norm_mode='renorm' only (PyTorch's); clip with an Embedding.")


def _int_array(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":
            return arr.astype(np.int64)
        raise TypeError(f"`{name}` must be integers; got dtype {arr.dtype}.")
    return arr.astype(np.int64)


def _offsets(offsets: Any, n: int, include_last_offset: bool) -> np.ndarray:
    """Checked bag starts for ``n`` ids as int64 CSR offsets (bags + 1,), ending at ``n``."""
    offs = _int_array(offsets, "offsets")
    if offs.ndim != 1:
        raise ValueError(f"`offsets` must be 1-D; got shape {offs.shape}.")
    if include_last_offset:
        if offs.size == 0:
            raise ValueError("with include_last_offset=True `offsets` needs at least one entry (the end).")
        if offs[-1] != n:
            raise ValueError(
                f"with include_last_offset=True the last offset must equal len(ids) = {n}; got {offs[-1]}."
            )
    else:
        offs = np.append(offs, n)
    if offs.size > 1:
        if offs[0] != 0:
            raise ValueError(f"`offsets` must start at 0 (the first bag starts at the first id); got {offs[0]}.")
        if offs.max() > n:
            k = int(np.argmax(offs > n))
            raise ValueError(f"`offsets` must be <= len(ids) = {n}; got {offs[k]} at position {k}.")
        dec = np.flatnonzero(np.diff(offs) < 0)
        if dec.size:
            k = int(dec[0])
            raise ValueError(f"`offsets` must not decrease; got {offs[k]} then {offs[k + 1]} at position {k + 1}.")
    return offs


_NO_ARG = np.full((0, 0), -1, dtype=np.int64)


class EmbeddingBag:
    """Sums, means, maxima (and more) of bags of embeddings, computed without the per-id vectors.

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    mode : str or sequence of str, default "mean"
        ``"sum"``, ``"mean"``, ``"max"``, ``"min"`` or ``"sqrtn"`` (sum divided by the square root
        of the number of ids, or of the sum of squared weights). Several modes, e.g.
        ``("mean", "max")``, give their results side by side: ``(bags, len(modes) * embedding_dim)``.
    padding_idx : int, optional
        Its row starts at zero and gets no gradient; positions holding it are left out of the
        reduction and of the mean's count, unless ``include_padding=True``.
    include_padding : bool, default False
    empty_value : float, default 0
        The value of every entry of a bag with nothing to reduce (no ids, or only padding).
    **kwargs
        Passed to the underlying :class:`Embedding`: ``init``, ``rng``, ``dtype``, ``freeze``,
        ``special_ids``, ``invalid_ids``, ``fallback_idx``, ``max_norm`` and ``norm_type``
        (renorm mode only), ``scale_grad_by_freq``.

    Shape
    -----
    Three input forms, each giving ``(bags, len(modes) * embedding_dim)``:

    * ``ids`` 2-D ``(bags, length)``: fixed-length bags;
    * ``ids`` 1-D ``(n,)`` with ``offsets`` ``(bags,)``, each the start of a bag (bags in order,
      the last runs to the end), or with ``include_last_offset=True`` ``(bags + 1,)`` (CSR:
      bag ``b`` is ``ids[offsets[b]:offsets[b + 1]]``, and the last offset is ``n``);
    * ``ids`` 2-D padded with a bool ``mask`` of the same shape: true marks the real ids.

    ``per_sample_weights`` has the shape of ``ids``.

    Notes
    -----
    With weights ``w`` (1 if none) over the bag's kept positions ``i``:

    * sum: ``sum_i w_i e_i``
    * mean: ``sum_i w_i e_i / sum_i w_i`` (weights that sum to zero are an error)
    * sqrtn: ``sum_i w_i e_i / sqrt(sum_i w_i^2)``
    * max / min: the elementwise extreme over the bag. ``per_sample_weights`` is refused: a
      weighted maximum has no standard meaning. Each output entry's gradient goes to the one
      position that holds the extreme; on a tie, the earliest position in the bag.

    The backward gives the table a row-sparse gradient and, when weights were given, returns
    their gradient (same shape as ``per_sample_weights``). ``scale_grad_by_freq`` divides a row's
    gradient by its id's count over all the ids of the call, as ``torch.nn.functional.embedding``
    does (PyTorch 2.13's ``embedding_bag`` gives other numbers for some inputs, e.g. ids
    ``[2, 1, 1, 1]`` with offsets ``[0, 2]`` scale row 2 by 1/3 though it occurs once).

    Example
    -------
    >>> import numpy as np, npembed
    >>> bag = npembed.EmbeddingBag(10, 4, mode="sum", rng=0)
    >>> out = bag(np.array([1, 2, 4, 5, 4, 3, 2, 9]), offsets=np.array([0, 4]))
    >>> out.shape
    (2, 4)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        mode: Union[str, Sequence[str]] = "mean",
        *,
        padding_idx: int | None = None,
        include_padding: bool = False,
        empty_value: float = 0.0,
        **kwargs: Any,
    ):
        _check_kwargs(kwargs)
        self._setup(mode, None, include_padding, empty_value)
        self.embedding = Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx, **kwargs)

    def _setup(self, mode, embedding, include_padding, empty_value) -> None:
        self.modes = _modes(mode)
        if isinstance(empty_value, bool) or not isinstance(empty_value, (int, float, np.integer, np.floating)) or not np.isfinite(empty_value):
            raise ValueError(f"`empty_value` must be a finite number; got {empty_value!r}.")
        self.embedding = embedding
        self.include_padding = bool(include_padding)
        self.empty_value = float(empty_value)
        self._cache: tuple | None = None

    @classmethod
    def from_pretrained(
        cls,
        matrix: np.ndarray,
        freeze: bool = True,
        mode: Union[str, Sequence[str]] = "mean",
        *,
        include_padding: bool = False,
        empty_value: float = 0.0,
        **kwargs: Any,
    ) -> "EmbeddingBag":
        """A bag layer over a copy of ``matrix``; as PyTorch, frozen by default."""
        _check_kwargs(kwargs)
        layer = cls.__new__(cls)
        layer._setup(mode, Embedding.from_pretrained(matrix, freeze=freeze, **kwargs), include_padding, empty_value)
        return layer

    @property
    def weight(self) -> Parameter:
        return self.embedding.weight

    @property
    def num_embeddings(self) -> int:
        return self.embedding.num_embeddings

    @property
    def embedding_dim(self) -> int:
        return self.embedding.embedding_dim

    @property
    def padding_idx(self) -> int | None:
        return self.embedding.padding_idx

    def _csr(self, ids, offsets, per_sample_weights, include_last_offset, mask):
        """Any input form -> (flat ids (n,), offsets (bags + 1,), weights (n,) or None)."""
        ids_arr = _as_array(ids, "ids")
        w = None
        if per_sample_weights is not None:
            w = _as_array(per_sample_weights, "per_sample_weights")
            if w.dtype.kind not in "fiu" or w.dtype == np.bool_:
                raise TypeError(f"`per_sample_weights` must be floats; got dtype {w.dtype}.")
            if w.shape != ids_arr.shape:
                raise ValueError(f"`per_sample_weights` must have the shape of `ids` {ids_arr.shape}; got {w.shape}.")
            for m in self.modes:
                if m in ("max", "min"):
                    raise ValueError(
                        f"`per_sample_weights` is not defined for mode {m!r} (a weighted maximum has no standard "
                        "meaning); use 'sum', 'mean' or 'sqrtn'."
                    )
        if mask is not None:
            if offsets is not None:
                raise ValueError("pass either `offsets` (1-D ids) or `mask` (padded 2-D ids), not both.")
            mask = np.asarray(mask)
            if mask.dtype != np.bool_:
                raise TypeError(f"`mask` must be a bool array; got dtype {mask.dtype}.")
            if ids_arr.ndim != 2 or mask.shape != ids_arr.shape:
                raise ValueError(f"`mask` must have the shape of 2-D `ids` {ids_arr.shape}; got {mask.shape}.")
            lengths = mask.sum(axis=1)
            offs = np.zeros(ids_arr.shape[0] + 1, dtype=np.int64)
            np.cumsum(lengths, out=offs[1:])
            # Masked-out positions are filler: their ids and weights are never looked at.
            flat = self.embedding._resolve_ids(ids_arr[mask])
            return flat, offs, None if w is None else w[mask]
        if ids_arr.ndim == 2:
            if offsets is not None:
                raise ValueError("`offsets` is for 1-D `ids`; 2-D `ids` are fixed-length bags (use `mask` for padding).")
            nbags, length = ids_arr.shape
            flat = self.embedding._resolve_ids(ids_arr).reshape(-1)
            return flat, np.arange(nbags + 1, dtype=np.int64) * length, None if w is None else w.reshape(-1)
        if ids_arr.ndim != 1:
            raise ValueError(f"`ids` must be 1-D (with offsets) or 2-D (bags, length); got shape {ids_arr.shape}.")
        if offsets is None:
            raise ValueError("1-D `ids` need `offsets`, the start of each bag (e.g. offsets=[0, 3, 7]).")
        flat = self.embedding._resolve_ids(ids_arr)
        return flat, _offsets(offsets, flat.shape[0], include_last_offset), None if w is None else w.reshape(-1)

    def _fast_forward(self, ids, offsets, per_sample_weights, include_last_offset, mask):
        """The common case in one compiled pass: an unweighted sum or mean of integer ids (1-D with
        offsets, or 2-D), all in range, no exact-mode sync, no max_norm; the range check and the
        copy of the ids kept for backward happen inside the kernel. Returns None to take the
        general path (which also raises the errors)."""
        emb = self.embedding
        if (per_sample_weights is not None or mask is not None or self.modes not in (("sum",), ("mean",))
                or emb.invalid_ids != "raise" or emb.max_norm is not None or emb.weight._syncs):
            return None
        if not isinstance(ids, np.ndarray):
            return None
        ids = np.asarray(ids)  # a subclass (np.matrix stays 2-D when flattened) as a plain view
        if ids.dtype.kind not in "iu" or ids.dtype == np.uint64 or not ids.dtype.isnative:
            return None
        if ids.ndim == 2 and offsets is None:
            offs = np.arange(ids.shape[0] + 1, dtype=np.int64) * ids.shape[1]
        elif ids.ndim == 1 and offsets is not None:
            try:
                offs = _offsets(offsets, ids.shape[0], include_last_offset)
            except (TypeError, ValueError):
                return None  # the general path reports it, after any bad id, in its own order
        else:
            return None
        if offs[0] != 0 or offs[-1] != ids.size:
            return None  # ids outside every bag (no bags at all): the kernel would not check them
        skip = -2 if self.include_padding or emb.padding_idx is None else emb.padding_idx
        res = bag_sum_checked(emb.weight.data, ids.reshape(-1), offs, self.modes[0] == "mean", skip, self.empty_value)
        if res is None:
            return None  # an id out of range: the general path names it
        out, wsum, counts, flat = res
        self._cache = (flat, offs, None, skip, [(out, _NO_ARG, wsum, counts)], None)
        return out

    def forward(
        self,
        ids: Any,
        offsets: Any = None,
        per_sample_weights: Any = None,
        *,
        include_last_offset: bool = False,
        mask: Any = None,
    ) -> np.ndarray:
        emb = self.embedding
        self._cache = None  # a forward that fails leaves nothing for backward to reuse
        fast = self._fast_forward(ids, offsets, per_sample_weights, include_last_offset, mask)
        if fast is not None:
            return fast
        flat, offs, w = self._csr(ids, offsets, per_sample_weights, include_last_offset, mask)
        if emb.weight._syncs and flat.size:
            emb.weight.sync(np.unique(flat[flat >= 0]))  # exact-mode optimizers: no stale rows read
        if emb.max_norm is not None and flat.size:
            emb._renorm(flat)
        weight = emb.weight.data
        if w is not None:
            with np.errstate(over="ignore"):
                w = np.ascontiguousarray(w, dtype=weight.dtype)
            if not np.isfinite(w).all():
                bad = int(np.flatnonzero(~np.isfinite(w))[0])
                raise ValueError(
                    f"`per_sample_weights` must be finite in the table's dtype {weight.dtype}; "
                    f"the kept weight number {bad} is not."
                )
        skip = -2 if self.include_padding or emb.padding_idx is None else emb.padding_idx
        outs, caches = [], []
        for m in self.modes:
            out, arg, wsum, counts = bag_forward(weight, flat, offs, w, m, skip, self.empty_value)
            if w is not None and m in ("mean", "sqrtn"):
                zero = np.flatnonzero((counts > 0) & (wsum == 0))
                if zero.size:
                    what = "sum" if m == "mean" else "squares sum"
                    raise ValueError(
                        f"the `per_sample_weights` of bag {zero[0]} {what} to zero: its weighted {m} is undefined."
                    )
            outs.append(out)
            caches.append((out, arg, wsum, counts))
        w_layout = None if w is None else (np.shape(per_sample_weights), None if mask is None else np.asarray(mask))
        self._cache = (flat, offs, w, skip, caches, w_layout)
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)

    __call__ = forward

    def backward(self, grad_output: np.ndarray, *, donate: bool = False) -> np.ndarray | None:
        """Accumulate the table's row-sparse gradient; return the weights' gradient (or ``None``).

        Nothing of ``grad_output`` is kept (the table's gradient is summed per id at once), so
        ``donate`` (as in :meth:`Embedding.backward`) changes nothing; it is accepted so that
        one call serves either layer.
        """
        if not isinstance(donate, (bool, np.bool_)):
            raise TypeError(f"`donate` must be True or False; got {donate!r}.")
        if self._cache is None:
            raise RuntimeError("EmbeddingBag.backward called before forward.")
        flat, offs, w, skip, caches, w_layout = self._cache
        d = self.embedding_dim
        nbags = offs.shape[0] - 1
        g = np.asarray(grad_output)
        if g.shape != (nbags, d * len(self.modes)):
            raise ValueError(f"`grad_output` must have shape {(nbags, d * len(self.modes))}; got {g.shape}.")
        emb = self.embedding
        weight = emb.weight.data
        if emb.weight.requires_grad:
            # The table gradient goes straight into one row per unique id (no per-position rows):
            # invalid (negative) ids, padding and frozen rows are left out when grouping.
            groups = bag_groups(flat, offs, emb.num_embeddings, -1 if emb.padding_idx is None else emb.padding_idx, emb._frozen)
            uniq, starts = groups[0], groups[1]
            values = np.zeros((uniq.shape[0], d), dtype=weight.dtype)
            for k, (m, (out, arg, wsum, counts)) in enumerate(zip(self.modes, caches)):
                bag_table_grad(groups, w, m, g[:, k * d : (k + 1) * d], arg, wsum, values)
            if emb.scale_grad_by_freq and uniq.shape[0]:
                values /= np.diff(starts)[:, None].astype(values.dtype)
            scale = None if emb._lr_scale is None else emb._lr_scale[uniq]
            emb.weight.accumulate(RowSparseGrad(uniq, values, (emb.num_embeddings, d), scale))
        gw = None
        if w is not None:
            gw = np.zeros(flat.shape[0], dtype=np.float64)
            for k, (m, (out, arg, wsum, counts)) in enumerate(zip(self.modes, caches)):
                gw += bag_weight_grad(weight, flat, offs, w, m, skip, g[:, k * d : (k + 1) * d], out, wsum, counts)
        if gw is None:
            return None
        shape, mask = w_layout
        gw = gw.astype(w.dtype if w.dtype in FLOAT_DTYPES else np.float64)
        if mask is None:
            return gw.reshape(shape)
        full = np.zeros(shape, dtype=gw.dtype)  # masked-out positions: gradient 0
        full[mask] = gw
        return full

    def parameters(self) -> list[Parameter]:
        return [self.weight]

    def state_dict(self) -> dict:
        return self.embedding.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.embedding.load_state_dict(state)

    def __repr__(self) -> str:
        mode = self.modes[0] if len(self.modes) == 1 else self.modes
        return f"EmbeddingBag({self.embedding.extra_repr()}, mode={mode!r})"
