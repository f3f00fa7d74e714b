"""Bring pre-trained vectors into your own vocabulary: coverage report, rules for missing rows,
and an Embedding whose loaded rows can stay frozen while the rest train."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from .embedding import Embedding, as_generator
from .keyedvectors import KeyedVectors
from .vocab import Vocab

__all__ = ["align_vectors", "Coverage", "MISSING_RULES"]

MISSING_RULES = ("zeros", "random", "mean")


@dataclass
class Coverage:
    """How much of a vocabulary a vector file covers."""

    ids_found: int
    ids_total: int
    case_folded_hits: int
    token_coverage: float | None  # share of token occurrences (None when the vocabulary has no counts)
    missing: list = field(default_factory=list)

    @property
    def id_coverage(self) -> float:
        return self.ids_found / self.ids_total if self.ids_total else 0.0

    def __str__(self) -> str:
        tok = "n/a" if self.token_coverage is None else f"{100 * self.token_coverage:.1f}%"
        return (
            f"{self.ids_found} of {self.ids_total} ids found ({100 * self.id_coverage:.1f}%; "
            f"{self.case_folded_hits} by case folding), tokens covered {tok}, {len(self.missing)} missing"
        )


def align_vectors(
    vectors: KeyedVectors,
    vocab: Union[Vocab, Sequence[str]],
    *,
    missing: str = "random",
    case_fold: bool = True,
    freeze_loaded: bool = True,
    padding_idx: int | None = None,
    rng: Union[np.random.Generator, int, None] = None,
    dtype=np.float32,
) -> tuple[Embedding, Coverage]:
    """An :class:`Embedding` over ``vocab`` with each key's pre-trained vector where the file has it.

    Parameters
    ----------
    missing : {"zeros", "random", "mean"}
        Rows for keys the file lacks: zeros; random draws matched to the file's statistics (each
        dimension normal with that dimension's mean and standard deviation); or the mean vector.
    case_fold : bool
        A key not found as is is looked up case-insensitively (the file's first match wins).
        The vocabulary's ``specials`` (``Vocab.build(..., specials=)``) are never looked up and
        are left out of the coverage figures; their rows follow ``missing``.
    freeze_loaded : bool
        Loaded rows get no gradient (``freeze_rows``); the missing rows train.
    padding_idx : int, optional
        Passed to the Embedding: that row is zero and frozen, whatever the file says.
    """
    if missing not in MISSING_RULES:
        raise ValueError(f"`missing` must be one of {MISSING_RULES}; got {missing!r}.")
    if not isinstance(vectors, KeyedVectors):
        if hasattr(vectors, "keys") and hasattr(vectors, "vectors"):  # what load_vectors returns
            vectors = KeyedVectors(vectors.keys, vectors.vectors, getattr(vectors, "counts", None))
        else:
            raise TypeError(f"`vectors` must be a KeyedVectors (or what load_vectors returns); got {type(vectors).__name__}.")
    if isinstance(vocab, (str, bytes)):
        raise TypeError("`vocab` must be a Vocab or a list of keys; got a single string.")
    if not isinstance(vocab, Vocab):
        vocab = Vocab(list(vocab))
    if len(vocab) == 0:
        raise ValueError("`vocab` is empty: nothing to align.")
    if len(vectors) == 0 and missing != "zeros":
        raise ValueError(f"the vectors hold no rows, so missing={missing!r} has no statistics to draw on; use missing='zeros'.")
    specials = set(vocab.specials)
    src = vectors.vectors
    folded: dict[str, int] = {}
    if case_fold:
        for i, k in enumerate(vectors.index_to_key):
            if isinstance(k, str):
                folded.setdefault(k.lower(), i)
    rows = np.full(len(vocab), -1, dtype=np.int64)
    case_hits = 0
    for i, key in enumerate(vocab.index_to_key):
        if key in specials:
            continue  # <pad>, <unk>, ...: not words a file could hold; given the missing rule's row
        j = vectors.key_to_index.get(key)
        if j is None and case_fold and isinstance(key, str):
            j = folded.get(key.lower())
            case_hits += j is not None
        if j is not None:
            rows[i] = j
    found = rows >= 0
    is_special = np.array([k in specials for k in vocab.index_to_key], dtype=bool)
    d = src.shape[1]
    gen = as_generator(rng)
    table = np.empty((len(vocab), d), dtype=dtype)
    table[found] = src[rows[found]]
    n_missing = int((~found).sum())
    if n_missing:
        if missing == "zeros":
            table[~found] = 0
        else:
            # statistics of the file's vectors scaled to at most 1 first: no overflow near the float limits
            top = float(np.abs(src).max()) if src.size else 0.0
            top = top if np.isfinite(top) and top > 0 else 1.0
            mu = src.mean(axis=0, dtype=np.float64) if top < 1e150 else (src / top).mean(axis=0, dtype=np.float64) * top
            if missing == "mean":
                table[~found] = mu
            else:
                sd = src.std(axis=0, dtype=np.float64) if top < 1e150 else (src / top).std(axis=0, dtype=np.float64) * top
                table[~found] = mu + sd * gen.standard_normal((n_missing, d))
    counts = vocab.counts
    token_cov = float(counts[found].sum() / counts.sum()) if counts.sum() > 0 else None
    words = ~is_special
    emb = Embedding.from_pretrained(table, freeze=False, padding_idx=padding_idx, dtype=dtype)
    if padding_idx is not None:
        emb.weight.data[emb.padding_idx] = 0
    if freeze_loaded and found.any():
        emb.freeze_rows(np.flatnonzero(found))
    report = Coverage(  # specials are left out of the coverage: no file holds them
        int(found.sum()), int(words.sum()), int(case_hits), token_cov,
        [vocab.index_to_key[i] for i in np.flatnonzero(~found & words)],
    )
    return emb, report
