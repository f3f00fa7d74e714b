"""Training checkpoints: the whole state of a run, written atomically, read back exactly.

A checkpoint is a folder holding ``checkpoint.json`` (scalars, settings, history, the shuffling
generator's state) and ``arrays.npz`` (weights, optimizer state, the best epoch's weights). It is
built beside its target and swapped in by rename, so a crash while writing leaves the previous
checkpoint whole.
"""

from __future__ import annotations

import json
import os
import signal
import zipfile
from typing import Any

import numpy as np

from ._checks import FormatError
from .fsutil import atomic_dir, check_replaceable_dir

__all__ = ["write_checkpoint", "read_checkpoint", "check_checkpoint_dir", "kill_point", "KILL_ENV", "CHECKPOINT_FORMAT"]

CHECKPOINT_FILES = frozenset({"checkpoint.json", "arrays.npz"})
# What a training state must hold, with the JSON types of the scalar parts.
REQUIRED = {"config": dict, "fingerprint": str, "epoch": int, "start": int, "totals": list, "rng": dict,
            "history": list, "stale": int, "best": list, "model": dict, "optimizer": dict, "best_state": list}

CHECKPOINT_FORMAT = "npembed-checkpoint"
# Test-only: a process whose environment names one of its kill points (e.g. "batch:2:40",
# "checkpoint:3") kills itself there with SIGKILL, so crash-and-resume tests are not flaky.
KILL_ENV = "NPEMBED_TEST_KILL_AT"


def kill_point(name: str) -> None:
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _split(obj: Any, arrays: dict, path: str) -> Any:
    """JSON-able copy of ``obj`` with every array replaced by a reference into ``arrays``."""
    if isinstance(obj, np.ndarray):
        arrays[path] = obj
        return {"__array__": path}
    if isinstance(obj, dict):
        return {str(k): _split(v, arrays, f"{path}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, arrays, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def _join(obj: Any, arrays) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return np.array(arrays[obj["__array__"]])
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def check_checkpoint_dir(folder: str) -> None:
    """Refuse a target that is not absent, empty, or an npembed checkpoint holding nothing else."""
    folder = os.fspath(folder)
    if not folder:
        raise ValueError("the checkpoint folder must be a path; got an empty string.")
    check_replaceable_dir(
        folder, marker="checkpoint.json", fmt=CHECKPOINT_FORMAT, files=CHECKPOINT_FILES,
        what="an npembed checkpoint", hint="choose another checkpoint folder",
    )


def write_checkpoint(folder: str, state: dict, kill_at: str = "") -> None:
    """Write ``state`` (nested dicts/lists of arrays and JSON values) to ``folder`` atomically."""
    folder = os.fspath(folder)
    check_checkpoint_dir(folder)
    arrays: dict = {}
    meta = {"format": CHECKPOINT_FORMAT, "state": _split(state, arrays, "s")}
    with atomic_dir(folder) as tmp:
        np.savez(os.path.join(tmp, "arrays.npz"), **arrays)
        kill_point(kill_at)  # a crash here leaves a half-written temporary, never a half checkpoint
        with open(os.path.join(tmp, "checkpoint.json"), "w", encoding="utf-8") as fh:
            json.dump(meta, fh)


def read_checkpoint(folder: str) -> dict:
    """Read what :func:`write_checkpoint` wrote; a missing or damaged checkpoint is a clear error."""
    folder = os.fspath(folder)
    meta_path = os.path.join(folder, "checkpoint.json")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"checkpoint folder not found: {folder}")
    if not os.path.exists(meta_path):
        raise FormatError("not an npembed checkpoint (no checkpoint.json).", folder)
    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"damaged checkpoint ({exc}).", meta_path) from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise FormatError("not an npembed checkpoint.", meta_path)
    npz = os.path.join(folder, "arrays.npz")
    try:
        with np.load(npz, allow_pickle=False) as arrays:
            state = _join(meta["state"], arrays)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise FormatError(f"damaged checkpoint arrays ({type(exc).__name__}: {exc}).", npz) from None
    if not isinstance(state, dict):
        raise FormatError("damaged checkpoint (its state is not an object).", meta_path)
    for key, kind in REQUIRED.items():
        if not isinstance(state.get(key), kind) or (kind is int and isinstance(state.get(key), bool)):
            raise FormatError(f"damaged checkpoint: {key!r} is missing or not a {kind.__name__}.", meta_path)
    return state
