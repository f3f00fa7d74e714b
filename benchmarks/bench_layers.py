"""Embedding and EmbeddingBag forward/backward against PyTorch, side by side in one process.

    python benchmarks/bench_layers.py [--threads 2] [--json out.json]

Cases (float32, table 1,000,000 x d):
- Embedding forward, ids (256, 50) uniform, d in {16, 64, 256}: npembed ``Embedding.__call__``
  against ``torch.nn.functional.embedding``;
- Embedding backward to a row-sparse gradient, same ids: npembed ``backward`` against PyTorch's
  ``sparse=True`` backward (coalesced, as an optimizer needs it);
- EmbeddingBag sum / mean / max, 4096 bags of 20 Zipf-distributed ids, d = 256, forward and
  backward, against ``torch.nn.functional.embedding_bag``.
Each timing is the median of repeated runs; the ratio is PyTorch time / npembed time (above 1 means
npembed is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np


def _median_time(fn, repeat=15, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import numba
    import torch

    from npembed import Embedding, EmbeddingBag

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []

    for d in (16, 64, 256):
        w = rng.standard_normal((args.rows, d), dtype=np.float32)
        ids = rng.integers(0, args.rows, size=(256, 50))
        emb = Embedding.from_pretrained(w, freeze=False)
        tw = torch.from_numpy(w.copy()).requires_grad_(True)
        tids = torch.from_numpy(ids)
        g = rng.standard_normal((256, 50, d), dtype=np.float32)
        tg = torch.from_numpy(g)
        ours_f = _median_time(lambda: emb(ids))
        theirs_f = _median_time(lambda: torch.nn.functional.embedding(tids, tw.detach()))

        def ours_b():
            emb.weight.grad = None
            emb(ids)
            emb.backward(g)

        def theirs_b():
            tw.grad = None
            out = torch.nn.functional.embedding(tids, tw, sparse=True)
            out.backward(tg)
            tw.grad.coalesce()

        ours_bt = _median_time(ours_b)
        theirs_bt = _median_time(theirs_b)
        rows.append({"case": f"Embedding forward d={d}", "npembed_ms": ours_f * 1e3, "torch_ms": theirs_f * 1e3})
        rows.append({"case": f"Embedding fwd+bwd (sparse) d={d}", "npembed_ms": ours_bt * 1e3, "torch_ms": theirs_bt * 1e3})
        del w, emb, tw

    d = 256
    w = rng.standard_normal((args.rows, d), dtype=np.float32)
    ids = (rng.zipf(1.2, size=4096 * 20) - 1) % args.rows
    offs = np.arange(4096) * 20
    tids, toffs = torch.from_numpy(ids), torch.from_numpy(offs)
    g = rng.standard_normal((4096, d), dtype=np.float32)
    for mode in ("sum", "mean", "max"):
        bag = EmbeddingBag.from_pretrained(w, freeze=False, mode=mode)
        tw = torch.from_numpy(w.copy()).requires_grad_(True)
        ours_f = _median_time(lambda: bag(ids, offs))
        theirs_f = _median_time(lambda: torch.nn.functional.embedding_bag(tids, tw.detach(), toffs, mode=mode))

        def ours_b():
            bag.weight.grad = None
            bag(ids, offs)
            bag.backward(g)

        def theirs_b():
            tw.grad = None
            # PyTorch has no sparse gradient for max mode: its users get the dense one.
            out = torch.nn.functional.embedding_bag(tids, tw, toffs, mode=mode, sparse=mode != "max")
            out.backward(torch.from_numpy(g))
            if mode != "max":
                tw.grad.coalesce()

        rows.append({"case": f"EmbeddingBag {mode} forward d=256", "npembed_ms": ours_f * 1e3, "torch_ms": theirs_f * 1e3})
        rows.append({
            "case": f"EmbeddingBag {mode} fwd+bwd ({'dense in torch' if mode == 'max' else 'sparse'}) d=256",
            "npembed_ms": _median_time(ours_b) * 1e3,
            "torch_ms": _median_time(theirs_b) * 1e3,
        })

    print(f"{'case':<40}{'npembed ms':>12}{'torch ms':>10}{'ratio':>8}   ({args.threads} threads, torch {torch.__version__})")
    for r in rows:
        r["ratio"] = r["torch_ms"] / r["npembed_ms"]
        print(f"{r['case']:<40}{r['npembed_ms']:>12.3f}{r['torch_ms']:>10.3f}{r['ratio']:>7.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "rows": rows, "torch_version": torch.__version__}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
