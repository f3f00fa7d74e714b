"""Atomic writes: a folder is built beside its target and swapped in by rename."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import sys
import tempfile
from typing import Iterator

__all__ = ["atomic_dir", "check_replaceable_model_dir", "MODEL_FORMAT"]

MODEL_FORMAT = "npembed-model"

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _fsync_tree(path: str) -> None:
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@contextlib.contextmanager
def atomic_dir(target: str) -> Iterator[str]:
    """Yield a fresh temporary folder beside ``target``; on success it replaces ``target``.

    If the body raises, the temporary folder is removed and ``target`` is untouched. The swap is
    one atomic ``renameat2`` exchange on Linux; elsewhere the old folder is first renamed to a
    hidden sibling, then the new one into place, then the old one removed.
    """
    target = os.path.abspath(target)
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        yield tmp
        _fsync_tree(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a model folder is an ordinary folder
        if not os.path.lexists(target):
            os.rename(tmp, target)
            return
        if _exchange(tmp, target):
            shutil.rmtree(tmp)  # now holds the old folder
            return
        old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
        os.rmdir(old)
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_replaceable_model_dir(path: str) -> None:
    """Refuse to overwrite anything that is not an (older) npembed model folder or an empty folder."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        raise FileExistsError(f"{path} exists and is not a folder; choose another output folder (--out).")
    if not os.listdir(path):
        return
    cfg = os.path.join(path, "config.json")
    try:
        with open(cfg, encoding="utf-8") as fh:
            fmt = json.load(fh).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != MODEL_FORMAT:
        raise FileExistsError(
            f"{path} exists and is not an npembed model folder; refusing to replace it. "
            "Choose another output folder (--out) or remove it yourself."
        )
