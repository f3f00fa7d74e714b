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


def _check_topn(topn) -> int:
    if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)) or topn < 0:
        raise ValueError(f"`topn` must be a non-negative integer; got {topn!r}.")
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

    @classmethod
    def load(cls, path: str | os.PathLike, format: str = "auto", **kwargs) -> "KeyedVectors":
        """Read a word2vec / GloVe / fastText file (see :func:`npembed.load_vectors`)."""
        vf = load_vectors(path, format, **kwargs)
        return cls(vf.keys, vf.vectors, vf.counts)

    def save(self, path: str | os.PathLike, format: str = "word2vec", *, counts_file: str | os.PathLike | None = None) -> None:
        """Write as ``"npembed"`` (a folder: ``vectors.npy``, ``vocab.json``, ``meta.json``; counts
        are in ``vocab.json``), or word2vec text / binary / GloVe (see :func:`npembed.save_vectors`;
        ``counts_file`` also writes the counts as ``key count`` lines). Atomic either way."""
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
        except (OSError, ValueError) as exc:
            raise FormatError(f"cannot read the table ({exc}).", os.path.join(path, "vectors.npy")) from None
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
    def norms(self) -> np.ndarray:
        """One L2 norm per row (computed once; the table is never normalised in a copy)."""
        if self._norms is None:
            # In blocks of rows: a memory-mapped table larger than RAM is read once, never squared whole.
            norms = np.empty(self.vectors.shape[0], dtype=np.float64)
            step = max(1, (1 << 20) // max(self.vectors.shape[1], 1))  # blocks of about 8 MB in float64
            for i in range(0, len(norms), step):
                block = self.vectors[i : i + step].astype(np.float64)
                norms[i : i + step] = np.sqrt(np.einsum("ij,ij->i", block, block))
            norms.flags.writeable = False
            self._norms = norms
        return self._norms

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, key: object) -> bool:
        return key in self.vocab

    def get_index(self, key: str) -> int:
        return self.vocab.lookup(key)

    def get_vector(self, key: str) -> np.ndarray:
        v = self.vectors[self.get_index(key)]
        v.flags.writeable = False
        return v

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.get_vector(key)
        rows = self.vectors[[self.get_index(k) for k in key]]
        rows.flags.writeable = False
        return rows

    # ---- similarity --------------------------------------------------------------------------

    def _cosines(self, query: np.ndarray, limit: int | None = None) -> np.ndarray:
        vecs = self.vectors if limit is None else self.vectors[:limit]
        norms = self.norms if limit is None else self.norms[:limit]
        q = np.asarray(query, dtype=np.float64)
        qn = np.linalg.norm(q)
        dots = vecs @ q.astype(vecs.dtype)
        denom = norms * qn
        return np.divide(dots, denom, out=np.zeros(len(dots), dtype=np.float64), where=denom > 0)

    def _unit(self, item: KeyOrVector) -> np.ndarray:
        v = self.get_vector(item) if isinstance(item, str) else np.asarray(item, dtype=np.float64)
        if v.shape != (self.vectors.shape[1],):
            raise ValueError(f"a query vector must have shape ({self.vectors.shape[1]},); got {v.shape}.")
        n = np.linalg.norm(v)
        return (v / n).astype(np.float64) if n > 0 else np.zeros(v.shape, dtype=np.float64)

    def similarity(self, key1: str, key2: str) -> float:
        """Cosine similarity of two keys' vectors (0 if either is a zero vector)."""
        return float(np.dot(self._unit(key1), self._unit(key2)))

    def n_similarity(self, keys1: Sequence[str], keys2: Sequence[str]) -> float:
        """Cosine similarity of the means of two sets of keys' vectors."""
        if not len(keys1) or not len(keys2):
            raise ValueError("`keys1` and `keys2` must each hold at least one key.")
        a = np.mean([self.get_vector(k) for k in keys1], axis=0)
        b = np.mean([self.get_vector(k) for k in keys2], axis=0)
        return float(np.dot(self._unit(a), self._unit(b)))

    def _query(self, name: str, positive, negative, topn, restrict_vocab, score) -> list[tuple[str, float]]:
        """Shared frame of the neighbour queries: argument checks, excluding the input keys, top-k.

        ``score(pos, neg, restrict_vocab)`` returns one score per candidate row.
        """
        topn = _check_topn(topn)

        def as_list(x):
            if x is None:
                return []
            return [x] if isinstance(x, (str, np.ndarray)) else list(x)

        pos, neg = as_list(positive), as_list(negative)
        if not pos and not neg:
            raise ValueError(f"`{name}` needs at least one positive or negative key or vector.")
        if topn == 0:
            return []
        exclude = [self.get_index(t) for t in pos + neg if isinstance(t, str)]
        sims = score(pos, neg, restrict_vocab)
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

        def score(pos, neg, limit):
            mean = np.mean([self._unit(t) for t in pos] + [-self._unit(t) for t in neg], axis=0)
            n = np.linalg.norm(mean)
            return self._cosines(mean / n if n > 0 else mean, limit)

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

        def score(pos, neg, limit):
            pos_d = [(1 + self._cosines(self._unit(t), limit)) / 2 for t in pos]
            neg_d = [(1 + self._cosines(self._unit(t), limit)) / 2 for t in neg]
            return np.prod(pos_d, axis=0) / (np.prod(neg_d, axis=0) + 1e-6)

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

    def rank(self, key1: str, key2: str) -> int:
        """Rank of ``key2`` among ``key1``'s neighbours (1 = nearest)."""
        sims = self._cosines(self._unit(key1))
        i, j = self.get_index(key1), self.get_index(key2)
        sims[i] = -np.inf
        return int((sims > sims[j]).sum()) + 1

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
        and one dict per section (``section``, ``correct``, ``incorrect``) plus "Total accuracy".
        """
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        sections: list[dict] = []
        section = None
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
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
        total = {"section": "Total accuracy", "correct": correct, "incorrect": incorrect}
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
        oov = 0
        with open(path, encoding="utf-8") as fh:
            for line in fh:
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
                if a not in ok_vocab or b not in ok_vocab:
                    oov += 1
                    if dummy4unknown:
                        gold.append(sim)
                        model.append(0.0)
                    continue
                gold.append(sim)
                model.append(float(np.dot(self._unit(self.vectors[ok_vocab[a]]), self._unit(self.vectors[ok_vocab[b]]))))
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
