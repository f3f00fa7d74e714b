"""Exchange tables with other tools: safetensors, PyTorch ``nn.Embedding`` state dicts and the
TensorBoard Projector. safetensors and torch are optional: imported only by the functions that use
them (``pip install 'npembed[interop]'``)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .embedding import Embedding
from .keyedvectors import KeyedVectors

__all__ = ["save_safetensors", "load_safetensors", "to_torch_state_dict", "from_torch_state_dict", "export_projector"]


def _need(module: str, extra: str = "interop"):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"this needs the optional package {module!r}: pip install 'npembed[{extra}]'") from None


def _table(obj, what: str):
    """``(keys or None, 2-D array)`` from a KeyedVectors, an Embedding / EmbeddingBag or an array."""
    if isinstance(obj, KeyedVectors):
        return list(obj.index_to_key), obj.vectors
    emb = getattr(obj, "embedding", obj)  # an EmbeddingBag holds an Embedding
    if isinstance(emb, Embedding):
        emb.weight.sync(None)  # exact-mode optimizers: no stale rows
        return None, emb.weight.data
    arr = np.asarray(obj) if isinstance(obj, np.ndarray) else None
    if arr is None or arr.ndim != 2 or arr.dtype.kind != "f":
        raise TypeError(f"{what} takes a KeyedVectors, an Embedding or a 2-D float array; got {type(obj).__name__}.")
    return None, arr


def save_safetensors(path: str | os.PathLike, table) -> None:
    """Write a table as a safetensors file, atomically: tensor ``"weight"``, and the keys (for a
    KeyedVectors) as JSON in the metadata field ``"index_to_key"``. ``table``: a KeyedVectors, an
    Embedding or a 2-D array."""
    import json

    from .fsutil import atomic_files

    keys, weight = _table(table, "save_safetensors")
    if keys is not None and not all(isinstance(k, str) for k in keys):
        raise ValueError("only string keys can be saved in the metadata; convert them with str() first.")
    if not np.isfinite(weight).all():
        raise ValueError("the table holds NaN or infinite values; no file was written.")
    _need("safetensors")
    from safetensors.numpy import save_file

    meta = {"index_to_key": json.dumps(keys)} if keys is not None else {}
    atomic_files([(path, lambda fh: save_file({"weight": np.ascontiguousarray(weight)}, fh.name, metadata=meta))])


def load_safetensors(path: str | os.PathLike, tensor: str = "weight") -> KeyedVectors:
    """Read a 2-D tensor (``"weight"`` unless ``tensor`` says otherwise) and, if the metadata has
    them, its keys (otherwise the keys are ``"0"``, ``"1"``, ...)."""
    import json

    from ._checks import FormatError

    _need("safetensors")
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"safetensors file not found: {path}")
    try:
        with safe_open(path, framework="numpy") as fh:
            meta = fh.metadata() or {}
            if tensor not in fh.keys():
                raise FormatError(f"no tensor named {tensor!r} (found {sorted(fh.keys())}); pass tensor=NAME.", path)
            try:
                weight = fh.get_tensor(tensor)
            except TypeError as exc:  # a dtype NumPy lacks (bfloat16, float8): through torch, as float32
                if "not understood" not in str(exc):
                    raise
                weight = _via_torch(path, tensor, exc)
    except FormatError:
        raise
    except Exception as exc:  # the reader's own errors: damaged or foreign files
        raise FormatError(f"not a readable safetensors file ({exc}).", path) from None
    if weight.ndim != 2 or weight.dtype.kind != "f":
        raise FormatError(f"tensor {tensor!r} has shape {weight.shape} and dtype {weight.dtype}; a table is 2-D floats.", path)
    if not np.isfinite(weight).all():
        raise FormatError(f"tensor {tensor!r} holds NaN or infinite values.", path)
    if "index_to_key" in meta:
        try:
            keys = json.loads(meta["index_to_key"])
        except ValueError as exc:
            raise FormatError(f"the metadata 'index_to_key' is not JSON ({exc}).", path) from None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(keys) != weight.shape[0]:
            raise FormatError(
                f"the metadata 'index_to_key' must list {weight.shape[0]} strings, one per row; it does not.", path
            )
    else:
        keys = [str(i) for i in range(weight.shape[0])]
    try:
        return KeyedVectors(keys, weight)
    except ValueError as exc:
        raise FormatError(str(exc), path) from None


def _via_torch(path: str, tensor: str, exc: Exception) -> np.ndarray:
    from ._checks import FormatError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise FormatError(f"tensor {tensor!r} has a dtype NumPy cannot hold ({exc}); install torch to read it "
                          "(pip install 'npembed[interop]').", path) from None
    from safetensors import safe_open

    with safe_open(path, framework="pt") as fh:
        return fh.get_tensor(tensor).float().numpy()


def to_torch_state_dict(table) -> dict:
    """``{"weight": torch.Tensor}`` (a copy) for ``torch.nn.Embedding.load_state_dict``; ``table``:
    an Embedding, a KeyedVectors or a 2-D array."""
    torch = _need("torch")
    _, weight = _table(table, "to_torch_state_dict")
    native = weight.dtype.newbyteorder("=")  # torch takes native byte order only
    return {"weight": torch.from_numpy(np.array(weight, dtype=native, copy=True))}


def from_torch_state_dict(state: dict, key: str | None = None, *, freeze: bool = True, padding_idx: int | None = None,
                          **options) -> Embedding:
    """An :class:`Embedding` from a PyTorch state dict: its ``"weight"``, or ``key`` (e.g.
    ``"encoder.embed.weight"``; found by itself when exactly one entry ends in ``.weight`` and is
    2-D). Frozen by default, as ``nn.Embedding.from_pretrained``; other ``options`` go to
    :meth:`Embedding.from_pretrained`. bfloat16 and half tensors become float32; sparse ones dense."""
    if not isinstance(state, dict):
        raise TypeError(f"`state` must be a state dict (a dict of tensors); got {type(state).__name__}.")
    if key is None:
        if "weight" in state:
            key = "weight"
        else:
            cands = [k for k in state if str(k).endswith(".weight") and getattr(state[k], "ndim", 0) == 2]
            if len(cands) != 1:
                raise KeyError(f"the state dict has no 'weight' and {len(cands)} 2-D '*.weight' entries "
                               f"(keys: {sorted(map(str, state))[:10]}); pass key=NAME.")
            key = cands[0]
    if key not in state:
        raise KeyError(f"the state dict has no {key!r} (keys: {sorted(map(str, state))[:10]}).")
    w = state[key]
    if hasattr(w, "detach"):  # a torch tensor
        torch = _need("torch")
        w = w.detach().cpu()
        if w.layout != torch.strided:
            w = w.to_dense()
        if not w.is_floating_point():
            raise TypeError(f"{key!r} holds {w.dtype}; an embedding table holds floats.")
        if w.dtype not in (torch.float32, torch.float64):
            w = w.float()  # bfloat16, float16: float32 holds them exactly
        w = w.numpy()
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"{key!r} has shape {tuple(w.shape)}; an embedding table is 2-D.")
    return Embedding.from_pretrained(w, freeze=freeze, padding_idx=padding_idx, **options)


PROJECTOR_MARKER = "projector_config.pbtxt"


def export_projector(folder: str | os.PathLike, table, vectors: np.ndarray | None = None, columns: dict | None = None) -> None:
    """Write ``vectors.tsv``, ``metadata.tsv`` and ``projector_config.pbtxt`` for TensorBoard's
    projector (or upload the two TSVs to projector.tensorflow.org), atomically.

    ``export_projector(folder, table)`` for a KeyedVectors, an Embedding or a 2-D array (keys "0",
    "1", ... for the last two), or ``export_projector(folder, keys, vectors)``. ``columns`` adds metadata columns (name -> one value per key); tabs and newlines in
    values are replaced by spaces, as the format has no quoting. An existing folder is replaced
    only if an earlier export wrote it (and it holds nothing else).
    """
    from .fsutil import atomic_dir

    if isinstance(table, (KeyedVectors, Embedding, np.ndarray)) or hasattr(table, "embedding"):
        if vectors is not None:
            raise TypeError("pass either a table (KeyedVectors, Embedding, 2-D array) or keys and vectors, not both.")
        keys, vectors = _table(table, "export_projector")
        keys = keys if keys is not None else [str(i) for i in range(vectors.shape[0])]
    else:
        keys = list(table)
        if vectors is None:
            raise TypeError("`vectors` is missing: export_projector(folder, keys, vectors) or export_projector(folder, kv).")
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(keys):
        raise ValueError(f"`vectors` must be 2-D with one row per key ({len(keys)}); got shape {vectors.shape}.")
    if columns is not None and not isinstance(columns, dict):
        raise TypeError(f"`columns` must be a dict of name -> list of values; got {type(columns).__name__}.")
    columns = dict(columns or {})
    for name, vals in columns.items():
        if not hasattr(vals, "__len__") or isinstance(vals, str):
            raise TypeError(f"metadata column {name!r} must be a list of values, one per key; got {vals!r:.40}.")
        if len(vals) != len(keys):
            raise ValueError(f"metadata column {name!r} has {len(vals)} values for {len(keys)} keys.")

    def clean(x) -> str:
        return str(x).replace("\t", " ").replace("\n", " ").replace("\r", " ")

    folder = os.fspath(folder)
    if os.path.lexists(folder):
        if not os.path.isdir(folder) or os.path.islink(folder):
            raise FileExistsError(f"{folder} exists and is not a folder; choose another folder.")
        entries = set(os.listdir(folder))
        ours = PROJECTOR_MARKER in entries and _is_our_marker(os.path.join(folder, PROJECTOR_MARKER))
        if entries and (not ours or not entries <= {"vectors.tsv", "metadata.tsv", PROJECTOR_MARKER}):
            raise FileExistsError(f"{folder} holds files an earlier export did not write; refusing to replace it. "
                                  "Choose another folder.")
    with atomic_dir(folder) as tmp:
        np.savetxt(os.path.join(tmp, "vectors.tsv"), vectors, delimiter="\t", fmt="%.9g")
        with open(os.path.join(tmp, "metadata.tsv"), "w", encoding="utf-8") as fh:
            if columns:
                fh.write("\t".join(["key"] + [clean(c) for c in columns]) + "\n")
                for i, k in enumerate(keys):
                    fh.write("\t".join([clean(k)] + [clean(v[i]) for v in columns.values()]) + "\n")
            else:
                fh.write("".join(clean(k) + "\n" for k in keys))
        with open(os.path.join(tmp, PROJECTOR_MARKER), "w", encoding="utf-8") as fh:
            fh.write(_MARKER_TEXT)


_MARKER_TEXT = (
    "# written by npembed.export_projector\n"
    'embeddings {\n  tensor_name: "vectors"\n  tensor_path: "vectors.tsv"\n  metadata_path: "metadata.tsv"\n}\n'
)


def _is_our_marker(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline() == _MARKER_TEXT.splitlines(keepends=True)[0]
    except (OSError, UnicodeDecodeError):
        return False
