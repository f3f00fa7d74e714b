"""The README's Python examples run as written, and its commands match .ci/run."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    if not README.exists():
        pytest.skip("README.md not beside the tests")
    blocks = _blocks("python")
    assert len(blocks) >= 3
    from npembed import BasketModel, TrainedModel, Vocab, save_model

    # The load example needs a model folder: save a small one where the README expects it. The
    # vector examples read ../shared/data, as from a checkout beside the team's shared folder.
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    shared = pathlib.Path(__file__).resolve().parents[2] / "shared"
    if (shared / "data").exists():
        (tmp_path / "shared").symlink_to(shared)
    vocab = Vocab(["garlic", "onion", "tomato", "basil", "salt", "egg", "salmon"], [9, 8, 7, 6, 5, 5, 5])
    save_model(TrainedModel(BasketModel(len(vocab), 8, rng=0), vocab), "npembed-model")
    ran_shared = False
    for code in blocks:
        if "../shared/data" in code and not (tmp_path / "shared").exists():
            continue  # without the shared data, its example cannot run
        ran_shared |= "../shared/data" in code
        exec(compile(code, str(README), "exec"), {})  # each block runs on its own, as pasted
    out = capsys.readouterr().out
    assert "(2, 3, 64)" in out
    assert "[ 3  5  7 12] (4, 64)" in out
    assert "got -1 at position (1, 1)" in out
    assert "step 2: loss" in out
    assert "(7, 8)" in out  # the load example's vectors.shape
    assert "(2, 3, 16) 0.0 499" in out  # Embedding options
    assert "(2, 16) True True" in out and "(1, 8) (3,)" in out  # EmbeddingBag
    assert "['exp_avg', 'exp_avg_sq', 'last', 'lr_offset', 'lrs', 'step']" in out  # optimizers
    assert "word2vec ['cat', 'dog'] [[0.25, -2.0]]" in out  # pre-trained vectors
    assert "['cat', 'dog', 'emu']" in out and "(3, 4) True" in out  # interop
    assert (work / "projector" / "projector_config.pbtxt").exists()
    if ran_shared:  # the figures the README prints for text8-10.bin
        assert "[('lord', 0.9693" in out and "('xiv', 0.9601" in out
        assert "0.0843 99 1076 18369" in out
        assert "{'pearson': 0.4189, 'spearman': 0.4177, 'oov_ratio': 0.5666, 'pairs': 351}" in out


def test_readme_commands_are_the_ones_ci_runs():
    if not README.exists():
        pytest.skip("README.md not beside the tests")
    bash = _blocks("bash")
    assert "pip install . && npembed train" in bash[0]
    assert "pip install '.[test]' && python -m pytest -q" in bash[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "pip install -q '.[test]'" in ci and "python -m pytest -q" in ci


def test_readme_states_the_cli_defaults():
    from npembed.train import TrainConfig

    d = TrainConfig()
    text = README.read_text()
    line = (
        f"`--dim {d.dim} --epochs {d.epochs} --batch-size {d.batch_size} --lr {d.lr:g} --optimizer {d.optimizer} "
        f"--init {d.init} --patience {d.patience} --seed {d.seed}`"
    )
    assert line in text.replace("\n", " ")
