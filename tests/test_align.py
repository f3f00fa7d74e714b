import numpy as np
import pytest

from npembed import SGD, KeyedVectors, Vocab, align_vectors


def _kv():
    keys = ["the", "Paris", "cat", "dog"]
    vecs = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [4.0, -1.0]], dtype=np.float32)
    return KeyedVectors(keys, vecs)


def test_alignment_reports_coverage_and_freezes_loaded_rows():
    vocab = Vocab(["<pad>", "the", "paris", "cat", "zebra"], [0, 10, 5, 3, 2])
    emb, cov = align_vectors(_kv(), vocab, missing="zeros", padding_idx=0)
    assert (cov.ids_found, cov.ids_total, cov.case_folded_hits) == (3, 5, 1)
    assert cov.token_coverage == pytest.approx(18 / 20)
    assert cov.missing == ["<pad>", "zebra"]
    assert "3 of 5 ids found (60.0%; 1 by case folding), tokens covered 90.0%, 2 missing" == str(cov)
    np.testing.assert_array_equal(emb.weight.data[[1, 2, 3]], [[1, 0], [0, 2], [3, 3]])
    np.testing.assert_array_equal(emb.weight.data[[0, 4]], 0)
    assert emb.frozen_rows.tolist() == [0, 1, 2, 3]
    w0 = emb.weight.data.copy()
    opt = SGD(emb.parameters(), lr=0.5)
    out = emb(np.array([1, 2, 3, 4]))
    emb.backward(np.ones_like(out))
    opt.step()
    moved = np.flatnonzero((emb.weight.data != w0).any(axis=1))
    assert moved.tolist() == [4]  # only the new row trains


def test_missing_rules():
    kv = _kv()
    _, _ = align_vectors(kv, ["cat"])
    mean_emb, _ = align_vectors(kv, ["cat", "new"], missing="mean")
    np.testing.assert_allclose(mean_emb.weight.data[1], kv.vectors.mean(axis=0))
    rnd, _ = align_vectors(kv, ["cat"] + [f"w{i}" for i in range(4000)], missing="random", rng=0)
    drawn = rnd.weight.data[1:]
    np.testing.assert_allclose(drawn.mean(0), kv.vectors.mean(0), atol=0.1)
    np.testing.assert_allclose(drawn.std(0), kv.vectors.std(0), rtol=0.05)
    no_fold, cov = align_vectors(kv, ["paris"], case_fold=False)
    assert cov.ids_found == 0 and cov.token_coverage is None
    with pytest.raises(ValueError, match=r"`missing` must be one of \('zeros', 'random', 'mean'\); got 'copy'"):
        align_vectors(kv, ["cat"], missing="copy")


def test_vocab_build_save_load(tmp_path):
    v = Vocab.build([["a", "b", "a"], ["c", "a", "b"], ["d"]], min_count=2, specials=["<pad>", "<unk>"])
    assert v.index_to_key == ["<pad>", "<unk>", "a", "b"] and v.counts.tolist() == [0, 0, 3, 2]
    assert Vocab.build([["x", "y", "z", "y"]], max_size=2).index_to_key == ["y", "x"]
    with pytest.raises(ValueError, match=r"no token is left after filtering \(3 distinct, min_count=5, max_size=None\)"):
        Vocab.build([["x", "y", "z"]], min_count=5)
    with pytest.raises(ValueError, match="`min_count` must be a positive integer; got 0"):
        Vocab.build([["x"]], min_count=0)
    v.save(tmp_path / "v.json")
    back = Vocab.load(tmp_path / "v.json")
    assert back.index_to_key == v.index_to_key and back.counts.tolist() == v.counts.tolist()
    (tmp_path / "bad.json").write_text("[1]")
    from npembed import FormatError

    with pytest.raises(FormatError, match="bad.json: not a vocabulary file"):
        Vocab.load(tmp_path / "bad.json")


def test_specials_are_not_missing_and_a_vector_file_is_accepted(tmp_path):
    import npembed
    from npembed import Vocab, align_vectors

    vocab = Vocab.build([["cat", "dog", "cat", "emu"]], specials=["<pad>", "<unk>"])
    assert vocab.index_to_key == ["<pad>", "<unk>", "cat", "dog", "emu"] and vocab.specials == ["<pad>", "<unk>"]
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").specials == ["<pad>", "<unk>"]
    npembed.save_vectors(tmp_path / "f.txt", ["cat", "Dog", "<unk>"], np.arange(6, dtype=np.float32).reshape(3, 2))
    emb, cov = align_vectors(npembed.load_vectors(tmp_path / "f.txt"), vocab, missing="zeros", padding_idx=0)
    assert (cov.ids_found, cov.ids_total, cov.case_folded_hits, cov.missing) == (2, 3, 1, ["emu"])
    assert emb.weight.data[1].tolist() == [0.0, 0.0]  # '<unk>' is a special: never taken from the file
    with pytest.raises(ValueError, match=r"`specials` must be keys of the vocabulary; '<s>' is not"):
        Vocab(["a"], specials=["<s>"])


def test_align_errors_and_large_values():
    from npembed import KeyedVectors, Vocab, align_vectors

    empty = KeyedVectors([], np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match=r"the vectors hold no rows, so missing='random' has no statistics to draw on; use missing='zeros'"):
        align_vectors(empty, Vocab(["a"]))
    assert align_vectors(empty, Vocab(["a"]), missing="zeros")[1].ids_found == 0
    with pytest.raises(TypeError, match=r"`vectors` must be a KeyedVectors \(or what load_vectors returns\); got dict"):
        align_vectors({"a": [1.0]}, Vocab(["a"]))
    big = KeyedVectors(["a", "b"], np.full((2, 2), 3e38, np.float32))
    emb, _ = align_vectors(big, Vocab(["a", "c"]), missing="mean")
    assert np.isfinite(emb.weight.data).all() and emb.weight.data[1, 0] == np.float32(3e38)
    with pytest.raises(TypeError, match=r"sequence 0 is a string \('hello world'\), which would count characters"):
        Vocab.build(["hello world"])


def test_statistics_near_the_float64_limit():
    from npembed import KeyedVectors, Vocab, align_vectors

    kv = KeyedVectors(["a", "b"], np.array([[1e300, -1e300], [1e300, 1e300]]))
    emb, _ = align_vectors(kv, Vocab(["a", "c"]), missing="mean", dtype=np.float64)
    np.testing.assert_allclose(emb.weight.data[1], [1e300, 0.0], atol=1e285)
    emb, _ = align_vectors(kv, Vocab(["a", "c"]), missing="random", dtype=np.float64, rng=0)
    assert np.isfinite(emb.weight.data).all()
