import numpy as np
import pytest

import npembed.train as train_mod
from npembed import BasketModel, load_recipes
from npembed.baskets import Baskets
from npembed.train import TrainConfig, fit, prepare, train_baskets


@pytest.fixture(scope="module")
def small():
    b = load_recipes()
    return Baskets(b.baskets[:3000], b.lines[:3000], "slice", dict(b.stats))


def test_loss_falls_and_model_beats_popularity(small):
    model, metrics = train_baskets(small, TrainConfig(dim=32, epochs=4, lr=3e-3), progress=False)
    losses = [h["loss"] for h in model.config["history"]]
    assert losses[-1] < losses[0]
    assert metrics["model"]["recall@10"] > metrics["baselines"]["popularity"]["recall@10"]
    assert metrics["sizes"]["items"] == len(model.vocab)


def test_the_best_epochs_weights_are_kept(small, monkeypatch):
    data = prepare(small)
    model = BasketModel(len(data.vocab), 8, rng=0)
    snapshots = []
    valid_scores = iter([0.5, 0.7, 0.6, 0.4])  # epoch 2 is the best
    real = train_mod.ranking_metrics

    def fake_metrics(scorer, examples, **kw):
        snapshots.append([p.data.copy() for p in model.parameters()])
        r = next(valid_scores)
        return {"recall@10": r, "mrr": r / 2, "n": len(examples)}

    monkeypatch.setattr(train_mod, "ranking_metrics", fake_metrics)
    history = fit(model, data, TrainConfig(dim=8, epochs=4, patience=2, lr=1e-2), progress=False)
    monkeypatch.setattr(train_mod, "ranking_metrics", real)
    assert [h["best"] for h in history] == [False, True, False, False]
    assert len(history) == 4  # epochs 3 and 4 were both worse: patience 2 stops after epoch 4
    for kept, best in zip(model.parameters(), snapshots[1]):
        np.testing.assert_array_equal(kept.data, best)
    assert not np.array_equal(model.parameters()[0].data, snapshots[3][0])


def test_training_is_deterministic(small):
    a, _ = train_baskets(small, TrainConfig(dim=8, epochs=1), progress=False)
    b, _ = train_baskets(small, TrainConfig(dim=8, epochs=1), progress=False)
    assert a.vectors.tobytes() == b.vectors.tobytes()
    c, _ = train_baskets(small, TrainConfig(dim=8, epochs=1, seed=1), progress=False)
    assert a.vectors.tobytes() != c.vectors.tobytes()


def test_config_errors():
    with pytest.raises(ValueError, match="`optimizer` must be one of \\['adagrad', 'adam', 'adamw', 'rowwise_adagrad', 'sgd'\\]; got 'rmsprop'"):
        TrainConfig(optimizer="rmsprop").check()
    with pytest.raises(ValueError, match="`lr_schedule` must be one of"):
        TrainConfig(lr_schedule="step").check()
    with pytest.raises(ValueError, match=r"`sparse_mode` must be one of \('lazy', 'exact'\); got 'x'"):
        TrainConfig(sparse_mode="x").check()
    with pytest.raises(ValueError, match=r"`warmup` must be a non-negative integer \(steps\); got -1"):
        TrainConfig(warmup=-1).check()
    with pytest.raises(ValueError, match="`init` must be one of"):
        TrainConfig(init="ones").check()
    with pytest.raises(ValueError, match="`seed` must be a non-negative integer; got -1"):
        TrainConfig(seed=-1).check()
    with pytest.raises(ValueError, match="`lr` must be a positive, finite number; got nan"):
        TrainConfig(lr=float("nan")).check()
