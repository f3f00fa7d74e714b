"""A vocabulary: item names to contiguous ids and back, with counts."""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence

import numpy as np

__all__ = ["Vocab"]


class Vocab:
    """Maps keys (item names) to ids ``0 .. len-1`` and back.

    Attributes
    ----------
    index_to_key : list of str
    key_to_index : dict of str to int
    counts : ndarray of int64
        How often each key was seen (for baskets: in how many training baskets).
    """

    def __init__(self, index_to_key: Sequence[str], counts: Sequence[int] | None = None):
        self.index_to_key = list(index_to_key)
        self.key_to_index = {k: i for i, k in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            seen: set[str] = set()
            dup = next(k for k in self.index_to_key if k in seen or seen.add(k))
            raise ValueError(f"`index_to_key` must hold distinct keys; {dup!r} appears more than once.")
        if counts is None:
            counts = np.zeros(len(self.index_to_key), dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.int64)
        if self.counts.shape != (len(self.index_to_key),):
            raise ValueError(f"`counts` must have one entry per key ({len(self.index_to_key)}); got {self.counts.shape}.")

    @classmethod
    def from_baskets(cls, baskets: Iterable[Sequence[str]]) -> "Vocab":
        """Every key seen, sorted by name; counts are the number of baskets holding each key."""
        counts: dict[str, int] = {}
        for basket in baskets:
            for key in set(basket):
                counts[key] = counts.get(key, 0) + 1
        keys = sorted(counts)
        return cls(keys, [counts[k] for k in keys])

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, key: object) -> bool:
        return key in self.key_to_index

    def encode(self, keys: Iterable[str]) -> np.ndarray:
        """Ids of the known keys, in order; unknown keys are dropped."""
        k2i = self.key_to_index
        return np.array([k2i[k] for k in keys if k in k2i], dtype=np.int64)

    def lookup(self, key: str) -> int:
        """The id of ``key``; an unknown key raises ``KeyError`` with the closest known names."""
        try:
            return self.key_to_index[key]
        except KeyError:
            raise KeyError(self.unknown_message(key)) from None

    def unknown_message(self, key: str) -> str:
        low = key.lower().strip()
        # Names that contain the key ("beer" -> "canned beer") first, then near spellings.
        contains = [k for k in self.index_to_key if low and low in k.lower() and k != key]
        contains.sort(key=lambda k: (len(k), k))
        near = difflib.get_close_matches(key, self.index_to_key, n=5, cutoff=0.6)
        close = list(dict.fromkeys(contains[:3] + near + contains[3:]))[:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"{key!r} is not in the vocabulary ({len(self)} items).{hint}"

    def to_json(self) -> dict:
        return {"index_to_key": self.index_to_key, "counts": self.counts.tolist()}

    @classmethod
    def from_json(cls, obj: dict) -> "Vocab":
        return cls(obj["index_to_key"], obj["counts"])

    def __repr__(self) -> str:
        return f"Vocab({len(self)} keys)"
