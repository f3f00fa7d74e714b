"""Learning-rate schedules: a schedule maps the step number (0-based) to a learning rate.

Use one by setting ``optimizer.lr = schedule(step)`` before each ``optimizer.step()``;
``npembed train`` does this for ``--lr-schedule`` and ``--warmup``.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["Constant", "LinearDecay", "Cosine", "WarmUp", "make_schedule", "SCHEDULES"]


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _check(lr: float, total_steps: int | None = None, final_lr: float = 0.0) -> None:
    if not (_is_real(lr) and lr > 0):
        raise ValueError(f"`lr` must be a positive, finite number; got {lr!r}.")
    if total_steps is not None and not (_is_int(total_steps) and total_steps >= 1):
        raise ValueError(f"`total_steps` must be a positive integer; got {total_steps!r}.")
    if not (_is_real(final_lr) and 0 <= final_lr <= lr):
        raise ValueError(f"`final_lr` must be in [0, lr={lr}]; got {final_lr!r}.")


class Constant:
    """``lr`` at every step."""

    def __init__(self, lr: float):
        _check(lr)
        self.lr = float(lr)

    def __call__(self, step: int) -> float:
        return self.lr

    def __repr__(self) -> str:
        return f"Constant(lr={self.lr})"


class LinearDecay:
    """From ``lr`` down to ``final_lr`` in a straight line over ``total_steps``, then ``final_lr``
    (word2vec's schedule, where the floor is ``lr * 1e-4``)."""

    def __init__(self, lr: float, total_steps: int, final_lr: float = 0.0):
        _check(lr, total_steps, final_lr)
        self.lr, self.total_steps, self.final_lr = float(lr), int(total_steps), float(final_lr)

    def __call__(self, step: int) -> float:
        frac = min(max(step, 0) / self.total_steps, 1.0)
        return self.lr - (self.lr - self.final_lr) * frac

    def __repr__(self) -> str:
        return f"LinearDecay(lr={self.lr}, total_steps={self.total_steps}, final_lr={self.final_lr})"


class Cosine:
    """Half a cosine from ``lr`` to ``final_lr`` over ``total_steps``, then ``final_lr``."""

    def __init__(self, lr: float, total_steps: int, final_lr: float = 0.0):
        _check(lr, total_steps, final_lr)
        self.lr, self.total_steps, self.final_lr = float(lr), int(total_steps), float(final_lr)

    def __call__(self, step: int) -> float:
        frac = min(max(step, 0) / self.total_steps, 1.0)
        return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1.0 + math.cos(math.pi * frac))

    def __repr__(self) -> str:
        return f"Cosine(lr={self.lr}, total_steps={self.total_steps}, final_lr={self.final_lr})"


class WarmUp:
    """Linear warm-up: ``schedule(step) * (step + 1) / warmup_steps`` for the first steps, then ``schedule``."""

    def __init__(self, schedule, warmup_steps: int):
        if not (_is_int(warmup_steps) and warmup_steps >= 0):
            raise ValueError(f"`warmup_steps` must be a non-negative integer; got {warmup_steps!r}.")
        self.schedule, self.warmup_steps = schedule, int(warmup_steps)

    def __call__(self, step: int) -> float:
        step = max(int(step), 0)
        lr = self.schedule(step)
        if step < self.warmup_steps:
            lr *= (step + 1) / self.warmup_steps
        return lr

    def __repr__(self) -> str:
        return f"WarmUp({self.schedule!r}, warmup_steps={self.warmup_steps})"


SCHEDULES = ("constant", "linear", "cosine")


def make_schedule(name: str, lr: float, total_steps: int, warmup_steps: int = 0, final_lr: float = 0.0):
    """A schedule by name ("constant", "linear", "cosine"), with an optional warm-up."""
    if name not in SCHEDULES:
        raise ValueError(f"`lr_schedule` must be one of {SCHEDULES}; got {name!r}.")
    base = Constant(lr) if name == "constant" else (LinearDecay if name == "linear" else Cosine)(lr, total_steps, final_lr)
    return WarmUp(base, warmup_steps) if warmup_steps else base
