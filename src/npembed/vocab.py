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

    def __init__(self, index_to_key: Sequence[str], counts: Sequence[int] | None = None, specials: Sequence[str] = ()):
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
        self.specials = list(specials)  # tokens such as <pad>, <unk>: part of the vocabulary, not of any data
        unknown = [k for k in self.specials if k not in self.key_to_index]
        if unknown:
            raise ValueError(f"`specials` must be keys of the vocabulary; {unknown[0]!r} is not.")

    @classmethod
    def from_baskets(cls, baskets: Iterable[Sequence[str]]) -> "Vocab":
        """Every key seen, sorted by name; counts are the number of baskets holding each key."""
        counts: dict[str, int] = {}
        for basket in baskets:
            for key in set(basket):
                counts[key] = counts.get(key, 0) + 1
        keys = sorted(counts)
        return cls(keys, [counts[k] for k in keys])

    @classmethod
    def build(
        cls,
        sequences: Iterable[Sequence[str]],
        *,
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (),
    ) -> "Vocab":
        """A vocabulary from token sequences: ``specials`` first (ids 0, 1, ...), then the tokens
        seen at least ``min_count`` times, most frequent first (ties by name, so ids are stable),
        at most ``max_size`` entries in all. Counts are occurrences (specials count 0).
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"`min_count` must be a positive integer; got {min_count!r}.")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1):
            raise ValueError(f"`max_size` must be a positive integer or None; got {max_size!r}.")
        specials = list(specials)
        if len(set(specials)) != len(specials):
            raise ValueError(f"`specials` must be distinct; got {specials}.")
        counts: dict[str, int] = {}
        for n, seq in enumerate(sequences):
            if isinstance(seq, (str, bytes)):
                raise TypeError(
                    f"`sequences` must hold lists of tokens; sequence {n} is a string ({seq[:30]!r}), which would "
                    "count characters. Split it first, e.g. text.split()."
                )
            for tok in seq:
                counts[tok] = counts.get(tok, 0) + 1
        kept = sorted((k for k, c in counts.items() if c >= min_count and k not in specials), key=lambda k: (-counts[k], k))
        if max_size is not None:
            kept = kept[: max(max_size - len(specials), 0)]
        if not kept:
            raise ValueError(
                f"no token is left after filtering ({len(counts)} distinct, min_count={min_count}, max_size={max_size}); "
                "lower min_count or raise max_size."
            )
        keys = specials + kept
        return cls(keys, [0] * len(specials) + [counts[k] for k in kept], specials=specials)

    def save(self, path) -> None:
        """Write the vocabulary as JSON, atomically."""
        import json

        from .fsutil import atomic_files

        for i, k in enumerate(self.index_to_key):
            if not isinstance(k, str):
                raise ValueError(f"key {i} is {k!r}: only string keys can be saved.")
            try:
                k.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"key {i} is {k!r}: it holds a lone surrogate, which UTF-8 cannot encode.") from None
        data = json.dumps(self.to_json(), ensure_ascii=False).encode("utf-8")
        atomic_files([(path, lambda fh: fh.write(data))])

    @classmethod
    def load(cls, path) -> "Vocab":
        import json

        from ._checks import FormatError

        try:
            with open(path, encoding="utf-8") as fh:
                obj = json.load(fh)
            return cls.from_json(obj)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"not a vocabulary file ({exc}).", str(path)) from None

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
        if not isinstance(key, str):
            return f"{key!r} is not in the vocabulary ({len(self)} items; keys are strings)."
        if len(self) > 20_000:
            # A scan of a large vocabulary per unknown key would make `key in kv`-style loops crawl:
            # only other casings are offered.
            close = [k for k in dict.fromkeys((key.lower(), key.capitalize(), key.title(), key.upper())) if k in self.key_to_index and k != key]
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            return f"{key!r} is not in the vocabulary ({len(self)} items).{hint}"
        low = key.lower().strip()
        # Names that contain the key ("beer" -> "canned beer") first, then near spellings.
        contains = [k for k in self.index_to_key if low and low in k.lower() and k != key]
        contains.sort(key=lambda k: (len(k), k))
        near = difflib.get_close_matches(key, self.index_to_key, n=5, cutoff=0.6)
        close = list(dict.fromkeys(contains[:3] + near + contains[3:]))[:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"{key!r} is not in the vocabulary ({len(self)} items).{hint}"

    def to_json(self) -> dict:
        out = {"index_to_key": self.index_to_key, "counts": self.counts.tolist()}
        if self.specials:
            out["specials"] = self.specials
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "Vocab":
        keys, counts = obj["index_to_key"], obj["counts"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError("'index_to_key' must be a list of strings")
        if not isinstance(counts, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**63 for c in counts
        ):
            raise ValueError("'counts' must be a list of integers in [0, 2**63)")
        specials = obj.get("specials", [])
        if not isinstance(specials, list) or not all(isinstance(k, str) for k in specials):
            raise ValueError("'specials' must be a list of strings")
        return cls(keys, counts, specials)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} keys)"
