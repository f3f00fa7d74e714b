"""Reading baskets (sets of items) from text and CSV files, and the bundled recipe data.

Two layouts are read:

* **lines**: one basket per line, items separated by a tab, a comma or whitespace. The separator is
  detected per file (tab if any line has one, else comma if any line has one, else runs of
  whitespace) unless given. With a tab or comma separator item names may contain spaces.
* **csv**: a header row, then one ``basket,item`` pair per row (any other columns are ignored).
  Rows of the same basket need not be adjacent; baskets keep the order of their first row.

In both, blank items are skipped, an item repeated inside a basket is kept once (its first place),
and baskets left with fewer than ``min_items`` items are dropped; the counts of each are reported in
:attr:`Baskets.stats`. Undecodable bytes and malformed rows raise :class:`FormatError` with the line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import logging
import os
import zlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Sequence

from ._checks import FormatError

__all__ = ["Baskets", "read_baskets", "load_recipes", "detect_separator", "FormatError"]

log = logging.getLogger(__name__)

FORMATS = ("auto", "lines", "csv")


@dataclass
class Baskets:
    """Baskets of item names, in file order.

    Attributes
    ----------
    baskets : list of list of str
        Each basket's distinct items, in first-seen order.
    lines : list of int
        The 1-based line where each basket starts (its first row for CSV).
    source : str
        Where they were read from.
    stats : dict
        ``blank_lines``, ``duplicate_items`` (dropped repeats), ``short_baskets`` (dropped for having
        fewer than ``min_items`` items), ``empty_items``, plus ``format`` and ``separator`` used.
    """

    baskets: list[list[str]]
    lines: list[int]
    source: str
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.baskets)


def _read_bytes(path: str) -> bytes:
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"`--data` must be a file; got the folder {path}")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"gzip stream is damaged or cut short ({exc}).", path) from None
    return raw


def _check_encoding(encoding: str) -> None:
    try:
        info = codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"`encoding` must be a codec Python knows; got {encoding!r}.") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"`encoding` must be a text encoding such as utf-8 or latin-1; got {encoding!r}.")


def _decode(raw: bytes, path: str, encoding: str) -> str:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FormatError(
            f"cannot decode byte 0x{raw[exc.start]:02x} at column {col} as {encoding}. "
            "Pass the file's encoding (e.g. --encoding latin-1) or fix that line.",
            path,
            line,
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark is not part of the first item
    return text


def detect_separator(text: str) -> str | None:
    """Tab if the text has one, else comma if it has one, else ``None`` (runs of whitespace)."""
    if "\t" in text:
        return "\t"
    if "," in text:
        return ","
    return None


class _Collector:
    def __init__(self, min_items: int):
        self.min_items = min_items
        self.baskets: list[list[str]] = []
        self.lines: list[int] = []
        self.stats = {"blank_lines": 0, "duplicate_items": 0, "short_baskets": 0, "empty_items": 0}

    def add(self, items: Sequence[str], line: int) -> None:
        seen: dict[str, None] = {}
        for raw in items:
            item = raw.strip()
            if not item:
                self.stats["empty_items"] += 1
                continue
            if item in seen:
                self.stats["duplicate_items"] += 1
                continue
            seen[item] = None
        if len(seen) < self.min_items:
            self.stats["short_baskets"] += 1
            return
        self.baskets.append(list(seen))
        self.lines.append(line)


def _parse_lines(text: str, sep: str | None, skip_fields: int, min_items: int) -> _Collector:
    out = _Collector(min_items)
    # Split on LF (CRLF and old Mac CR-only endings are folded to LF first), so line numbers match
    # what an editor or `sed -n` shows. str.splitlines would also split on form feeds and U+2028.
    rows = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    for lineno, line in enumerate(rows, start=1):
        if not line.strip():
            out.stats["blank_lines"] += 1
            continue
        fields = line.split(sep) if sep is not None else line.split()
        out.add(fields[skip_fields:], lineno)
    return out


def _column(header: list[str], col: str | int | None, default: int, what: str, path: str) -> int:
    if col is None:
        if len(header) <= default:
            raise FormatError(
                f"the CSV header has {len(header)} column(s) {header}; it needs a basket column and an item column. "
                "If the columns are separated by something else than commas, pass --sep (e.g. --sep tab); "
                "if this file holds one basket per line, pass --format lines.",
                path,
                1,
            )
        return default
    if isinstance(col, int) or (isinstance(col, str) and col.isdigit() and col not in header):
        idx = int(col)
        if not 0 <= idx < len(header):
            raise FormatError(f"{what} column index {idx} is out of range; the header has {len(header)} columns {header}.", path, 1)
        return idx
    if col not in header:
        raise FormatError(f"{what} column {col!r} is not in the header; the columns are {header}.", path, 1)
    return header.index(col)


def _parse_csv(
    text: str, path: str, sep: str | None, basket_col, item_col, min_items: int
) -> _Collector:
    if sep is not None and len(sep) != 1:
        raise ValueError(f"`sep` for a CSV file must be one character; got {sep!r}.")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep or ",", strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError("the file is empty; a CSV needs a header row.", path) from None
    except csv.Error as exc:
        raise FormatError(f"malformed CSV header ({exc}).", path, 1) from None
    header = [h.strip() for h in header]
    b = _column(header, basket_col, 0, "basket", path)
    i = _column(header, item_col, 1, "item", path)
    if b == i:
        raise FormatError(f"the basket and item columns must differ; both are {header[b]!r}.", path, 1)
    for col, idx in ((basket_col, b), (item_col, i)):
        by_name = isinstance(col, str) and col in header
        if by_name and header.count(header[idx]) > 1:
            raise FormatError(
                f"the header names column {header[idx]!r} {header.count(header[idx])} times; "
                "rename one or choose columns by 0-based index.",
                path,
                1,
            )
    groups: dict[str, tuple[int, list[str]]] = {}
    blank = 0
    while True:
        start = reader.line_num + 1  # a quoted field may span lines: report where the row began
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise FormatError(
                f"malformed CSV in the row that starts here ({exc}); is a quote left open?", path, start
            ) from None
        if not row or all(not f.strip() for f in row):
            blank += 1
            continue
        if len(row) != len(header):
            raise FormatError(
                f"this row has {len(row)} field(s) but the header has {len(header)}. "
                "If this file holds one basket per line, pass --format lines.",
                path,
                start,
            )
        key = row[b].strip()
        if not key:
            raise FormatError(f"the basket id (column {header[b]!r}) is empty.", path, start)
        groups.setdefault(key, (start, []))[1].append(row[i])
    out = _Collector(min_items)
    out.stats["blank_lines"] = blank
    for lineno, items in groups.values():
        out.add(items, lineno)
    return out


def read_baskets(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    sep: str | None = None,
    skip_fields: int = 0,
    basket_col: str | int | None = None,
    item_col: str | int | None = None,
    encoding: str = "utf-8",
    min_items: int = 2,
) -> Baskets:
    """Read baskets from ``path`` (gzip-compressed files are recognised by their first bytes).

    Parameters
    ----------
    format : {"auto", "lines", "csv"}
        ``"auto"`` reads ``*.csv`` / ``*.csv.gz`` as CSV and anything else as lines.
    sep : str, optional
        Field separator. ``None`` detects it (lines: tab, comma, then whitespace; CSV: comma).
        Pass ``"\\t"``, ``","``, ``" "`` or any string.
    skip_fields : int
        Lines layout only: leading fields that are not items (e.g. 1 for a label column).
    basket_col, item_col : str or int, optional
        CSV only: column names (or 0-based positions); default the first and second columns.
    encoding : str
        Text encoding; undecodable bytes raise :class:`FormatError` naming the line.
    min_items : int
        Baskets with fewer distinct items are dropped (and counted in ``stats``).

    Raises
    ------
    FileNotFoundError, FormatError
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}; got {format!r}.")
    if sep is not None and not isinstance(sep, str):
        raise TypeError(f"`sep` must be a string such as '\\t' or ','; got {sep!r}.")
    if sep == "":
        raise ValueError("`sep` must not be empty; pass '\\t', ',', ' ' or another string.")
    if isinstance(skip_fields, bool) or not isinstance(skip_fields, int) or skip_fields < 0:
        raise ValueError(f"`skip_fields` must be a non-negative integer; got {skip_fields!r}.")
    if isinstance(min_items, bool) or not isinstance(min_items, int) or min_items < 1:
        raise ValueError(f"`min_items` must be a positive integer; got {min_items!r}.")
    _check_encoding(encoding)
    if sep is not None and sep.lower() in ("tab", "\\t"):
        sep = "\t"
    if format == "auto":
        low = path.lower()
        format = "csv" if low.endswith(".csv") or low.endswith(".csv.gz") else "lines"
    raw = _read_bytes(path)
    text = _decode(raw, path, encoding)
    if format == "csv":
        if skip_fields:
            raise ValueError("`skip_fields` applies to the lines layout only; CSV columns are chosen by name.")
        got = _parse_csv(text, path, sep, basket_col, item_col, min_items)
        used_sep = sep or ","
    else:
        if basket_col is not None or item_col is not None:
            raise ValueError("`basket_col` / `item_col` apply to CSV files only; pass format='csv' (--format csv).")
        used_sep = sep if sep is not None else detect_separator(text)
        if used_sep == " ":
            used_sep = None  # a space separator means runs of whitespace
        got = _parse_lines(text, used_sep, skip_fields, min_items)
    stats = dict(got.stats, format=format, separator="whitespace" if used_sep is None else used_sep)
    if not got.baskets:
        raise FormatError(
            f"no basket with at least {min_items} distinct items was found "
            f"({stats['short_baskets']} shorter basket(s), {stats['blank_lines']} blank line(s)). "
            "Check the separator (--sep) and the layout (--format).",
            path,
        )
    if stats["short_baskets"] > len(got.baskets):
        log.warning(
            "%s: %d of %d baskets have fewer than %d items and were dropped: is the separator right "
            "(detected %r; pass --sep)?",
            path, stats["short_baskets"], stats["short_baskets"] + len(got.baskets), min_items, stats["separator"],
        )
    elif stats["duplicate_items"] or stats["short_baskets"]:
        log.debug(
            "%s: dropped %d repeated item(s) and %d basket(s) with fewer than %d items",
            path,
            stats["duplicate_items"],
            stats["short_baskets"],
            min_items,
        )
    return Baskets(got.baskets, got.lines, path, stats)


RECIPES = "recipes.tsv.gz"


def load_recipes(min_items: int = 2) -> Baskets:
    """The bundled recipes of Ahn et al. (2011): 57,320 baskets of ingredients (CC BY-NC-SA 3.0).

    The cuisine label (first field) is dropped; see ``npembed/data/SOURCE.md``.
    """
    ref = resources.files("npembed").joinpath("data").joinpath(RECIPES)
    with resources.as_file(ref) as p:
        baskets = read_baskets(p, format="lines", sep="\t", skip_fields=1, min_items=min_items)
    baskets.source = "bundled:" + RECIPES
    return baskets
