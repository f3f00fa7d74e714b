"""Query and evaluate any table of vectors by key, the way gensim's ``KeyedVectors`` does.

The table is never copied to a normalised version: the row norms are kept as one vector and every
cosine is ``dot / (norm_i * norm_q)``. A zero vector has similarity 0 with everything (never NaN).
Returned vectors are read-only views.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence, Union

import numpy as np

from ._checks import FormatError
from .model import topk
from .vectors_io import load_vectors, save_vectors
from .vocab import Vocab

__all__ = ["KeyedVectors"]

VECTOR_FOLDER = "npembed-vectors"


VECTOR_FILES = frozenset({"vectors.npy", "vocab.json", "meta.json"})


KeyOrVector = Union[str, np.ndarray]


def _as_list(x) -> list:
    """One key or vector, or several (a 2-D array is one vector per row), as gensim accepts them."""
    if x is None:
        return []
    if isinstance(x, (str, bytes, int, np.integer, tuple)) or (isinstance(x, np.ndarray) and x.ndim == 1):
        return [x]
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return list(x)
    return list(x)


def _norm(v: np.ndarray) -> float:
    """L2 norm in float64 without overflow or underflow of the squares."""
    m = float(np.abs(v).max()) if v.size else 0.0
    if m == 0.0 or not np.isfinite(m):
        return m
    return m * float(np.sqrt(np.dot(v / m, v / m)))


def _robust_norms(block: np.ndarray) -> np.ndarray:
    m = np.abs(block).max(axis=1) if block.shape[1] else np.zeros(block.shape[0])
    with np.errstate(invalid="ignore"):  # inf / inf: that row's norm comes out NaN, and is refused
        scaled = np.divide(block, m[:, None], out=np.zeros_like(block), where=m[:, None] > 0)
        return m * np.sqrt(np.einsum("ij,ij->i", scaled, scaled))


def _check_restrict(restrict_vocab) -> int | None:
    if restrict_vocab is None:
        return None
    if isinstance(restrict_vocab, (bool, np.bool_)) or not isinstance(restrict_vocab, (int, np.integer)) or restrict_vocab < 1:
        raise ValueError(f"`restrict_vocab` must be a positive integer (search the first that many keys) or None; got {restrict_vocab!r}.")
    return int(restrict_vocab)


def _text_lines(path):
    """``(line number, line)`` of a UTF-8 text file, with a FormatError naming the line of any
    byte that is not UTF-8."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"file not found: {path}")
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                yield line_no, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise FormatError(f"not valid UTF-8 ({exc.reason} at byte {exc.start} of the line).", path, line_no) from None


def _check_topn(topn) -> int:
    if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)) or topn < 0:
        raise ValueError(f"`topn` must be a non-negative integer, or None for every score; got {topn!r}.")
    return int(topn)


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


class KeyedVectors:
    """Vectors looked up by key, with similarity queries and the standard evaluations.

    Parameters
    ----------
    keys : sequence of str
        One distinct key per row.
    vectors : ndarray, shape (len(keys), dim)
        Kept as given (not copied); queries never modify it.
    """

    def __init__(self, keys: Sequence[str], vectors: np.ndarray, counts: Sequence[int] | None = None):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise ValueError(f"`vectors` must be 2-D with one row per key ({len(keys)}); got shape {vectors.shape}.")
        if vectors.dtype.kind != "f":
            raise TypeError(f"`vectors` must hold floats; got dtype {vectors.dtype}.")
        self.vocab = Vocab(keys, counts)
        self.vectors = vectors
        self._norms: np.ndarray | None = None

    @property
    def vectors(self) -> np.ndarray:
        """The table (as given; a read-only memory map for :meth:`load_folder`)."""
        return self._vectors

    @vectors.setter
    def vectors(self, value: np.ndarray) -> None:
        self._vectors = value
        # Rows handed out come from a read-only view: numpy then refuses to make them writable.
        self._ro = np.lib.stride_tricks.as_strided(value, writeable=False)
        self._norms = None

    @classmethod
    def load(cls, path: str | os.PathLike, format: str = "auto", **kwargs) -> "KeyedVectors":
        """Read a word2vec / GloVe / fastText file (see :func:`npembed.load_vectors`), or an
        npembed vector folder (then the same as :meth:`load_folder`)."""
        if os.path.isdir(path) and format in ("auto", "npembed"):
            extra = set(kwargs) - {"mmap"}
            if extra:
                raise ValueError(f"{sorted(extra)} apply to vector files; {path} is an npembed folder (read as written).")
            return cls.load_folder(path, **kwargs)
        vf = load_vectors(path, format, **kwargs)
        return cls(vf.keys, vf.vectors, vf.counts)

    def save(self, path: str | os.PathLike, format: str = "word2vec", *, counts_file: str | os.PathLike | None = None) -> None:
        """Write as ``"npembed"`` (a folder: ``vectors.npy``, ``vocab.json``, ``meta.json``; counts
        are in ``vocab.json``), or word2vec text / binary / GloVe (see :func:`npembed.save_vectors`;
        ``counts_file`` also writes the counts as ``key count`` lines). Atomic either way."""
        if format not in ("npembed", "word2vec", "word2vec-binary", "glove", "fasttext"):
            raise ValueError(f"`format` must be 'npembed', 'word2vec', 'word2vec-binary', 'glove' or 'fasttext'; got {format!r}.")
        format = "word2vec" if format == "fasttext" else format
        if format == "npembed":
            if counts_file is not None:
                raise ValueError("the npembed folder keeps counts in vocab.json; `counts_file` is for the text and binary formats.")
            self._save_folder(os.fspath(path))
        else:
            counts = None if counts_file is None else self.vocab.counts
            save_vectors(path, self.index_to_key, self.vectors, format, counts=counts, counts_file=counts_file)

    def _save_folder(self, path: str) -> None:
        import json

        from .fsutil import atomic_dir, check_replaceable_dir

        check_replaceable_dir(
            path, marker="meta.json", fmt=VECTOR_FOLDER, files=VECTOR_FILES,
            what="an npembed vector folder", hint="choose another folder",
        )
        with atomic_dir(path) as tmp:
            np.save(os.path.join(tmp, "vectors.npy"), np.ascontiguousarray(self.vectors))
            self.vocab.save(os.path.join(tmp, "vocab.json"))
            with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as fh:
                json.dump({"format": VECTOR_FOLDER, "count": len(self), "dim": int(self.vectors.shape[1]),
                           "dtype": str(self.vectors.dtype)}, fh)

    @classmethod
    def load_folder(cls, path: str | os.PathLike, mmap: bool = True) -> "KeyedVectors":
        """Load the ``"npembed"`` folder format; with ``mmap`` (default) the table is mapped
        read-only from disk, so a table larger than free memory can be queried."""
        import json

        from .fsutil import read_format

        path = os.fspath(path)
        if read_format(path, "meta.json") != VECTOR_FOLDER:
            raise FormatError("not an npembed vector folder (no meta.json with format 'npembed-vectors').", path)
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
        vocab = Vocab.load(os.path.join(path, "vocab.json"))
        try:
            vectors = np.load(os.path.join(path, "vectors.npy"), mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise FormatError(f"cannot read the table ({exc}).", os.path.join(path, "vectors.npy")) from None
        if vectors.ndim != 2 or vectors.dtype.kind != "f":
            raise FormatError(f"vectors.npy holds {vectors.dtype} of shape {vectors.shape}; a table is 2-D floats.", path)
        if vectors.shape != (meta.get("count"), meta.get("dim")) or vectors.shape[0] != len(vocab):
            raise FormatError(f"vectors.npy has shape {vectors.shape}; meta.json and vocab.json disagree.", path)
        kv = cls(vocab.index_to_key, vectors)
        kv.vocab = vocab
        return kv

    @property
    def index_to_key(self) -> list:
        return self.vocab.index_to_key

    @property
    def key_to_index(self) -> dict:
        return self.vocab.key_to_index

    @property
    def vector_size(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def norms(self) -> np.ndarray:
        """One L2 norm per row (computed once; the table is never normalised in a copy)."""
        if self._norms is None:
            # In blocks of rows: a memory-mapped table larger than RAM is read once, never squared whole.
            norms = np.empty(self.vectors.shape[0], dtype=np.float64)
            step = max(1, (1 << 20) // max(self.vectors.shape[1], 1))  # blocks of about 8 MB in float64
            for i in range(0, len(norms), step):
                block = self.vectors[i : i + step].astype(np.float64)
                n = np.sqrt(np.einsum("ij,ij->i", block, block))
                if not np.isfinite(n).all() or ((n < 1e-150) & (n > 0)).any() or (n == 0).any():
                    n = _robust_norms(block)  # overflow or underflow of the squares: scale first
                    if not np.isfinite(n).all():
                        r = i + int(np.flatnonzero(~np.isfinite(n))[0])
                        raise ValueError(f"row {r} (key {self.index_to_key[r]!r}) holds NaN or infinite values.")
                norms[i : i + step] = n
            norms.flags.writeable = False
            self._norms = norms
        return self._norms

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, key: object) -> bool:
        return self.has_index_for(key)  # as gensim: a key, or a row number in range

    def __iter__(self):
        return iter(self.index_to_key)

    def has_index_for(self, key) -> bool:
        """True for a known key, or an integer row number in range (as gensim)."""
        try:
            self.get_index(key)
            return True
        except (KeyError, IndexError, TypeError):
            return False

    def get_index(self, key) -> int:
        """The row of ``key``; an integer that is not itself a key is a row number (as gensim)."""
        if isinstance(key, str) or key in self.vocab.key_to_index:
            return self.vocab.lookup(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            if not 0 <= key < len(self):
                raise IndexError(f"row {key} is out of range: the table has {len(self)} rows.")
            return int(key)
        raise TypeError(f"a key must be a string (or a row number); got {type(key).__name__} {key!r}.")

    def get_vector(self, key, norm: bool = False) -> np.ndarray:
        """The row of ``key`` (a read-only view), or with ``norm`` a unit-length copy (zero stays zero)."""
        v = self._ro[self.get_index(key)]
        return self._unit(v).astype(self.vectors.dtype) if norm else v

    def __getitem__(self, key):
        if isinstance(key, (str, int, np.integer)):
            return self.get_vector(key)
        rows = self._ro[[self.get_index(k) for k in key]]  # a copy, read-only like the rest
        rows.flags.writeable = False
        return rows

    # ---- similarity --------------------------------------------------------------------------

    def _cosines(self, query: np.ndarray, limit: int | None = None) -> np.ndarray:
        vecs = self.vectors if limit is None else self.vectors[:limit]
        norms = self.norms if limit is None else self.norms[:limit]
        q = np.asarray(query, dtype=np.float64)
        qn = _norm(q)
        if qn > 0:
            q = q / qn  # a unit query: a dot product can only overflow for rows near the dtype's limit
        with np.errstate(over="ignore", invalid="ignore"):
            # float16 tables: products summed in float32 (a float16 sum drifts past cosine 1)
            qt = q.astype(np.float32 if vecs.dtype == np.float16 else vecs.dtype)
            dots = (vecs @ qt).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(dots))
        if bad.size:
            dots[bad] = [np.dot(np.asarray(vecs[i], dtype=np.float64) / norms[i], q) * norms[i] for i in bad]
        denom = norms * (1.0 if qn > 0 else 0.0)
        return np.divide(dots, denom, out=np.zeros(len(dots), dtype=np.float64), where=denom > 0)

    def _vec(self, item, what: str = "a query vector") -> np.ndarray:
        if isinstance(item, (str, int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            v = np.asarray(self.get_vector(item), dtype=np.float64)
            if not np.isfinite(v).all():
                raise ValueError(f"the vector of {item!r} holds NaN or infinite values.")
            return v
        v = np.asarray(item)
        if v.dtype.kind not in "fiu" or v.shape != (self.vectors.shape[1],):
            raise ValueError(f"{what} must be a key or a number array of shape ({self.vectors.shape[1]},); got {item!r:.60}.")
        v = v.astype(np.float64)
        if not np.isfinite(v).all():
            raise ValueError(f"{what} holds NaN or infinite values.")
        return v

    def _unit(self, item) -> np.ndarray:
        v = self._vec(item)
        n = _norm(v)
        return v / n if n > 0 else np.zeros(v.shape, dtype=np.float64)

    def similarity(self, key1, key2) -> float:
        """Cosine similarity of two keys' vectors (0 if either is a zero vector)."""
        return float(np.dot(self._unit(key1), self._unit(key2)))

    def distance(self, key1, key2) -> float:
        """Cosine distance, ``1 - similarity``."""
        return 1.0 - self.similarity(key1, key2)

    def cosine_similarities(self, vector, vectors_all) -> np.ndarray:
        """Cosines of ``vector`` with each row of ``vectors_all`` (0 for zero vectors)."""
        u = self._unit(vector)
        rows = np.asarray(vectors_all, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != u.shape[0]:
            raise ValueError(f"`vectors_all` must be 2-D with {u.shape[0]} columns; got shape {rows.shape}.")
        return np.array([np.dot(self._unit(r), u) for r in rows], dtype=np.float64)

    def distances(self, key_or_vector, other_keys: Sequence = ()) -> np.ndarray:
        """Cosine distances from a key or vector to ``other_keys`` (all keys when empty)."""
        if not len(other_keys):
            return 1.0 - self._cosines(self._unit(key_or_vector))
        u = self._unit(key_or_vector)
        return np.array([1.0 - np.dot(self._unit(k), u) for k in other_keys], dtype=np.float64)

    def closer_than(self, key1, key2) -> list:
        """Keys closer to ``key1`` than ``key2`` is (``key1`` itself left out)."""
        d = self.distances(key1)
        i, j = self.get_index(key1), self.get_index(key2)
        return [self.index_to_key[k] for k in np.flatnonzero(d < d[j]) if k != i]

    def rank(self, key1, key2) -> int:
        """Rank of ``key2`` among ``key1``'s neighbours: 1 + the number of keys closer to ``key1``."""
        return len(self.closer_than(key1, key2)) + 1

    def get_mean_vector(self, keys, weights=None, pre_normalize: bool = True, post_normalize: bool = False,
                        ignore_missing: bool = True) -> np.ndarray:
        """The weighted mean of keys' vectors (unit length first with ``pre_normalize``) and raw
        vectors, divided by the total absolute weight, as gensim's."""
        keys = list(keys) if isinstance(keys, (list, tuple)) else _as_list(keys)
        if not keys:
            raise ValueError("`get_mean_vector` needs at least one key or vector.")
        w = np.ones(len(keys)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(keys),):
            raise ValueError(f"`weights` must hold one number per key ({len(keys)}); got shape {w.shape}.")
        if not np.isfinite(w).all():
            raise ValueError("`weights` must be finite numbers.")
        mean = np.zeros(self.vectors.shape[1], dtype=np.float64)
        total = 0.0
        for k, wk in zip(keys, w):
            if isinstance(k, (str, int, np.integer)) and not self.has_index_for(k):
                if ignore_missing:
                    continue
                self.get_index(k)  # raises the KeyError with suggestions
            v = (self._unit(k) if pre_normalize else self._vec(k)) if isinstance(k, (str, int, np.integer)) else self._vec(k)
            mean += wk * v
            total += abs(wk)
        if total > 0:
            mean /= total
        if post_normalize:
            n = _norm(mean)
            mean = mean / n if n > 0 else mean
        return mean.astype(self.vectors.dtype)

    def n_similarity(self, keys1: Sequence[str], keys2: Sequence[str]) -> float:
        """Cosine similarity of the means of two sets of keys' vectors (unknown keys left out, as
        gensim 4.4)."""
        if not len(keys1) or not len(keys2):
            raise ValueError("`keys1` and `keys2` must each hold at least one key.")
        for side in (keys1, keys2):
            if not any(self.has_index_for(k) for k in side):
                raise KeyError(f"none of {list(side)[:5]} is in the vocabulary.")
        # as gensim 4.4: the means of the known keys' raw vectors (unknown keys are left out)
        a = self.get_mean_vector(list(keys1), pre_normalize=False).astype(np.float64)
        b = self.get_mean_vector(list(keys2), pre_normalize=False).astype(np.float64)
        return float(np.dot(self._unit(a), self._unit(b)))

    def _query(self, name: str, positive, negative, topn, restrict_vocab, score):
        """Shared frame of the neighbour queries: argument checks, excluding the input keys, top-k.

        ``score(items, restrict_vocab)`` gets ``(key or vector, weight)`` pairs (positives +1,
        negatives -1, unless given as ``(key, weight)``) and returns one score per candidate row.
        """
        if topn is not None:
            topn = _check_topn(topn)
        restrict_vocab = _check_restrict(restrict_vocab)
        items = []
        for sign, group in ((1.0, positive), (-1.0, negative)):
            for it in _as_list(group):
                if isinstance(it, tuple):
                    if len(it) != 2 or isinstance(it[1], bool) or not isinstance(it[1], (int, float, np.integer, np.floating)):
                        raise ValueError(f"a weighted query item must be (key or vector, weight); got {it!r:.60}.")
                    if not np.isfinite(it[1]):
                        raise ValueError(f"the weight of {it[0]!r:.40} must be finite; got {it[1]}.")
                    items.append((it[0], float(it[1])))
                else:
                    items.append((it, sign))
        if not items:
            raise ValueError(f"`{name}` needs at least one positive or negative key or vector.")
        exclude = [self.get_index(k) for k, _ in items if isinstance(k, (str, int, np.integer))]
        for k, _ in items:
            self._vec(k)  # every item checked (unknown keys, shapes, NaN) before any work
        if topn == 0:
            return []
        sims = score(items, restrict_vocab)
        if topn is None:  # gensim: every score, as an array
            sims.flags.writeable = False
            return sims
        if exclude:
            sims[[e for e in exclude if e < len(sims)]] = -np.inf
        top = topk(sims, topn)
        return [(self.index_to_key[i], float(sims[i])) for i in top]

    def most_similar(
        self,
        positive: KeyOrVector | Iterable[KeyOrVector] | None = None,
        negative: KeyOrVector | Iterable[KeyOrVector] | None = None,
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Keys nearest (cosine) to the mean of the unit ``positive`` minus the unit ``negative``
        vectors (3CosAdd), as gensim computes it. Keys given as input are never returned.

        ``topn=0`` gives ``[]``; a ``topn`` larger than the vocabulary gives every other key.
        ``restrict_vocab`` searches only the first that many keys (files list frequent ones first).
        """

        def score(items, limit):
            keys, weights = zip(*items)
            mean = self.get_mean_vector(list(keys), list(weights), pre_normalize=True, post_normalize=True, ignore_missing=False)
            return self._cosines(mean.astype(np.float64), limit)

        return self._query("most_similar", positive, negative, topn, restrict_vocab, score)

    def similar_by_vector(self, vector: np.ndarray, topn: int = 10, restrict_vocab: int | None = None):
        """The keys nearest (cosine) to ``vector``."""
        return self.most_similar(positive=[np.asarray(vector)], topn=topn, restrict_vocab=restrict_vocab)

    def most_similar_cosmul(
        self,
        positive: KeyOrVector | Iterable[KeyOrVector] | None = None,
        negative: KeyOrVector | Iterable[KeyOrVector] | None = None,
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """3CosMul (Levy and Goldberg, 2014): ``prod((1 + cos(x, p)) / 2) / (prod((1 + cos(x, n)) / 2) + 1e-6)``."""

        def term(t, limit):
            # keys as unit vectors, raw vectors as given (gensim's rule): dot / row norm
            if isinstance(t, (str, int, np.integer)):
                return self._cosines(self._unit(t), limit)
            v = self._vec(t)
            n = _norm(v)
            return self._cosines(v, limit) * n

        def score(items, limit):
            pos_d = [(1 + term(t, limit)) / 2 for t, w in items if w > 0]
            neg_d = [(1 + term(t, limit)) / 2 for t, w in items if w <= 0]
            n = len(self) if limit is None else min(limit, len(self))
            pos_p = np.prod(pos_d, axis=0) if pos_d else np.ones(n)
            neg_p = np.prod(neg_d, axis=0) if neg_d else np.ones(n)
            return pos_p / (neg_p + 1e-6)

        return self._query("most_similar_cosmul", positive, negative, topn, restrict_vocab, score)

    def doesnt_match(self, keys: Sequence[str]) -> str:
        """The key furthest from the mean of the others' unit vectors (unknown keys are ignored)."""
        known = [k for k in keys if k in self.vocab]
        if not known:
            raise ValueError("`doesnt_match` needs at least one known key.")
        units = np.array([self._unit(k) for k in known])
        mean = units.mean(axis=0)
        n = np.linalg.norm(mean)
        mean = mean / n if n > 0 else mean
        return known[int(np.argmin(units @ mean))]

    # ---- evaluation --------------------------------------------------------------------------

    def _ok_vocab(self, restrict_vocab: int, case_insensitive: bool) -> dict:
        ok = self.index_to_key[:restrict_vocab]
        # First occurrence wins when case folding merges keys (files list frequent keys first).
        return {(k.upper() if case_insensitive else k): self.get_index(k) for k in reversed(ok)}

    def evaluate_word_analogies(
        self,
        path: str | os.PathLike,
        restrict_vocab: int = 300_000,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
    ) -> tuple[float, list[dict]]:
        """Accuracy on ``a b c d`` analogies (``questions-words.txt`` format) by 3CosAdd, as gensim.

        Only the first ``restrict_vocab`` keys are used; a question with any other word counts as
        out of vocabulary (skipped, or wrong with ``dummy4unknown``). Returns the total accuracy
        and one dict per section (``section``, ``correct``, ``incorrect``) plus "Total accuracy",
        which also has ``skipped`` (questions left out as out of vocabulary).
        """
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        sections: list[dict] = []
        section = None
        skipped = 0
        for line_no, line in _text_lines(path):
            if line.startswith(": "):
                if section:
                    sections.append(section)
                section = {"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []}
                continue
            if section is None:
                raise FormatError("missing section header (': name') before the first question.", os.fspath(path), line_no)
            words = line.split()
            if len(words) != 4:
                continue
            a, b, c, expected = [w.upper() for w in words] if case_insensitive else words
            if any(w not in ok_vocab for w in (a, b, c, expected)):
                if dummy4unknown:
                    section["incorrect"].append((a, b, c, expected))
                else:
                    skipped += 1
                continue
            ia, ib, ic = ok_vocab[a], ok_vocab[b], ok_vocab[c]
            units = [self._unit(self.vectors[i]) for i in (ib, ic, ia)]
            mean = (units[0] + units[1] - units[2]) / 3.0
            n = np.linalg.norm(mean)
            sims = self._cosines(mean / n if n > 0 else mean, restrict_vocab)
            sims[[ia, ib, ic]] = -np.inf
            predicted = None
            for i in topk(sims, 5):
                cand = self.index_to_key[i].upper() if case_insensitive else self.index_to_key[i]
                if cand in ok_vocab and cand not in (a, b, c):
                    predicted = cand
                    break
            (section["correct"] if predicted == expected else section["incorrect"]).append((a, b, c, expected))
        if section:
            sections.append(section)
        correct = [q for s in sections for q in s["correct"]]
        incorrect = [q for s in sections for q in s["incorrect"]]
        total = {"section": "Total accuracy", "correct": correct, "incorrect": incorrect, "skipped": skipped}
        sections.append(total)
        n = len(correct) + len(incorrect)
        return (len(correct) / n if n else 0.0), sections

    def evaluate_word_pairs(
        self,
        path: str | os.PathLike,
        delimiter: str = "\t",
        restrict_vocab: int = 300_000,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
    ) -> dict:
        """Pearson and Spearman correlation between human similarity judgements (``a<TAB>b<TAB>score``
        lines; ``#`` comments skipped) and cosine similarity, and the share of pairs out of
        vocabulary (percent), as gensim computes them. p-values are not computed."""
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        gold, model = [], []
        oov = parsed = 0
        for line_no, line in _text_lines(path):
            if not line or line.startswith("#"):
                continue
            parts = line.split(delimiter)
            if len(parts) != 3:
                continue
            a, b = (p.upper() for p in parts[:2]) if case_insensitive else parts[:2]
            try:
                sim = float(parts[2])
            except ValueError:
                continue
            if not np.isfinite(sim):
                raise FormatError(f"the score of {parts[0]!r} and {parts[1]!r} is {parts[2].strip()!r}; scores must be finite.",
                                  os.fspath(path), line_no)
            parsed += 1
            if a not in ok_vocab or b not in ok_vocab:
                oov += 1
                if dummy4unknown:
                    gold.append(sim)
                    model.append(0.0)
                continue
            gold.append(sim)
            model.append(float(np.dot(self._unit(self.vectors[ok_vocab[a]]), self._unit(self.vectors[ok_vocab[b]]))))
        if not parsed:
            raise FormatError(f"no line has the form 'word1{delimiter!r}word2{delimiter!r}score'; is `delimiter` right?".replace("'\\t'", "<TAB>"),
                              os.fspath(path))
        if not gold:
            raise ValueError(f"no pair of {os.fspath(path)} is in the vocabulary; nothing to correlate.")
        g, m = np.array(gold), np.array(model)
        denom = len(gold) if dummy4unknown else len(gold) + oov
        return {
            "pearson": _pearson(g, m),
            "spearman": _pearson(_rankdata(g), _rankdata(m)),
            "oov_ratio": 100.0 * oov / denom,
            "pairs": len(gold),
        }

    def __repr__(self) -> str:
        return f"KeyedVectors({len(self)} keys, dim={self.vectors.shape[1]})"
