"""Reading and writing pre-trained vectors: word2vec text and binary, GloVe text, fastText ``.vec``.

Every malformed file is a :class:`~npembed.FormatError` naming the file and the line (text) or
record (binary): a header that disagrees with the body, a truncated last record, a row with the
wrong number of values, a non-numeric value, a duplicate key, undecodable bytes. No loader ever
returns an uninitialised row. Leniency gensim users rely on is explicit: ``limit`` reads the first
rows only, and ``unicode_errors="ignore"`` / ``"replace"`` decodes broken keys (a UTF-8 character
cut at the end of a binary key, say) instead of failing.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._checks import FormatError, check_float_dtype

__all__ = ["load_vectors", "save_vectors", "VectorFile", "FORMATS"]

FORMATS = ("auto", "word2vec", "word2vec-binary", "glove", "fasttext")


@dataclass
class VectorFile:
    """What :func:`load_vectors` read: keys in file order and one row of ``vectors`` each."""

    keys: list
    vectors: np.ndarray
    format: str


def _open_bytes(path: str) -> bytes:
    if not os.path.exists(path):
        raise FileNotFoundError(f"vector file not found: {path}")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise FormatError(f"gzip stream is damaged or cut short ({exc}).", path) from None
    return raw


def _header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _looks_like_text_row(line: bytes, dim: int) -> bool:
    parts = line.rstrip().split(b" ")
    if len(parts) != dim + 1:
        return False
    try:
        [float(p) for p in parts[1:]]
    except ValueError:
        return False
    return True


def _detect(raw: bytes) -> str:
    first_end = raw.find(b"\n")
    first = raw[: first_end if first_end >= 0 else len(raw)]
    head = _header(first)
    if head is None:
        return "glove"
    second_end = raw.find(b"\n", first_end + 1)
    second = raw[first_end + 1 : second_end if second_end >= 0 else len(raw)]
    if head[0] == 0 or _looks_like_text_row(second, head[1]):
        return "word2vec"
    return "word2vec-binary"


def _decode(b: bytes, encoding: str, errors: str, path: str, where: str) -> str:
    try:
        return b.decode(encoding, errors=errors)
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{where}: the key is not valid {encoding} ({exc.reason} at byte {exc.start}). "
            "Pass unicode_errors='replace' or 'ignore' to read it anyway.",
            path,
        ) from None


def _finish(keys: list, rows: list, path: str, where_of: list) -> None:
    seen: dict = {}
    for i, k in enumerate(keys):
        if k in seen:
            raise FormatError(f"duplicate key {k!r} at {where_of[i]} (first at {where_of[seen[k]]}).", path)
        seen[k] = i


def _read_text(raw: bytes, path: str, has_header: bool, limit, dtype, encoding, errors) -> VectorFile:
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    start, count, dim = 0, None, None
    if has_header:
        head = _header(lines[0]) if lines else None
        if head is None:
            raise FormatError("the first line must be the header 'count dimension'.", path, 1)
        count, dim = head
        start = 1
    want = count if count is not None else len(lines) - start
    if limit is not None:
        want = min(want, limit)
    keys, where = [], []
    vectors = None
    for i in range(start, len(lines)):
        if len(keys) == want:
            if count is not None and limit is None and i < len(lines) and lines[i].strip():
                raise FormatError(f"the header says {count} vectors but more lines follow.", path, i + 1)
            break
        line = lines[i].rstrip(b"\r").rstrip(b" ")
        lineno = i + 1
        if not line.strip():
            raise FormatError("blank line inside the vectors.", path, lineno)
        parts = line.split(b" ")
        if dim is None:
            dim = len(parts) - 1
            if dim < 1:
                raise FormatError("a vector line needs a key and at least one value.", path, lineno)
        if len(parts) != dim + 1:
            hint = " (does the key contain a space?)" if len(parts) > dim + 1 else ""
            raise FormatError(f"expected a key and {dim} values; got {len(parts) - 1} values{hint}.", path, lineno)
        key = _decode(parts[0], encoding, errors, path, f"line {lineno}")
        try:
            row = np.array([float(p) for p in parts[1:]], dtype=np.float64)
        except ValueError:
            bad = next(p for p in parts[1:] if not _is_float(p))
            raise FormatError(f"non-numeric value {bad.decode('utf-8', 'replace')!r} for key {key!r}.", path, lineno) from None
        if vectors is None:
            vectors = np.empty((want, dim), dtype=dtype)
        vectors[len(keys)] = row
        keys.append(key)
        where.append(f"line {lineno}")
    if len(keys) < want:
        raise FormatError(
            f"the header says {count} vectors but the file ends after {len(keys)}: is it truncated?"
            if count is not None else "no vectors found.",
            path,
            len(lines),
        )
    if vectors is None:
        vectors = np.empty((0, dim or 0), dtype=dtype)
    _finish(keys, [], path, where)
    return VectorFile(keys, vectors, "word2vec" if has_header else "glove")


def _is_float(b: bytes) -> bool:
    try:
        float(b)
        return True
    except ValueError:
        return False


def _read_binary(raw: bytes, path: str, limit, dtype, encoding, errors) -> VectorFile:
    end = raw.find(b"\n")
    head = _header(raw[:end]) if end >= 0 else None
    if head is None:
        raise FormatError("the first line must be the header 'count dimension'.", path, 1)
    count, dim = head
    want = count if limit is None else min(count, limit)
    vectors = np.empty((want, dim), dtype=dtype)
    keys, where = [], []
    pos = end + 1
    nbytes = 4 * dim
    for r in range(want):
        while pos < len(raw) and raw[pos : pos + 1] == b"\n":
            pos += 1  # the C tool writes a newline after each vector; gensim does not
        space = raw.find(b" ", pos)
        if space < 0 or pos >= len(raw):
            raise FormatError(f"the header says {count} vectors but the file ends after {r} (record {r + 1}): is it truncated?", path)
        key_b = raw[pos:space]
        if not key_b:
            raise FormatError(f"record {r + 1} has an empty key.", path)
        key = _decode(key_b, encoding, errors, path, f"record {r + 1}")
        vec = raw[space + 1 : space + 1 + nbytes]
        if len(vec) < nbytes:
            raise FormatError(
                f"record {r + 1} (key {key!r}) needs {nbytes} bytes of vector but the file ends after {len(vec)}: is it truncated?",
                path,
            )
        vectors[r] = np.frombuffer(vec, dtype="<f4")
        keys.append(key)
        where.append(f"record {r + 1}")
        pos = space + 1 + nbytes
    if limit is None:
        rest = raw[pos:].strip(b"\n")
        if rest:
            raise FormatError(f"the header says {count} vectors but more data follows record {count}.", path)
    if not np.isfinite(vectors).all():
        r = int(np.argwhere(~np.isfinite(vectors))[0, 0])
        raise FormatError(f"record {r + 1} (key {keys[r]!r}) holds NaN or infinite values.", path)
    _finish(keys, [], path, where)
    return VectorFile(keys, vectors, "word2vec-binary")


def load_vectors(
    path: str | os.PathLike,
    format: str = "auto",
    *,
    limit: int | None = None,
    dtype=np.float32,
    encoding: str = "utf-8",
    unicode_errors: str = "strict",
) -> VectorFile:
    """Read a vector file; ``format`` is detected from the bytes unless given.

    ``"word2vec"`` (text with a ``count dim`` header; fastText ``.vec`` is the same),
    ``"word2vec-binary"`` (both the C tool's layout, with a newline after each vector, and
    gensim's, without), ``"glove"`` (text without a header). gzip-compressed files are read too.
    ``limit`` keeps the first rows only (the rest of the file is not checked).
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}; got {format!r}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
        raise ValueError(f"`limit` must be a non-negative integer or None; got {limit!r}.")
    if unicode_errors not in ("strict", "ignore", "replace"):
        raise ValueError(f"`unicode_errors` must be 'strict', 'ignore' or 'replace'; got {unicode_errors!r}.")
    dtype = check_float_dtype(dtype)
    raw = _open_bytes(path)
    fmt = _detect(raw) if format == "auto" else ("word2vec" if format == "fasttext" else format)
    if fmt == "word2vec-binary":
        return _read_binary(raw, path, limit, dtype, encoding, unicode_errors)
    out = _read_text(raw, path, fmt == "word2vec", limit, dtype, encoding, unicode_errors)
    if not np.isfinite(out.vectors).all():
        r = int(np.argwhere(~np.isfinite(out.vectors))[0, 0])
        raise FormatError(f"the vector of key {out.keys[r]!r} holds NaN or infinite values.", path)
    return out


def save_vectors(
    path: str | os.PathLike, keys: Sequence[str], vectors: np.ndarray, format: str = "word2vec"
) -> None:
    """Write ``keys`` and ``vectors`` as word2vec text (also fastText ``.vec``), word2vec binary
    (the C tool's layout) or GloVe text, atomically (temporary file, then rename).

    Text values are written with 9 significant digits for float32 (17 for float64), so they read
    back to the same bits.
    """
    path = os.fspath(path)
    if format not in FORMATS[1:]:
        raise ValueError(f"`format` must be one of {FORMATS[1:]}; got {format!r}.")
    vectors = np.asarray(vectors)
    keys = list(keys)
    if vectors.ndim != 2 or vectors.shape[0] != len(keys):
        raise ValueError(f"`vectors` must be 2-D with one row per key ({len(keys)}); got shape {vectors.shape}.")
    for k in keys:
        if not isinstance(k, str) or not k or any(c.isspace() for c in k):
            raise ValueError(f"keys must be non-empty strings without whitespace for these formats; got {k!r}.")
    if len(set(keys)) != len(keys):
        raise ValueError("keys must be distinct.")
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            n, d = vectors.shape
            if format != "glove":
                fh.write(f"{n} {d}\n".encode())
            if format == "word2vec-binary":
                v32 = vectors.astype("<f4")
                for k, row in zip(keys, v32):
                    fh.write(k.encode("utf-8") + b" " + row.tobytes() + b"\n")
            else:
                fmt = "%.17g" if vectors.dtype == np.float64 else "%.9g"
                for k, row in zip(keys, vectors):
                    fh.write((k + " " + " ".join(fmt % x for x in row) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
