import numpy as np
import pytest

from npembed import SGD, Adam, Embedding, Parameter, RowSparseGrad

from .conftest import torch_or_skip


def _problem(rng, dtype=np.float32):
    w0 = rng.standard_normal((8, 3)).astype(dtype)
    steps = []
    for _ in range(25):
        ids = rng.integers(0, 8, size=6)  # repeats within a step, idle rows across steps
        rows = rng.standard_normal((6, 3)).astype(dtype)
        steps.append((ids, rows))
    return w0, steps


def _run_ours(opt_cls, w0, steps, sparse, **kw):
    p = Parameter(w0.copy())
    opt = opt_cls([p], **kw)
    for ids, rows in steps:
        opt.zero_grad()
        g = RowSparseGrad.from_rows(ids, rows, w0.shape)
        p.accumulate(g if sparse else g.to_dense())
        opt.step()
    return p.data


def _run_torch(torch, opt_name, w0, steps, sparse, **kw):
    t = torch.tensor(w0, requires_grad=True)
    opt = getattr(torch.optim, opt_name)([t], **kw)
    for ids, rows in steps:
        opt.zero_grad()
        g = torch.sparse_coo_tensor(torch.tensor(ids)[None, :], torch.tensor(rows), w0.shape, check_invariants=True).coalesce()
        t.grad = g if sparse else g.to_dense()
        opt.step()
    return t.detach().numpy()


def test_adam_dense_matches_torch_adam(rng):
    torch = torch_or_skip()
    w0, steps = _problem(rng)
    ours = _run_ours(Adam, w0, steps, sparse=False, lr=0.01)
    theirs = _run_torch(torch, "Adam", w0, steps, sparse=False, lr=0.01)
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)


def test_adam_weight_decay_matches_torch_adam(rng):
    torch = torch_or_skip()
    w0, steps = _problem(rng)
    ours = _run_ours(Adam, w0, steps, sparse=False, lr=0.01, weight_decay=0.1)
    theirs = _run_torch(torch, "Adam", w0, steps, sparse=False, lr=0.01, weight_decay=0.1)
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    assert np.abs(ours - _run_ours(Adam, w0, steps, sparse=False, lr=0.01)).max() > 1e-4
    with pytest.raises(ValueError, match="`weight_decay` must be a finite number >= 0; got -1"):
        Adam([Parameter(w0)], weight_decay=-1)


def test_adam_sparse_weight_decay_touches_only_batch_rows(rng):
    w0, steps = _problem(rng, np.float64)
    p = Parameter(w0.copy())
    opt = Adam([p], lr=0.01, weight_decay=0.5)
    p.accumulate(RowSparseGrad.from_rows(np.array([2]), np.zeros((1, 3)), w0.shape))
    opt.step()
    assert np.array_equal(np.flatnonzero((p.data != w0).any(axis=1)), [2])


def test_adam_sparse_is_lazy_and_matches_torch_sparse_adam(rng):
    torch = torch_or_skip()
    w0, steps = _problem(rng)
    ours = _run_ours(Adam, w0, steps, sparse=True, lr=0.01)
    theirs = _run_torch(torch, "SparseAdam", w0, steps, sparse=True, lr=0.01)
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    dense = _run_ours(Adam, w0, steps, sparse=False, lr=0.01)
    assert np.abs(ours - dense).max() > 1e-4  # lazy differs from dense: stale moments are not applied


def test_adam_sparse_leaves_untouched_rows_alone(rng):
    p = Parameter(rng.standard_normal((5, 2)))
    before = p.data.copy()
    opt = Adam([p], lr=0.1)
    p.accumulate(RowSparseGrad.from_rows(np.array([1, 1, 3]), np.ones((3, 2)), (5, 2)))
    opt.step()
    np.testing.assert_array_equal(p.data[[0, 2, 4]], before[[0, 2, 4]])
    # Repeated id 1 was summed before the update: Adam's first step moves each entry by lr.
    np.testing.assert_allclose(p.data[[1, 3]], before[[1, 3]] - 0.1, rtol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_sgd_matches_torch(rng, sparse):
    torch = torch_or_skip()
    w0, steps = _problem(rng, np.float64)
    ours = _run_ours(SGD, w0, steps, sparse=sparse, lr=0.05)
    theirs = _run_torch(torch, "SGD", w0, steps, sparse=sparse, lr=0.05)
    np.testing.assert_allclose(ours, theirs, atol=1e-12, rtol=0)


def test_step_without_gradient_is_a_no_op_and_zero_grad_clears():
    p = Parameter(np.ones((2, 2)))
    opt = Adam([p])
    opt.step()
    np.testing.assert_array_equal(p.data, 1)
    p.accumulate(np.ones((2, 2)))
    opt.zero_grad()
    assert p.grad is None


def test_empty_sparse_gradient_is_a_no_op():
    p = Parameter(np.ones((3, 2)))
    for opt in (SGD([p]), Adam([p])):
        p.grad = RowSparseGrad.from_rows(np.empty(0, np.int64), np.empty((0, 2)), (3, 2))
        opt.step()
    np.testing.assert_array_equal(p.data, 1)


def test_frozen_parameters_are_skipped():
    emb = Embedding(3, 2, freeze=True)
    trainable = Parameter(np.zeros(2))
    opt = SGD(emb.parameters() + [trainable], lr=0.1)
    assert opt.params == [trainable]


def test_optimizer_errors():
    with pytest.raises(ValueError, match="`params` holds no trainable Parameter: every one is frozen, or the list is empty"):
        SGD([])
    with pytest.raises(TypeError, match=r"`params` must be Parameters \(e.g. model.parameters\(\)\); got ndarray at position 0"):
        SGD([np.zeros(3)])
    p = [Parameter(np.zeros(2))]
    with pytest.raises(ValueError, match="`lr` must be a positive, finite number; got -1"):
        SGD(p, lr=-1)
    with pytest.raises(TypeError, match="`lr` must be a positive number; got '0.1'"):
        Adam(p, lr="0.1")
    with pytest.raises(ValueError, match=r"`betas` must be two numbers, each in \[0, 1\); got \(0.9, 1.0\)"):
        Adam(p, betas=(0.9, 1.0))
    for bad in ((0.9,), None, ("a", "b")):
        with pytest.raises(ValueError, match=r"`betas` must be two numbers, each in \[0, 1\)"):
            Adam(p, betas=bad)
    with pytest.raises(ValueError, match="`params` lists the same Parameter twice; it would be updated twice per step"):
        SGD(p + p)
    with pytest.raises(TypeError, match=r"`params` must be a list of Parameters; got a Embedding\. Pass layer.parameters\(\)"):
        SGD(Embedding(3, 2))
    with pytest.raises(TypeError, match="`params` must be a list of Parameters; got int"):
        SGD(3)
    with pytest.raises(ValueError, match="`eps` must be a positive, finite number; got 0"):
        Adam(p, eps=0)


def test_row_sparse_grad_refuses_rows_outside_the_table():
    with pytest.raises(IndexError, match=r"`ids` must be in \[0, 4\); got -2 at position 0"):
        RowSparseGrad.from_rows(np.array([-2, 1]), np.ones((2, 2)), (4, 2))
    with pytest.raises(IndexError, match=r"`ids` must be in \[0, 4\); got 9 at position 0"):
        RowSparseGrad.from_rows(np.array([9]), np.ones((1, 2)), (4, 2))
    with pytest.raises(ValueError, match=r"`rows` must have shape \(3, 2\) \(ids.shape \+ \(dim,\)\); got \(2, 2\)"):
        RowSparseGrad.from_rows(np.array([1, 2, 3]), np.ones((2, 2)), (4, 2))
    with pytest.raises(ValueError, match=r"`indices` must be sorted, unique and in \[0, 4\)"):
        RowSparseGrad(np.array([3, 1]), np.ones((2, 2)), (4, 2))
    with pytest.raises(ValueError, match=r"`indices` must be sorted, unique and in \[0, 4\)"):
        RowSparseGrad(np.array([7]), np.ones((1, 2)), (4, 2))
    with pytest.raises(ValueError, match=r"`values` must have shape \(1, 2\) to match `indices`; got \(1, 3\)"):
        RowSparseGrad(np.array([0]), np.ones((1, 3)), (4, 2))
    with pytest.raises(ValueError, match=r"gradient of shape \(4, 2\) does not match parameter w of shape \(3, 2\)"):
        Parameter(np.zeros((3, 2)), name="w").accumulate(np.ones((4, 2)))


def test_parameter_accumulates_mixed_dense_and_sparse():
    p = Parameter(np.zeros((3, 2)))
    p.accumulate(np.ones((3, 2)))
    p.accumulate(RowSparseGrad.from_rows(np.array([2]), np.ones((1, 2)), (3, 2)))
    np.testing.assert_array_equal(p.grad[:, 0], [1, 1, 2])
    q = Parameter(np.zeros((3, 2)))
    q.accumulate(RowSparseGrad.from_rows(np.array([0]), np.ones((1, 2)), (3, 2)))
    q.accumulate(np.ones((3, 2)))
    np.testing.assert_array_equal(q.grad[:, 0], [2, 1, 1])
    with pytest.raises(ValueError, match=r"cannot add row-sparse gradients of shapes \(3, 2\) and \(4, 2\)"):
        RowSparseGrad.from_rows(np.array([0]), np.ones((1, 2)), (3, 2)) + RowSparseGrad.from_rows(np.array([0]), np.ones((1, 2)), (4, 2))
