"""npembed's benchmark suite: every kernel against its peers, side by side in one process.

    python benchmarks/suite.py [--threads N] [--quick] [--json bench.json] [--sections a,b,...]

Sections (all by default):

  copy      streaming copy bandwidth of this machine (np.copyto of 256 MiB): the ceiling
  lookup    Embedding forward, table 1,000,000 x d (d = 16, 64, 256), ids (256, 50) uniform and
            Zipf-skewed; against torch.nn.functional.embedding and NumPy fancy indexing
  backward  backward + SGD update of the touched rows; against PyTorch sparse=True backward +
            torch.optim.SGD, and against np.add.at
  bag       EmbeddingBag sum / mean / max, 4,096 bags of 20 ids, forward and forward + backward,
            against torch.nn.functional.embedding_bag
  train     the main job's model (benchmarks/torch_model.py): one training step (median), and one
            whole epoch on the bundled recipes, against the same model in PyTorch
  memory    peak memory of a training step on a 1,000,000 x 64 table with Adam, against the
            table plus optimizer state
  compile   numba compile time of every kernel (cold cache, in a subprocess) and load time (warm)

Ratios are peer time / npembed time (above 1: npembed is faster). "GB/s" is the bytes a kernel must
move (rows read and written, ids read) divided by its time; "of copy" is that as a share of the
copy bandwidth. Every call gets another batch of ids (a cycle of 16, the same for every side), so
rows come from memory, not from the cache a repeated batch would leave them in. Shares above 100%
are no error: the copy's every written line goes to memory (and is read first), while a kernel's
output (1-13 MB) can largely stay in the 32 MiB last-level cache between calls, and Zipf ids find
their hot rows there too. Each library's table is
in its own memory (PyTorch's from its allocator, NumPy's from np.empty, npembed's from its layer),
as its users' tables are: where a table starts decides how many cache lines a row spans. Each case
alternates rounds of npembed and its peers, with a pause between them so that one library's idle
worker threads are asleep while the other is timed; the median is kept.
No number here is asserted anywhere: these machines are noisy, only ratios in one run compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROWS = 1_000_000
SECTIONS = ("copy", "lookup", "backward", "bag", "train", "memory", "compile")


def timed(fn, setup=None) -> float:
    if setup is not None:
        setup()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(cases: dict, rounds: int, per_round: int, setups: dict | None = None) -> dict:
    """Median seconds of each callable in ``cases``, measured in alternating rounds."""
    setups = setups or {}
    times: dict = {k: [] for k in cases}
    for name, fn in cases.items():  # warm-up: caches, allocators, lazy state
        for _ in range(2):
            timed(fn, setups.get(name))
    for _ in range(rounds):
        for name, fn in cases.items():
            time.sleep(0.02)  # the other side's idle worker threads stop spinning
            for _ in range(per_round):
                times[name].append(timed(fn, setups.get(name)))
    return {k: statistics.median(v) for k, v in times.items()}


POOL = 16  # id batches cycled through per case: 16 x 12,800 rows exceed the last-level cache


def cycler(n: int):
    """``nxt(side)`` gives each side its own walk 0, 1, ..., n - 1, 0, ... over the id batches."""
    pos: dict = {}

    def nxt(side: str) -> int:
        pos[side] = (pos.get(side, -1) + 1) % n
        return pos[side]

    return nxt


def zipf_ids(rng, n, rows, a=1.2):
    """Zipf-skewed ids, most frequent first, scattered over the table (not clustered at row 0)."""
    ranks = rng.zipf(a, size=n) - 1
    return rng.permutation(rows)[ranks % rows] if rows <= 4_000_000 else ranks % rows


class Report:
    def __init__(self):
        self.rows: list[dict] = []
        self.meta: dict = {}

    def add(self, section: str, case: str, ours: float, peers: dict, moved_bytes: float | None = None, **extra):
        row = {"section": section, "case": case, "npembed_ms": ours * 1e3}
        for name, t in peers.items():
            row[f"{name}_ms"] = t * 1e3
            row[f"ratio_vs_{name}"] = t / ours
        if moved_bytes is not None:
            row["npembed_GBps"] = moved_bytes / ours / 1e9
            if "copy_GBps" in self.meta:
                row["share_of_copy"] = row["npembed_GBps"] / self.meta["copy_GBps"]
        row.update(extra)
        self.rows.append(row)
        peer_txt = "  ".join(f"{n} {t * 1e3:8.3f} ms ({t / ours:5.2f}x)" for n, t in peers.items())
        bw = ""
        if moved_bytes is not None:
            bw = f"  {row['npembed_GBps']:5.1f} GB/s"
            if "share_of_copy" in row:
                bw += f" ({100 * row['share_of_copy']:3.0f}% of copy)"
        print(f"  {case:<44} npembed {ours * 1e3:8.3f} ms  {peer_txt}{bw}", flush=True)


def section_copy(rep: Report, rng) -> None:
    src = np.ones(1 << 26, dtype=np.float32)  # 256 MiB
    dst = np.empty_like(src)
    t = compare({"copy": lambda: np.copyto(dst, src)}, rounds=3, per_round=3)["copy"]
    rep.meta["copy_GBps"] = 2 * src.nbytes / t / 1e9
    print(f"  streaming copy (read + write) {rep.meta['copy_GBps']:.1f} GB/s: the ceiling", flush=True)


def section_lookup_backward(rep: Report, rng, torch, which: set, quick: bool) -> None:
    import npembed

    dims = (16, 64) if quick else (16, 64, 256)
    for d in dims:
        w = rng.standard_normal((ROWS, d), dtype=np.float32)
        for dist in ("uniform", "zipf"):
            # A different batch of ids on every call (each side walks the same cycle of POOL
            # batches): the rows of one batch fit in the last-level cache, so repeating one batch
            # would time cached rows, not memory.
            pool = [rng.integers(0, ROWS, size=(256, 50)) if dist == "uniform"
                    else zipf_ids(rng, 256 * 50, ROWS).reshape(256, 50) for _ in range(POOL)]
            tpool = [torch.from_numpy(x) for x in pool]
            ids = pool[0]
            n = ids.size
            if "lookup" in which:
                emb = npembed.Embedding.from_pretrained(w, freeze=True)
                tw = torch.from_numpy(w).clone()  # in PyTorch's own memory, as its users' tables are
                nxt = cycler(POOL)
                t = compare({
                    "npembed": lambda: emb(pool[nxt("npembed")]),
                    "torch": lambda: torch.nn.functional.embedding(tpool[nxt("torch")], tw),
                    "numpy": lambda: w[pool[nxt("numpy")]],
                }, rounds=15, per_round=10)  # many short rounds: a call takes 0.1-2 ms, a noisy spell lasts seconds
                rep.add("lookup", f"forward d={d} {dist}", t["npembed"], {"torch": t["torch"], "numpy": t["numpy"]},
                        moved_bytes=2 * n * d * 4 + n * 8)
            if "backward" in which:
                g = rng.standard_normal((256, 50, d), dtype=np.float32)
                emb = npembed.Embedding.from_pretrained(w, freeze=False)  # a copy of w
                opt = npembed.SGD(emb.parameters(), lr=0.01)
                tw = torch.from_numpy(w).clone().requires_grad_(True)
                topt = torch.optim.SGD([tw], lr=0.01)
                tg = torch.from_numpy(g)
                state = {}

                nxt = cycler(POOL)

                def ours_setup():
                    emb(pool[nxt("npembed")])

                def ours():
                    emb.backward(g)  # copies g's rows: the caller may reuse g before the step
                    opt.step()
                    opt.zero_grad()

                def ours_donated():
                    emb.backward(g, donate=True)  # keeps g until the step, as PyTorch does
                    opt.step()
                    opt.zero_grad()

                def torch_setup():
                    state["out"] = torch.nn.functional.embedding(tpool[nxt("torch")], tw, sparse=True)

                def theirs():
                    state["out"].backward(tg)
                    topt.step()
                    topt.zero_grad()

                scaled = (-0.01 * g).reshape(-1, d)
                np_w = w.copy()
                t = compare({"npembed": ours, "npembed donate": ours_donated, "torch": theirs,
                             "np.add.at": lambda: np.add.at(np_w, pool[nxt("numpy")].reshape(-1), scaled)},
                            rounds=5, per_round=4 if d < 256 else 2,
                            setups={"npembed": ours_setup, "npembed donate": ours_setup, "torch": torch_setup})
                k = np.unique(ids).size
                moved = n * d * 4 + 2 * k * d * 4 + n * 8
                rep.add("backward", f"backward+SGD d={d} {dist}", t["npembed"], {"torch": t["torch"], "np.add.at": t["np.add.at"]},
                        moved_bytes=moved)
                rep.add("backward", f"backward(donate=True)+SGD d={d} {dist}", t["npembed donate"],
                        {"torch": t["torch"], "np.add.at": t["np.add.at"]}, moved_bytes=moved)
        del w


def section_bag(rep: Report, rng, torch, quick: bool) -> None:
    import npembed

    for d in ((64,) if quick else (64, 256)):
        w = rng.standard_normal((ROWS, d), dtype=np.float32)
        for dist in ("uniform", "zipf"):
            pool = [rng.integers(0, ROWS, size=4096 * 20) if dist == "uniform" else zipf_ids(rng, 4096 * 20, ROWS)
                    for _ in range(4)]  # 4 x 81,920 rows: past the last-level cache
            tpool = [torch.from_numpy(x) for x in pool]
            ids = pool[0]
            offs = np.arange(4096) * 20
            toffs = torch.from_numpy(offs)
            g = rng.standard_normal((4096, d), dtype=np.float32)
            tg = torch.from_numpy(g)
            for mode in ("sum", "mean", "max"):
                bag = npembed.EmbeddingBag.from_pretrained(w, freeze=False, mode=mode)
                tw = torch.from_numpy(w).clone().requires_grad_(True)
                nxt = cycler(len(pool))
                t = compare({
                    "npembed": lambda: bag(pool[nxt("npembed")], offs),
                    "torch": lambda: torch.nn.functional.embedding_bag(tpool[nxt("torch")], tw.detach(), toffs, mode=mode),
                }, rounds=10, per_round=5)
                rep.add("bag", f"EmbeddingBag {mode} forward d={d} {dist}", t["npembed"], {"torch": t["torch"]},
                        moved_bytes=ids.size * d * 4 + 4096 * d * 4 + ids.size * 8)

                def ours():
                    bag.weight.grad = None
                    bag(pool[nxt("npembed")], offs)
                    bag.backward(g)

                def theirs():
                    tw.grad = None
                    # PyTorch has no sparse gradient for max: its users get the dense one.
                    out = torch.nn.functional.embedding_bag(tpool[nxt("torch")], tw, toffs, mode=mode, sparse=mode != "max")
                    out.backward(tg)
                    if mode != "max":
                        tw.grad.coalesce()

                t = compare({"npembed": ours, "torch": theirs}, rounds=5, per_round=2)
                note = "torch dense grad" if mode == "max" else "both sparse"
                rep.add("bag", f"EmbeddingBag {mode} fwd+bwd d={d} {dist} ({note})", t["npembed"], {"torch": t["torch"]})
        del w


def section_train(rep: Report, torch, quick: bool) -> None:
    from torch_model import NpembedTrainer, TorchTrainer, run_epochs

    from npembed import load_recipes
    from npembed.train import prepare

    data = prepare(load_recipes())
    order = np.random.default_rng(1).permutation(len(data.train))
    ours, theirs = NpembedTrainer(data, 128, 1e-3, 0), TorchTrainer(torch, data, 128, 1e-3, 0)
    batches = [order[i : i + 256] for i in range(0, 256 * 400, 256)]
    it = {"n": 0, "t": 0}

    def step_ours():
        ours.step(batches[it["n"] % len(batches)])
        it["n"] += 1

    def step_torch():
        theirs.step(batches[it["t"] % len(batches)])
        it["t"] += 1

    t = compare({"npembed": step_ours, "torch": step_torch}, rounds=10, per_round=20)
    rep.add("train", "main job: one training step (batch 256)", t["npembed"], {"torch": t["torch"]})
    if quick:
        return
    ours, theirs = NpembedTrainer(data, 128, 1e-3, 0), TorchTrainer(torch, data, 128, 1e-3, 0)
    eps_ours = run_epochs(ours, order, 1, 256)
    time.sleep(0.1)
    eps_torch = run_epochs(theirs, order, 1, 256)
    m_ours, m_torch = ours.test_metrics(), theirs.test_metrics()
    rep.add("train", "main job: one epoch (380,772 examples)", len(order) / eps_ours, {"torch": len(order) / eps_torch},
            npembed_examples_per_s=eps_ours, torch_examples_per_s=eps_torch,
            npembed_test_recall10=m_ours["recall@10"], torch_test_recall10=m_torch["recall@10"],
            npembed_test_mrr=m_ours["mrr"], torch_test_mrr=m_torch["mrr"])
    print(f"    examples/s: npembed {eps_ours:,.0f}, torch {eps_torch:,.0f}; test Recall@10 after the epoch: "
          f"npembed {m_ours['recall@10']:.4f}, torch {m_torch['recall@10']:.4f}", flush=True)


MEMORY_CHILD = r"""
import json, sys, tracemalloc
import numpy as np
import npembed
from npembed.layers import Linear, MeanPool

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

V, d, C = 1_000_000, 64, 1000
rng = np.random.default_rng(0)
emb = npembed.Embedding(V, d, rng=0)
pool, out, loss = MeanPool(), Linear(d, C, rng=1), npembed.SoftmaxCrossEntropy()
opt = npembed.Adam(emb.parameters() + out.parameters(), lr=1e-3)

def step():
    ids = rng.integers(0, V, size=(256, 50))
    mask = np.ones(ids.shape, dtype=bool)
    h = pool(emb(ids), mask)
    loss(out(h), rng.integers(0, C, size=256))
    emb.backward(pool.backward(out.backward(loss.backward())))
    opt.step()
    opt.zero_grad()

step(); step()  # the optimizer's state exists from the first step on
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak resident set (VmHWM) to the current one
base_rss = status("VmRSS")
tracemalloc.start()
for _ in range(5):
    step()
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({"table_bytes": V * d * 4, "state_bytes": 2 * V * d * 4, "step_peak_traced": peak,
                  "step_peak_rss_growth": status("VmHWM") - base_rss}))
"""


def section_memory(rep: Report) -> None:
    res = json.loads(subprocess.run([sys.executable, "-c", MEMORY_CHILD], capture_output=True, text=True, check=True).stdout)
    rep.meta["memory"] = res
    mb = 2**20
    print(f"  table {res['table_bytes'] / mb:.0f} MiB + Adam state {res['state_bytes'] / mb:.0f} MiB; a training step "
          f"(256 x 50 ids, output layer 64 x 1000) allocates at most {res['step_peak_traced'] / mb:.1f} MiB (tracemalloc), "
          f"peak resident memory grows {res['step_peak_rss_growth'] / mb:.1f} MiB", flush=True)


COMPILE_CHILD = r"""
import json, time
t0 = time.perf_counter()
import npembed
from npembed.kernels.warmup import warm_up
t1 = time.perf_counter()
times = warm_up()
print(json.dumps({"import_s": t1 - t0, "kernels_s": time.perf_counter() - t1, "per_kernel": dict(times)}))
"""


def section_compile(rep: Report) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for _ in range(2):  # cold (empty cache), then warm
            out = subprocess.run([sys.executable, "-c", COMPILE_CHILD], capture_output=True, text=True, check=True, env=env)
            runs.append(json.loads(out.stdout))
    rep.meta["compile"] = {"cold": runs[0], "warm": runs[1]}
    print(f"  every kernel, serial and parallel builds, float32: compile {runs[0]['kernels_s']:.1f} s on a cold cache, "
          f"load {runs[1]['kernels_s']:.2f} s from the cache (import npembed {runs[1]['import_s']:.2f} s)", flush=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return platform.processor() or platform.machine()
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="threads for both sides (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and no whole epoch (a smoke run)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = ap.parse_args(argv)
    which = set(args.sections.split(","))
    unknown = which - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    import torch

    import npembed

    threads = npembed.set_num_threads(args.threads)
    torch.set_num_threads(threads)
    rep = Report()
    rep.meta.update({
        "threads": threads, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
        "npembed": npembed.__version__, "numba": __import__("numba").__version__, "date": time.strftime("%Y-%m-%d"),
        "cpu": _cpu_model(), "quick": args.quick, "table_rows": ROWS, "lookup_ids": [256, 50], "bags": [4096, 20],
    })
    print(f"npembed {npembed.__version__} vs torch {torch.__version__}, numpy {np.__version__}; {threads} threads both sides "
          f"({os.cpu_count()} cores); ratio = peer time / npembed time", flush=True)
    rng = np.random.default_rng(0)
    if "copy" in which or which & {"lookup", "backward"}:
        section_copy(rep, rng)
    if which & {"lookup", "backward"}:
        section_lookup_backward(rep, rng, torch, which, args.quick)
    if "bag" in which:
        section_bag(rep, rng, torch, args.quick)
    if "train" in which:
        section_train(rep, torch, args.quick)
    if "memory" in which:
        section_memory(rep)
    if "compile" in which:
        section_compile(rep)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": rep.meta, "results": rep.rows}, fh, indent=2)
        print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
