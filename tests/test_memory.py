"""No training step allocates anything the size of the table for its gradient or its update.

A step on a 1,000,000-row table touches ~12,800 rows: the row-sparse gradient, the coalescing and the
optimizers' fused row updates must cost in proportion to those rows. Checked with tracemalloc
(every NumPy allocation) and with the peak resident memory (which also sees what compiled kernels
allocate), after the optimizer state exists.
"""

import tracemalloc

import numpy as np
import pytest

import npembed
from npembed.layers import Linear, MeanPool

V, D, C = 1_000_000, 32, 500
TABLE = V * D * 4


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # VmHWM := VmRSS (Linux)
        return True
    except OSError:
        return False


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "Adagrad", "RowWiseAdagrad"])
@pytest.mark.parametrize("layer", ["Embedding", "EmbeddingBag"])
def test_a_training_step_allocates_nothing_table_sized(optimizer, layer):
    rng = np.random.default_rng(0)
    if layer == "Embedding":
        emb = npembed.Embedding(V, D, rng=0)
        pool = MeanPool()
    else:
        emb = npembed.EmbeddingBag(V, D, mode="mean", rng=0)
    out, loss = Linear(D, C, rng=1), npembed.SoftmaxCrossEntropy()
    opt = getattr(npembed, optimizer)(emb.parameters() + out.parameters(), lr=0.01)

    def step():
        ids = rng.integers(0, V, size=(256, 50))
        ids[:, :10] = ids[:, 10:20]  # repeated ids inside the batch
        if layer == "Embedding":
            h = pool(emb(ids), np.ones(ids.shape, dtype=bool))
        else:
            h = emb(ids)
        loss(out(h), rng.integers(0, C, size=256))
        g = out.backward(loss.backward())
        emb.backward(pool.backward(g) if layer == "Embedding" else g)
        opt.step()
        opt.zero_grad()

    step()
    step()  # optimizer state now exists; it is table-sized by nature, and not what is measured
    have_rss = _reset_peak_rss()
    base = _rss_kb("VmRSS")
    tracemalloc.start()
    try:
        for _ in range(3):
            step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * TABLE, f"a step allocated {peak / 2**20:.1f} MiB (table {TABLE / 2**20:.0f} MiB)"
    if have_rss:
        grown = (_rss_kb("VmHWM") - base) * 1024
        assert grown < 0.05 * TABLE, f"peak resident memory grew {grown / 2**20:.1f} MiB during the steps"
