"""Atomic writes: a folder is built beside its target and swapped in by rename."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import stat
import sys
import tempfile
from typing import Iterator

__all__ = [
    "atomic_dir", "atomic_files", "check_replaceable_dir", "check_replaceable_model_dir", "check_writable_parent", "read_format",
    "MODEL_FORMAT", "MODEL_FILES",
]

MODEL_FORMAT = "npembed-model"
# Every file a model folder may hold. A folder with anything else in it is not replaced, so files a
# user put there are never deleted with the old model.
MODEL_FILES = frozenset(
    {"config.json", "metrics.json", "vocab.json", "vectors.npy", "output_weight.npy", "output_bias.npy", "embeddings.png"}
)

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(parent: str, name: str) -> None:
    """Remove ``.NAME.tmp-PID-*`` / ``.NAME.old-PID-*`` files or folders left by killed processes.

    The writer's process id is in the name, so a temporary that another live process is still
    writing is never touched.
    """
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for entry in entries:
        for kind in (f".{name}.tmp-", f".{name}.old-"):
            if entry.startswith(kind):
                pid = entry[len(kind) :].split("-", 1)[0]
                if pid.isascii() and pid.isdigit() and len(pid) <= 9 and not _pid_alive(int(pid)):
                    full = os.path.join(parent, entry)
                    if os.path.isdir(full) and not os.path.islink(full):
                        shutil.rmtree(full, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.remove(full)


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_replaceable_file(path: str) -> str:
    """The real path a file write should replace (a symlink is written through, as ``open``
    would), after refusing folders and read-only files."""
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise IsADirectoryError(f"{path} is a folder; give a file name to write.")
    if not os.path.isdir(os.path.dirname(real)):
        raise FileNotFoundError(f"cannot write {path}: the folder {os.path.dirname(real)} does not exist.")
    if os.path.exists(real) and not os.stat(real).st_mode & stat.S_IWUSR:
        raise PermissionError(f"{path} is read-only; refusing to replace it (make it writable or choose another path).")
    return real


def atomic_files(writers: list) -> None:
    """Write each ``(path, write)`` pair, ``write(binary_file)``, to a temporary file beside
    ``path``, then rename them all into place. If anything fails, no target is touched and no
    temporary is left (those of killed writers are removed by the next write). A replaced file
    keeps its permissions; a new one gets the usual ``0o666 & ~umask``."""
    targets = [check_replaceable_file(os.fspath(path)) for path, _ in writers]
    tmps: list = []
    try:
        for real, (_, write) in zip(targets, writers):
            parent, name = os.path.split(real)
            _remove_stale_temporaries(parent, name)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=parent)
            os.close(fd)
            tmps.append(tmp)
            with open(tmp, "r+b") as fh:  # fh.name is the temporary's path, for writers that need one
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            mode = stat.S_IMODE(os.stat(real).st_mode) if os.path.exists(real) else _new_file_mode()
            os.chmod(tmp, mode)
        for real, tmp in zip(targets, tmps):
            os.replace(tmp, real)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        raise


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
    _remove_stale_temporaries(parent, name)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=parent)
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
        old = tempfile.mkdtemp(prefix=f".{name}.old-{os.getpid()}-", dir=parent)
        os.rmdir(old)
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_format(folder: str, marker: str):
    """The ``"format"`` field of ``folder/marker`` (a JSON object), or None if absent or unreadable."""
    try:
        with open(os.path.join(folder, marker), encoding="utf-8") as fh:
            return json.load(fh).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def check_replaceable_dir(path: str, *, marker: str, fmt: str, files: frozenset | None, what: str, hint: str) -> None:
    """Refuse to replace ``path`` unless it is absent, empty, or one of ours holding only our files.

    Ours means ``path/marker`` names ``fmt``; with ``files`` given, anything else in the folder
    (a user's notes, say) also blocks the replacement, since it would be deleted with it.
    """
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        raise FileExistsError(f"{path} exists and is not a folder; {hint}.")
    entries = os.listdir(path)
    if not entries:
        return
    if read_format(path, marker) != fmt:
        raise FileExistsError(f"{path} exists and is not {what}; refusing to replace it. {hint[0].upper()}{hint[1:]}.")
    foreign = sorted(set(entries) - files) if files is not None else []
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(
            f"{path} holds files npembed did not write ({shown}); refusing to replace it, as they would be "
            f"deleted with it. Move them out or {hint}."
        )


def check_replaceable_model_dir(path: str) -> None:
    """Refuse to overwrite anything that is not an (older) npembed model folder or an empty folder."""
    check_replaceable_dir(
        path, marker="config.json", fmt=MODEL_FORMAT, files=MODEL_FILES,
        what="an npembed model folder", hint="choose another output folder (--out)",
    )


def check_writable_parent(path: str) -> None:
    """Make sure a folder can be created at ``path`` (parents made as needed), before any long work."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".npembed-probe-", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise OSError(
            f"cannot write the output folder {path}: {exc.strerror or exc} ({parent}). Choose another --out."
        ) from None
