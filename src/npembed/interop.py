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


def save_safetensors(path: str | os.PathLike, kv: KeyedVectors) -> None:
    """Write the table as a safetensors file (tensor ``"weight"``; the keys go in its metadata), atomically."""
    import json

    from .fsutil import atomic_files

    _need("safetensors")
    from safetensors.numpy import save_file

    meta = {"index_to_key": json.dumps(kv.index_to_key)}
    atomic_files([(path, lambda fh: save_file({"weight": np.ascontiguousarray(kv.vectors)}, fh.name, metadata=meta))])


def load_safetensors(path: str | os.PathLike) -> KeyedVectors:
    """Read what :func:`save_safetensors` wrote (or any file with a 2-D ``"weight"`` and key metadata)."""
    import json

    from ._checks import FormatError

    _need("safetensors")
    from safetensors import safe_open

    path = os.fspath(path)
    try:
        with safe_open(path, framework="numpy") as fh:
            meta = fh.metadata() or {}
            if "weight" not in fh.keys():
                raise FormatError(f"no tensor named 'weight' (found {list(fh.keys())}).", path)
            weight = fh.get_tensor("weight")
    except FormatError:
        raise
    except Exception as exc:  # the reader's own errors: damaged or foreign files
        raise FormatError(f"not a readable safetensors file ({exc}).", path) from None
    keys = json.loads(meta["index_to_key"]) if "index_to_key" in meta else [str(i) for i in range(weight.shape[0])]
    return KeyedVectors(keys, weight)


def to_torch_state_dict(emb: Embedding) -> dict:
    """``{"weight": torch.Tensor}`` for ``torch.nn.Embedding.load_state_dict``."""
    torch = _need("torch")
    return {"weight": torch.from_numpy(emb.weight.data.copy())}


def from_torch_state_dict(state: dict, freeze: bool = False, padding_idx: int | None = None) -> Embedding:
    """An :class:`Embedding` from a ``torch.nn.Embedding`` state dict (its ``"weight"``)."""
    if "weight" not in state:
        raise KeyError(f"the state dict has no 'weight' (keys: {sorted(state)}).")
    w = state["weight"]
    w = w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w)
    return Embedding.from_pretrained(w, freeze=freeze, padding_idx=padding_idx)


def export_projector(folder: str | os.PathLike, keys: Sequence[str], vectors: np.ndarray, columns: dict | None = None) -> None:
    """Write ``vectors.tsv`` and ``metadata.tsv`` for projector.tensorflow.org / TensorBoard.

    ``columns`` adds metadata columns (name -> one value per key); tabs and newlines in values are
    replaced by spaces, as the format has no quoting.
    """
    from .fsutil import atomic_dir

    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(keys):
        raise ValueError(f"`vectors` must be 2-D with one row per key ({len(keys)}); got shape {vectors.shape}.")
    columns = dict(columns or {})
    for name, vals in columns.items():
        if len(vals) != len(keys):
            raise ValueError(f"metadata column {name!r} has {len(vals)} values for {len(keys)} keys.")

    def clean(x) -> str:
        return str(x).replace("\t", " ").replace("\n", " ").replace("\r", " ")

    folder = os.fspath(folder)
    if os.path.exists(folder) and os.listdir(folder) and not set(os.listdir(folder)) <= {"vectors.tsv", "metadata.tsv"}:
        raise FileExistsError(f"{folder} holds other files; refusing to replace it.")
    with atomic_dir(folder) as tmp:
        np.savetxt(os.path.join(tmp, "vectors.tsv"), vectors, delimiter="\t", fmt="%.9g")
        with open(os.path.join(tmp, "metadata.tsv"), "w", encoding="utf-8") as fh:
            if columns:
                fh.write("\t".join(["key"] + [clean(c) for c in columns]) + "\n")
                for i, k in enumerate(keys):
                    fh.write("\t".join([clean(k)] + [clean(v[i]) for v in columns.values()]) + "\n")
            else:
                fh.write("".join(clean(k) + "\n" for k in keys))
