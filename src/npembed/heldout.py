"""The hold-one-out task on baskets: split, vocabulary, examples, ranking metrics and baselines.

The protocol is the one in the project's reference figures, so results sit beside PyTorch's and
gensim's:

1. Split: ``perm = default_rng(seed).permutation(N)``; train ``perm[:int(.8N)]``, valid
   ``perm[int(.8N):int(.9N)]``, test ``perm[int(.9N):]``.
2. Vocabulary: the sorted items of the training baskets.
3. Held-out draw: ``default_rng(seed + 2)`` for valid, ``default_rng(seed + 1)`` for test. Per basket,
   in split order: keep known items; skip it (no draw) if fewer than 2 remain; sort the ids;
   ``j = rng.integers(n)``; the target is ``ids[j]`` and the context the rest.
4. Ranking: every item except the context is a candidate;
   ``rank = 1 + #(scoring above the target) + 0.5 #(others scoring equal)``. Recall@k is the mean
   of ``rank <= k`` and MRR the mean of ``1 / rank``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .kernels import ordered_pairs
from .vocab import Vocab

__all__ = [
    "Examples",
    "split_indices",
    "encode_baskets",
    "heldout_examples",
    "training_examples",
    "rank_targets",
    "ranking_metrics",
    "popularity_scorer",
    "cooccurrence_scorer",
]


@dataclass
class Examples:
    """Contexts padded to one width with ``pad``, the target of each, and each context's length."""

    contexts: np.ndarray  # (n, width) int32 (int64 past 2**31 items), padded with `pad`
    targets: np.ndarray  # (n,) int64
    lengths: np.ndarray  # (n,) int64
    pad: int

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Contexts (trimmed to the batch's longest) and targets of ``rows``."""
        width = int(self.lengths[rows].max()) if len(rows) else 0
        return self.contexts[rows, :width], self.targets[rows]


def split_indices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / valid / test basket indices: 80 / 10 / 10 of ``default_rng(seed).permutation(n)``."""
    perm = np.random.default_rng(seed).permutation(n)
    a, b = int(0.8 * n), int(0.9 * n)
    return perm[:a], perm[a:b], perm[b:]


def encode_baskets(baskets: Sequence[Sequence[str]], vocab: Vocab) -> list[np.ndarray]:
    """Each basket as the ids of its known items, in basket order."""
    return [vocab.encode(b) for b in baskets]


def _id_dtype(pad: int) -> type:
    return np.int32 if pad < np.iinfo(np.int32).max else np.int64


def _pad(contexts: list[np.ndarray], pad: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(c) for c in contexts], dtype=np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    out = np.full((len(contexts), width), pad, dtype=_id_dtype(pad))
    for i, c in enumerate(contexts):
        out[i, : len(c)] = c
    return out, lengths


def heldout_examples(encoded: Sequence[np.ndarray], rng: np.random.Generator, pad: int) -> Examples:
    """One (context, target) per basket with at least 2 known items, drawn as in step 3 above."""
    contexts, targets = [], []
    for ids in encoded:
        n = len(ids)
        if n < 2:
            continue
        ids = np.sort(ids)
        j = int(rng.integers(n))
        targets.append(ids[j])
        contexts.append(np.delete(ids, j))
    padded, lengths = _pad(contexts, pad)
    return Examples(padded, np.array(targets, dtype=np.int64), lengths, pad)


def training_examples(encoded: Sequence[np.ndarray], pad: int) -> Examples:
    """Every item of every basket (of 2 or more items) as a target once, the rest its context."""
    keep = [ids for ids in encoded if len(ids) >= 2]
    total = sum(len(ids) for ids in keep)
    width = max((len(ids) - 1 for ids in keep), default=0)
    # The padded contexts are the largest array of a run (380,772 x 31 for the recipes): int32
    # halves it; the lookup widens each batch to int64 on the way in.
    contexts = np.full((total, width), pad, dtype=_id_dtype(pad))
    targets = np.empty(total, dtype=np.int64)
    lengths = np.empty(total, dtype=np.int64)
    row = 0
    for ids in keep:
        n = len(ids)
        # Row j of the (n, n-1) block is `ids` without its j-th entry.
        others = ~np.eye(n, dtype=bool)
        contexts[row : row + n, : n - 1] = np.broadcast_to(ids, (n, n))[others].reshape(n, n - 1)
        targets[row : row + n] = ids
        lengths[row : row + n] = n - 1
        row += n
    return Examples(contexts, targets, lengths, pad)


def rank_targets(scores: np.ndarray, contexts: np.ndarray, targets: np.ndarray, pad: int) -> np.ndarray:
    """Rank of each target among the candidates (all items but the context), ties counted half.

    ``scores`` is (n, num_items); ``contexts`` (n, width) padded with ``pad`` (>= num_items, or
    any id never a target). Scores must be finite.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if not np.isfinite(scores).all():
        raise FloatingPointError("scores hold NaN or infinite values; the model's weights are not finite.")
    n, v = scores.shape
    rows = np.arange(n)
    t = scores[rows, targets]
    valid = contexts != pad
    r_idx = np.broadcast_to(rows[:, None], contexts.shape)[valid]
    scores[r_idx, contexts[valid]] = -np.inf
    above = (scores > t[:, None]).sum(axis=1)
    equal = (scores == t[:, None]).sum(axis=1) - 1  # the target itself is not a tie
    return 1.0 + above + 0.5 * equal


def ranking_metrics(
    scorer: Callable[[np.ndarray], np.ndarray], examples: Examples, k: int = 10, chunk: int = 2048
) -> dict[str, float]:
    """Recall@k and MRR of ``scorer(contexts) -> (n, num_items)`` over ``examples`` (``None`` if empty)."""
    ranks = []
    for start in range(0, len(examples), chunk):
        rows = np.arange(start, min(start + chunk, len(examples)))
        ctx, tgt = examples.batch(rows)
        ranks.append(rank_targets(scorer(ctx), ctx, tgt, examples.pad))
    r = np.concatenate(ranks) if ranks else np.empty(0)
    if r.size == 0:
        return {f"recall@{k}": None, "mrr": None, "n": 0}
    return {f"recall@{k}": float(np.mean(r <= k)), "mrr": float(np.mean(1.0 / r)), "n": int(r.size)}


def popularity_scorer(encoded_train: Sequence[np.ndarray], num_items: int) -> Callable[[np.ndarray], np.ndarray]:
    """Score every item by the number of training baskets holding it."""
    counts = np.zeros(num_items, dtype=np.float64)
    for ids in encoded_train:
        counts[np.unique(ids)] += 1

    def score(contexts: np.ndarray) -> np.ndarray:
        return np.broadcast_to(counts, (contexts.shape[0], num_items))

    return score


# Up to this many (item, item) cells, pairs are counted in a dense array; beyond, by sorting.
DENSE_PAIRS_MAX = 1 << 24


def cooccurrence_scorer(encoded_train: Sequence[np.ndarray], num_items: int) -> Callable[[np.ndarray], np.ndarray]:
    """Item-item co-occurrence: ``score(i) = sum_c C[i, c] / sqrt(count_i count_c)`` over the context.

    ``C[i, c]`` counts training baskets holding both; it is kept sparse (CSR by ``c``), so the memory
    grows with the pairs seen, not with ``num_items ** 2``.
    """
    uniq_baskets = [np.unique(ids) for ids in encoded_train]
    flat = np.concatenate(uniq_baskets) if uniq_baskets else np.empty(0, dtype=np.int64)
    offsets = np.zeros(len(uniq_baskets) + 1, dtype=np.int64)
    np.cumsum([len(u) for u in uniq_baskets], out=offsets[1:])
    counts = np.bincount(flat, minlength=num_items).astype(np.float64)
    keys = ordered_pairs(flat, offsets, num_items)  # key = c * num_items + i
    if num_items * num_items <= DENSE_PAIRS_MAX:
        # Small catalogue: count every pair in one dense pass instead of sorting the keys.
        dense = np.bincount(keys, minlength=num_items * num_items)
        uniq = np.flatnonzero(dense)
        pair_counts = dense[uniq]
        del dense
    else:
        uniq, pair_counts = np.unique(keys, return_counts=True)
    del keys
    c_of, i_of = np.divmod(uniq, num_items)
    safe = np.where(counts > 0, counts, 1.0)
    weights = pair_counts / np.sqrt(safe[c_of] * safe[i_of])
    indptr = np.zeros(num_items + 1, dtype=np.int64)
    np.add.at(indptr, c_of + 1, 1)
    indptr = np.cumsum(indptr)

    def score(contexts: np.ndarray) -> np.ndarray:
        # A few hundred baskets at a time: the expanded (basket, entry) pairs below grow with
        # baskets x context length x co-occurring items, and would dominate peak memory.
        if contexts.shape[0] > 256:
            return np.concatenate([score(contexts[i : i + 256]) for i in range(0, contexts.shape[0], 256)])
        n = contexts.shape[0]
        rows, cols = np.nonzero((contexts >= 0) & (contexts < num_items))
        c = contexts[rows, cols]
        starts, sizes = indptr[c], indptr[c + 1] - indptr[c]
        # Expand each context item's CSR row into (basket row, entry) pairs, then sum per cell.
        rep = np.repeat(np.arange(len(c)), sizes)
        entry = starts[rep] + (np.arange(rep.size) - np.repeat(np.cumsum(sizes) - sizes, sizes))
        flat = rows[rep] * num_items + i_of[entry]
        return np.bincount(flat, weights=weights[entry], minlength=n * num_items).reshape(n, num_items)

    return score
