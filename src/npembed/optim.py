"""Optimizers for dense weights and row-sparse embedding tables, lazy or exact.

An optimizer is built from a list of :class:`~npembed.Parameter` (frozen ones are skipped). After
the backward pass, :meth:`Optimizer.step` applies one update to every parameter that has a gradient
and :meth:`Optimizer.zero_grad` clears the gradients. Argument names and defaults are PyTorch's.

Every optimizer states its rule once, in :meth:`Optimizer._update`, as arithmetic on arrays: the
dense path applies it to the whole parameter, the row-sparse paths to the rows involved.

A :class:`~npembed.RowSparseGrad` names the rows a batch touched. Two modes decide what happens to
the others (``sparse_mode``):

* ``"lazy"`` (the default): only the touched rows are updated and only their state advances, as
  ``torch.optim.SparseAdam`` and PyTorch's sparse SGD/Adagrad do. A step costs in proportion to the
  rows touched. Momentum, moments and weight decay of a row stand still while it is idle.
* ``"exact"``: the result equals the dense optimizer fed zero gradients for idle rows. Each row
  remembers the step it was last brought up to date; when it is touched again (or when anything
  reads the table: :meth:`Optimizer.catch_up`, :meth:`Optimizer.state_dict`, evaluation and saving
  in ``npembed train``) it first replays, vectorised over rows, the steps it missed with a zero
  gradient and the learning rate of each of those steps. Costs grow with the idle steps replayed.

Lazy is the default because it is what PyTorch's sparse optimizers do, it is the cheap one, and for
plain SGD (no momentum, no weight decay) and Adagrad without weight decay it equals exact anyway.
"""

from __future__ import annotations

import math
import weakref
from abc import ABC, abstractmethod
from typing import Any, Iterable

import numpy as np

from ._alloc import table_copy, table_full, table_zeros
from ._checks import check_positive_float
from .kernels import (
    adam_dense,
    adagrad_replay,
    adagrad_rows,
    adam_replay,
    adam_rows,
    momentum_rows,
    sgd_replay,
    sgd_rows,
    sgd_scatter,
)
from .parameter import Parameter, RowSparseGrad

__all__ = ["Optimizer", "SGD", "Adagrad", "RowWiseAdagrad", "Adam", "AdamW", "SPARSE_MODES"]

SPARSE_MODES = ("lazy", "exact")
# Exact mode's per-row bookkeeping (the step each row was last brought up to date), not state of
# the rule itself.
_BOOKKEEPING = ("last",)


def _number(value: Any, name: str, low: float = 0.0, high: float | None = None, low_open: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number; got {value!r}.")
    ok = np.isfinite(value) and (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        rng = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"`{name}` must be in {rng}; got {value}.")
    return float(value)


class Optimizer(ABC):
    """Base class: parameters, per-parameter state, the lazy and exact sparse paths, save and load.

    Subclasses set their hyperparameters, declare their state arrays in :meth:`_init_state` and
    give their rule in :meth:`_update`.
    """

    def __init__(self, params: Iterable[Parameter], lr: float, sparse_mode: str = "lazy"):
        if isinstance(params, Parameter) or hasattr(params, "parameters"):
            raise TypeError(
                f"`params` must be a list of Parameters; got a {type(params).__name__}. Pass layer.parameters()."
            )
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"`params` must be a list of Parameters; got {type(params).__name__}.") from None
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"`params` must be Parameters (e.g. model.parameters()); got {type(p).__name__} at position {i}."
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError("`params` lists the same Parameter twice; it would be updated twice per step.")
        self.params = [p for p in params if p.requires_grad]
        for p in self.params:
            if np.asarray(p.data).dtype.kind != "f":
                raise TypeError(f"parameter {p.name!r} holds {np.asarray(p.data).dtype}; optimizers update float arrays.")
        if not self.params:
            raise ValueError("`params` holds no trainable Parameter: every one is frozen, or the list is empty.")
        self.lr = check_positive_float(lr, "lr")
        if sparse_mode not in SPARSE_MODES:
            raise ValueError(f"`sparse_mode` must be one of {SPARSE_MODES}; got {sparse_mode!r}.")
        self.sparse_mode = sparse_mode
        self.state: list[dict] = [{} for _ in self.params]
        self._register()

    def _register(self) -> None:
        # Each parameter asks its optimizers, at every backward, how they read its row-sparse
        # gradients (see Parameter._reads_position_rows); a weak reference, keyed by identity.
        ref = weakref.ref(self)
        for p in self.params:
            p._readers[id(self)] = ref

    def __setstate__(self, state: dict) -> None:
        # A copy (copy.deepcopy of a model and its optimizer) registers with the copied
        # parameters, which keep no registration of their own (see Parameter.__getstate__).
        self.__dict__.update(state)
        self._register()
        for p, s in zip(self.params, self.state):
            if "last" in s:
                self._register_sync(p)

    def _reads_position_rows(self) -> bool:
        """Whether the lazy step may read a row-sparse gradient one row per position (not summed).

        Decided by the rule alone, never by a hyperparameter that could change between a
        backward and its step; must not fail on a half-built optimizer."""
        return False

    # ---- the rule, per optimizer ------------------------------------------------------------

    @abstractmethod
    def _init_state(self, p: Parameter) -> dict:
        """Fresh state arrays for ``p`` (each with ``p``'s shape, or one entry per row)."""

    @abstractmethod
    def _update(self, w: np.ndarray, g: np.ndarray, s: dict, t: int, lr: float) -> None:
        """One step of the rule, in place on ``w`` and the arrays of ``s`` (all the same rows).

        ``t`` is the step number (1 for the first step this parameter took), ``lr`` that step's
        learning rate. ``g`` may be modified.
        """

    def _idle_is_still(self) -> bool:
        """True when a zero-gradient step changes neither weights nor state: exact is then lazy."""
        return False

    def _lazy_rows(self, p: Parameter, grad: RowSparseGrad, s: dict, t: int) -> None:
        """Lazy row-sparse step: the rule on the touched rows only (overridden for fused kernels)."""
        self._rows_update(p, grad.indices, grad.values.copy(), s, t, self.lr, grad.scale)

    # ---- machinery ---------------------------------------------------------------------------

    def _rows_update(self, p, rows, g, s, t, lr, scale) -> None:
        w = p.data[rows]
        sub = {k: v[rows] for k, v in s.items() if isinstance(v, np.ndarray) and k not in _BOOKKEEPING}
        if scale is None:
            self._update(w, g, sub, t, lr)
        else:
            # Per-row learning-rate multipliers: rows sharing a scale are updated together.
            for sc in np.unique(scale):
                sel = scale == sc
                ws, gs = w[sel], g[sel]
                ss = {k: v[sel] for k, v in sub.items()}
                self._update(ws, gs, ss, t, lr * sc)
                w[sel] = ws
                for k in sub:
                    sub[k][sel] = ss[k]
        p.data[rows] = w
        for k, v in sub.items():
            s[k][rows] = v

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for p, s in zip(self.params, self.state):
            if p.grad is None:
                continue
            grad = p.grad
            if tuple(grad.shape) != p.data.shape:
                raise ValueError(f"the gradient has shape {tuple(grad.shape)}; its parameter {p.name!r} has {p.data.shape}.")
            if not s:
                s.update(self._init_state(p))
                s["step"] = 0
            s["step"] += 1
            t = s["step"]
            if isinstance(grad, RowSparseGrad):
                if self.sparse_mode == "lazy" or self._idle_is_still():
                    self._lazy_rows(p, grad, s, t)
                else:
                    self._exact_rows(p, grad, s, t)
                continue
            if "last" in s:
                s["lrs"].append(self.lr)
                self._catch_up(p, s, t - 1)
            self._update(p.data, np.array(grad, dtype=p.data.dtype, copy=True), s, t, self.lr)
            if "last" in s:
                self._all_current(s, t)

    @staticmethod
    def _all_current(s: dict, t: int) -> None:
        """Every row is up to date at step t: the learning-rate history before it can go."""
        s["last"][:] = t
        s["lrs"] = []
        s["lr_offset"] = t

    def _register_sync(self, p: Parameter) -> None:
        p._syncs[id(self)] = lambda rows, p=p: self._sync(p, rows)

    def _sync(self, p: Parameter, rows) -> None:
        s = self.state[self.params.index(p)] if p in self.params else None
        if s and "last" in s:
            self._catch_up(p, s, s["step"], rows)

    def _exact_rows(self, p, grad, s, t) -> None:
        if "last" not in s:
            # Every step before this one reached every row (dense steps, or none yet).
            s["last"] = table_full((p.data.shape[0],), t - 1, np.int64)
            s["lrs"], s["lr_offset"] = [], t - 1
            self._register_sync(p)
        s["lrs"].append(self.lr)
        self._catch_up(p, s, t - 1, grad.indices)
        self._rows_update(p, grad.indices, grad.values.copy(), s, t, self.lr, grad.scale)
        s["last"][grad.indices] = t

    def _catch_up(self, p, s, upto: int, rows: np.ndarray | None = None) -> None:
        """Replay, with zero gradients, the steps ``last + 1 .. upto`` that rows missed.

        Rows the table marks as frozen do not move: they are set current without a replay. The
        learning-rate multiplier applied is the row's current one.
        """
        last = s.get("last")
        if last is None:
            return
        cand = np.arange(last.shape[0]) if rows is None else rows
        cand = cand[last[cand] < upto]
        if p.row_frozen is not None and cand.size:
            frozen = p.row_frozen[cand]
            last[cand[frozen]] = upto
            cand = cand[~frozen]
        compiled = cand.size and p.data.ndim == 2 and self._replay(
            p, s, cand, upto, None if p.row_lr_scale is None else p.row_lr_scale[cand]
        )
        if compiled:
            last[cand] = upto
        elif cand.size:
            cand = cand[np.argsort(last[cand], kind="stable")]
            sc = p.row_lr_scale[cand] if p.row_lr_scale is not None else None
            starts = last[cand]
            lrs, offset = s["lrs"], s["lr_offset"]
            zero_row = np.zeros((1,) + p.data.shape[1:], dtype=p.data.dtype)
            # At step k every row last updated before k takes part: a growing prefix of `cand`.
            for k in range(int(starts[0]) + 1, upto + 1):
                n = int(np.searchsorted(starts, k, side="left"))
                g = np.repeat(zero_row, n, axis=0)
                self._rows_update(p, cand[:n], g, s, k, lrs[k - 1 - offset], None if sc is None else sc[:n])
            last[cand] = upto
        if rows is None and upto == s["step"]:
            self._all_current(s, upto)

    def _replay(self, p, s, rows, upto: int, scale) -> bool:
        """A compiled replay of the idle steps of ``rows`` (of a 2-D table; ``scale``: their
        learning-rate multipliers or None) up to ``upto``; False: none, use the generic one (a loop
        over steps, vectorised over rows)."""
        return False

    def catch_up(self) -> None:
        """Exact mode: bring every idle row up to the current step (lazy mode: nothing to do)."""
        for p, s in zip(self.params, self.state):
            if s and "last" in s:
                self._catch_up(p, s, s["step"])

    # ---- saving ------------------------------------------------------------------------------

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "sparse_mode": self.sparse_mode}

    def state_dict(self) -> dict:
        """Hyperparameters and every parameter's state (copies). Exact mode catches up first."""
        self.catch_up()
        states = []
        for s in self.state:
            states.append({k: (v.copy() if isinstance(v, np.ndarray) else list(v) if isinstance(v, list) else v) for k, v in s.items()})
        return {"optimizer": type(self).__name__, "hyperparameters": self.hyperparameters(), "state": states}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned, checked against these parameters.

        The hyperparameters are validated as the constructor does; the sparse mode must match.
        """
        if not isinstance(state, dict) or state.get("optimizer") != type(self).__name__:
            got = state.get("optimizer") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"this state is for a {got!r} optimizer, not {type(self).__name__!r}.")
        states = state.get("state")
        if not isinstance(states, list) or len(states) != len(self.params):
            raise ValueError(
                f"this state has {len(states) if isinstance(states, list) else 'no'} parameter states; "
                f"the optimizer has {len(self.params)} parameters."
            )
        hp = dict(state.get("hyperparameters", {}))
        if hp.get("sparse_mode", self.sparse_mode) != self.sparse_mode:
            raise ValueError(f"this state is for sparse_mode={hp['sparse_mode']!r}; this optimizer uses {self.sparse_mode!r}.")
        hp["sparse_mode"] = self.sparse_mode
        try:
            checked = type(self)(self.params, **hp)  # the constructor's own checks
        except TypeError as exc:
            raise ValueError(f"this state's hyperparameters do not fit {type(self).__name__} ({exc}).") from None
        restored = []
        for i, (p, s) in enumerate(zip(self.params, states)):
            restored.append(self._check_param_state(i, p, s))
        for name in hp:
            setattr(self, name, getattr(checked, name))
        self.state = restored
        for p, s in zip(self.params, self.state):
            if "last" in s:
                self._register_sync(p)

    def _check_param_state(self, i: int, p: Parameter, s: Any) -> dict:
        if not isinstance(s, dict):
            raise ValueError(f"the state of parameter {i} must be a dict; got {type(s).__name__}.")
        if not s:
            return {}
        ref = self._init_state(p)
        out: dict = {}
        step = s.get("step")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"state 'step' of parameter {i} must be an integer >= 0; got {step!r}.")
        out["step"] = int(step)
        for k, r in ref.items():
            v = s.get(k)
            if not isinstance(v, np.ndarray) or v.shape != r.shape or not np.isfinite(v).all():
                raise ValueError(f"state {k!r} of parameter {i} must be a finite array of shape {r.shape}.")
            out[k] = table_copy(v, r.dtype)  # placed as a fresh state is (npembed._alloc)
        if "last" in s:
            last, lrs, offset = s["last"], s.get("lrs"), s.get("lr_offset")
            if not isinstance(last, np.ndarray) or last.shape != p.data.shape[:1] or last.dtype.kind not in "iu":
                raise ValueError(f"state 'last' of parameter {i} must be {p.data.shape[:1]} integers.")
            if not isinstance(offset, (int, np.integer)) or not isinstance(lrs, list) or len(lrs) != step - offset:
                raise ValueError(f"the learning-rate history of parameter {i} does not match its step count.")
            if last.size and (last.min() < offset or last.max() > step):
                raise ValueError(f"state 'last' of parameter {i} must lie in [{offset}, {step}].")
            if not all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in lrs):
                raise ValueError(f"the learning-rate history of parameter {i} must hold positive numbers.")
            out.update(last=table_copy(last, np.int64), lrs=[float(x) for x in lrs], lr_offset=int(offset))
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and weight decay (PyTorch's rule).

    ::

        g = g + weight_decay * w
        b = g                                   at step 1 (if momentum)
        b = momentum * b + (1 - dampening) * g  after
        g = g + momentum * b  if nesterov  else  b
        w = w - lr * g
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        sparse_mode: str = "lazy",
    ):
        super().__init__(params, lr, sparse_mode)
        self.momentum = _number(momentum, "momentum", 0.0, 1.0)
        self.dampening = _number(dampening, "dampening", 0.0, 1.0)
        self.weight_decay = _number(weight_decay, "weight_decay")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"`nesterov` must be True or False; got {nesterov!r}.")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0.")
        self.nesterov = bool(nesterov)

    def _reads_position_rows(self) -> bool:
        # Without momentum and weight decay the step adds one row per looked-up position; those
        # can be set to 0 between a backward and its step, so every SGD counts as reading them.
        return True

    def hyperparameters(self) -> dict:
        return dict(super().hyperparameters(), momentum=self.momentum, dampening=self.dampening,
                    weight_decay=self.weight_decay, nesterov=self.nesterov)

    def _init_state(self, p):
        return {"momentum_buffer": table_zeros(p.data.shape, p.data.dtype)} if self.momentum else {}

    def _idle_is_still(self):
        return not self.momentum and not self.weight_decay

    def _update(self, w, g, s, t, lr):
        dt = w.dtype.type
        if self.weight_decay:
            g += dt(self.weight_decay) * w
        if self.momentum:
            b = s["momentum_buffer"]
            if t == 1:
                b[...] = g
            else:
                b *= dt(self.momentum)
                b += dt(1.0 - self.dampening) * g
            g = g + dt(self.momentum) * b if self.nesterov else b
        w -= dt(lr) * g

    def _replay(self, p, s, rows, upto, scale):
        buf = s.get("momentum_buffer", np.zeros((0, p.data.shape[1]), dtype=p.data.dtype))
        sgd_replay(p.data, buf, rows, s["last"], upto, s["lrs"], s["lr_offset"], scale, self.momentum, self.dampening,
                   self.weight_decay, self.nesterov)
        return True

    def _lazy_rows(self, p, grad, s, t):
        # fused kernels: one pass over the touched rows
        raw = grad.raw_rows() if isinstance(grad, RowSparseGrad) else None
        if not self.momentum and not self.weight_decay and raw is not None and p.data.ndim == 2:
            ids, rows, skip, frozen, lr_scale = raw  # per-position rows: added straight in, in order
            sgd_scatter(p.data, ids, rows, self.lr, skip, frozen, lr_scale)
        elif not self.momentum and not self.weight_decay:
            sgd_rows(p.data, grad.indices, grad.values, self.lr, grad.scale)
        elif self.momentum and p.data.ndim == 2:
            momentum_rows(p.data, s["momentum_buffer"], grad.indices, grad.values, self.lr, self.momentum,
                          self.dampening, self.weight_decay, self.nesterov, t == 1, grad.scale)
        else:
            super()._lazy_rows(p, grad, s, t)


class Adagrad(Optimizer):
    """Adagrad (PyTorch's rule)::

        g = g + weight_decay * w
        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g^2                      (starts at initial_accumulator_value)
        w = w - clr * g / (sqrt(sum) + eps)
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        sparse_mode: str = "lazy",
    ):
        super().__init__(params, lr, sparse_mode)
        self.lr_decay = _number(lr_decay, "lr_decay")
        self.weight_decay = _number(weight_decay, "weight_decay")
        self.initial_accumulator_value = _number(initial_accumulator_value, "initial_accumulator_value")
        self.eps = _number(eps, "eps", low_open=True)

    def hyperparameters(self) -> dict:
        return dict(super().hyperparameters(), lr_decay=self.lr_decay, weight_decay=self.weight_decay,
                    initial_accumulator_value=self.initial_accumulator_value, eps=self.eps)

    def _idle_is_still(self):
        return not self.weight_decay

    def _accumulator_shape(self, p) -> tuple:
        return p.data.shape

    def _init_state(self, p):
        return {"sum": table_full(self._accumulator_shape(p), self.initial_accumulator_value, p.data.dtype)}

    def _square(self, g: np.ndarray) -> np.ndarray:
        return g * g

    def _replay(self, p, s, rows, upto, scale):
        if s["sum"].shape != p.data.shape:  # row-wise: the generic replay
            return False
        adagrad_replay(p.data, s["sum"], rows, s["last"], upto, s["lrs"], s["lr_offset"], scale, self.lr_decay,
                       self.weight_decay, self.eps)
        return True

    def _lazy_rows(self, p, grad, s, t):
        if p.data.ndim == 2:  # a fused kernel: one pass over the touched rows
            clr = self.lr / (1.0 + (t - 1) * self.lr_decay)
            adagrad_rows(p.data, s["sum"], grad.indices, grad.values, clr, self.eps, self.weight_decay, grad.scale)
        else:
            super()._lazy_rows(p, grad, s, t)

    def _update(self, w, g, s, t, lr):
        dt = w.dtype.type
        if self.weight_decay:
            g += dt(self.weight_decay) * w
        clr = lr / (1.0 + (t - 1) * self.lr_decay)
        acc = s["sum"]
        acc += self._square(g)
        std = np.sqrt(acc) + dt(self.eps)
        if std.ndim < g.ndim:
            std = std.reshape(std.shape + (1,) * (g.ndim - std.ndim))
        w -= dt(clr) * (g / std)


class RowWiseAdagrad(Adagrad):
    """Adagrad with one accumulator per row (of a 2-D parameter): ``sum_r += mean_j g_rj^2``.

    The memory-light variant used for large embedding tables: optimizer state is one number per
    row instead of one per entry. 1-D parameters keep one accumulator per entry.
    """

    def _accumulator_shape(self, p):
        return p.data.shape[:1] if p.data.ndim >= 2 else p.data.shape

    def _square(self, g):
        return (g * g).mean(axis=tuple(range(1, g.ndim))) if g.ndim >= 2 else g * g


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with PyTorch's defaults and rule. Dense, at step ``t``::

        g = g + weight_decay * w
        m = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g^2
        w = w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Lazy row-sparse steps follow ``torch.optim.SparseAdam`` (``t`` counts the steps that gave the
    table any gradient): the same moment updates on the touched rows, and
    ``w[rows] -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)``; weight decay, if
    any, is added to the touched rows' gradient. Exact steps follow the dense rule.
    """

    decoupled = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        sparse_mode: str = "lazy",
    ):
        super().__init__(params, lr, sparse_mode)
        ok = isinstance(betas, (tuple, list)) and len(betas) == 2 and all(
            isinstance(b, (int, float, np.integer, np.floating)) and not isinstance(b, bool) for b in betas
        )
        if not ok or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"`betas` must be two numbers, each in [0, 1); got {betas!r}.")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = check_positive_float(eps, "eps")
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float, np.integer, np.floating)) or not (
            np.isfinite(weight_decay) and weight_decay >= 0
        ):
            raise ValueError(f"`weight_decay` must be a finite number >= 0; got {weight_decay!r}.")
        self.weight_decay = float(weight_decay)

    def hyperparameters(self) -> dict:
        return dict(super().hyperparameters(), betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def _init_state(self, p):
        return {"exp_avg": table_zeros(p.data.shape, p.data.dtype), "exp_avg_sq": table_zeros(p.data.shape, p.data.dtype)}

    def _decay(self, w, g, lr) -> np.ndarray:
        dt = w.dtype.type
        if self.weight_decay:
            if self.decoupled:
                w *= dt(1.0 - lr * self.weight_decay)
            else:
                g = g + dt(self.weight_decay) * w
        return g

    def _update(self, w, g, s, t, lr):
        dt = w.dtype.type
        b1, b2 = self.betas
        g = self._decay(w, g, lr)
        m, v = s["exp_avg"], s["exp_avg_sq"]
        if adam_dense(w, g, m, v, b1, b2, self.eps, lr, t):  # the lines below, fused (same bits)
            return
        m *= dt(b1)
        m += dt(1.0 - b1) * g
        v *= dt(b2)
        v += dt(1.0 - b2) * g * g
        denom = np.sqrt(v)
        denom /= dt(math.sqrt(1.0 - b2**t))
        denom += dt(self.eps)
        w -= dt(lr / (1.0 - b1**t)) * (m / denom)

    def _replay(self, p, s, rows, upto, scale):
        adam_replay(p.data, s["exp_avg"], s["exp_avg_sq"], rows, s["last"], upto, s["lrs"], s["lr_offset"], scale,
                    self.betas, self.eps, self.weight_decay, self.decoupled)
        return True

    def _lazy_rows(self, p, grad, s, t):
        b1, b2 = self.betas
        step_size = self.lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        rows = grad.values
        if self.weight_decay:
            rows = rows.copy()
            if self.decoupled:
                keep = 1.0 - self.lr * self.weight_decay * (1.0 if grad.scale is None else grad.scale[:, None])
                p.data[grad.indices] *= keep.astype(p.data.dtype) if isinstance(keep, np.ndarray) else p.data.dtype.type(keep)
            else:
                rows += p.data.dtype.type(self.weight_decay) * p.data[grad.indices]
        adam_rows(p.data, s["exp_avg"], s["exp_avg_sq"], grad.indices, rows, b1, b2, self.eps, step_size, grad.scale)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), PyTorch's rule::

        w = w * (1 - lr * weight_decay)
        (then the Adam step, without weight decay in the gradient)
    """

    decoupled = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        sparse_mode: str = "lazy",
    ):
        super().__init__(params, lr, betas, eps, weight_decay, sparse_mode=sparse_mode)
