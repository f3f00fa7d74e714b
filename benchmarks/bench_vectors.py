"""Loading pre-trained vector files and answering most_similar: npembed against gensim 4.4.

    python benchmarks/bench_vectors.py [--rows 1000000] [--dim 300] [--text-rows 100000]

Generates a word2vec binary file (rows x dim) and a word2vec text file (text-rows x dim) in a
temporary folder, then: load time and peak resident memory above the level after importing
(VmHWM - VmRSS; each load in a fresh subprocess) for each loader, and most_similar queries per second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

LOAD = r"""
import sys, time, json
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
if sys.argv[1] == "npembed":
    import npembed
else:
    from gensim.models import KeyedVectors
base = status("VmRSS")
t = time.perf_counter()
if sys.argv[1] == "npembed":
    vf = npembed.load_vectors(sys.argv[2])
    n = len(vf.keys)
else:
    kv = KeyedVectors.load_word2vec_format(sys.argv[2], binary=sys.argv[3] == "1")
    n = len(kv)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_extra_mb": status("VmHWM") - base, "rows": n}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--text-rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args(argv)
    import npembed
    from gensim.models import KeyedVectors as G

    rng = np.random.default_rng(0)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        keys = [f"w{i}" for i in range(args.rows)]
        vecs = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
        binp, txtp = os.path.join(tmp, "v.bin"), os.path.join(tmp, "v.txt")
        npembed.save_vectors(binp, keys, vecs, "word2vec-binary")
        npembed.save_vectors(txtp, keys[: args.text_rows], vecs[: args.text_rows], "word2vec")
        table_mb = vecs.nbytes / 2**20
        del vecs
        for name, path, binary in (("binary", binp, "1"), ("text", txtp, "0")):
            for who in ("npembed", "gensim"):
                r = subprocess.run([sys.executable, "-c", LOAD, who, path, binary], capture_output=True, text=True, check=True)
                out[f"{name}_{who}"] = json.loads(r.stdout)
        ours = npembed.KeyedVectors.load(binp)
        theirs = G.load_word2vec_format(binp, binary=True)
        qs = [f"w{i}" for i in rng.integers(0, args.rows, args.queries)]
        for who, fn in (("npembed", lambda q: ours.most_similar(q, topn=10)), ("gensim", lambda q: theirs.most_similar(q, topn=10))):
            fn(qs[0])
            t = time.perf_counter()
            for q in qs:
                fn(q)
            out[f"most_similar_qps_{who}"] = args.queries / (time.perf_counter() - t)
    out["table_mb"] = table_mb
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
