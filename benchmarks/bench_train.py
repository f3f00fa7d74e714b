"""Main job speed: npembed against the same model written in PyTorch, side by side in one process.

Both train `Embedding(V+1, d, padding_idx=V) -> mean over context -> Linear(d, V) -> softmax
cross-entropy` with Adam (PyTorch: `SparseAdam` on the sparse table, `Adam` on the output layer, as
npembed does), batch 256, on the bundled recipes' training examples in the same shuffled order.

    python benchmarks/bench_train.py [--epochs 2] [--threads 2] [--json out.json]

Prints examples/s for each and the ratio, plus test Recall@10 after the same number of epochs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from torch_model import NpembedTrainer, TorchTrainer, run_epochs


def run_torch(torch, data, order, epochs, d, lr, bs, seed):
    trainer = TorchTrainer(torch, data, d, lr, seed)
    eps = run_epochs(trainer, order, epochs, bs)
    return eps, trainer.test_metrics()


def run_npembed(data, order, epochs, d, lr, bs, seed):
    trainer = NpembedTrainer(data, d, lr, seed)
    eps = run_epochs(trainer, order, epochs, bs)
    return eps, trainer.test_metrics()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    import npembed
    from npembed import load_recipes
    from npembed.train import prepare

    torch.set_num_threads(args.threads)
    npembed.set_num_threads(args.threads)
    data = prepare(load_recipes())
    order = np.random.default_rng(1).permutation(len(data.train))
    # Warm up both (numba loads its cached kernels, torch its allocator) on a few batches.
    warm = order[: 256 * 5]
    run_npembed(data, warm, 1, args.dim, 1e-3, 256, 0)
    results = {}
    ours_eps, ours_test = run_npembed(data, order, args.epochs, args.dim, 1e-3, 256, 0)
    torch_eps, torch_test = run_torch(torch, data, order, args.epochs, args.dim, 1e-3, 256, 0)
    results = {
        "threads": args.threads,
        "epochs": args.epochs,
        "npembed_examples_per_s": ours_eps,
        "torch_examples_per_s": torch_eps,
        "ratio": ours_eps / torch_eps,
        "npembed_test": ours_test,
        "torch_test": torch_test,
        "torch_version": torch.__version__,
    }
    print(f"{'':<10}{'examples/s':>12}{'test R@10':>11}{'test MRR':>10}")
    print(f"{'npembed':<10}{ours_eps:>12,.0f}{ours_test['recall@10']:>11.4f}{ours_test['mrr']:>10.4f}")
    print(f"{'pytorch':<10}{torch_eps:>12,.0f}{torch_test['recall@10']:>11.4f}{torch_test['mrr']:>10.4f}")
    print(f"ratio npembed / pytorch: {ours_eps / torch_eps:.2f}x ({args.threads} threads, {args.epochs} epoch{'s' if args.epochs != 1 else ''} each)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
