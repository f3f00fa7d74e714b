"""Per-step cost of each optimizer on a 1,000,000 x 64 table with 12,800 ids per batch.

    python benchmarks/bench_optim.py [--threads 2] [--steps 20] [--json out.json]

For each optimizer: npembed with a row-sparse gradient in lazy and exact mode, npembed with the
same gradient made dense, and PyTorch 2.13's sparse path (where it has one) and dense path, in the
same process. Ids are uniform, so in exact mode a row waits about 78 steps between touches and
each step replays that many idle steps for the rows it touches (the worst case for exact mode).
Timings are medians over ``--steps`` steps after as many warm-up steps. Also printed: optimizer
state in bytes per table row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np


def _median(fn, steps):
    for _ in range(steps):
        fn()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--ids", type=int, default=12_800)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    import npembed
    from npembed import SGD, Adagrad, Adam, AdamW, Parameter, RowSparseGrad, RowWiseAdagrad

    torch.set_num_threads(args.threads)
    npembed.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    shape = (args.rows, args.dim)
    batches = [
        RowSparseGrad.from_rows(rng.integers(0, args.rows, args.ids), rng.standard_normal((args.ids, args.dim), dtype=np.float32), shape)
        for _ in range(8)
    ]
    cases = [
        ("SGD", SGD, dict(lr=0.1), "SGD", dict(lr=0.1), True),
        ("SGD momentum 0.9", SGD, dict(lr=0.1, momentum=0.9), "SGD", dict(lr=0.1, momentum=0.9), False),
        ("Adagrad", Adagrad, dict(lr=0.1), "Adagrad", dict(lr=0.1), True),
        ("RowWiseAdagrad", RowWiseAdagrad, dict(lr=0.1), None, None, False),
        ("Adam", Adam, dict(lr=1e-3), "SparseAdam", dict(lr=1e-3), True),
        ("AdamW", AdamW, dict(lr=1e-3), "AdamW", dict(lr=1e-3), False),
    ]
    rows = []
    for label, cls, kw, tname, tkw, torch_sparse in cases:
        rec = {"optimizer": label}
        for mode in ("lazy", "exact"):
            p = Parameter(np.zeros(shape, np.float32))
            opt = cls([p], sparse_mode=mode, **kw)
            it = iter(range(10**9))

            def step():
                p.grad = batches[next(it) % len(batches)]
                opt.step()

            rec[f"npembed_{mode}_ms"] = _median(step, args.steps)
            if mode == "lazy":
                state = sum(v.nbytes for v in opt.state[0].values() if isinstance(v, np.ndarray))
                rec["state_bytes_per_row"] = state / args.rows
        p = Parameter(np.zeros(shape, np.float32))
        opt = cls([p], **kw)
        dense_grads = [b.to_dense() for b in batches[:2]]
        it = iter(range(10**9))

        def dense_step():
            p.grad = dense_grads[next(it) % 2]
            opt.step()

        rec["npembed_dense_ms"] = _median(dense_step, max(3, args.steps // 4))
        del dense_grads
        if tname is not None:
            t = torch.zeros(shape, requires_grad=True)
            tsparse = [torch.sparse_coo_tensor(torch.from_numpy(b.indices)[None], torch.from_numpy(b.values), shape) for b in batches]
            if torch_sparse:
                topt = getattr(torch.optim, tname)([t], **tkw)
                it = iter(range(10**9))

                def tstep():
                    t.grad = tsparse[next(it) % len(tsparse)]
                    topt.step()

                rec["torch_sparse_ms"] = _median(tstep, args.steps)
            dname = "Adam" if tname == "SparseAdam" else tname
            topt = getattr(torch.optim, dname)([t], **tkw)
            tdense = [g.to_dense() for g in tsparse[:2]]
            it = iter(range(10**9))

            def tdstep():
                t.grad = tdense[next(it) % 2]
                topt.step()

            rec["torch_dense_ms"] = _median(tdstep, max(3, args.steps // 4))
        rows.append(rec)
        print(json.dumps(rec), flush=True)

    cols = ["npembed_lazy_ms", "npembed_exact_ms", "npembed_dense_ms", "torch_sparse_ms", "torch_dense_ms", "state_bytes_per_row"]
    print(f"\n{'optimizer':<18}" + "".join(f"{c:>21}" for c in cols))
    for r in rows:
        print(f"{r['optimizer']:<18}" + "".join(f"{r[c]:>21.2f}" if c in r else f"{'-':>21}" for c in cols))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "rows": rows, "shape": shape, "ids": args.ids}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
