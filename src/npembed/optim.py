"""Optimizers that update dense weights and row-sparse embedding tables.

An optimizer is built from a list of :class:`~npembed.Parameter` (frozen ones are skipped). After
the backward pass, :meth:`Optimizer.step` applies one update to every parameter that has a gradient
and :meth:`Optimizer.zero_grad` clears the gradients for the next batch.

A :class:`~npembed.RowSparseGrad` updates only the rows it names. For :class:`Adam` that is the
*lazy* rule of ``torch.optim.SparseAdam``: a row's moments decay only on the steps that touch it,
and rows not in the batch are left exactly as they are.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Iterable

import numpy as np

from ._checks import check_positive_float
from .kernels import adam_rows, sgd_rows
from .parameter import Parameter, RowSparseGrad

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer(ABC):
    """Base class: holds the parameters and per-parameter state; subclasses override :meth:`_update`."""

    def __init__(self, params: Iterable[Parameter], lr: float):
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
        if not self.params:
            raise ValueError("`params` holds no trainable Parameter: every one is frozen, or the list is empty.")
        self.lr = check_positive_float(lr, "lr")
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            self._update(p, p.grad, state)

    @abstractmethod
    def _update(self, p: Parameter, grad, state: dict) -> None:
        """Apply one update to ``p`` from ``grad`` (dense array or RowSparseGrad), keeping ``state``."""


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``w -= lr * g``.

    For a row-sparse gradient only the listed rows move.
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 0.1):
        super().__init__(params, lr)

    def _update(self, p, grad, state):
        if isinstance(grad, RowSparseGrad):
            sgd_rows(p.data, grad.indices, grad.values, self.lr, grad.scale)
        else:
            p.data -= p.data.dtype.type(self.lr) * grad

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr})"


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with PyTorch's defaults and update rule.

    Dense gradient ``g`` at step ``t`` (counted per parameter)::

        m = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g^2
        w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Row-sparse gradient (lazy, as ``torch.optim.SparseAdam``): the same moment updates applied to
    the touched rows only, and ``w[rows] -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)``.
    ``weight_decay`` adds ``weight_decay * w`` to the gradient first (L2, as ``torch.optim.Adam``);
    for a row-sparse gradient only to the touched rows.
    ``t`` counts the steps that gave this parameter a gradient; untouched rows keep their weights
    and moments unchanged, so an item that appears rarely is not pulled by stale momentum.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float, np.integer, np.floating)) or not (
            np.isfinite(weight_decay) and weight_decay >= 0
        ):
            raise ValueError(f"`weight_decay` must be a finite number >= 0; got {weight_decay!r}.")
        self.weight_decay = float(weight_decay)
        ok = isinstance(betas, (tuple, list)) and len(betas) == 2 and all(
            isinstance(b, (int, float, np.integer, np.floating)) and not isinstance(b, bool) for b in betas
        )
        if not ok or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"`betas` must be two numbers, each in [0, 1); got {betas!r}.")
        b1, b2 = betas
        self.betas = (float(b1), float(b2))
        self.eps = check_positive_float(eps, "eps")

    def _update(self, p, grad, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        b1, b2 = self.betas
        bc1 = 1.0 - b1**t
        bc2 = 1.0 - b2**t
        m, v = state["exp_avg"], state["exp_avg_sq"]
        dt = p.data.dtype.type
        if isinstance(grad, RowSparseGrad):
            rows = grad.values
            if self.weight_decay:
                rows = rows + dt(self.weight_decay) * p.data[grad.indices]
            adam_rows(p.data, m, v, grad.indices, rows, b1, b2, self.eps, self.lr * math.sqrt(bc2) / bc1, grad.scale)
            return
        if self.weight_decay:
            grad = grad + dt(self.weight_decay) * p.data
        m *= dt(b1)
        m += dt(1.0 - b1) * grad
        v *= dt(b2)
        v += dt(1.0 - b2) * grad * grad
        denom = np.sqrt(v)
        denom /= dt(math.sqrt(bc2))
        denom += dt(self.eps)
        p.data -= dt(self.lr / bc1) * (m / denom)

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay})"
