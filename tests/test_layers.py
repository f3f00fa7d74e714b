import numpy as np
import pytest

from npembed import Linear, MeanPool, SoftmaxCrossEntropy
from npembed.losses import log_softmax

from .conftest import torch_or_skip
from .gradcheck import assert_grad_close, numerical_grad


def test_meanpool_ignores_padding_and_empty_rows_give_zeros(rng):
    x = rng.standard_normal((3, 4, 2))
    mask = np.array([[True, True, False, False], [False] * 4, [True] * 4])
    out = MeanPool()(x, mask)
    np.testing.assert_allclose(out[0], x[0, :2].mean(0))
    np.testing.assert_array_equal(out[1], 0)
    np.testing.assert_allclose(out[2], x[2].mean(0))


def test_meanpool_gradient_matches_finite_differences(rng):
    pool = MeanPool()
    x = rng.standard_normal((3, 5, 2))
    mask = rng.random((3, 5)) < 0.6
    mask[0, 0] = True
    mask[1] = False
    probe = rng.standard_normal((3, 2))
    pool(x, mask)
    analytic = pool.backward(probe)
    numeric = numerical_grad(lambda: float((pool(x, mask) * probe).sum()), x)
    assert_grad_close(analytic, numeric)


def test_meanpool_errors():
    pool = MeanPool()
    with pytest.raises(RuntimeError, match="MeanPool.backward called before forward"):
        pool.backward(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"`x` must be 3-D \(batch, seq, dim\); got shape \(2, 3\)"):
        pool(np.ones((2, 3)), np.ones((2, 3), bool))
    with pytest.raises(TypeError, match="`mask` must be a bool array; got dtype int64"):
        pool(np.ones((2, 3, 1)), np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(2, 3\) \(batch, seq\); got \(3, 2\)"):
        pool(np.ones((2, 3, 1)), np.ones((3, 2), bool))
    with pytest.raises(TypeError, match="`x` must be a float32 or float64 array; got dtype int64"):
        pool(np.array([[[1], [2]]]), np.ones((1, 2), bool))
    with pytest.raises(TypeError, match="`x` must be a float32 or float64 array; got dtype object"):
        pool(np.ones((1, 2, 1), dtype=object), np.ones((1, 2), bool))
    pool(np.ones((2, 3, 1)), np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"`grad_output` must have shape \(2, 1\) \(batch, dim\); got \(2, 7\)"):
        pool.backward(np.ones((2, 7)))
    with pytest.raises(ValueError, match=r"`grad_output` must have shape \(2, 1\) \(batch, dim\); got \(3, 1\)"):
        pool.backward(np.ones((3, 1)))


def test_linear_gradients_match_finite_differences(rng):
    lin = Linear(4, 3, rng=0, dtype=np.float64)
    x = rng.standard_normal((5, 4))
    probe = rng.standard_normal((5, 3))

    def loss():
        return float((lin(x) * probe).sum())

    lin(x)
    gx = lin.backward(probe)
    assert_grad_close(gx, numerical_grad(loss, x))
    assert_grad_close(lin.weight.grad, numerical_grad(loss, lin.weight.data))
    assert_grad_close(lin.bias.grad, numerical_grad(loss, lin.bias.data))


def test_linear_matches_torch(rng):
    torch = torch_or_skip()
    lin = Linear(6, 4, rng=3)
    x = rng.standard_normal((7, 6)).astype(np.float32)
    g = rng.standard_normal((7, 4)).astype(np.float32)
    t = torch.nn.Linear(6, 4)
    with torch.no_grad():
        t.weight.copy_(torch.tensor(lin.weight.data))
        t.bias.copy_(torch.tensor(lin.bias.data))
    tx = torch.tensor(x, requires_grad=True)
    ty = t(tx)
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(lin(x), ty.detach().numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(lin.backward(g), tx.grad.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(lin.weight.grad, t.weight.grad.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(lin.bias.grad, t.bias.grad.numpy(), atol=1e-5, rtol=0)


def test_linear_default_init_bound_and_errors():
    lin = Linear(100, 50, rng=0)
    assert np.abs(lin.weight.data).max() <= 0.1 and np.abs(lin.weight.data).max() > 0.09
    assert Linear(3, 2, bias=False).parameters()[0].shape == (2, 3)
    with pytest.raises(ValueError, match=r"`x` must have last axis 100 \(in_features\); got shape \(2, 3\)"):
        lin(np.ones((2, 3)))
    with pytest.raises(TypeError, match="`dtype` must be float32 or float64; got int64"):
        Linear(4, 3, dtype=int)
    with pytest.raises(TypeError, match="`bias` must be True or False; got 'no'"):
        Linear(4, 3, bias="no")
    with pytest.raises(RuntimeError, match="Linear.backward called before forward"):
        Linear(2, 2).backward(np.ones((1, 2)))
    lin(np.ones((2, 100)))
    with pytest.raises(ValueError, match=r"`grad_output` must have shape \(2, 50\); got \(2, 49\)"):
        lin.backward(np.ones((2, 49)))


def test_cross_entropy_gradient_matches_finite_differences(rng):
    loss = SoftmaxCrossEntropy()
    z = rng.standard_normal((4, 6))
    y = np.array([0, 5, 5, 2])
    loss(z, y)
    assert_grad_close(loss.backward(), numerical_grad(lambda: loss(z, y), z))


def test_cross_entropy_is_stable_for_huge_logits():
    loss = SoftmaxCrossEntropy()
    z = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, 1e4]], dtype=np.float32)
    value = loss(z, np.array([1, 2]))
    assert np.isfinite(value) and abs(value - 5e3) < 1
    assert np.isfinite(loss.backward()).all()
    assert np.isfinite(log_softmax(z)).all()


def test_cross_entropy_matches_torch(rng):
    torch = torch_or_skip()
    z = (rng.standard_normal((9, 11)) * 3).astype(np.float32)
    y = rng.integers(0, 11, size=9)
    loss = SoftmaxCrossEntropy()
    value = loss(z, y)
    tz = torch.tensor(z, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tz, torch.tensor(y))
    tl.backward()
    assert abs(value - tl.item()) < 1e-6
    np.testing.assert_allclose(loss.backward(), tz.grad.numpy(), atol=1e-6, rtol=0)


def test_cross_entropy_errors():
    loss = SoftmaxCrossEntropy()
    with pytest.raises(RuntimeError, match="SoftmaxCrossEntropy.backward called before forward"):
        loss.backward()
    with pytest.raises(ValueError, match=r"`logits` must be 2-D \(batch, classes\); got shape \(3,\)"):
        loss(np.ones(3), np.array([0]))
    with pytest.raises(IndexError, match=r"`targets` must be in \[0, 3\); got 3 at position 1"):
        loss(np.ones((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"`targets` must have shape \(2,\) to match `logits`; got \(3,\)"):
        loss(np.ones((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="`logits` must hold at least one row; got an empty batch"):
        loss(np.ones((0, 3)), np.array([], dtype=np.int64))
