"""Kill a training run (SIGKILL, at a named point) and resume it: the result is bit-for-bit the
uninterrupted run's. The test-only switch NPEMBED_TEST_KILL_AT makes the process kill itself at
that point, so the test is not timing-dependent."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from npembed import load_recipes


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    b = load_recipes()
    path = tmp_path_factory.mktemp("data") / "recipes.tsv"
    path.write_text("".join("\t".join(x) + "\n" for x in b.baskets[:2500]))
    return path


def _train(data, out, ckpt, extra=(), kill=None, resume=False):
    args = [sys.executable, "-m", "npembed", "train", "--data", str(data), "--out", str(out), "--epochs", "3",
            "--dim", "16", "--patience", "5", "--quiet", "--no-plot", "--checkpoint-every", "15", *extra]
    args += ["--resume", str(ckpt)] if resume else ["--checkpoint", str(ckpt)]
    env = dict(os.environ)
    env.pop("NPEMBED_TEST_KILL_AT", None)
    if kill:
        env["NPEMBED_TEST_KILL_AT"] = kill
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def _arrays(out):
    return [(out / f).read_bytes() for f in ("vectors.npy", "output_weight.npy", "output_bias.npy")]


@pytest.mark.parametrize("settings", [
    (),
    ("--optimizer", "adamw", "--sparse-mode", "exact", "--lr-schedule", "linear", "--warmup", "10"),
], ids=["adam-lazy", "adamw-exact-linear"])
def test_killed_run_resumes_bit_for_bit(data_file, tmp_path, settings):
    ref = _train(data_file, tmp_path / "ref", tmp_path / "ref.ckpt", settings)
    assert ref.returncode == 0, ref.stderr
    # Killed during an epoch (epoch 2, after batch 20), then resumed from the last checkpoint.
    killed = _train(data_file, tmp_path / "a", tmp_path / "a.ckpt", settings, kill="batch:2:20")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "a").exists()
    resumed = _train(data_file, tmp_path / "a", tmp_path / "a.ckpt", settings, resume=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _arrays(tmp_path / "a") == _arrays(tmp_path / "ref")
    ref_m = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    got_m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert got_m["model"] == ref_m["model"] and got_m["best_epoch"] == ref_m["best_epoch"]


def test_killed_while_writing_a_checkpoint_keeps_the_previous_one(data_file, tmp_path):
    ref = _train(data_file, tmp_path / "ref", tmp_path / "ref.ckpt")
    assert ref.returncode == 0, ref.stderr
    killed = _train(data_file, tmp_path / "b", tmp_path / "b.ckpt", kill="checkpoint:4")
    assert killed.returncode == -signal.SIGKILL
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".b.ckpt.tmp-")]
    assert leftovers  # the half-written one is a hidden temporary...
    assert json.loads((tmp_path / "b.ckpt" / "checkpoint.json").read_text())["format"] == "npembed-checkpoint"
    resumed = _train(data_file, tmp_path / "b", tmp_path / "b.ckpt", resume=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _arrays(tmp_path / "b") == _arrays(tmp_path / "ref")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".b.ckpt.tmp-")]  # ...removed on the next write


def test_resume_refuses_other_settings_or_data(data_file, tmp_path):
    ref = _train(data_file, tmp_path / "ref", tmp_path / "c.ckpt")
    assert ref.returncode == 0, ref.stderr
    other = _train(data_file, tmp_path / "x", tmp_path / "c.ckpt", ("--lr", "0.01"), resume=True)
    assert other.returncode == 2
    assert "was written with other settings (they differ in: lr); resume with the same command line" in other.stderr
    small = tmp_path / "small.tsv"
    small.write_text("\n".join(data_file.read_text().splitlines()[:2000]) + "\n")
    other = _train(small, tmp_path / "x", tmp_path / "c.ckpt", resume=True)
    assert other.returncode == 2 and "the checkpoint was written for other data" in other.stderr
    missing = _train(data_file, tmp_path / "x", tmp_path / "nope", resume=True)
    assert missing.returncode == 2 and "checkpoint folder not found" in missing.stderr


def test_checkpoint_folder_checks_come_before_training_and_protect_files(data_file, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "checkpoint.json").write_text("{}")
    (d / "notes.txt").write_text("keep")
    r = _train(data_file, tmp_path / "m", d)
    assert r.returncode == 2 and "exists and is not an npembed checkpoint; refusing to replace it. Choose another checkpoint folder" in r.stderr
    assert (d / "notes.txt").read_text() == "keep" and not (tmp_path / "m").exists()
    r = _train(data_file, tmp_path / "same", tmp_path / "same")
    assert r.returncode == 2 and "the checkpoint folder must differ from --out" in r.stderr


def test_damaged_checkpoints_are_clear_errors(data_file, tmp_path):
    ok = _train(data_file, tmp_path / "ref", tmp_path / "ck")
    assert ok.returncode == 0, ok.stderr
    npz = tmp_path / "ck" / "arrays.npz"
    good = npz.read_bytes()
    npz.write_bytes(good[:1000])
    r = _train(data_file, tmp_path / "x", tmp_path / "ck", resume=True)
    assert r.returncode == 2 and "arrays.npz: damaged checkpoint arrays (BadZipFile" in r.stderr
    npz.write_bytes(good)
    meta = tmp_path / "ck" / "checkpoint.json"
    obj = json.loads(meta.read_text())
    obj["state"]["history"] = "x"
    meta.write_text(json.dumps(obj))
    r = _train(data_file, tmp_path / "x", tmp_path / "ck", resume=True)
    assert r.returncode == 2 and "damaged checkpoint: 'history' is missing or not a list" in r.stderr
    obj["state"]["history"] = []
    obj["state"]["epoch"] = 99
    meta.write_text(json.dumps(obj))
    r = _train(data_file, tmp_path / "x", tmp_path / "ck", resume=True)
    assert r.returncode == 2 and "damaged checkpoint: epoch 99, position 0 are out of range" in r.stderr


def test_a_real_checkpoint_holding_user_files_is_not_replaced(tmp_path):
    import numpy as np

    from npembed.checkpoint import write_checkpoint

    folder = tmp_path / "ck"
    write_checkpoint(str(folder), {"a": np.arange(3)})
    (folder / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"holds files npembed did not write \(notes.txt\); refusing to replace it"):
        write_checkpoint(str(folder), {"a": np.arange(4)})
    assert (folder / "notes.txt").read_text() == "keep"
    assert json.loads((folder / "checkpoint.json").read_text())["format"] == "npembed-checkpoint"
    with pytest.raises(ValueError, match="the checkpoint folder must be a path; got an empty string"):
        write_checkpoint("", {})
