"""KeyedVectors queries and evaluations against gensim 4.4 on the real text8-10.bin vectors."""

import numpy as np
import pytest

from npembed import FormatError, KeyedVectors


@pytest.fixture(scope="module")
def pair(request):
    gensim = pytest.importorskip("gensim", reason="gensim==4.4.0 comes with the test extras")
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not root.exists():
        pytest.skip("the team's shared data folder (../shared/data) is not beside this checkout")
    path = str(root / "pretrained-vectors" / "text8-10.bin")
    return KeyedVectors.load(path), gensim.models.KeyedVectors.load_word2vec_format(path, binary=True), root


QUERIES = [
    dict(positive=["king"]),
    dict(positive=["king", "woman"], negative=["man"]),
    dict(positive=["paris"], topn=5, restrict_vocab=1000),
    dict(positive=["computer", "science"], topn=20),
    dict(negative=["good"], topn=3),
]


@pytest.mark.parametrize("query", QUERIES)
def test_most_similar_matches_gensim(pair, query):
    ours, g, _ = pair
    a, b = ours.most_similar(**query), g.most_similar(**query)
    assert [k for k, _ in a] == [k for k, _ in b]
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


def test_other_queries_match_gensim(pair):
    ours, g, _ = pair
    a = ours.most_similar_cosmul(positive=["king", "woman"], negative=["man"])
    b = g.most_similar_cosmul(positive=["king", "woman"], negative=["man"])
    assert [k for k, _ in a] == [k for k, _ in b]
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)
    assert ours.similarity("king", "queen") == pytest.approx(float(g.similarity("king", "queen")), abs=1e-6)
    assert ours.n_similarity(["king", "man"], ["queen"]) == pytest.approx(float(g.n_similarity(["king", "man"], ["queen"])), abs=1e-6)
    words = ["breakfast", "cereal", "dinner", "lunch"]
    assert ours.doesnt_match(words) == g.doesnt_match(words)
    assert ours.rank("king", "queen") == g.rank("king", "queen")
    v = ours["france"]
    a, b = ours.similar_by_vector(v, topn=5), g.similar_by_vector(g["france"], topn=5)
    assert [k for k, _ in a] == [k for k, _ in b]


def test_evaluations_match_gensim(pair):
    ours, g, root = pair
    analogies = root / "word-analogy" / "questions-words.txt"
    score, sections = ours.evaluate_word_analogies(analogies, restrict_vocab=3000)
    g_score, g_sections = g.evaluate_word_analogies(str(analogies), restrict_vocab=3000)
    assert score == g_score
    assert [(s["section"], len(s["correct"]), len(s["incorrect"])) for s in sections] == [
        (s["section"], len(s["correct"]), len(s["incorrect"])) for s in g_sections
    ]
    pairs = root / "word-similarity" / "EN-WS-353-ALL.txt"
    ours_p = ours.evaluate_word_pairs(pairs)
    (gp, _), (gs, _), g_oov = g.evaluate_word_pairs(str(pairs))
    assert ours_p["pearson"] == pytest.approx(gp, abs=1e-6) and ours_p["spearman"] == pytest.approx(gs, abs=1e-9)
    assert ours_p["oov_ratio"] == pytest.approx(g_oov)


def test_zero_vectors_topn_edges_and_read_only_views():
    kv = KeyedVectors(["a", "b", "zero", "c"], np.array([[1.0, 0], [0.9, 0.1], [0, 0], [-1, 0]]))
    assert kv.similarity("a", "zero") == 0.0
    assert dict(kv.most_similar("a", topn=10))["zero"] == 0.0
    assert kv.most_similar("a", topn=0) == []
    assert [k for k, _ in kv.most_similar("a", topn=100)] == ["b", "zero", "c"]
    v = kv["a"]
    with pytest.raises(ValueError, match="read-only"):
        v[0] = 5
    with pytest.raises(ValueError, match="read-only"):
        kv.norms[0] = 5
    assert kv.vectors[0, 0] == 1.0


def test_errors():
    kv = KeyedVectors(["apple", "apply"], np.ones((2, 3)))
    with pytest.raises(KeyError, match=r"'appel' is not in the vocabulary \(2 items\)\. Did you mean: apply, apple\?"):
        kv.most_similar("appel")
    with pytest.raises(ValueError, match=r"`topn` must be a non-negative integer, or None for every score; got -1"):
        kv.most_similar("apple", topn=-1)
    with pytest.raises(ValueError, match="`most_similar` needs at least one positive or negative key or vector"):
        kv.most_similar()
    with pytest.raises(ValueError, match=r"a query vector must be a key or a number array of shape \(3,\); got array\(\[1., 1.\]\)"):
        kv.similar_by_vector(np.ones(2))
    with pytest.raises(ValueError, match=r"`vectors` must be 2-D with one row per key \(3\); got shape \(2, 3\)"):
        KeyedVectors(["a", "b", "c"], np.ones((2, 3)))
    with pytest.raises(ValueError, match="`index_to_key` must hold distinct keys; 'a' appears more than once"):
        KeyedVectors(["a", "a"], np.ones((2, 3)))


def test_vector_commands(pair, tmp_path, capsys):
    from npembed.cli import main

    _, _, root = pair
    src = str(root / "pretrained-vectors" / "text8-10.bin")
    out = tmp_path / "t.txt"
    assert main(["convert", src, str(out), "--to", "word2vec"]) == 0
    assert "71291 vectors of dimension 10: word2vec-binary -> word2vec" in capsys.readouterr().out
    back = KeyedVectors.load(out)
    assert back.vectors.tobytes() == KeyedVectors.load(src).vectors.tobytes()
    assert main(["neighbors", "--vectors", str(out), "king", "--topn", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("nearest to king:") and len(printed.strip().splitlines()) == 4
    assert main(["analogy", "--vectors", src, "man", "king", "woman"]) == 0
    assert capsys.readouterr().out.startswith("man : king :: woman : ?")
    assert main(["evaluate", "--vectors", src, "--analogies", str(root / "word-analogy" / "questions-words.txt"),
                 "--pairs", str(root / "word-similarity" / "EN-WS-353-ALL.txt"), "--restrict-vocab", "3000"]) == 0
    printed = capsys.readouterr().out
    assert "Total accuracy" in printed and "pearson" in printed
    assert main(["evaluate", "--vectors", src]) == 2
    assert "pass --analogies FILE and/or --pairs FILE" in capsys.readouterr().err
    assert main(["neighbors", "--vectors", src, "kingg"]) == 2
    assert "'kingg' is not in the vocabulary" in capsys.readouterr().err
    assert main(["convert", str(root / "pretrained-vectors" / "pretrained.vec"), str(tmp_path / "x"), "--to", "glove"]) == 2
    assert "is it truncated?" in capsys.readouterr().err


def _rss_anon_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    pytest.skip("no /proc/self/status RssAnon on this system")


def test_a_table_of_several_gb_is_queried_without_loading_it(tmp_path):
    """A 3 GB table: saved from a disk-backed array and queried from the mapped file. Anonymous
    (non-file) memory grows by the key index only (Python strings and a dict, ~180 bytes a key)
    on load, and by almost nothing on the queries (norms are one vector, no normalised copy)."""
    n, d = 1_000_000, 768
    table_mb = n * d * 4 / 2**20
    src = np.lib.format.open_memmap(tmp_path / "src.npy", mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    for i in range(0, n, 100_000):
        src[i : i + 100_000] = rng.random((min(100_000, n - i), d), dtype=np.float32) - 0.5
    src[7] = src[3] * 2 + 0.01  # a near-duplicate direction: the top answer is known
    src.flush()
    keys = [f"w{i}" for i in range(n)]
    stages = [_rss_anon_kb()]
    KeyedVectors(keys, src).save(tmp_path / "big", format="npembed")
    del src, keys
    (tmp_path / "src.npy").unlink()
    stages.append(_rss_anon_kb())
    kv = KeyedVectors.load_folder(tmp_path / "big")
    stages.append(_rss_anon_kb())
    assert kv.vectors.shape == (n, d) and not kv.vectors.flags.writeable
    res = kv.most_similar("w3", topn=3)
    kv.most_similar(positive=["w1", "w2"], negative=["w5"], topn=3)
    stages.append(_rss_anon_kb())
    assert res[0][0] == "w7" and res[0][1] > 0.99
    load_mb, query_mb = (stages[2] - stages[0]) / 1024, (stages[3] - stages[2]) / 1024
    assert load_mb < 0.1 * table_mb, f"loading grew anonymous memory {load_mb:.0f} MB for a {table_mb:.0f} MB table"
    assert query_mb < 0.02 * table_mb, f"queries grew anonymous memory {query_mb:.0f} MB for a {table_mb:.0f} MB table"


def test_folder_format_round_trip_and_memory_mapped_queries(tmp_path):
    rng = np.random.default_rng(0)
    n, d = 400_000, 128  # a 205 MB float32 table
    keys = [f"w{i}" for i in range(n)]
    vecs = rng.standard_normal((n, d), dtype=np.float32)
    KeyedVectors(keys, vecs).save(tmp_path / "kv", format="npembed")
    del vecs
    kv = KeyedVectors.load_folder(tmp_path / "kv")
    assert not kv.vectors.flags.writeable  # a read-only view of the mapped file
    before = _rss_anon_kb()  # the keys themselves are Python objects; the queries must add little
    res = kv.most_similar("w123", topn=5)
    kv.most_similar(positive=["w1", "w2"], negative=["w3"], topn=5)
    grown_mb = (_rss_anon_kb() - before) / 1024
    table_mb = n * d * 4 / 2**20
    assert grown_mb < 0.1 * table_mb, f"anonymous memory grew {grown_mb:.0f} MB for a {table_mb:.0f} MB table"
    assert len(res) == 5 and res[0][0] != "w123"
    eager = KeyedVectors.load_folder(tmp_path / "kv", mmap=False)
    assert eager.most_similar("w123", topn=5) == res
    with pytest.raises(FormatError, match="not an npembed vector folder"):
        KeyedVectors.load_folder(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="is not an npembed vector folder; refusing to replace it"):
        kv.save(tmp_path / "mine", format="npembed")
    (tmp_path / "kv" / "notes.txt").write_text("keep")  # a real vector folder, with a user's file in it
    with pytest.raises(FileExistsError, match=r"holds files npembed did not write \(notes.txt\)"):
        kv.save(tmp_path / "kv", format="npembed")
    assert (tmp_path / "kv" / "notes.txt").read_text() == "keep"
