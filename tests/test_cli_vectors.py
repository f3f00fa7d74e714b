"""The vector commands of the CLI: reading options, folders, and refusals."""

import numpy as np
import pytest

from npembed import KeyedVectors
from npembed.cli import main


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(0)
    keys = ["king", "queen", "man", "woman", "apple", "pear"]
    kv = KeyedVectors(keys, rng.standard_normal((6, 5)).astype(np.float32))
    kv.save(tmp_path / "v.txt")
    return kv, tmp_path


def test_folder_round_trip_and_queries_from_a_folder(small, capsys):
    kv, tmp = small
    assert main(["convert", str(tmp / "v.txt"), str(tmp / "folder"), "--to", "npembed"]) == 0
    assert "6 vectors of dimension 5: word2vec -> npembed" in capsys.readouterr().out
    back = KeyedVectors.load(tmp / "folder")  # a folder loads (memory-mapped) through load() too
    assert back.vectors.tobytes() == kv.vectors.tobytes()
    assert main(["neighbors", "--vectors", str(tmp / "folder"), "king", "--topn", "2"]) == 0
    assert capsys.readouterr().out.startswith("nearest to king:")
    assert main(["analogy", "--vectors", str(tmp / "folder"), "--cosmul", "man", "king", "woman"]) == 0
    assert "man : king :: woman : ?" in capsys.readouterr().out
    assert main(["convert", str(tmp / "folder"), str(tmp / "again.bin"), "--to", "word2vec-binary"]) == 0
    assert "npembed -> word2vec-binary" in capsys.readouterr().out
    assert main(["neighbors", "--vectors", str(tmp / "folder"), "--limit", "2", "king"]) == 2
    assert "--format and --limit apply to vector files; this is a folder" in capsys.readouterr().err


def test_refusals(small, capsys):
    _, tmp = small
    assert main(["convert", str(tmp / "v.txt"), str(tmp / "v.txt"), "--to", "glove"]) == 2
    assert "IN and OUT are the same file" in capsys.readouterr().err
    assert (tmp / "v.txt").read_text().startswith("6 5\n")  # untouched
    assert main(["neighbors", "--vectors", str(tmp / "v.txt"), "--model", "elsewhere", "king"]) == 2
    assert "--model and --min-count apply to model folders only" in capsys.readouterr().err
    assert main(["neighbors", "--vectors", str(tmp / "v.txt"), "--min-count", "100", "king"]) == 2
    assert "--model and --min-count apply to model folders only" in capsys.readouterr().err


def test_reading_options_reach_the_loader(shared_data, tmp_path, capsys):
    src = str(shared_data / "pretrained-vectors" / "pang_lee_polarity_fasttext.vec")
    assert main(["neighbors", "--vectors", src, "good"]) == 2
    assert "pang_lee_polarity_fasttext.vec, line 150: the key is not valid utf-8" in capsys.readouterr().err
    assert main(["neighbors", "--vectors", src, "--unicode-errors", "replace", "--topn", "1", "good"]) == 0
    assert capsys.readouterr().out.startswith("nearest to good:")
    assert main(["convert", src, str(tmp_path / "few.txt"), "--to", "word2vec", "--limit", "5"]) == 0
    assert "5 vectors of dimension" in capsys.readouterr().out


def test_evaluate_reports_skipped_questions_and_bad_files(shared_data, tmp_path, capsys):
    vecs = str(shared_data / "pretrained-vectors" / "text8-10.bin")
    q = tmp_path / "q.txt"
    q.write_text(": capital\nathens greece baghdad iraq\nzzqxa zzqxb zzqxc zzqxd\n")
    assert main(["evaluate", "--vectors", vecs, "--analogies", str(q)]) == 0
    out = capsys.readouterr().out
    assert "1 questions skipped: a word outside the first 300000 keys (--dummy4unknown counts them as wrong)" in out
    assert "/1)" in out  # one question answered
    assert main(["evaluate", "--vectors", vecs, "--analogies", str(q), "--dummy4unknown"]) == 0
    out = capsys.readouterr().out
    assert "/2)" in out and "0 questions skipped" in out  # the unknown one now counts, as wrong
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"king\tqueen\t5\nk\xe9ng\tqueen\t4\n")
    assert main(["evaluate", "--vectors", vecs, "--pairs", str(bad)]) == 2
    assert "bad.txt, line 2: not valid UTF-8" in capsys.readouterr().err
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("king queen 5\nman woman 4\n")
    assert main(["evaluate", "--vectors", vecs, "--pairs", str(spaced)]) == 2
    assert "spaced.txt: no line has the form 'word1<TAB>word2<TAB>score'; is `delimiter` right?" in capsys.readouterr().err
    nan = tmp_path / "nan.txt"
    nan.write_text("king\tqueen\tnan\n")
    assert main(["evaluate", "--vectors", vecs, "--pairs", str(nan)]) == 2
    assert "nan.txt, line 1: the score of 'king' and 'queen' is 'nan'; scores must be finite" in capsys.readouterr().err
