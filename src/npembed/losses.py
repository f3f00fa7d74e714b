"""Softmax cross-entropy, computed stably."""

from __future__ import annotations

import numpy as np

from ._checks import check_ids

__all__ = ["SoftmaxCrossEntropy", "log_softmax"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log(softmax(logits))`` along the last axis, shifted by the row maximum so ``exp`` never overflows."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class SoftmaxCrossEntropy:
    """Mean negative log-likelihood of integer targets under ``softmax(logits)``.

    Shape
    -----
    ``logits`` (batch, classes), ``targets`` (batch,) integers in ``[0, classes)``  ->  scalar.

    Notes
    -----
    ``loss = mean_b(logsumexp(z_b) - z_b[y_b])``; the row maximum is subtracted before ``exp``.
    The gradient for the logits is ``(softmax(z) - onehot(y)) / batch``.
    """

    def __init__(self) -> None:
        self._probs: np.ndarray | None = None
        self._targets: np.ndarray | None = None

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        logits = np.asarray(logits)
        if logits.ndim != 2:
            raise ValueError(f"`logits` must be 2-D (batch, classes); got shape {logits.shape}.")
        targets = check_ids(targets, logits.shape[1], name="targets")
        if targets.shape != (logits.shape[0],):
            raise ValueError(f"`targets` must have shape ({logits.shape[0]},) to match `logits`; got {targets.shape}.")
        if logits.shape[0] == 0:
            raise ValueError("`logits` must hold at least one row; got an empty batch.")
        logp = log_softmax(logits)
        rows = np.arange(logits.shape[0])
        self._probs = np.exp(logp)
        self._targets = targets
        return float(-logp[rows, targets].astype(np.float64).mean())

    __call__ = forward

    def backward(self) -> np.ndarray:
        """Gradient of the mean loss for ``logits``."""
        if self._probs is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward.")
        grad = self._probs.copy()
        n = grad.shape[0]
        grad[np.arange(n), self._targets] -= 1
        grad /= n
        return grad

    def __repr__(self) -> str:
        return "SoftmaxCrossEntropy()"
