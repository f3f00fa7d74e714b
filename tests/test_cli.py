"""The command line, run in-process on small real data."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from npembed import load_recipes
from npembed.cli import main


@pytest.fixture(scope="module")
def recipes_slice(tmp_path_factory):
    """The first 6,000 bundled recipes as a user's tab-separated file (cuisine first, as upstream)."""
    b = load_recipes()
    path = tmp_path_factory.mktemp("data") / "recipes.tsv"
    with open(path, "w") as fh:
        for basket in b.baskets[:6000]:
            fh.write("\t".join(basket) + "\n")
    return path


@pytest.fixture(scope="module")
def trained_dir(recipes_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    rc = main(["train", "--data", str(recipes_slice), "--out", str(out), "--epochs", "4", "--lr", "3e-3", "--dim", "32", "--quiet"])
    assert rc == 0
    return out


def test_train_writes_model_metrics_and_plot(trained_dir):
    files = set(os.listdir(trained_dir))
    assert {"vectors.npy", "output_weight.npy", "output_bias.npy", "vocab.json", "config.json", "metrics.json", "embeddings.png"} <= files
    assert (trained_dir / "embeddings.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((trained_dir / "metrics.json").read_text())
    assert set(m["model"]) == {"recall@10", "mrr"}
    assert set(m["baselines"]) == {"popularity", "cooccurrence"}
    # Trained on 4,800 recipes for 4 epochs, the model must already beat popularity.
    assert m["model"]["recall@10"] > m["baselines"]["popularity"]["recall@10"] + 0.05
    assert m["model"]["mrr"] > m["baselines"]["popularity"]["mrr"]
    cfg = json.loads((trained_dir / "config.json").read_text())
    losses = [h["loss"] for h in cfg["history"]]
    assert losses[-1] < losses[0]
    assert cfg["hyperparameters"]["dim"] == 32


def test_train_prints_the_metrics_table(recipes_slice, tmp_path, capsys):
    rc = main(["train", "--data", str(recipes_slice), "--out", str(tmp_path / "m"), "--epochs", "1", "--dim", "8", "--quiet", "--no-plot"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "data: " in out and "6000 baskets" in out
    lines = out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("method")))
    assert [line.split()[0] for line in lines[header + 1 : header + 4]] == ["model", "co-occurrence", "popularity"]
    assert not (tmp_path / "m" / "embeddings.png").exists()


def test_neighbors_and_recommend_answer_from_the_saved_model(trained_dir, capsys):
    assert main(["neighbors", "--model", str(trained_dir), "garlic", "--topn", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nearest to garlic:")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) == 5 and all(-1 <= float(s) <= 1 for s, _ in rows)
    assert "garlic" not in [k for _, k in rows]
    assert main(["recommend", "--model", str(trained_dir), "garlic", "onion", "--topn", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("to add to garlic + onion:")
    keys = [line.split()[1] for line in out.splitlines()[1:]]
    assert len(keys) == 3 and not {"garlic", "onion"} & set(keys)


def test_query_option_errors(trained_dir, capsys):
    assert main(["neighbors", "--model", str(trained_dir), "garlic", "--topn", "-1"]) == 2
    assert "--topn must be >= 0; got -1" in capsys.readouterr().err
    assert main(["recommend", "--model", str(trained_dir), "garlic", "--min-count", "-1"]) == 2
    assert "--min-count must be >= 0; got -1" in capsys.readouterr().err


def test_unknown_item_says_so_and_suggests(trained_dir, capsys):
    assert main(["neighbors", "--model", str(trained_dir), "garlik"]) == 2
    err = capsys.readouterr().err
    assert "npembed: error: 'garlik' is not in the vocabulary" in err and "Did you mean: garlic" in err


def test_csv_input_and_bad_input_errors(tmp_path, capsys):
    rows = ["order_id,product"]
    rng = np.random.default_rng(0)
    for i in range(300):
        for item in rng.choice(12, size=3, replace=False):
            rows.append(f"{i},p{item}")
    data = tmp_path / "orders.csv"
    data.write_text("\n".join(rows) + "\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "1", "--quiet", "--no-plot"]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--item-col", "sku", "--out", str(tmp_path / "m2"), "--quiet"]) == 2
    assert "column 'sku' is not in the header; the columns are ['order_id', 'product']" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"a,b\n\xff\xfe,c\n")
    assert main(["train", "--data", str(bad), "--quiet"]) == 2
    assert "bad.txt, line 2: cannot decode byte 0xff" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing.txt"), "--quiet"]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--epochs", "0", "--quiet"]) == 2
    assert "`epochs` must be a positive integer; got 0" in capsys.readouterr().err
    assert main(["neighbors", "--model", str(tmp_path / "none"), "x"]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_train_refuses_an_out_folder_that_is_not_a_model_before_training(tmp_path, capsys):
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["train", "--out", str(precious), "--quiet"]) == 2
    assert "is not an npembed model folder; refusing to replace it" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep me"


def test_too_few_baskets(tmp_path, capsys):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("a,b\n")
    assert main(["train", "--data", str(tiny), "--quiet"]) == 2
    assert "need at least 3 baskets to split into train, valid and test; got 1" in capsys.readouterr().err


def test_python_dash_m_and_help():
    r = subprocess.run([sys.executable, "-m", "npembed", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "train" in r.stdout and "neighbors" in r.stdout and "recommend" in r.stdout
    r = subprocess.run([sys.executable, "-m", "npembed", "train", "--dim", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and "argument --dim: invalid int value: 'x'" in r.stderr


def test_diverged_training_stops_with_a_hint_and_writes_nothing(recipes_slice, tmp_path, capsys):
    out = tmp_path / "m"
    rc = main(["train", "--data", str(recipes_slice), "--out", str(out), "--lr", "1e30", "--optimizer", "sgd", "--quiet", "--no-plot"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "training diverged. Lower the learning rate (--lr, now 1e+30)" in err
    assert not out.exists()


def test_bad_out_parent_is_refused_before_training(recipes_slice, tmp_path, capsys, monkeypatch):
    import npembed.train

    def must_not_train(*a, **k):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(npembed.train, "train_baskets", must_not_train)
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    assert main(["train", "--data", str(recipes_slice), "--out", str(a_file / "model"), "--quiet"]) == 2
    assert "cannot write the output folder" in capsys.readouterr().err
    assert main(["train", "--data", str(recipes_slice), "--out", "/proc/npembed-model", "--quiet"]) == 2
    assert "cannot write the output folder /proc/npembed-model" in capsys.readouterr().err


def test_interrupt_and_closed_pipe_end_quietly(trained_dir, monkeypatch, capsys):
    import npembed.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_neighbors", interrupted)
    assert main(["neighbors", "--model", str(trained_dir), "garlic"]) == 130
    assert capsys.readouterr().err == "npembed: interrupted.\n"

    def closed(args):
        raise BrokenPipeError

    monkeypatch.setattr(cli, "_cmd_neighbors", closed)
    assert main(["neighbors", "--model", str(trained_dir), "garlic"]) == 0
    assert "error" not in capsys.readouterr().err


def test_no_evaluable_test_baskets_gives_null_metrics_not_nan(tmp_path, capsys):
    # Every basket but two shares items a, b; the held-out ones use unseen items only.
    rows = ["a,b,c"] * 40 + ["x,y"] * 2
    data = tmp_path / "d.txt"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m"
    import numpy as np
    from npembed.heldout import split_indices

    tr, va, te = split_indices(len(rows), 0)
    order = ["x,y" if i in set(va) | set(te) else "a,b,c" for i in range(len(rows))]
    data.write_text("\n".join(order) + "\n")
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--quiet", "--no-plot"]) == 0
    printed = capsys.readouterr().out
    assert "n/a" in printed
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert metrics["model"] == {"recall@10": None, "mrr": None}
