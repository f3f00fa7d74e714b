"""The main job's model written in PyTorch, for side-by-side benchmarks.

`Embedding(V + 1, d, padding_idx=V, sparse=True) -> mean over the context (padding masked out) ->
Linear(d, V) -> softmax cross-entropy`, trained with `SparseAdam` on the table and `Adam` on the
output layer: what npembed's `BasketModel` with lazy `Adam` computes.
"""

from __future__ import annotations

import time

import numpy as np


def torch_model(torch, V: int, d: int, seed: int):
    torch.manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V + 1, d, padding_idx=V, sparse=True)
            self.out = torch.nn.Linear(d, V)

        def forward(self, ctx):
            mask = (ctx != V).unsqueeze(-1).to(torch.float32)
            h = (self.emb(ctx) * mask).sum(1) / mask.sum(1).clamp(min=1)
            return self.out(h)

    return Net()


class TorchTrainer:
    """One optimisation step at a time over the prepared training examples."""

    def __init__(self, torch, data, d: int, lr: float, seed: int):
        self.torch = torch
        V = len(data.vocab)
        self.net = torch_model(torch, V, d, seed)
        self.opt_sparse = torch.optim.SparseAdam(list(self.net.emb.parameters()), lr=lr)
        self.opt_dense = torch.optim.Adam(list(self.net.out.parameters()), lr=lr)
        self.ctx_all = torch.from_numpy(data.train.contexts.astype(np.int64))
        self.tgt_all = torch.from_numpy(data.train.targets)
        self.lengths = data.train.lengths
        self.data = data

    def step(self, rows: np.ndarray) -> None:
        torch = self.torch
        width = int(self.lengths[rows].max())
        idx = torch.from_numpy(rows)
        ctx, tgt = self.ctx_all[idx, :width], self.tgt_all[idx]
        self.opt_sparse.zero_grad()
        self.opt_dense.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.net(ctx), tgt)
        loss.backward()
        self.opt_sparse.step()
        self.opt_dense.step()

    def test_metrics(self) -> dict:
        from npembed.heldout import ranking_metrics

        with self.torch.no_grad():
            return ranking_metrics(lambda c: self.net(self.torch.from_numpy(c.astype(np.int64))).numpy(), self.data.test)


class NpembedTrainer:
    """The same model and optimizer in npembed."""

    def __init__(self, data, d: int, lr: float, seed: int):
        from npembed import Adam, BasketModel, SoftmaxCrossEntropy

        self.model = BasketModel(len(data.vocab), d, rng=seed)
        self.opt = Adam(self.model.parameters(), lr=lr)
        self.loss = SoftmaxCrossEntropy()
        self.data = data

    def step(self, rows: np.ndarray) -> None:
        ctx, tgt = self.data.train.batch(rows)
        self.opt.zero_grad()
        self.loss(self.model(ctx), tgt)
        self.model.backward(self.loss.backward())
        self.opt.step()

    def test_metrics(self) -> dict:
        from npembed.heldout import ranking_metrics

        return ranking_metrics(self.model.forward, self.data.test)


def run_epochs(trainer, order: np.ndarray, epochs: int, bs: int) -> float:
    """Train ``epochs`` passes over ``order`` in batches of ``bs``; returns examples per second."""
    t0 = time.perf_counter()
    for _ in range(epochs):
        for start in range(0, len(order), bs):
            trainer.step(order[start : start + bs])
    return epochs * len(order) / (time.perf_counter() - t0)
