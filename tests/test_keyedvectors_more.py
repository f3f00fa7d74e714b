"""KeyedVectors against gensim 4.4 on the query forms gensim accepts, and on hostile values."""

import numpy as np
import pytest

from npembed import KeyedVectors


@pytest.fixture(scope="module")
def pair():
    gensim = pytest.importorskip("gensim", reason="gensim==4.4.0 comes with the test extras")
    rng = np.random.default_rng(3)
    keys = [f"w{i}" for i in range(200)]
    vecs = rng.standard_normal((200, 8)).astype(np.float32)
    vecs[5] = 0.0  # a zero vector
    theirs = gensim.models.KeyedVectors(8)
    theirs.add_vectors(keys, vecs)
    return KeyedVectors(keys, vecs), theirs


def _same(ours, theirs, tol=1e-5):
    # gensim scores the zero vector w5 NaN (and sorts it anywhere); npembed scores it 0: compare the rest
    ours, theirs = [x for x in ours if x[0] != "w5"], [x for x in theirs if x[0] != "w5"]
    assert [k for k, _ in ours] == [k for k, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=tol)


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # gensim on the zero vector
def test_query_forms_match_gensim(pair):
    ours, theirs = pair
    raw = np.linspace(-2, 3, 8).astype(np.float32)  # not unit length: gensim adds it as it is
    for kwargs in (
        dict(positive=["w1", raw]),
        dict(positive=[("w1", 2.0), "w2"], negative=[("w3", 0.5)]),
        dict(positive=np.stack([raw, raw * 0.1 + 1])),  # a 2-D array: one query vector per row
        dict(positive=[3, "w4"]),  # an integer is a row number
        dict(positive=["w1"], negative=["w2"], restrict_vocab=50),
        dict(positive=["w1"], topn=500),
    ):
        _same(ours.most_similar(**kwargs), theirs.most_similar(**kwargs))
    _same(ours.most_similar(7), theirs.most_similar(7))
    every, theirs_every = ours.most_similar("w1", topn=None), theirs.most_similar("w1", topn=None)
    assert every[5] == 0.0 and np.isnan(theirs_every[5])
    np.testing.assert_allclose(np.delete(every, 5), np.delete(theirs_every, 5), atol=1e-6)
    assert ours.rank("w1", "w1") == theirs.rank("w1", "w1") == 1
    for a, b in (("w1", "w2"), ("w9", "w100")):
        # the zero vector w5 is at distance 1 for npembed (NaN, never closer, for gensim)
        zero_closer = ours.distances(a)[5] < ours.distance(a, b)
        assert ours.rank(a, b) == theirs.rank(a, b) + zero_closer
        assert [k for k in ours.closer_than(a, b) if k != "w5"] == theirs.closer_than(a, b)
        assert ours.distance(a, b) == pytest.approx(theirs.distance(a, b), abs=1e-6)
    np.testing.assert_allclose(np.delete(ours.distances("w1"), 5), np.delete(theirs.distances("w1"), 5), atol=1e-6)
    np.testing.assert_allclose(ours.distances("w1", ["w2", "w3"]), theirs.distances("w1", ["w2", "w3"]), atol=1e-6)
    np.testing.assert_allclose(ours.cosine_similarities(raw, ours.vectors[:4]), theirs.cosine_similarities(raw, theirs.vectors[:4]), atol=1e-6)
    for kw in (dict(), dict(pre_normalize=False), dict(post_normalize=True), dict(weights=[1.0, -2.0])):
        np.testing.assert_allclose(ours.get_mean_vector(["w1", "w2"], **kw), theirs.get_mean_vector(["w1", "w2"], **kw), atol=1e-6)
    np.testing.assert_allclose(ours.get_vector("w1", norm=True), theirs.get_vector("w1", norm=True), atol=1e-7)
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert ours.vector_size == theirs.vector_size == 8
    assert ours.has_index_for("w1") and ours.has_index_for(199) and not ours.has_index_for("zz") and not ours.has_index_for(200)
    assert list(ours)[:3] == ["w0", "w1", "w2"]
    assert ours.similarity("w5", "w1") == 0.0  # the zero vector


def test_bad_query_arguments(pair):
    ours, _ = pair
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match=rf"`restrict_vocab` must be a positive integer \(search the first that many keys\) or None; got {bad!r}"):
            ours.most_similar("w1", restrict_vocab=bad)
    with pytest.raises(ValueError, match=r"a query vector holds NaN or infinite values"):
        ours.similar_by_vector(np.array([np.nan] + [1.0] * 7))
    with pytest.raises(ValueError, match=r"a query vector holds NaN or infinite values"):
        ours.most_similar(positive=["w1", np.full(8, np.inf)])
    with pytest.raises(ValueError, match=r"a weighted query item must be \(key or vector, weight\); got \('w1', 'x'\)"):
        ours.most_similar(positive=[("w1", "x")])
    with pytest.raises(IndexError, match="row 200 is out of range: the table has 200 rows"):
        ours[200]
    with pytest.raises(TypeError, match=r"a key must be a string \(or a row number\); got float 1.5"):
        ours.get_vector(1.5)
    with pytest.raises(KeyError, match="'zz' is not in the vocabulary"):
        ours.most_similar(positive=["w1"], negative=["zz"])


def test_extreme_magnitudes_give_true_cosines():
    kv = KeyedVectors(["a", "b", "c"], np.array([[1, 0], [0, 1], [1, 1]], np.float32))
    assert kv.similar_by_vector(np.array([1e200, 1e200]))[0] == ("c", pytest.approx(1.0))
    assert kv.similar_by_vector(np.array([1e-200, 1e-200]))[0] == ("c", pytest.approx(1.0))
    tiny = KeyedVectors(["a", "b"], np.array([[1e-25, 1e-25], [1, 1]], np.float32))
    assert tiny.similarity("a", "b") == pytest.approx(1.0)
    assert tiny.most_similar("b") == [("a", pytest.approx(1.0))]
    huge = KeyedVectors(["a", "b"], np.array([[3e38, 3e38], [1, 2]], np.float32))
    (key, score), = huge.most_similar("b")
    assert key == "a" and score == pytest.approx(3 / np.sqrt(10))
    bad = KeyedVectors(["a", "b"], np.array([[np.inf, 0], [1, 2]], np.float32))
    with pytest.raises(ValueError, match=r"row 0 \(key 'a'\) holds NaN or infinite values"):
        bad.most_similar("b")


def test_returned_rows_cannot_be_made_writable():
    table = np.arange(6, dtype=np.float32).reshape(3, 2)
    kv = KeyedVectors(["a", "b", "c"], table)
    for v in (kv.get_vector("a"), kv["b"], kv[1]):  # views of the table
        with pytest.raises(ValueError):
            v.flags.writeable = True
        with pytest.raises(ValueError):
            v[0] = 99
    rows = kv[["a", "c"]]  # several keys: a copy, read-only too, and never the table
    with pytest.raises(ValueError):
        rows[0, 0] = 99
    rows.flags.writeable = True
    rows[0, 0] = 99
    assert table[0, 0] == 0


def test_unknown_key_in_a_large_vocabulary_is_cheap_and_suggests_casings():
    keys = [f"w{i}" for i in range(30_000)] + ["Paris"]
    kv = KeyedVectors(keys, np.ones((len(keys), 2), np.float32))
    with pytest.raises(KeyError, match=r"'paris' is not in the vocabulary \(30001 items\)\. Did you mean: Paris\?"):
        kv.get_vector("paris")
    with pytest.raises(KeyError, match=r"'nowhere' is not in the vocabulary \(30001 items\)\.[^ ]*$"):
        kv.get_vector("nowhere")


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # gensim on the zero vector
def test_integer_keys_nan_rows_and_weights_and_gensim_details(pair, tmp_path):
    gensim = pytest.importorskip("gensim", reason="gensim==4.4.0 comes with the test extras")
    vecs = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    ours = KeyedVectors([2, 0, 1], vecs)  # integer keys come before row numbers, as gensim
    theirs = gensim.models.KeyedVectors(2)
    theirs.add_vectors([2, 0, 1], vecs)
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert ours.similarity(0, 1) == pytest.approx(float(theirs.similarity(0, 1)))
    assert 5 not in ours and 1 in ours
    with pytest.raises(ValueError, match="key 0 is 2: only string keys can be saved"):
        ours.save(tmp_path / "f", format="npembed")
    bad = KeyedVectors(["a", "b", "c"], np.array([[np.nan, 1], [1, 2], [np.inf, 0]], np.float32))
    for call in (lambda: bad.similarity("a", "b"), lambda: bad.distances("b", ["c"]),
                 lambda: bad.get_mean_vector(["a", "b"]), lambda: bad.doesnt_match(["a", "b", "c"])):
        with pytest.raises(ValueError, match=r"the vector of '[ac]' holds NaN or infinite values"):
            call()
    kv, g = pair
    with pytest.raises(ValueError, match=r"the weight of 'w1' must be finite; got nan"):
        kv.most_similar([("w1", float("nan"))])
    with pytest.raises(ValueError, match="`weights` must be finite numbers"):
        kv.get_mean_vector(["w1", "w2"], weights=[np.nan, 1])
    assert kv.n_similarity(["w1", "zzz"], ["w2"]) == pytest.approx(float(g.n_similarity(["w1", "zzz"], ["w2"])), abs=1e-6)
    with pytest.raises(KeyError, match=r"none of \['zzz'\] is in the vocabulary"):
        kv.n_similarity(["zzz"], ["w2"])
    np.testing.assert_allclose(kv.get_mean_vector(("w1", "w2")), g.get_mean_vector(("w1", "w2")), atol=1e-6)
    raw = 7 * kv["w3"]
    a = kv.most_similar_cosmul(positive=[raw, "w4"], topn=5)
    b = g.most_similar_cosmul(positive=[raw, "w4"], topn=5)
    assert [k for k, _ in a] == [k for k, _ in b]
    np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=1e-5)
    with pytest.raises(ValueError, match=r"a query vector must be a key or a number array of shape \(8,\); got b'w1'"):
        kv.most_similar(b"w1")


def test_corrupted_folders_are_named(tmp_path):
    from npembed import FormatError

    kv = KeyedVectors(["a", "b"], np.ones((2, 3), np.float32))
    kv.save(tmp_path / "f", format="npembed")
    (tmp_path / "f" / "vectors.npy").write_bytes(b"")
    with pytest.raises(FormatError, match=r"f/vectors.npy: cannot read the table"):
        KeyedVectors.load_folder(tmp_path / "f")
    for vocab, msg in (('{"index_to_key": "ab", "counts": [1, 2]}', "'index_to_key' must be a list of strings"),
                       ('{"index_to_key": ["a", "b"], "counts": [1e30, 2]}', r"'counts' must be a list of integers in \[0, 2\*\*63\)"),
                       ('{"index_to_key": ["a", "b"], "counts": [-1, 2]}', r"'counts' must be a list of integers")):
        kv.save(tmp_path / "g", format="npembed")
        (tmp_path / "g" / "vocab.json").write_text(vocab)
        with pytest.raises(FormatError, match=msg):
            KeyedVectors.load_folder(tmp_path / "g")
    with pytest.raises(ValueError, match=r"\['limit'\] apply to vector files; .* is an npembed folder"):
        KeyedVectors.load(tmp_path / "g", limit=5)


def test_float16_tables_keep_cosines_within_one():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((2000, 300)).astype(np.float16)
    kv = KeyedVectors([f"w{i}" for i in range(2000)], v)
    scores = kv.most_similar(positive=[v[3].astype(np.float32)], topn=None)
    assert np.abs(scores).max() <= 1.0 + 1e-6 and scores[3] == pytest.approx(1.0, abs=1e-6)
