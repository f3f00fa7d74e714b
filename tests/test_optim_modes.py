"""Issue 4: every optimizer against torch.optim (dense and sparse paths), and exact sparse mode
against the dense optimizer over many steps with rows idle for varying stretches."""

import numpy as np
import pytest

from npembed import SGD, Adagrad, Adam, AdamW, Embedding, Parameter, RowSparseGrad, RowWiseAdagrad

from .conftest import torch_or_skip
from .test_optim import _run_torch as _torch

V, D = 12, 3


def _steps(rng, n=40, dtype=np.float64, ids_per_step=5, skew=True):
    """Random row-sparse gradients; with `skew` some rows are touched rarely (long idle stretches)."""
    p = np.linspace(1, 0.02, V) if skew else np.ones(V)
    p /= p.sum()
    out = []
    for _ in range(n):
        ids = rng.choice(V, size=ids_per_step, p=p)  # repeats within a step are summed
        out.append((ids, rng.standard_normal((ids_per_step, D)).astype(dtype)))
    return out


def _ours(cls, w0, steps, sparse, lrs=None, **kw):
    p = Parameter(w0.copy())
    opt = cls([p], **kw)
    for i, (ids, rows) in enumerate(steps):
        if lrs is not None:
            opt.lr = lrs[i]
        opt.zero_grad()
        g = RowSparseGrad.from_rows(ids, rows, w0.shape)
        p.accumulate(g if sparse else g.to_dense())
        opt.step()
    opt.catch_up()
    return p.data, opt


DENSE_CASES = [
    (SGD, "SGD", dict(lr=0.05)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02)),
    (Adagrad, "Adagrad", dict(lr=0.1)),
    (Adagrad, "Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1)),
    (Adam, "Adam", dict(lr=0.01)),
    (Adam, "Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    (AdamW, "AdamW", dict(lr=0.01)),
    (AdamW, "AdamW", dict(lr=0.01, weight_decay=0.3, eps=1e-6)),
]


@pytest.mark.parametrize("cls,name,kw", DENSE_CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(DENSE_CASES)])
def test_dense_matches_torch(rng, cls, name, kw):
    torch = torch_or_skip()
    w0 = rng.standard_normal((V, D))
    steps = _steps(rng)
    ours, _ = _ours(cls, w0, steps, sparse=False, **kw)
    np.testing.assert_allclose(ours, _torch(torch, name, w0, steps, sparse=False, **kw), atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls,name,kw", [
    (SGD, "SGD", dict(lr=0.05)),
    (Adagrad, "Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    (Adam, "SparseAdam", dict(lr=0.01, betas=(0.8, 0.99))),
])
def test_lazy_sparse_matches_torch_sparse_paths(rng, cls, name, kw):
    torch = torch_or_skip()
    w0 = rng.standard_normal((V, D))
    steps = _steps(rng)
    ours, _ = _ours(cls, w0, steps, sparse=True, **kw)
    np.testing.assert_allclose(ours, _torch(torch, name, w0, steps, sparse=True, **kw), atol=1e-12, rtol=0)


EXACT_CASES = [
    (SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02)),
    (SGD, dict(lr=0.05, momentum=0.7, dampening=0.2)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.05)),
    (RowWiseAdagrad, dict(lr=0.1, weight_decay=0.05)),
    (Adam, dict(lr=0.01, weight_decay=0.1)),
    (Adam, dict(lr=0.01)),
    (AdamW, dict(lr=0.01, weight_decay=0.3)),
]


@pytest.mark.parametrize("cls,kw", EXACT_CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(EXACT_CASES)])
def test_exact_sparse_equals_dense_with_idle_rows_and_a_schedule(rng, cls, kw):
    w0 = rng.standard_normal((V, D))
    steps = _steps(rng, n=200)
    touched = np.zeros(V, int)
    for ids, _ in steps:
        touched[np.unique(ids)] += 1
    assert touched.min() < 40 and touched.max() > 100  # rows idle for long and short stretches
    lrs = [kw["lr"] * (1 - i / 400) for i in range(len(steps))]  # the learning rate changes every step
    dense, _ = _ours(cls, w0, steps, sparse=False, lrs=lrs, **kw)
    exact, _ = _ours(cls, w0, steps, sparse=True, lrs=lrs, sparse_mode="exact", **kw)
    np.testing.assert_allclose(exact, dense, atol=1e-10, rtol=0)
    lazy, _ = _ours(cls, w0, steps, sparse=True, lrs=lrs, **kw)
    assert np.abs(lazy - dense).max() > 1e-4  # lazy really is a different rule here


def test_exact_mode_catches_up_before_state_dict_and_with_dense_steps(rng):
    w0 = rng.standard_normal((V, D))
    p = Parameter(w0.copy())
    opt = Adam([p], lr=0.01, weight_decay=0.1, sparse_mode="exact")
    q = Parameter(w0.copy())
    ref = Adam([q], lr=0.01, weight_decay=0.1)
    for i, (ids, rows) in enumerate(_steps(rng, n=30)):
        g = RowSparseGrad.from_rows(ids, rows, w0.shape)
        opt.zero_grad()
        ref.zero_grad()
        p.accumulate(g if i % 7 else g.to_dense())  # mixed sparse and dense steps
        q.accumulate(g.to_dense())
        opt.step()
        ref.step()
    state = opt.state_dict()  # catches up first
    np.testing.assert_allclose(p.data, q.data, atol=1e-12, rtol=0)
    assert (state["state"][0]["last"] == 30).all()


def test_repeated_ids_are_summed_before_an_adaptive_update(rng):
    for cls in (Adagrad, Adam):
        a, b = Parameter(np.ones((4, 2))), Parameter(np.ones((4, 2)))
        oa, ob = cls([a], lr=0.1), cls([b], lr=0.1)
        a.accumulate(RowSparseGrad.from_rows(np.array([1, 1, 1]), np.full((3, 2), 0.5), (4, 2)))
        b.accumulate(RowSparseGrad.from_rows(np.array([1]), np.full((1, 2), 1.5), (4, 2)))
        oa.step()
        ob.step()
        np.testing.assert_array_equal(a.data, b.data)


def test_empty_sparse_gradient_is_a_no_op_in_both_modes():
    for mode in ("lazy", "exact"):
        for cls in (SGD, Adagrad, RowWiseAdagrad, Adam, AdamW):
            p = Parameter(np.ones((3, 2)))
            opt = cls([p], lr=0.1, sparse_mode=mode)
            p.grad = RowSparseGrad.from_rows(np.empty(0, np.int64), np.empty((0, 2)), (3, 2))
            opt.step()
            if cls is not AdamW or mode == "lazy":
                np.testing.assert_array_equal(p.data, 1)


def test_state_dict_round_trip_continues_identically(rng):
    w0 = rng.standard_normal((V, D))
    steps = _steps(rng, n=40)
    for cls, kw in EXACT_CASES:
        for mode in ("lazy", "exact"):
            full, _ = _ours(cls, w0, steps, sparse=True, sparse_mode=mode, **kw)
            half, opt = _ours(cls, w0, steps[:20], sparse=True, sparse_mode=mode, **kw)
            p2 = Parameter(half.copy())
            opt2 = cls([p2], sparse_mode=mode, **kw)
            opt2.load_state_dict(opt.state_dict())
            for ids, rows in steps[20:]:
                opt2.zero_grad()
                p2.accumulate(RowSparseGrad.from_rows(ids, rows, w0.shape))
                opt2.step()
            opt2.catch_up()
            np.testing.assert_array_equal(p2.data, full)


def test_optimizer_argument_errors():
    p = [Parameter(np.zeros((2, 2)))]
    with pytest.raises(ValueError, match=r"`sparse_mode` must be one of \('lazy', 'exact'\); got 'eager'"):
        SGD(p, sparse_mode="eager")
    with pytest.raises(ValueError, match=r"`momentum` must be in \[0.0, 1.0\); got 1.5"):
        SGD(p, momentum=1.5)
    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0 and dampening = 0"):
        SGD(p, nesterov=True)
    with pytest.raises(ValueError, match=r"`eps` must be in \(0.0, inf\); got 0"):
        Adagrad(p, eps=0)
    with pytest.raises(ValueError, match="this state is for a 'SGD' optimizer, not 'Adam'"):
        Adam(p).load_state_dict(SGD(p).state_dict())
    with pytest.raises(ValueError, match="this state has 1 parameter states; the optimizer has 2 parameters"):
        Adam(p + [Parameter(np.zeros(2))]).load_state_dict(Adam(p).state_dict())


def test_row_wise_adagrad_keeps_one_number_per_row():
    p = Parameter(np.ones((5, 4)))
    opt = RowWiseAdagrad([p], lr=0.1)
    p.accumulate(RowSparseGrad.from_rows(np.array([2]), np.array([[1.0, 2.0, 3.0, 4.0]]), (5, 4)))
    opt.step()
    assert opt.state[0]["sum"].shape == (5,)
    assert opt.state[0]["sum"][2] == pytest.approx(7.5)
    np.testing.assert_allclose(p.data[2], 1 - 0.1 * np.array([1, 2, 3, 4]) / np.sqrt(7.5))


def test_layer_state_dicts_round_trip(rng):
    from npembed import BasketModel, Embedding, EmbeddingBag, Linear

    e = Embedding(6, 3, rng=0)
    e.freeze_rows([1])
    e.set_lr_scale([2], 0.5)
    e2 = Embedding(6, 3, rng=1)
    e2.load_state_dict(e.state_dict())
    assert e2.weight.data.tobytes() == e.weight.data.tobytes() and e2.frozen_rows.tolist() == [1]
    assert e2._lr_scale[2] == 0.5
    with pytest.raises(ValueError, match=r"`weight` in the state has shape \(6, 3\); this layer's is \(5, 3\)"):
        Embedding(5, 3).load_state_dict(e.state_dict())
    lin, lin2 = Linear(3, 2, rng=0), Linear(3, 2, rng=1)
    lin2.load_state_dict(lin.state_dict())
    assert lin2.weight.data.tobytes() == lin.weight.data.tobytes()
    m, m2 = BasketModel(5, 4, rng=0), BasketModel(5, 4, rng=1)
    m2.load_state_dict(m.state_dict())
    assert m2.vectors.tobytes() == m.vectors.tobytes()
    b, b2 = EmbeddingBag(4, 2, rng=0), EmbeddingBag(4, 2, rng=1)
    b2.load_state_dict(b.state_dict())
    assert b2.weight.data.tobytes() == b.weight.data.tobytes()


@pytest.mark.parametrize("cls,kw", [(SGD, dict(lr=0.05)), (Adagrad, dict(lr=0.1, lr_decay=0.01)), (RowWiseAdagrad, dict(lr=0.1))])
def test_when_idle_steps_change_nothing_exact_is_lazy_and_both_equal_dense(rng, cls, kw):
    w0 = rng.standard_normal((V, D))
    steps = _steps(rng, n=60)
    dense, _ = _ours(cls, w0, steps, sparse=False, **kw)
    lazy, _ = _ours(cls, w0, steps, sparse=True, **kw)
    exact, opt = _ours(cls, w0, steps, sparse=True, sparse_mode="exact", **kw)
    assert exact.tobytes() == lazy.tobytes()
    assert "last" not in opt.state[0]  # no replay bookkeeping was needed
    np.testing.assert_allclose(lazy, dense, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls,name,kw", DENSE_CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(DENSE_CASES)])
def test_exact_sparse_matches_the_dense_torch_optimizer(rng, cls, name, kw):
    """Where torch refuses sparse gradients (momentum, weight decay, AdamW), exact mode gives its dense numbers."""
    torch = torch_or_skip()
    w0 = rng.standard_normal((V, D))
    steps = _steps(rng, n=80)
    exact, _ = _ours(cls, w0, steps, sparse=True, sparse_mode="exact", **kw)
    np.testing.assert_allclose(exact, _torch(torch, name, w0, steps, sparse=False, **kw), atol=1e-10, rtol=0)


def test_exact_mode_never_reads_stale_rows_weight_dependent_gradients():
    """The forward reads rows; exact mode brings them up to date first, so even a gradient that
    depends on the weights gives torch's dense AdamW numbers."""
    torch = torch_or_skip()
    from npembed import Embedding

    w0 = np.random.default_rng(0).standard_normal((4, 2))
    emb = Embedding.from_pretrained(w0, freeze=False)
    opt = AdamW(emb.parameters(), lr=0.1, weight_decay=0.1, sparse_mode="exact")
    t = torch.nn.Embedding.from_pretrained(torch.tensor(w0), freeze=False)
    topt = torch.optim.AdamW(t.parameters(), lr=0.1, weight_decay=0.1)
    for ids in ([0], [1], [1], [0], [2, 0], [1]):
        opt.zero_grad()
        out = emb(np.array(ids))
        emb.backward(out)  # gradient of 0.5 * sum(out^2): depends on the rows read
        opt.step()
        topt.zero_grad()
        tout = t(torch.tensor(ids))
        (0.5 * (tout**2).sum()).backward()
        topt.step()
    opt.catch_up()
    np.testing.assert_allclose(emb.weight.data, t.weight.detach().numpy(), atol=1e-12, rtol=0)


def test_exact_mode_leaves_frozen_rows_and_uses_the_current_lr_scale():
    from npembed import Embedding

    emb = Embedding(3, 2, rng=0, dtype=np.float64)
    w0 = emb.weight.data.copy()
    opt = SGD(emb.parameters(), lr=0.1, weight_decay=0.1, sparse_mode="exact")
    emb.freeze_rows([1])
    emb.set_lr_scale([2], 0.5)
    for _ in range(3):
        opt.zero_grad()
        out = emb(np.array([0]))
        emb.backward(np.zeros_like(out))
        opt.step()
    opt.catch_up()
    np.testing.assert_array_equal(emb.weight.data[1], w0[1])  # frozen: never moves
    np.testing.assert_allclose(emb.weight.data[2], w0[2] * (1 - 0.1 * 0.5 * 0.1) ** 3, rtol=1e-14)
    np.testing.assert_allclose(emb.weight.data[0], w0[0] * (1 - 0.1 * 0.1) ** 3, rtol=1e-14)


def test_exact_training_does_not_depend_on_checkpoints(tmp_path):
    from npembed import load_recipes
    from npembed.baskets import Baskets
    from npembed.train import TrainConfig, train_baskets

    b = load_recipes()
    small = Baskets(b.baskets[:1500], b.lines[:1500], "slice", dict(b.stats))
    cfg = TrainConfig(dim=8, epochs=2, optimizer="adamw", sparse_mode="exact", lr_schedule="linear")
    plain, _ = train_baskets(small, cfg, progress=False)
    ckpt, _ = train_baskets(small, cfg, progress=False, checkpoint=str(tmp_path / "c"), checkpoint_every=3)
    assert plain.vectors.tobytes() == ckpt.vectors.tobytes()


def test_step_and_load_state_dict_refuse_what_does_not_fit():
    p = Parameter(np.zeros((3, 2)), name="w")
    opt = SGD([p], lr=0.1)
    p.grad = RowSparseGrad(np.array([50]), np.ones((1, 4)), (100, 4))
    with pytest.raises(ValueError, match=r"the gradient has shape \(100, 4\); its parameter 'w' has \(3, 2\)"):
        opt.step()
    q = Parameter(np.zeros((4, 3)))
    a = Adam([q], lr=0.1)
    q.accumulate(RowSparseGrad.from_rows(np.array([1]), np.ones((1, 3)), (4, 3)))
    a.step()
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 0 must be a finite array of shape \(4, 7\)"):
        Adam([Parameter(np.zeros((4, 7)))]).load_state_dict(a.state_dict())
    bad = a.state_dict()
    bad["hyperparameters"]["betas"] = [2, -1]
    with pytest.raises(ValueError, match=r"`betas` must be two numbers, each in \[0, 1\)"):
        Adam([q]).load_state_dict(bad)
    bad = a.state_dict()
    bad["hyperparameters"]["lr"] = -5
    with pytest.raises(ValueError, match="`lr` must be a positive, finite number; got -5"):
        Adam([q]).load_state_dict(bad)
    with pytest.raises(ValueError, match="this state is for sparse_mode='lazy'; this optimizer uses 'exact'"):
        Adam([q], sparse_mode="exact").load_state_dict(a.state_dict())
    with pytest.raises(TypeError, match="`nesterov` must be True or False; got 'no'"):
        SGD([q], momentum=0.9, nesterov="no")
    with pytest.raises(TypeError, match="parameter '' holds int64; optimizers update float arrays"):
        SGD([Parameter(np.zeros(3, dtype=np.int64))])


def test_embedding_load_state_keeps_its_padding_row_frozen():
    from npembed import Embedding

    other = Embedding(5, 3, rng=1).state_dict()
    e = Embedding(5, 3, padding_idx=4, rng=0)
    e.load_state_dict(other)
    assert e.frozen_rows.tolist() == [4]
    other["lr_scale"] = np.full(5, -1.0)
    before = e.weight.data.copy()
    with pytest.raises(ValueError, match="`lr_scale` in the state must be finite and >= 0"):
        e.load_state_dict(other)
    np.testing.assert_array_equal(e.weight.data, before)  # nothing half-loaded


def test_exact_mode_resumes_bit_for_bit_whichever_state_is_saved_first():
    """The README's order (the layer's state, then the optimizer's): the layer brings its idle rows
    up to date before it copies the table, so the saved table matches the saved optimizer state."""
    import npembed

    r = np.random.default_rng(5)
    batches = [r.integers(0, 50, size=(4, 3)) for _ in range(12)]

    def run(stop=None, model_first=True):
        emb = npembed.Embedding(50, 4, rng=1)
        opt = npembed.Adam(emb.parameters(), lr=0.05, weight_decay=0.1, sparse_mode="exact")
        for t, ids in enumerate(batches):
            if t == stop:
                if model_first:
                    saved = {"model": emb.state_dict(), "optimizer": opt.state_dict()}
                else:
                    saved = {"optimizer": opt.state_dict(), "model": emb.state_dict()}
                emb = npembed.Embedding(50, 4, rng=2)
                opt = npembed.Adam(emb.parameters(), lr=0.05, weight_decay=0.1, sparse_mode="exact")
                emb.load_state_dict(saved["model"])
                opt.load_state_dict(saved["optimizer"])
            out = emb(ids)
            emb.backward(np.sin(out) + 0.1)
            opt.step()
            opt.zero_grad()
        return emb.state_dict()["weight"]

    straight = run()
    assert run(stop=6).tobytes() == straight.tobytes()
    assert run(stop=6, model_first=False).tobytes() == straight.tobytes()


def test_a_deep_copy_of_a_model_and_its_exact_optimizer_replays_its_own_rows():
    import copy

    emb = Embedding(8, 2, rng=0, dtype=np.float64)
    opt = Adam(emb.parameters(), lr=0.1, sparse_mode="exact")
    for ids in ([1, 2], [2], [2]):  # row 1 then idles: its steps are owed until it is read
        emb(np.array(ids))
        emb.backward(np.ones((len(ids), 2)))
        opt.step()
        opt.zero_grad()
    emb2, opt2 = copy.deepcopy((emb, opt))
    stored = emb2.weight.data[1].copy()
    out2 = emb2(np.array([1]))
    out = emb(np.array([1]))
    np.testing.assert_array_equal(out2, out)
    assert not np.array_equal(out2[0], stored)  # the copy's own optimizer replayed the idle steps
    assert opt2 is not opt and emb2.weight is not emb.weight
