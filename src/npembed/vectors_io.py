"""Reading and writing pre-trained vectors: word2vec text and binary, GloVe text, fastText ``.vec``.

Every malformed file is a :class:`~npembed.FormatError` naming the file and the line (text) or
record (binary): a header that disagrees with the body, a truncated last record, a row with the
wrong number of values, a non-numeric value, a duplicate key, undecodable bytes. No loader ever
returns an uninitialised row. Leniency gensim users rely on is explicit: ``limit`` reads the first
rows only, and ``unicode_errors="ignore"`` / ``"replace"`` decodes broken keys (a UTF-8 character
cut at the end of a binary key, say) instead of failing.
"""

from __future__ import annotations

import codecs
import gzip
import os
import tempfile
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._checks import FormatError, check_float_dtype
from .fsutil import atomic_files

__all__ = ["load_vectors", "save_vectors", "VectorFile", "FORMATS"]

FORMATS = ("auto", "word2vec", "word2vec-binary", "glove", "fasttext")


@dataclass
class VectorFile:
    """What :func:`load_vectors` read: keys in file order and one row of ``vectors`` each.

    ``counts`` holds each key's count when a counts file was given (``None`` otherwise).
    """

    keys: list
    vectors: np.ndarray
    format: str
    counts: np.ndarray | None = None


def _read_counts(path: str, keys: list, encoding: str) -> np.ndarray:
    """Counts from a ``key count`` per line file (gensim's ``fvocab``); keys it lacks count 0."""
    found: dict = {}
    if not os.path.isfile(path):
        raise FileNotFoundError(f"counts file not found: {path}")
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip()  # trailing spaces, tabs, CR, LF
            if lineno == 1:
                line = line.removeprefix(_BOM)
            if not line.strip():
                continue
            # the count is the last field; what comes before it (a space or a tab between) is the key
            cut = max(line.rfind(b" "), line.rfind(b"\t"))
            key_b, num = line[:cut], line[cut + 1 :]
            try:
                key = key_b.decode(encoding)
                count = int(num)
            except (UnicodeDecodeError, ValueError):
                raise FormatError("expected 'key count' (a key, a space, an integer).", path, lineno) from None
            if not 0 <= count < 2**63:
                raise FormatError(f"the count of {key!r} must be in [0, 2**63); got {count}.", path, lineno)
            if key in found:
                raise FormatError(f"{key!r} is listed twice.", path, lineno)
            found[key] = count
    return np.array([found.get(k, 0) for k in keys], dtype=np.int64)


def _first_nonfinite_row(vectors: np.ndarray) -> int:
    """The first row holding NaN or infinity, or -1; checked in blocks, so no table-sized mask."""
    step = max(1, (1 << 16) // max(vectors.shape[1], 1))
    for i in range(0, vectors.shape[0], step):
        ok = np.isfinite(vectors[i : i + step]).all(axis=1)
        if not ok.all():
            return i + int(np.argmin(ok))
    return -1


def _check_size(path: str, want: int, dim: int, min_row_bytes: int, itemsize: int) -> None:
    """Refuse a header whose promise cannot fit in the file before allocating a large table (an
    uncompressed file's size bounds what it holds). Small tables are allocated and the stream
    names the record where the file ends; gzip files are checked as they stream."""
    if want * dim * itemsize < (1 << 28):
        return
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    size = os.path.getsize(path)
    if gz:
        size *= 1032  # deflate expands at most ~1032:1, which bounds what a gzip file can hold
    if want * min_row_bytes > size:
        raise FormatError(
            f"the header promises {want} vectors of dimension {dim}, at least {want * min_row_bytes} bytes, "
            f"but the file {'can hold at most' if gz else 'has'} {size} bytes: is it truncated, or is the header wrong?",
            path,
            1,
        )


def _open(path: str):
    """A binary file object over the (possibly gzip-compressed) file, read as a stream."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"vector file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"expected a vector file; got the folder {path}")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


class _Stream:
    """A rolling buffer over a binary file: records are parsed without holding the whole file."""

    CHUNK = 1 << 24

    def __init__(self, fh, path: str):
        self.fh, self.path = fh, path
        self.buf, self.pos = b"", 0

    def _fill(self) -> bool:
        try:
            data = self.fh.read(self.CHUNK)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"gzip stream is damaged or cut short ({exc}).", self.path) from None
        if not data:
            return False
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def find(self, sep: bytes) -> int:
        """Offset of ``sep`` from the current position, or -1 at the end of the file."""
        start = 0
        while True:
            i = self.buf.find(sep, self.pos + start)
            if i >= 0:
                return i - self.pos
            start = len(self.buf) - self.pos
            if not self._fill():
                return -1

    def take(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            if not self._fill():
                break  # end of file: the caller sees a short read
        out = self.buf[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def skip_newlines(self) -> None:
        while True:
            if self.pos >= len(self.buf) and not self._fill():
                return
            if self.buf[self.pos : self.pos + 1] != b"\n":
                return
            self.pos += 1

    def rest_is_blank(self) -> bool:
        while True:
            if self.buf[self.pos :].strip(b"\n"):
                return False
            self.pos = len(self.buf)
            if not self._fill():
                return True


def _header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.removeprefix(b"+").isdigit() for p in parts):  # "+2 2" too, as int() reads it
        return int(parts[0]), int(parts[1])
    return None


def _check_header(head, path: str) -> tuple[int, int]:
    if head is None:
        raise FormatError("the first line must be the header 'count dimension'.", path, 1)
    if head[1] < 1:
        raise FormatError(f"the header gives dimension {head[1]}; vectors need at least one value.", path, 1)
    return head


def _is_binary_sample(sample: bytes) -> bool:
    """Raw float32 bytes hold control characters (NUL, ...) almost surely; text rows never do."""
    return any(b < 0x20 and b not in (0x09, 0x0A, 0x0D) or b == 0x7F for b in sample)


def _detect(path: str) -> str:
    with _open(path) as fh:
        try:
            first = fh.readline(1 << 22)
            if first.startswith(_BOM):
                first = first[len(_BOM) :]
            head = _header(first)
            # what follows the header: a whole first binary record (key, space, 4 * dim bytes)
            sample = fh.read(min(4 * head[1] + 4096, 1 << 22)) if head is not None else b""
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"gzip stream is damaged or cut short ({exc}).", path) from None
    if head is None:
        return "glove"
    if head[0] == 0:
        return "word2vec"
    dim = head[1]
    nl = sample.find(b"\n")
    line = sample[:nl] if nl >= 0 else sample
    fields = line.rstrip(b"\r").rstrip(b" ").split(b" ")
    tail_numeric = len(fields) > dim and all(_is_float(f) for f in fields[-dim:])
    printable = all(0x21 <= b <= 0x7E for f in fields[1:] for b in f)  # values typed as ASCII text
    if _looks_like_text_row(line, dim) or (len(fields) == dim + 1 and printable) or tail_numeric:
        # a text row: well formed, with a bad value, or with spaces in its key (the reader names it)
        return "word2vec"
    if _is_binary_sample(sample):
        return "word2vec-binary"
    # Printable bytes that are not a text row: binary if a whole record fits exactly (the vector
    # then ends the file or a line, as both writers do); otherwise text, whose reader names the fault.
    sp = sample.find(b" ")
    end = sp + 1 + 4 * dim
    vec = sample[sp + 1 : end]
    numeric = not vec.strip(b"0123456789+-.eE naifINAF")  # text values ("0.1669 1e-3"), not float bytes
    fits = 0 < sp < (nl if nl >= 0 else len(sample)) and len(sample) >= end and b"\n" not in vec and not numeric
    if fits and sample[end : end + 1] in (b"", b"\n"):
        return "word2vec-binary"
    return "word2vec"


def _looks_like_text_row(line: bytes, dim: int) -> bool:
    parts = line.rstrip(b"\r").rstrip(b" ").split(b" ")
    if len(parts) != dim + 1 or not parts[0]:
        return False
    try:
        [float(p) for p in parts[1:]]
    except ValueError:
        return False
    return True


_BOM = b"\xef\xbb\xbf"


def _decode(b: bytes, encoding: str, errors: str, path: str, where: str) -> str:
    try:
        return b.decode(encoding, errors=errors)
    except UnicodeDecodeError as exc:
        msg = (f"the key is not valid {encoding} ({exc.reason} at byte {exc.start}). "
               "Pass unicode_errors='replace' or 'ignore' (CLI: --unicode-errors) to read it anyway.")
        if where.startswith("line "):  # "FILE, line N: ...", as every other text-file error
            raise FormatError(msg, path, int(where[5:])) from None
        raise FormatError(f"{where}: {msg}", path) from None


def _check_distinct(keys: list, path: str, where) -> None:
    """A duplicate key is an error naming both places; ``where(i)`` describes row ``i``."""
    seen: dict = {}
    for i, k in enumerate(keys):
        j = seen.setdefault(k, i)
        if j != i:
            raise FormatError(f"duplicate key {k!r} at {where(i)} (first at {where(j)}).", path)


def _read_text(path: str, has_header: bool, limit, dtype, encoding, errors) -> VectorFile:
    count = None
    if not has_header:
        # GloVe has no header: count the lines in a first streaming pass, so the table is
        # allocated once and filled in place.
        with _open(path) as fh:
            count = sum(1 for line in fh if line.strip())
    with _open(path) as fh:
        lines = iter(fh)
        lineno = 0
        dim = None
        if has_header:
            first = next(lines, b"")
            lineno = 1
            count, dim = _check_header(_header(first.removeprefix(_BOM)), path)
        want = count if limit is None else min(count, limit)
        keys, line_of = [], []
        vectors = None
        for raw in lines:
            if len(keys) == want:
                if has_header and limit is None and raw.strip():
                    raise FormatError(f"the header says {count} vectors but more lines follow.", path, lineno + 1)
                if limit is not None or not has_header:
                    break
                lineno += 1
                continue
            lineno += 1
            line = raw.rstrip(b"\n").rstrip(b"\r").rstrip(b" ")
            if lineno == 1:
                line = line.removeprefix(_BOM)
            if not line.strip():
                if not has_header:
                    continue
                raise FormatError("blank line inside the vectors.", path, lineno)
            parts = line.split(b" ")
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise FormatError("a vector line needs a key and at least one value.", path, lineno)
            if len(parts) != dim + 1:
                hint = " (does the key contain a space?)" if len(parts) > dim + 1 else ""
                if b"\t" in line:
                    hint = " (fields separated by tabs? only single spaces separate them in these formats)"
                raise FormatError(f"expected a key and {dim} values; got {len(parts) - 1} values{hint}.", path, lineno)
            if not parts[0]:
                raise FormatError("the line starts with a space: the key is empty.", path, lineno)
            key = _decode(parts[0], encoding, errors, path, f"line {lineno}")
            try:
                row = np.array([float(p) for p in parts[1:]], dtype=np.float64)
            except ValueError:
                bad = next(p for p in parts[1:] if not _is_float(p))
                shown = bad[:40].decode("utf-8", "replace") + ("..." if len(bad) > 40 else "")
                raise FormatError(f"non-numeric value {shown!r} for key {key[:60]!r}.", path, lineno) from None
            if vectors is None:
                if has_header:
                    _check_size(path, want, dim, 2 * dim + 2, np.dtype(dtype).itemsize)
                vectors = np.empty((want, dim), dtype=dtype)
            with np.errstate(over="ignore"):
                vectors[len(keys)] = row
            if not np.isfinite(vectors[len(keys)]).all():
                hint = ""
                if np.isfinite(row).all():
                    hint = f": a value is too large for {np.dtype(dtype).name}; pass dtype=np.float64"
                raise FormatError(f"the vector of key {key!r} holds NaN or infinite values{hint}.", path, lineno)
            keys.append(key)
            line_of.append(lineno)
    if len(keys) < want:
        raise FormatError(
            f"the header says {count} vectors but the file ends after {len(keys)}: is it truncated?", path, lineno
        )
    if not has_header and not keys:
        raise FormatError("no vectors found: the file is empty or blank.", path)
    if vectors is None:
        vectors = np.empty((0, dim or 0), dtype=dtype)
    _check_distinct(keys, path, lambda i: f"line {line_of[i]}")
    return VectorFile(keys, vectors, "word2vec" if has_header else "glove")


def _is_float(b: bytes) -> bool:
    try:
        float(b)
        return True
    except ValueError:
        return False


def _read_binary(path: str, limit, dtype, encoding, errors) -> VectorFile:
    with _open(path) as fh:
        st = _Stream(fh, path)
        end = st.find(b"\n")
        count, dim = _check_header(_header(st.take(end)) if end >= 0 else None, path)
        st.take(1)
        want = count if limit is None else min(count, limit)
        _check_size(path, want, dim, 4 * dim + 2, np.dtype(dtype).itemsize)
        vectors = np.empty((want, dim), dtype=dtype)
        keys = []
        nbytes = 4 * dim
        for r in range(want):
            st.skip_newlines()  # the C tool writes a newline after each vector; gensim does not
            space = st.find(b" ")
            if space < 0:
                raise FormatError(
                    f"the header says {count} vectors but the file ends after {r} (record {r + 1}): is it truncated?", path
                )
            key_b = st.take(space)
            st.take(1)
            if not key_b:
                raise FormatError(f"record {r + 1} has an empty key.", path)
            if b"\n" in key_b:
                raise FormatError(
                    f"record {r + 1}: the key runs over a line break, so this is not a word2vec binary file "
                    "(text? pass format='word2vec').",
                    path,
                )
            key = _decode(key_b, encoding, errors, path, f"record {r + 1}")
            vec = st.take(nbytes)
            if len(vec) < nbytes:
                raise FormatError(
                    f"record {r + 1} (key {key!r}) needs {nbytes} bytes of vector but the file ends after {len(vec)}: is it truncated?",
                    path,
                )
            vectors[r] = np.frombuffer(vec, dtype="<f4")
            keys.append(key)
        if limit is None and not st.rest_is_blank():
            raise FormatError(f"the header says {count} vectors but more data follows record {count}.", path)
    r = _first_nonfinite_row(vectors)
    if r >= 0:
        raise FormatError(f"record {r + 1} (key {keys[r]!r}) holds NaN or infinite values.", path)
    _check_distinct(keys, path, lambda i: f"record {i + 1}")
    return VectorFile(keys, vectors, "word2vec-binary")


def load_vectors(
    path: str | os.PathLike,
    format: str = "auto",
    *,
    limit: int | None = None,
    dtype=np.float32,
    encoding: str = "utf-8",
    unicode_errors: str = "strict",
    counts_file: str | os.PathLike | None = None,
) -> VectorFile:
    """Read a vector file; ``format`` is detected from the bytes unless given.

    ``"word2vec"`` (text with a ``count dim`` header; fastText ``.vec`` is the same),
    ``"word2vec-binary"`` (both the C tool's layout, with a newline after each vector, and
    gensim's, without), ``"glove"`` (text without a header). gzip-compressed files are read too.
    ``limit`` keeps the first rows only (the rest of the file is not checked). ``counts_file``
    (``key count`` lines, as gensim's ``fvocab``) fills :attr:`VectorFile.counts`.
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}; got {format!r}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer, or None to read every vector; got {limit!r}.")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"`encoding` {encoding!r} is not a text encoding Python knows (e.g. 'utf-8', 'latin-1').") from None
    if unicode_errors not in ("strict", "ignore", "replace"):
        raise ValueError(f"`unicode_errors` must be 'strict', 'ignore' or 'replace'; got {unicode_errors!r}.")
    dtype = check_float_dtype(dtype)
    fmt = _detect(path) if format == "auto" else ("word2vec" if format == "fasttext" else format)
    try:
        if fmt == "word2vec-binary":
            out = _read_binary(path, limit, dtype, encoding, unicode_errors)
        else:
            try:
                out = _read_text(path, fmt == "word2vec", limit, dtype, encoding, unicode_errors)
            except FormatError as exc:
                shape_fault = "non-numeric" in str(exc) or "values; got" in str(exc)
                if format == "auto" and fmt == "word2vec" and exc.line == 2 and shape_fault:
                    # a tiny binary file can look like text: say how to read it as binary
                    raise FormatError(str(exc).split(": ", 1)[1].rstrip(".") +
                                      ". If this is a word2vec binary file, pass format='word2vec-binary'.", path, 2) from None
                raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise FormatError(f"gzip stream is damaged or cut short ({exc}).", path) from None
    if counts_file is not None:
        out.counts = _read_counts(os.fspath(counts_file), out.keys, encoding)
    return out


def save_vectors(
    path: str | os.PathLike,
    keys: Sequence[str],
    vectors: np.ndarray,
    format: str = "word2vec",
    *,
    counts: Sequence[int] | None = None,
    counts_file: str | os.PathLike | None = None,
) -> None:
    """Write ``keys`` and ``vectors`` as word2vec text (also fastText ``.vec``), word2vec binary
    (the C tool's layout) or GloVe text, atomically (temporary file, then rename).

    Text values are written with 9 significant digits for float32 (17 for float64), so they read
    back to the same bits. With ``counts_file``, ``counts`` (one non-negative integer per key) are
    written there as ``key count`` lines, gensim's ``fvocab`` layout; both files are replaced
    together or not at all. Keys may hold any character but an ASCII space, a newline or a
    carriage return (those would split the record). word2vec binary stores float32 (float64 tables
    are rounded); a path ending in ``.gz`` is written gzip-compressed.
    """
    path = os.fspath(path)
    if format not in FORMATS[1:]:
        raise ValueError(f"`format` must be one of {FORMATS[1:]}; got {format!r}.")
    vectors = np.asarray(vectors)
    keys = list(keys)
    if vectors.ndim != 2 or vectors.shape[0] != len(keys):
        raise ValueError(f"`vectors` must be 2-D with one row per key ({len(keys)}); got shape {vectors.shape}.")
    if vectors.dtype.kind != "f":
        raise TypeError(f"`vectors` must hold floats; got dtype {vectors.dtype}.")
    if vectors.shape[1] == 0:
        raise ValueError("`vectors` has dimension 0; these formats need at least one value per key.")
    for i, k in enumerate(keys):
        if not isinstance(k, str) or not k or any(c in k for c in " \n\r"):
            raise ValueError(
                f"key {i} is {k!r}: keys must be non-empty strings without spaces, newlines or carriage "
                "returns for these formats (replace spaces with '_', as word2vec phrases do)."
            )
        try:
            k.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"key {i} is {k!r}: it holds a lone surrogate, which UTF-8 cannot encode.") from None
    if format == "glove" and not keys:
        raise ValueError("a GloVe file has no header, so an empty table would lose its dimension; use format='word2vec'.")
    if format == "glove" and vectors.shape[1] == 1 and _header(f"{keys[0]} {vectors[0, 0]:.9g}".encode()) is not None:
        raise ValueError(
            f"the first GloVe line would read '{keys[0]} {vectors[0, 0]:.9g}', which looks like a word2vec header; "
            "use format='word2vec' (it has a header) for this table."
        )
    if format == "word2vec-binary" and vectors.dtype.itemsize > 4 and vectors.size and np.abs(vectors).max() > np.finfo(np.float32).max:
        raise ValueError("word2vec binary stores float32, and some values are too large for it; use a text format.")
    if len(set(keys)) != len(keys):
        seen: set = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise ValueError(f"keys must be distinct; {dup!r} appears more than once.")
    if (counts is None) != (counts_file is None):
        raise ValueError("`counts` and `counts_file` go together: give both or neither.")
    if counts is not None:
        counts = np.asarray(counts)
        if counts.shape != (len(keys),) or counts.dtype.kind not in "iu":
            raise ValueError(f"`counts` must be integers, one per key ({len(keys)}); got {counts.dtype} of shape {counts.shape}.")
        if (counts < 0).any():
            raise ValueError(f"`counts` must be non-negative; key {keys[int(np.argmax(counts < 0))]!r} has {counts.min()}.")
        counts_file = os.fspath(counts_file)
        if os.path.realpath(counts_file) == os.path.realpath(path):
            raise ValueError("`counts_file` must differ from the vectors' path.")
    r = _first_nonfinite_row(vectors)
    if r >= 0:
        raise ValueError(f"the vector of key {keys[r]!r} (row {r}) holds NaN or infinite values; no file was written.")

    def write_vectors(raw) -> None:
        # a path ending in .gz is written gzip-compressed, as gensim does
        # the name stored in the gzip header is the target's, never the temporary's (gunzip -N)
        name = os.path.basename(path)[:-3]
        fh = gzip.GzipFile(filename=name, fileobj=raw, mode="wb", mtime=0) if path.endswith(".gz") else raw
        n, d = vectors.shape
        if format != "glove":
            fh.write(f"{n} {d}\n".encode())
        step = max(1, (1 << 20) // d)  # converted to float32 a block at a time: no second table
        for i in range(0, n, step):
            block = vectors[i : i + step]
            if format == "word2vec-binary":
                for k, row in zip(keys[i : i + step], block.astype("<f4")):
                    fh.write(k.encode("utf-8") + b" " + row.tobytes() + b"\n")
            else:
                fmt = "%.17g" if vectors.dtype == np.float64 else "%.9g"
                for k, row in zip(keys[i : i + step], block):
                    fh.write((k + " " + " ".join(fmt % x for x in row) + "\n").encode("utf-8"))
        if fh is not raw:
            fh.close()

    def write_counts(fh) -> None:
        for k, c in zip(keys, counts.tolist()):
            fh.write(f"{k} {c}\n".encode("utf-8"))

    atomic_files([(path, write_vectors)] + ([(counts_file, write_counts)] if counts is not None else []))
