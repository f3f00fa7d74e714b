"""Pre-trained vector files: every shared real file read like gensim 4.4 reads it, round trips in
both directions, and each malformed case a FormatError naming file and line or record."""

import gzip

import numpy as np
import pytest

from npembed import FormatError
from npembed.vectors_io import load_vectors, save_vectors

FILES = [
    ("text8-10.bin", True, False, "word2vec-binary"),
    ("euclidean_vectors.bin", True, False, "word2vec-binary"),
    ("high_precision.kv.bin", True, False, "word2vec-binary"),
    ("word2vec_pre_kv_c", False, False, "word2vec"),
    ("EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt", False, False, "word2vec"),
    ("high_precision.kv.txt", False, False, "word2vec"),
    ("test_glove.txt", False, True, "glove"),
    ("lee_fasttext.vec", False, False, "word2vec"),
    ("crime-and-punishment.vec", False, False, "word2vec"),
    ("toy-model.vec", False, False, "word2vec"),
]


@pytest.mark.parametrize("name,binary,no_header,fmt", FILES, ids=[f[0] for f in FILES])
def test_reads_every_real_file_as_gensim_does(shared_data, name, binary, no_header, fmt):
    gensim = pytest.importorskip("gensim", reason="gensim==4.4.0 comes with the test extras")
    path = shared_data / "pretrained-vectors" / name
    ours = load_vectors(path)
    assert ours.format == fmt
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header)
    assert ours.keys == kv.index_to_key
    assert ours.vectors.tobytes() == kv.vectors.astype(np.float32).tobytes()


@pytest.mark.parametrize("fmt", ["word2vec", "word2vec-binary", "glove"])
def test_round_trips_with_gensim_both_ways(tmp_path, rng, fmt):
    gensim = pytest.importorskip("gensim", reason="gensim==4.4.0 comes with the test extras")
    keys = ["the", "ö", "हि", "--", "kangaroo.n.01", "x"]
    vecs = (rng.standard_normal((6, 7)) * 10.0 ** rng.integers(-6, 3, size=(6, 1))).astype(np.float32)
    ours = tmp_path / "ours.txt"
    save_vectors(ours, keys, vecs, format=fmt)
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(ours), binary=fmt == "word2vec-binary", no_header=fmt == "glove")
    assert kv.index_to_key == keys and kv.vectors.tobytes() == vecs.tobytes()
    back = load_vectors(ours)
    assert back.keys == keys and back.vectors.tobytes() == vecs.tobytes()
    if fmt != "glove":
        theirs = tmp_path / "theirs.bin"
        kv.save_word2vec_format(str(theirs), binary=fmt == "word2vec-binary")
        again = load_vectors(theirs)
        assert again.keys == keys and again.vectors.tobytes() == vecs.tobytes()


def test_limit_dtype_and_gzip(shared_data, tmp_path):
    path = shared_data / "pretrained-vectors" / "text8-10.bin"
    first = load_vectors(path, limit=3, dtype=np.float64)
    assert first.keys == ["</s>", "the", "of"] and first.vectors.dtype == np.float64
    gz = tmp_path / "v.txt.gz"
    gz.write_bytes(gzip.compress((shared_data / "pretrained-vectors" / "toy-model.vec").read_bytes()))
    assert len(load_vectors(gz).keys) == 22
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(gz.read_bytes()[:-30])
    with pytest.raises(FormatError, match="cut.txt.gz: gzip stream is damaged or cut short"):
        load_vectors(cut)


def _w(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def test_malformed_text_files(tmp_path, shared_data):
    with pytest.raises(FormatError, match=r"pretrained.vec, line 2: the header says 3 vectors but the file ends after 1: is it truncated\?"):
        load_vectors(shared_data / "pretrained-vectors" / "pretrained.vec")
    cases = [
        ("2 3\na 1 2 3\nb 1 2\n", r"line 3: expected a key and 3 values; got 2 values\."),
        ("2 3\na 1 2 3\nnew york 1 2 3\n", r"line 3: expected a key and 3 values; got 4 values \(does the key contain a space\?\)"),
        ("2 3\na 1 2 3\nb 1 x 3\n", r"line 3: non-numeric value 'x' for key 'b'"),
        ("2 3\na 1 2 3\na 4 5 6\n", r"duplicate key 'a' at line 3 \(first at line 2\)"),
        ("1 3\na 1 2 3\nb 1 2 3\n", r"line 3: the header says 1 vectors but more lines follow"),
        ("2 3\na 1 2 3\n\nb 1 2 3\n", r"line 3: blank line inside the vectors"),
        ("1 2\na nan 1\n", r"the vector of key 'a' holds NaN or infinite values"),
    ]
    for i, (text, message) in enumerate(cases):
        with pytest.raises(FormatError, match=message):
            load_vectors(_w(tmp_path, f"bad{i}.txt", text))
    # limit stops before a bad row, as gensim users rely on
    assert load_vectors(_w(tmp_path, "lim.txt", "3 2\na 1 2\nb 3 4\nc x\n"), limit=2).keys == ["a", "b"]


def test_malformed_binary_files(tmp_path):
    v = np.arange(3, dtype="<f4").tobytes()
    good = b"2 3\n" + b"a " + v + b"\n" + b"b " + v + b"\n"
    with pytest.raises(FormatError, match=r"record 2 \(key 'b'\) needs 12 bytes of vector but the file ends after 5: is it truncated\?"):
        load_vectors(_w(tmp_path, "t.bin", good[:-8]), format="word2vec-binary")
    with pytest.raises(FormatError, match=r"the header says 3 vectors but the file ends after 2 \(record 3\)"):
        load_vectors(_w(tmp_path, "h.bin", b"3 3\n" + good[4:]), format="word2vec-binary")
    with pytest.raises(FormatError, match=r"h0.bin, line 1: the header gives dimension 0"):
        load_vectors(_w(tmp_path, "h0.bin", b"2 0\na \nb \n"), format="word2vec-binary")
    # a header promising far more than the file holds is refused before the table is allocated
    for name, fmt, body in (("big.bin", "word2vec-binary", b"a " + v), ("big.txt", "word2vec", b"a 0 1 2\n")):
        with pytest.raises(FormatError, match=rf"{name}, line 1: the header promises 1000000000 vectors of dimension 3, "
                           r"at least \d+ bytes, but the file has \d+ bytes: is it truncated, or is the header wrong\?"):
            load_vectors(_w(tmp_path, name, b"1000000000 3\n" + body), format=fmt)
    cut = "é".encode()[:1]  # a UTF-8 character cut at the end of a key
    broken = b"1 3\n" + b"caf" + cut + b" " + v
    with pytest.raises(FormatError, match=r"record 1: the key is not valid utf-8 .*Pass unicode_errors='replace' or 'ignore'"):
        load_vectors(_w(tmp_path, "u.bin", broken), format="word2vec-binary")
    assert load_vectors(_w(tmp_path, "u2.bin", broken), format="word2vec-binary", unicode_errors="ignore").keys == ["caf"]
    with pytest.raises(FormatError, match=r"duplicate key 'a' at record 2 \(first at record 1\)"):
        load_vectors(_w(tmp_path, "d.bin", b"2 3\na " + v + b"\na " + v), format="word2vec-binary")


def test_argument_errors_and_atomic_write(tmp_path):
    with pytest.raises(FileNotFoundError, match="vector file not found"):
        load_vectors(tmp_path / "none.txt")
    p = _w(tmp_path, "ok.txt", "1 2\na 1 2\n")
    with pytest.raises(ValueError, match=r"`format` must be one of"):
        load_vectors(p, format="npz")
    with pytest.raises(ValueError, match=r"`limit` must be a positive integer, or None to read every vector; got -1"):
        load_vectors(p, limit=-1)
    with pytest.raises(ValueError, match=r"key 1 is 'new york': keys must be non-empty strings without spaces, newlines"):
        save_vectors(tmp_path / "o.txt", ["a", "new york"], np.ones((2, 2)))
    for bad in ("", "a\nb", "a\rb", 3):
        with pytest.raises(ValueError, match=r"key 0 is .*: keys must be non-empty strings"):
            save_vectors(tmp_path / "o.txt", [bad], np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"keys must be distinct; 'a' appears more than once"):
        save_vectors(tmp_path / "o.txt", ["a", "b", "a"], np.ones((3, 2)))
    with pytest.raises(TypeError, match=r"`vectors` must hold floats; got dtype int64"):
        save_vectors(tmp_path / "o.txt", ["a"], np.ones((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"the vector of key 'b' \(row 1\) holds NaN or infinite values; no file was written"):
        save_vectors(tmp_path / "o.txt", ["a", "b"], np.array([[1.0, 2.0], [np.nan, 0.0]]))
    assert not (tmp_path / "o.txt").exists()
    with pytest.raises(ValueError, match=r"`vectors` must be 2-D with one row per key \(2\); got shape \(1, 2\)"):
        save_vectors(tmp_path / "o.txt", ["a", "b"], np.ones((1, 2)))
    assert not list(tmp_path.glob(".o.txt.tmp-*"))


def test_counts_file_as_gensim_writes_it(tmp_path, rng):
    gensim = pytest.importorskip("gensim", reason="gensim==4.4.0 comes with the test extras")
    from npembed import KeyedVectors

    kv = gensim.models.KeyedVectors(3)
    kv.add_vectors(["a", "b", "c"], rng.standard_normal((3, 3)).astype(np.float32))
    for k, c in (("a", 10), ("b", 7), ("c", 2)):
        kv.set_vecattr(k, "count", c)
    kv.save_word2vec_format(str(tmp_path / "v.txt"), fvocab=str(tmp_path / "vocab.txt"))
    vf = load_vectors(tmp_path / "v.txt", counts_file=tmp_path / "vocab.txt")
    assert vf.counts.tolist() == [10, 7, 2]
    ours = KeyedVectors.load(tmp_path / "v.txt", counts_file=tmp_path / "vocab.txt")
    assert ours.vocab.counts.tolist() == [10, 7, 2]
    (tmp_path / "bad.txt").write_text("a ten\n")
    with pytest.raises(FormatError, match=r"bad.txt, line 1: expected 'key count'"):
        load_vectors(tmp_path / "v.txt", counts_file=tmp_path / "bad.txt")


def test_counts_file_written_as_gensim_reads_it(tmp_path, rng):
    gensim = pytest.importorskip("gensim", reason="gensim==4.4.0 comes with the test extras")
    from npembed import KeyedVectors

    keys, vecs, counts = ["a", "b", "c"], rng.standard_normal((3, 4)).astype(np.float32), [10, 7, 2]
    for fmt, binary in (("word2vec", False), ("word2vec-binary", True)):
        save_vectors(tmp_path / "v", keys, vecs, fmt, counts=counts, counts_file=tmp_path / "c.txt")
        assert (tmp_path / "c.txt").read_text() == "a 10\nb 7\nc 2\n"
        theirs = gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / "v"), binary=binary, fvocab=str(tmp_path / "c.txt"))
        assert [theirs.get_vecattr(k, "count") for k in keys] == counts
        assert load_vectors(tmp_path / "v", counts_file=tmp_path / "c.txt").counts.tolist() == counts
    kv = KeyedVectors(keys, vecs, counts)
    kv.save(tmp_path / "k.txt", counts_file=tmp_path / "k.counts")
    assert KeyedVectors.load(tmp_path / "k.txt", counts_file=tmp_path / "k.counts").vocab.counts.tolist() == counts
    with pytest.raises(ValueError, match="the npembed folder keeps counts in vocab.json"):
        kv.save(tmp_path / "f", "npembed", counts_file=tmp_path / "k.counts")


def test_counts_file_errors_leave_both_files_alone(tmp_path):
    (tmp_path / "v.txt").write_text("old vectors\n")
    (tmp_path / "c.txt").write_text("old counts\n")
    one = np.ones((2, 2), dtype=np.float32)
    cases = [
        (dict(counts=[1, 2]), "`counts` and `counts_file` go together"),
        (dict(counts_file=tmp_path / "c.txt"), "`counts` and `counts_file` go together"),
        (dict(counts=[1], counts_file=tmp_path / "c.txt"), r"`counts` must be integers, one per key \(2\)"),
        (dict(counts=[1.5, 2], counts_file=tmp_path / "c.txt"), r"`counts` must be integers"),
        (dict(counts=[1, -2], counts_file=tmp_path / "c.txt"), r"`counts` must be non-negative; key 'b' has -2"),
        (dict(counts=[1, 2], counts_file=tmp_path / "v.txt"), r"`counts_file` must differ from the vectors' path"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            save_vectors(tmp_path / "v.txt", ["a", "b"], one, **kwargs)
    # a counts file that cannot be written leaves the vectors file untouched too
    with pytest.raises(OSError):
        save_vectors(tmp_path / "v.txt", ["a", "b"], one, counts=[1, 2], counts_file=tmp_path / "no" / "c.txt")
    assert (tmp_path / "v.txt").read_text() == "old vectors\n"
    assert (tmp_path / "c.txt").read_text() == "old counts\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "v.txt"]


def test_saved_keys_with_unicode_whitespace_round_trip(tmp_path):
    keys = ["new\u00a0york", "tab\there", "\u3000wide"]
    vecs = np.arange(6, dtype=np.float32).reshape(3, 2)
    for fmt in ("word2vec", "word2vec-binary", "glove"):
        save_vectors(tmp_path / "u", keys, vecs, fmt)
        back = load_vectors(tmp_path / "u", fmt)
        assert back.keys == keys and np.array_equal(back.vectors, vecs)


def test_unicode_whitespace_inside_a_key_is_part_of_the_key(tmp_path):
    """Only an ASCII space separates fields (as gensim): a no-break space stays in the key."""
    p = _w(tmp_path, "nbsp.txt", "1 2\nnew\u00a0york 1 2\n")
    assert load_vectors(p).keys == ["new\u00a0york"]
