import json
import os

import numpy as np
import pytest

from npembed import BasketModel, FormatError, TrainedModel, Vocab, load_model, save_model
from npembed.fsutil import atomic_dir

from .gradcheck import assert_grad_close, numerical_grad


def _trained(num_items=6, dim=4, seed=0):
    keys = [f"item{i}" for i in range(num_items)]
    model = BasketModel(num_items, dim, rng=seed)
    return TrainedModel(model, Vocab(keys, list(range(num_items, 0, -1))), {"note": "test"}, {"model": {"mrr": 0.5}})


def test_basket_model_gradient_matches_finite_differences(rng):
    model = BasketModel(5, 3, rng=0, dtype=np.float64)
    ctx = np.array([[0, 2, 5], [4, 5, 5], [1, 1, 3]])  # 5 pads; a repeated id
    probe = rng.standard_normal((3, 5))
    model(ctx)
    model.backward(probe)
    table = model.embedding.weight
    numeric = numerical_grad(lambda: float((model(ctx) * probe).sum()), table.data)
    numeric[5] = 0  # the padding row is masked out of the mean
    assert_grad_close(table.grad.to_dense(), numeric)
    w = model.output.weight
    assert_grad_close(w.grad, numerical_grad(lambda: float((model(ctx) * probe).sum()), w.data))


def test_save_and_load_round_trip(tmp_path):
    tm = _trained()
    out = tmp_path / "m"
    save_model(tm, out)
    assert sorted(os.listdir(out)) == ["config.json", "metrics.json", "output_bias.npy", "output_weight.npy", "vectors.npy", "vocab.json"]
    back = load_model(out)
    np.testing.assert_array_equal(back.vectors, tm.vectors)
    np.testing.assert_array_equal(back.model.output.weight.data, tm.model.output.weight.data)
    assert back.vocab.index_to_key == tm.vocab.index_to_key
    assert back.metrics == {"model": {"mrr": 0.5}} and back.config["note"] == "test"
    ctx = np.array([[0, 3, 6]])
    np.testing.assert_array_equal(back.model(ctx), tm.model(ctx))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left behind


def test_a_failed_write_leaves_the_old_model_whole(tmp_path):
    out = tmp_path / "m"
    old = _trained(seed=1)
    save_model(old, out)
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}

    def explode(path):
        with open(path, "w") as fh:
            fh.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_model(_trained(seed=2), out, {"embeddings.png": explode})
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before
    assert os.listdir(tmp_path) == ["m"]


def test_replacing_a_model_swaps_it_whole(tmp_path):
    out = tmp_path / "m"
    save_model(_trained(seed=1), out)
    new = _trained(seed=2)
    save_model(new, out)
    np.testing.assert_array_equal(load_model(out).vectors, new.vectors)
    assert os.listdir(tmp_path) == ["m"]


def test_refuses_to_replace_anything_but_a_model_folder(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="home exists and is not an npembed model folder; refusing to replace it"):
        save_model(_trained(), precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(FileExistsError, match="file exists and is not a folder"):
        save_model(_trained(), f)
    empty = tmp_path / "empty"
    empty.mkdir()
    save_model(_trained(), empty)
    assert (empty / "config.json").exists()


def test_atomic_dir_without_exchange_falls_back(tmp_path, monkeypatch):
    import npembed.fsutil as fs

    monkeypatch.setattr(fs, "_exchange", lambda a, b: False)
    target = tmp_path / "t"
    target.mkdir()
    (target / "old").write_text("old")
    with atomic_dir(str(target)) as tmp:
        open(os.path.join(tmp, "new"), "w").write("new")
    assert os.listdir(target) == ["new"] and os.listdir(tmp_path) == ["t"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model folder not found: .*nope\. Train one with `npembed train --out"):
        load_model(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(FormatError, match=r"not an npembed model folder \(no config.json\)"):
        load_model(tmp_path / "x")
    (tmp_path / "x" / "config.json").write_text('{"format": "other"}')
    with pytest.raises(FormatError, match=r"not an npembed model folder \(format is 'other'\)"):
        load_model(tmp_path / "x")
    (tmp_path / "x" / "config.json").write_text("{broken")
    with pytest.raises(FormatError, match=r"config.json, line 1: not valid JSON"):
        load_model(tmp_path / "x")
    out = tmp_path / "m"
    save_model(_trained(), out)
    np.save(out / "vectors.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(FormatError, match=r"vectors.npy: has shape \(3, 4\); config.json says \(6, 4\)"):
        load_model(out)
    os.remove(out / "vectors.npy")
    with pytest.raises(FileNotFoundError, match="model file missing: .*vectors.npy"):
        load_model(out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["format_version"] = 99
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FormatError, match=r"written by a newer npembed \(format version 99\)"):
        load_model(out)


def test_neighbors_by_cosine_and_recommend_excludes_the_basket():
    tm = _trained()
    v = tm.model.embedding.weight.data
    v[:6] = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    got = tm.neighbors("item0", topn=3, min_count=1)
    assert [k for k, _ in got] == ["item1", "item2", "item4"]  # zero vector: similarity 0, not NaN
    assert got[0][1] == pytest.approx(0.9 / np.sqrt(0.82))
    assert got[2][1] == 0.0
    assert tm.neighbors("item0", topn=0, min_count=1) == []
    assert len(tm.neighbors("item0", topn=100, min_count=1)) == 5
    recs = tm.recommend(["item0", "item2"], topn=10)
    assert len(recs) == 4 and {"item0", "item2"}.isdisjoint(k for k, _ in recs)
    probs = [p for _, p in recs]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) < 1
    with pytest.raises(KeyError, match=r"'item9' is not in the vocabulary \(6 items\)\. Did you mean: item5, item4, item3"):
        tm.neighbors("item9")
    with pytest.raises(ValueError, match="`keys` must name at least one item of the basket"):
        tm.recommend([])
    with pytest.raises(ValueError, match="`topn` must be a non-negative integer; got -1"):
        tm.neighbors("item0", topn=-1)
    with pytest.raises(ValueError, match="`min_count` must be a non-negative integer; got -2"):
        tm.neighbors("item0", min_count=-2)


def test_min_count_leaves_rare_items_out_of_answers():
    tm = _trained()  # counts 6, 5, 4, 3, 2, 1 for item0 .. item5
    assert {k for k, _ in tm.neighbors("item0", topn=10, min_count=3)} == {"item1", "item2", "item3"}
    assert {k for k, _ in tm.recommend(["item5"], topn=10, min_count=4)} == {"item0", "item1", "item2"}
    # A rare item may still be asked about.
    assert len(tm.neighbors("item5", topn=10, min_count=3)) == 4


def test_replacing_refuses_a_model_folder_holding_foreign_files(tmp_path):
    out = tmp_path / "m"
    save_model(_trained(), out)
    (out / "my_notes.txt").write_text("notes")
    with pytest.raises(FileExistsError, match=r"holds files npembed did not write \(my_notes.txt\); refusing to replace it"):
        save_model(_trained(seed=3), out)
    assert (out / "my_notes.txt").read_text() == "notes"


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".m.tmp-{dead_pid}-abc"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    live = tmp_path / f".m.tmp-{os.getpid()}-xyz"  # this process: alive
    live.mkdir()
    save_model(_trained(), tmp_path / "m")
    assert not stale.exists() and live.exists()


def test_load_reports_damaged_files_by_name(tmp_path):
    out = tmp_path / "m"
    save_model(_trained(), out)
    good_cfg = (out / "config.json").read_text()
    cases = [
        ("config.json", "[1, 2]", r"config.json: must hold a JSON object; got list"),
        ("config.json", good_cfg.replace('"num_items": 6', '"num_items": "abc"'), r"config.json: 'num_items' must be a positive integer; got 'abc'"),
        ("config.json", good_cfg.replace('"format_version": 1', '"format_version": "2"'), r"'format_version' must be an integer; got '2'"),
        ("vocab.json", "[]", r"vocab.json: must hold a JSON object; got list"),
        ("vocab.json", '{"index_to_key": [1, 2], "counts": [1, 2]}', r"vocab.json: 'index_to_key' must be a list of strings"),
        ("vocab.json", '{"index_to_key": ["a"]}', r"vocab.json: 'counts' must be a list of integers"),
        ("metrics.json", "[1]", r"metrics.json: must hold a JSON object; got list"),
    ]
    for name, text, message in cases:
        original = (out / name).read_bytes()
        (out / name).write_text(text)
        with pytest.raises(FormatError, match=message):
            load_model(out)
        (out / name).write_bytes(original)
    (out / "config.json").write_bytes(b"\xff\xfe")
    with pytest.raises(FormatError, match="config.json: not UTF-8 text; the file is damaged"):
        load_model(out)
    (out / "config.json").write_text(good_cfg)
    (out / "vectors.npy").write_bytes(b"")
    with pytest.raises(FormatError, match="vectors.npy: cannot read the array .*; the file is damaged"):
        load_model(out)
    np.save(out / "vectors.npy", np.zeros((6, 4), np.int32))
    with pytest.raises(FormatError, match="vectors.npy: must hold floats; got dtype int32"):
        load_model(out)
    np.save(out / "vectors.npy", np.full((6, 4), np.nan, np.float32))
    with pytest.raises(FormatError, match="vectors.npy: holds NaN or infinite values; the model that wrote it had diverged"):
        load_model(out)
    np.save(out / "vectors.npy", np.ones((6, 4), ">f4"))  # big-endian loads, converted to native
    assert load_model(out).recommend(["item0"], topn=1)
    os.remove(out / "vocab.json")
    with pytest.raises(FileNotFoundError, match="model file missing: .*vocab.json"):
        load_model(out)
    with pytest.raises(FormatError, match="config.json: is a file; --model takes the folder"):
        load_model(out / "config.json")


def test_query_argument_types():
    tm = _trained()
    with pytest.raises(TypeError, match=r"`keys` must be item names \(strings\); got 5"):
        tm.recommend([5])
    with pytest.raises(TypeError, match=r"`key` must be an item name \(a string\); got 3"):
        tm.neighbors(3)
    assert tm.recommend(np.array(["item0", "item1"]).tolist(), topn=2)


def test_plot_draws_names_with_dollar_signs_as_text(tmp_path):
    from npembed.plot import plot_embeddings

    rng = np.random.default_rng(0)
    path = tmp_path / "p.png"
    plot_embeddings(rng.standard_normal((4, 3)), ["$egg^$", "50% $5 wine", "牛肉", "a_b"], [4, 3, 2, 1], str(path))
    assert path.read_bytes()[:4] == b"\x89PNG"
