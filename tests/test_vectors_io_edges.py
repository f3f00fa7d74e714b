"""Malformed and unusual vector files, and the file-system side of writing them."""

import gzip
import os
import stat

import numpy as np
import pytest

from npembed import FormatError
from npembed.vectors_io import load_vectors, save_vectors


def _w(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 2\n# c\na 1 2\n", r"line 2: expected a key and 2 values; got 1 values"),
        ("3 1\nw0  -0.3\nw1 0.87\nw2 0.72\n", r"line 2: expected a key and 1 values; got 2 values \(does the key contain a space\?\)"),
        ("1 2\nw0 0.166984\n", r"line 2: expected a key and 2 values; got 1 values"),
        ("2 3\nthe 0.1 0.2 0.x3\nof 0.4 0.5 0.6\n", r"line 2: non-numeric value '0.x3' for key 'the'"),
        ("1 2\nnew york 1 2\n", r"line 2: expected a key and 2 values; got 3 values \(does the key contain a space\?\)"),
        ("1 2\na\t1\t2\n", r"line 2: expected a key and 2 values; got 0 values \(fields separated by tabs\?"),
        ("1 2\n a 1\n", r"line 2: the line starts with a space: the key is empty"),
    ],
)
def test_text_with_a_bad_first_row_is_read_as_text(tmp_path, text, message):
    """A malformed first row no longer sends a text file down the binary reader."""
    with pytest.raises(FormatError, match=message):
        load_vectors(_w(tmp_path, "v.vec", text))


def test_binary_is_still_detected_and_a_key_never_spans_lines(tmp_path, rng):
    vecs = rng.standard_normal((3, 4)).astype(np.float32)
    save_vectors(tmp_path / "v.bin", ["a", "b", "c"], vecs, "word2vec-binary")
    vf = load_vectors(tmp_path / "v.bin")
    assert vf.format == "word2vec-binary" and np.array_equal(vf.vectors, vecs)
    with pytest.raises(FormatError, match=r"record 1: the key runs over a line break, so this is not a word2vec binary file"):
        load_vectors(_w(tmp_path, "t.vec", "1 2\nab\ncd 1 2\n"), format="word2vec-binary")


def test_empty_and_blank_files(tmp_path):
    for name, data in (("empty.txt", ""), ("blank.txt", "\n\n  \n")):
        with pytest.raises(FormatError, match=rf"{name}: no vectors found: the file is empty or blank"):
            load_vectors(_w(tmp_path, name, data))


def test_gzip_header_promising_too_much_is_refused_before_allocating(tmp_path):
    p = _w(tmp_path, "bomb.txt.gz", gzip.compress(b"1000000000000 2\na 1 2\n"))
    with pytest.raises(FormatError, match=r"line 1: the header promises 1000000000000 vectors of dimension 2, at least \d+ bytes, but the file can hold at most \d+ bytes"):
        load_vectors(p)


def test_bom_overflow_encoding_limit_and_counts_errors(tmp_path):
    assert load_vectors(_w(tmp_path, "bom.txt", "\ufeffcat 1 2\ndog 3 4\n")).keys == ["cat", "dog"]
    assert load_vectors(_w(tmp_path, "bomh.txt", "\ufeff2 2\ncat 1 2\ndog 3 4\n")).keys == ["cat", "dog"]
    big = _w(tmp_path, "big.txt", "1 2\na 1e39 1\n")
    with pytest.raises(FormatError, match=r"big.txt, line 2: the vector of key 'a' holds NaN or infinite values: a value is too large for float32; pass dtype=np.float64"):
        load_vectors(big)
    assert load_vectors(big, dtype=np.float64).vectors[0, 0] == 1e39
    with pytest.raises(FormatError, match=r"line 2: the vector of key 'a' holds NaN or infinite values\.$"):
        load_vectors(_w(tmp_path, "nan.txt", "1 2\na nan 1\n"))
    with pytest.raises(ValueError, match=r"`encoding` 'nope' is not a text encoding Python knows"):
        load_vectors(big, encoding="nope")
    with pytest.raises(ValueError, match=r"`limit` must be a positive integer, or None to read every vector; got 0"):
        load_vectors(big, limit=0)
    ok = _w(tmp_path, "ok.txt", "2 1\na 1\nb 2\n")
    with pytest.raises(FormatError, match=r"c1.txt, line 1: the count of 'a' must be in \[0, 2\*\*63\); got 99999999999999999999"):
        load_vectors(ok, counts_file=_w(tmp_path, "c1.txt", "a 99999999999999999999\n"))
    with pytest.raises(FormatError, match=r"c2.txt, line 2: 'a' is listed twice"):
        load_vectors(ok, counts_file=_w(tmp_path, "c2.txt", "a 1\na 2\n"))
    with pytest.raises(FileNotFoundError, match="counts file not found"):
        load_vectors(ok, counts_file=tmp_path / "none.txt")


def test_saving_refuses_what_it_could_not_read_back(tmp_path):
    one = np.ones((1, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="`vectors` has dimension 0"):
        save_vectors(tmp_path / "z.txt", ["a"], np.ones((1, 0)))
    with pytest.raises(ValueError, match="a GloVe file has no header, so an empty table would lose its dimension"):
        save_vectors(tmp_path / "z.txt", [], np.ones((0, 3)), "glove")
    with pytest.raises(ValueError, match=r"the first GloVe line would read '1 5', which looks like a word2vec header"):
        save_vectors(tmp_path / "z.txt", ["1", "2"], one * 5 + np.zeros((2, 1), np.float32), "glove")
    with pytest.raises(ValueError, match=r"key 0 is '\\ud800': it holds a lone surrogate"):
        save_vectors(tmp_path / "z.txt", ["\ud800"], one)
    with pytest.raises(ValueError, match="word2vec binary stores float32, and some values are too large for it"):
        save_vectors(tmp_path / "z.bin", ["a"], np.full((1, 1), 1e300), "word2vec-binary")
    assert not list(tmp_path.iterdir())


def test_gz_path_is_written_compressed(tmp_path, rng):
    vecs = rng.standard_normal((4, 3)).astype(np.float32)
    for fmt in ("word2vec", "word2vec-binary"):
        save_vectors(tmp_path / "v.gz", list("abcd"), vecs, fmt)
        assert (tmp_path / "v.gz").read_bytes()[:2] == b"\x1f\x8b"
        assert np.array_equal(load_vectors(tmp_path / "v.gz").vectors, vecs)
    gensim = pytest.importorskip("gensim", reason="gensim==4.4.0 comes with the test extras")
    theirs = gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / "v.gz"), binary=True)
    assert np.array_equal(theirs.vectors, vecs)


def test_written_files_get_ordinary_permissions_and_symlinks_are_written_through(tmp_path):
    old = os.umask(0o022)
    try:
        save_vectors(tmp_path / "new.txt", ["a"], np.ones((1, 2)), counts=[3], counts_file=tmp_path / "new.counts")
        assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o644
        assert stat.S_IMODE(os.stat(tmp_path / "new.counts").st_mode) == 0o644
        (tmp_path / "shared.txt").write_text("old")
        os.chmod(tmp_path / "shared.txt", 0o664)
        save_vectors(tmp_path / "shared.txt", ["a"], np.ones((1, 2)))
        assert stat.S_IMODE(os.stat(tmp_path / "shared.txt").st_mode) == 0o664  # kept
        os.symlink(tmp_path / "shared.txt", tmp_path / "link.txt")
        save_vectors(tmp_path / "link.txt", ["b"], np.ones((1, 2)))
        assert os.path.islink(tmp_path / "link.txt") and load_vectors(tmp_path / "shared.txt").keys == ["b"]
        (tmp_path / "ro.txt").write_text("precious")
        os.chmod(tmp_path / "ro.txt", 0o444)
        with pytest.raises(PermissionError, match=r"ro.txt is read-only; refusing to replace it"):
            save_vectors(tmp_path / "ro.txt", ["a"], np.ones((1, 2)))
        assert (tmp_path / "ro.txt").read_text() == "precious"
        with pytest.raises(IsADirectoryError, match="is a folder; give a file name to write"):
            save_vectors(tmp_path, ["a"], np.ones((1, 2)))
    finally:
        os.umask(old)


def test_temporaries_of_killed_writers_are_removed(tmp_path):
    stale = tmp_path / ".v.txt.tmp-999999999-abc"  # no such process
    stale.write_text("half")
    live = tmp_path / f".v.txt.tmp-{os.getpid()}-xyz"  # a live writer's: kept
    live.write_text("busy")
    save_vectors(tmp_path / "v.txt", ["a"], np.ones((1, 2)))
    assert not stale.exists() and live.exists()


def test_control_characters_in_text_keys_and_printable_binary(tmp_path):
    p = _w(tmp_path, "c.vec", b"3 3\ncat 0.5 1.2 3.1\nd\x7fog 1.0 2.0 0.2\nemu 0.1 0.9 0.8\n")
    vf = load_vectors(p)
    assert vf.format == "word2vec" and vf.keys == ["cat", "d\x7fog", "emu"]
    keys = ["a\x0bb", "c\x00d"]
    save_vectors(tmp_path / "k.vec", keys, np.ones((2, 3), np.float32))
    assert load_vectors(tmp_path / "k.vec").keys == keys
    # a one-record binary file whose float bytes are all printable is still read as binary
    v = np.array([[-0.16070081, 0.10847852, 0.3912, 0.28412428]], np.float32)
    save_vectors(tmp_path / "r.bin", ["word"], v, "word2vec-binary")
    assert np.array_equal(load_vectors(tmp_path / "r.bin").vectors, v)
    # and where a tiny file is ambiguous, the text reader's error says how to read it as binary
    amb = _w(tmp_path, "amb.vec", b"1 2\nw0 0.166984\n")
    with pytest.raises(FormatError, match=r"line 2: expected a key and 2 values; got 1 values. If this is a word2vec binary file, pass format='word2vec-binary'"):
        load_vectors(amb)


def test_gzip_header_names_the_target_and_counts_files_never_replace_the_vectors(tmp_path):
    save_vectors(tmp_path / "out.txt.gz", ["a"], np.ones((1, 2)))
    with gzip.open(tmp_path / "out.txt.gz") as fh:
        assert fh.read().startswith(b"1 2\n")
    raw = (tmp_path / "out.txt.gz").read_bytes()
    assert b"out.txt\x00" in raw[:40] and b"tmp" not in raw[:40]  # FNAME field: the target's name
    (tmp_path / "v.vec").write_text("2 1\na 1\nb 2\n")
    os.symlink(tmp_path / "v.vec", tmp_path / "c.link")
    with pytest.raises(ValueError, match="`counts_file` must differ from the vectors' path"):
        save_vectors(tmp_path / "v.vec", ["a", "b"], np.ones((2, 1)), counts=[1, 2], counts_file=tmp_path / "c.link")
    assert (tmp_path / "v.vec").read_text() == "2 1\na 1\nb 2\n"


def test_counts_files_as_gensim_accepts_them_and_odd_temporary_names(tmp_path):
    v = _w(tmp_path, "v.vec", "2 1\na 1\nb 2\n")
    c = _w(tmp_path, "c.txt", b"\xef\xbb\xbfa\t5 \nb 7\t\n")  # BOM, a tab, trailing blanks
    assert load_vectors(v, counts_file=c).counts.tolist() == [5, 7]
    (tmp_path / ".x.vec.tmp-99999999999999999999-a").write_text("not ours to judge")
    (tmp_path / ".x.vec.tmp-\u00b2-x").write_text("nor this")
    save_vectors(tmp_path / "x.vec", ["a"], np.ones((1, 2)))  # no crash on odd names; they stay
    assert (tmp_path / ".x.vec.tmp-99999999999999999999-a").exists()
    with pytest.raises(FileNotFoundError, match=r"cannot write .*nodir/x.vec: the folder .*nodir does not exist"):
        save_vectors(tmp_path / "nodir" / "x.vec", ["a"], np.ones((1, 2)))


def test_a_signed_header_is_a_header_as_gensim_reads_it(tmp_path):
    vf = load_vectors(_w(tmp_path, "p.vec", "+2 2\na 1 2\nb 3 4\n"))
    assert vf.format == "word2vec" and vf.keys == ["a", "b"]
