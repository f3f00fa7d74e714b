"""The basket model of the main job, and the model folder it is saved to.

``BasketModel``: context ids ``(batch, seq)`` padded with ``pad = num_items``
-> :class:`Embedding` ``(num_items + 1, dim, padding_idx=num_items)`` -> :class:`MeanPool` over the
real ids -> :class:`Linear` ``(dim -> num_items)`` -> logits, trained with a full softmax
cross-entropy. The output layer is a separate matrix, not tied to the table: the input vectors
are then free to place items that go *together* close to each other, and the output layer learns
which items *follow* a context.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Sequence, Union

import numpy as np

from ._checks import FormatError, check_positive_int
from .embedding import Embedding, as_generator
from .fsutil import atomic_dir, check_replaceable_model_dir, MODEL_FORMAT
from .layers import Linear, MeanPool
from .parameter import Parameter
from .vocab import Vocab

__all__ = ["BasketModel", "TrainedModel", "load_model", "save_model"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class BasketModel:
    """Predict one item of a basket from the mean of the other items' vectors.

    Parameters
    ----------
    num_items : int
        Vocabulary size; id ``num_items`` is the padding id of the contexts.
    dim : int
        Embedding size.
    rng : np.random.Generator or int, optional
        Seeds the table (N(0, 1), PyTorch's default) and the output layer (PyTorch's Linear default).

    Shape
    -----
    ``contexts`` (batch, seq) ints in ``[0, num_items]`` (``num_items`` = padding) -> logits (batch, num_items).
    """

    def __init__(
        self,
        num_items: int,
        dim: int,
        *,
        rng: Union[np.random.Generator, int, None] = None,
        dtype=np.float32,
        init="normal",
    ):
        self.num_items = check_positive_int(num_items, "num_items")
        self.dim = check_positive_int(dim, "dim")
        gen = as_generator(rng)
        self.embedding = Embedding(num_items + 1, dim, padding_idx=num_items, rng=gen, dtype=dtype, init=init)
        self.pool = MeanPool()
        self.output = Linear(dim, num_items, rng=gen, dtype=dtype)

    @property
    def pad(self) -> int:
        return self.num_items

    def forward(self, contexts: np.ndarray) -> np.ndarray:
        contexts = np.asarray(contexts)
        if contexts.ndim != 2:
            raise ValueError(f"`contexts` must be 2-D (batch, seq) padded with {self.pad}; got shape {contexts.shape}.")
        e = self.embedding(contexts)
        h = self.pool(e, contexts != self.pad)
        return self.output(h)

    __call__ = forward

    def backward(self, grad_logits: np.ndarray) -> None:
        dh = self.output.backward(grad_logits)
        de = self.pool.backward(dh)
        self.embedding.backward(de, donate=True)  # a new array, referenced nowhere else

    def parameters(self) -> list[Parameter]:
        return self.embedding.parameters() + self.output.parameters()

    def state_dict(self) -> dict:
        return {"embedding": self.embedding.state_dict(), "output": self.output.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.embedding.load_state_dict(state["embedding"])
        self.output.load_state_dict(state["output"])

    def state(self) -> list[np.ndarray]:
        """Copies of every parameter's values (to keep the best epoch)."""
        return [p.data.copy() for p in self.parameters()]

    def load_state(self, arrays: Sequence[np.ndarray]) -> None:
        for p, a in zip(self.parameters(), arrays):
            p.data[...] = a

    @property
    def vectors(self) -> np.ndarray:
        """The item vectors, ``(num_items, dim)``: the table without its padding row."""
        return self.embedding.weight.data[: self.num_items]


def topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties go to the lower index (deterministic).

    A partial sort finds the k-th score; every candidate tied with it is kept before the final
    ordering, so which of several equal items is returned never depends on the partition.
    """
    k = min(int(k), int(np.sum(scores > -np.inf)))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    cand = np.flatnonzero(scores >= kth)
    order = np.lexsort((cand, -scores[cand]))
    return cand[order[:k]]


def _check_topn(topn) -> None:
    if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)) or topn < 0:
        raise ValueError(f"`topn` must be a non-negative integer; got {topn!r}.")


def _cosine_topn(vectors: np.ndarray, query: np.ndarray, topn: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(vectors, axis=1)
    qn = np.linalg.norm(query)
    dots = vectors @ query
    # A zero vector has no direction: its similarity is 0, never NaN.
    denom = norms * qn
    sims = np.divide(dots, denom, out=np.zeros_like(dots, dtype=np.float64), where=denom > 0)
    sims[exclude] = -np.inf
    top = topk(sims, topn)
    return top, sims[top]


class TrainedModel:
    """A trained basket model with its vocabulary: what :func:`load_model` returns.

    Attributes
    ----------
    model : BasketModel
    vocab : Vocab
    config : dict
        Hyperparameters, data source and training history.
    metrics : dict
        The contents of ``metrics.json``.
    """

    def __init__(self, model: BasketModel, vocab: Vocab, config: dict | None = None, metrics: dict | None = None):
        if len(vocab) != model.num_items:
            raise ValueError(f"vocabulary has {len(vocab)} items but the model has {model.num_items}.")
        self.model = model
        self.vocab = vocab
        self.config = dict(config or {})
        self.metrics = dict(metrics or {})

    @property
    def vectors(self) -> np.ndarray:
        return self.model.vectors

    def vector(self, key: str) -> np.ndarray:
        return self.vectors[self.vocab.lookup(key)]

    def _rare(self, min_count: int) -> np.ndarray:
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 0:
            raise ValueError(f"`min_count` must be a non-negative integer; got {min_count!r}.")
        return np.flatnonzero(self.vocab.counts < min_count)

    def neighbors(self, key: str, topn: int = 10, min_count: int = 5) -> list[tuple[str, float]]:
        """The ``topn`` items whose vectors have the highest cosine similarity to ``key``'s.

        Items seen in fewer than ``min_count`` training baskets are left out: their vectors are
        made of a handful of updates (5 is word2vec's default ``min_count``). ``key`` itself may be
        any known item.
        """
        _check_topn(topn)
        if not isinstance(key, str):
            raise TypeError(f"`key` must be an item name (a string); got {key!r}.")
        i = self.vocab.lookup(key)
        exclude = np.concatenate([[i], self._rare(min_count)]).astype(np.int64)
        top, sims = _cosine_topn(self.vectors, self.vectors[i], int(topn), exclude)
        return [(self.vocab.index_to_key[t], float(s)) for t, s in zip(top, sims)]

    def recommend(self, keys: Sequence[str], topn: int = 10, min_count: int = 1) -> list[tuple[str, float]]:
        """The ``topn`` items most likely to complete the basket ``keys``, with their probabilities.

        Items already in ``keys`` are never recommended, nor items seen in fewer than
        ``min_count`` training baskets.
        """
        if isinstance(keys, str):
            keys = [keys]
        try:
            keys = list(keys)
        except TypeError:
            raise TypeError(f"`keys` must be item names (strings); got {type(keys).__name__}.") from None
        if not keys:
            raise ValueError("`keys` must name at least one item of the basket.")
        for k in keys:
            if not isinstance(k, str):
                raise TypeError(f"`keys` must be item names (strings); got {k!r}.")
        _check_topn(topn)
        rare = self._rare(min_count)
        ids = np.unique([self.vocab.lookup(k) for k in keys])
        logits = self.model.forward(ids[None, :])[0].astype(np.float64)
        logits -= logits.max()
        probs = np.exp(logits)
        probs /= probs.sum()
        probs[ids] = -np.inf
        probs[rare] = -np.inf
        top = topk(probs, topn)
        return [(self.vocab.index_to_key[t], float(probs[t])) for t in top]

    def __repr__(self) -> str:
        return f"TrainedModel({len(self.vocab)} items, dim={self.model.dim})"


def save_model(trained: TrainedModel, out_dir: str | os.PathLike, extra_files: dict | None = None) -> str:
    """Write a model folder atomically: built beside ``out_dir`` and swapped in by rename.

    ``extra_files`` maps file names to callables ``write(path)`` that add files (e.g. a plot) to
    the folder before the swap. An existing ``out_dir`` is replaced only if it is an npembed model
    folder; anything else is refused, so no user data is ever removed.
    """
    out_dir = os.fspath(out_dir)
    check_replaceable_model_dir(out_dir)
    m = trained.model
    config = dict(trained.config, format=MODEL_FORMAT, format_version=FORMAT_VERSION, num_items=m.num_items, dim=m.dim)
    with atomic_dir(out_dir) as tmp:
        np.save(os.path.join(tmp, "vectors.npy"), m.vectors)
        np.save(os.path.join(tmp, "output_weight.npy"), m.output.weight.data)
        np.save(os.path.join(tmp, "output_bias.npy"), m.output.bias.data)
        _write_json(os.path.join(tmp, "vocab.json"), trained.vocab.to_json())
        _write_json(os.path.join(tmp, "config.json"), config)
        _write_json(os.path.join(tmp, "metrics.json"), trained.metrics)
        for name, write in (extra_files or {}).items():
            write(os.path.join(tmp, name))
    return out_dir


def _jsonable(obj):
    """NaN and infinities become null: JSON has no such numbers and strict readers refuse them."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(_jsonable(obj), fh, indent=2, ensure_ascii=False, allow_nan=False)
        fh.write("\n")


def _read_json(path: str, kind: type = dict):
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file missing: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON ({exc.msg})", path, exc.lineno) from None
    except UnicodeDecodeError:
        raise FormatError("not UTF-8 text; the file is damaged.", path) from None
    if not isinstance(obj, kind):
        raise FormatError(f"must hold a JSON {'object' if kind is dict else kind.__name__}; got {type(obj).__name__}.", path)
    return obj


def _config_int(config: dict, key: str, path: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FormatError(f"{key!r} must be a positive integer; got {value!r}.", path)
    return value


def _load_array(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file missing: {path}")
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise FormatError(f"cannot read the array ({exc or type(exc).__name__}); the file is damaged.", path) from None
    if a.dtype.kind != "f":
        raise FormatError(f"must hold floats; got dtype {a.dtype}.", path)
    a = a.astype(np.float64 if a.dtype.itemsize > 4 else np.float32)  # native byte order, a kernel dtype
    if not np.isfinite(a).all():
        raise FormatError("holds NaN or infinite values; the model that wrote it had diverged.", path)
    return a


def _load_vocab(path: str) -> Vocab:
    obj = _read_json(path)
    keys, counts = obj.get("index_to_key"), obj.get("counts")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise FormatError("'index_to_key' must be a list of strings.", path)
    if not isinstance(counts, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        raise FormatError("'counts' must be a list of integers.", path)
    try:
        return Vocab(keys, counts)
    except ValueError as exc:
        raise FormatError(str(exc), path) from None


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Load a model folder written by ``npembed train`` (or :func:`save_model`).

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    FormatError
        If it is not an npembed model folder, a file is damaged, or the files disagree.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        raise FormatError("is a file; --model takes the folder that `npembed train --out` wrote.", path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model folder not found: {path}. Train one with `npembed train --out {path}`.")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.exists(cfg_path):
        raise FormatError("not an npembed model folder (no config.json).", path)
    config = _read_json(cfg_path)
    if config.get("format") != MODEL_FORMAT:
        raise FormatError(f"not an npembed model folder (format is {config.get('format')!r}).", cfg_path)
    version = config.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise FormatError(f"'format_version' must be an integer; got {version!r}.", cfg_path)
    if version > FORMAT_VERSION:
        raise FormatError(f"written by a newer npembed (format version {version}); upgrade npembed to load it.", cfg_path)
    n, d = _config_int(config, "num_items", cfg_path), _config_int(config, "dim", cfg_path)
    vocab = _load_vocab(os.path.join(path, "vocab.json"))
    arrays = {}
    for name, shape in (("vectors.npy", (n, d)), ("output_weight.npy", (n, d)), ("output_bias.npy", (n,))):
        p = os.path.join(path, name)
        arrays[name] = a = _load_array(p)
        if a.shape != shape:
            raise FormatError(f"has shape {a.shape}; config.json says {shape}.", p)
    if len(vocab) != n:
        raise FormatError(f"has {len(vocab)} items; config.json says {n}.", os.path.join(path, "vocab.json"))
    vectors = arrays["vectors.npy"]
    model = BasketModel(n, d, dtype=vectors.dtype, init="zeros")
    model.embedding.weight.data[:n] = vectors
    model.output.weight.data[...] = arrays["output_weight.npy"]
    model.output.bias.data[...] = arrays["output_bias.npy"]
    metrics_path = os.path.join(path, "metrics.json")
    metrics = _read_json(metrics_path) if os.path.exists(metrics_path) else {}
    return TrainedModel(model, vocab, config, metrics)
