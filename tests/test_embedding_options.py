"""Embedding options of issue 3: max_norm (both modes), scale_grad_by_freq, invalid-id policies,
special ids, per-row freezing and learning-rate multipliers, attend."""

import numpy as np
import pytest

from npembed import SGD, Adam, Embedding, EmbeddingBag, RowSparseGrad

from .conftest import torch_or_skip
from .gradcheck import assert_grad_close, numerical_grad


def _grad_dense(emb, ids, probe):
    emb.weight.grad = None
    emb(ids)
    emb.backward(probe)
    g = emb.weight.grad
    return np.zeros_like(emb.weight.data) if g is None else g.to_dense()


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0])
def test_max_norm_renorm_matches_torch(rng, norm_type):
    torch = torch_or_skip()
    w = (rng.standard_normal((10, 4)) * 2).astype(np.float32)
    ids = np.array([[1, 2, 2], [7, 1, 0]])
    probe = rng.standard_normal((2, 3, 4)).astype(np.float32)
    emb = Embedding.from_pretrained(w, freeze=False, max_norm=1.5, norm_type=norm_type)
    out = emb(ids)
    emb.backward(probe)
    t = torch.nn.Embedding.from_pretrained(torch.tensor(w), freeze=False, max_norm=1.5, norm_type=norm_type)
    tout = t(torch.tensor(ids))
    (tout * torch.tensor(probe)).sum().backward()
    np.testing.assert_allclose(out, tout.detach().numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(emb.weight.data, t.weight.detach().numpy(), atol=1e-6, rtol=0)  # rows renormed in place
    np.testing.assert_allclose(emb.weight.grad.to_dense(), t.weight.grad.numpy(), atol=1e-6, rtol=0)
    untouched = [3, 4, 5, 6, 8, 9]
    np.testing.assert_array_equal(emb.weight.data[untouched], w[untouched])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0])
def test_max_norm_clip_is_differentiable_and_leaves_the_table(rng, norm_type):
    w = rng.standard_normal((6, 3)) * 2
    emb = Embedding.from_pretrained(w, freeze=False, max_norm=1.2, norm_type=norm_type, max_norm_mode="clip", dtype=np.float64)
    ids = np.array([0, 1, 1, 4, 5])
    out = emb(ids)
    np.testing.assert_array_equal(emb.weight.data, w)
    norms = (np.abs(out) ** norm_type).sum(1) ** (1 / norm_type)
    assert norms.max() <= 1.2 + 1e-9
    probe = rng.standard_normal(out.shape)
    analytic = _grad_dense(emb, ids, probe)
    numeric = numerical_grad(lambda: float((emb(ids) * probe).sum()), emb.weight.data)
    assert_grad_close(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_scale_grad_by_freq_matches_torch(rng):
    torch = torch_or_skip()
    w = rng.standard_normal((8, 3))
    ids = np.array([[1, 1, 1, 2], [2, 5, 0, 0]])
    probe = rng.standard_normal((2, 4, 3))
    emb = Embedding.from_pretrained(w, freeze=False, scale_grad_by_freq=True, padding_idx=0)
    emb(ids)
    emb.backward(probe)
    t = torch.nn.Embedding.from_pretrained(torch.tensor(w), freeze=False, scale_grad_by_freq=True, padding_idx=0)
    (t(torch.tensor(ids)) * torch.tensor(probe)).sum().backward()
    np.testing.assert_allclose(emb.weight.grad.to_dense(), t.weight.grad.numpy(), atol=1e-12, rtol=0)


def test_invalid_ids_policies():
    w = np.arange(12, dtype=np.float64).reshape(4, 3) + 1
    ids = np.array([0, 4, -1, 2, 2**40])
    zero = Embedding.from_pretrained(w, freeze=False, invalid_ids="zero")
    out = zero(ids)
    np.testing.assert_array_equal(out[[1, 2, 4]], 0)
    np.testing.assert_array_equal(out[[0, 3]], w[[0, 2]])
    zero.backward(np.ones_like(out))
    assert zero.weight.grad.indices.tolist() == [0, 2]  # invalid positions get no gradient
    fb = Embedding.from_pretrained(w, freeze=False, invalid_ids="fallback", fallback_idx=-1)
    out = fb(ids)
    np.testing.assert_array_equal(out[[1, 2, 4]], np.broadcast_to(w[3], (3, 3)))
    fb.backward(np.ones_like(out))
    g = fb.weight.grad
    assert g.indices.tolist() == [0, 2, 3] and g.values[2].tolist() == [3.0, 3.0, 3.0]
    big = np.array([1, 2**64], dtype=object)
    np.testing.assert_array_equal(zero(big)[1], 0)
    assert zero([]).shape == (0, 3)
    with pytest.raises(TypeError, match="`ids` must be integers; got dtype float64"):
        zero(np.array([1.0]))
    with pytest.raises(IndexError, match=r"`ids` must be in \[0, 4\); got 4 at position 1"):
        Embedding.from_pretrained(w)(ids)


def test_special_ids_start_at_zero_and_follow_their_rule(rng):
    emb = Embedding(6, 2, padding_idx=0, special_ids={1: "frozen", -1: "trainable"}, rng=0)
    assert not emb.weight.data[[0, 1, 5]].any() and emb.weight.data[2:5].all()
    out = emb([0, 1, 5, 2])
    emb.backward(np.ones_like(out))
    assert emb.weight.grad.indices.tolist() == [2, 5]
    assert emb.frozen_rows.tolist() == [0, 1]


def test_freeze_rows_and_lr_scale_with_sgd_and_adam(rng):
    for opt_cls in (SGD, Adam):
        emb = Embedding(6, 2, rng=0, dtype=np.float64)
        w0 = emb.weight.data.copy()
        emb.freeze_rows([0, 1])
        emb.set_lr_scale([3], 0.5)
        emb.set_lr_scale([4], 0.0)  # 0 freezes too
        opt = opt_cls(emb.parameters(), lr=0.1)
        out = emb([0, 1, 2, 3, 4, 5])
        emb.backward(np.ones_like(out))
        opt.step()
        moved = w0 - emb.weight.data
        np.testing.assert_array_equal(moved[[0, 1, 4]], 0)
        np.testing.assert_allclose(moved[3], 0.5 * moved[2], rtol=1e-12)
        np.testing.assert_allclose(moved[5], moved[2], rtol=1e-12)
    emb.freeze_rows([0], frozen=False)
    assert emb.frozen_rows.tolist() == [1, 4]
    special = Embedding(6, 2, padding_idx=0, special_ids={5: "frozen", 4: "trainable"})
    special.freeze_rows([0, 3, 4, 5])
    special.freeze_rows([0, 3, 4, 5], frozen=False)  # padding and the frozen special id stay frozen
    assert special.frozen_rows.tolist() == [0, 5]
    special.load_state_dict(special.state_dict())
    assert special.frozen_rows.tolist() == [0, 5]
    with pytest.raises(ValueError, match=r"`scale` must be finite and >= 0; got -1"):
        emb.set_lr_scale([2], -1)
    with pytest.raises(IndexError, match=r"`ids` must be in \[0, 6\); got 6"):
        emb.freeze_rows([6])


def test_a_row_rule_changed_between_backward_and_step_counts_from_the_next_backward():
    # Whether the gradient was summed during backward (Adam), is summed at the step (donated) or
    # is added row by row (plain SGD), it keeps the rules it was computed under; so does a bag's.
    for opt_cls in (SGD, Adam):
        for change in ("freeze", "scale"):
            moved = []
            for donate in (False, True, "bag"):
                bag = EmbeddingBag(6, 2, mode="sum", rng=0, dtype=np.float64)
                emb = bag.embedding
                emb.freeze_rows([5])
                emb.set_lr_scale([4], 2.0)  # the rule arrays exist before the backward
                opt = opt_cls(emb.parameters(), lr=0.1)
                w0 = emb.weight.data.copy()
                if donate == "bag":
                    bag(np.array([[1, 2, 1]]))
                    bag.backward(np.ones((1, 2)))
                else:
                    emb(np.array([1, 2, 1]))
                    emb.backward(np.ones((3, 2)), donate=donate)
                if change == "freeze":
                    emb.freeze_rows([1])
                else:
                    emb.set_lr_scale([1], 0.5)
                opt.step()
                moved.append(w0 - emb.weight.data)
                assert (emb.frozen_rows.tolist() == [1, 5]) == (change == "freeze")
                # the next backward follows the new rule
                opt.zero_grad()
                w1 = emb.weight.data.copy()
                emb(np.array([1, 2]))
                emb.backward(np.ones((2, 2)))
                opt.step()
                now = w1 - emb.weight.data
                if change == "freeze":
                    np.testing.assert_array_equal(now[1], 0)
                else:
                    assert 0 < now[1, 0] < now[2, 0]
            np.testing.assert_array_equal(moved[0], moved[1], err_msg=f"{opt_cls.__name__}, {change}")
            np.testing.assert_allclose(moved[2], moved[0], rtol=1e-12, err_msg=f"{opt_cls.__name__}, {change}")
            assert moved[0][1, 0] > moved[0][2, 0] > 0 if opt_cls is SGD else moved[0][1, 0] > 0  # row 1 moved in full


def test_lr_scale_survives_accumulation():
    emb = Embedding(5, 2, rng=0)
    emb.set_lr_scale([1], 0.25)
    emb([1, 2])
    emb.backward(np.ones((2, 2), np.float32))
    emb([1, 3])
    emb.backward(np.ones((2, 2), np.float32))
    g = emb.weight.grad
    assert g.indices.tolist() == [1, 2, 3] and g.scale.tolist() == [0.25, 1.0, 1.0]
    assert g.values[0].tolist() == [2.0, 2.0]


def test_attend_scores_and_gradients(rng):
    emb = Embedding(5, 3, rng=0, dtype=np.float64, padding_idx=4)
    x = rng.standard_normal((2, 3))
    probe = rng.standard_normal((2, 5))
    scores = emb.attend(x)
    np.testing.assert_allclose(scores, x @ emb.weight.data.T)
    gx = emb.attend_backward(probe)
    assert_grad_close(gx, numerical_grad(lambda: float((emb.attend(x) * probe).sum()), x))
    numeric = numerical_grad(lambda: float((emb.attend(x) * probe).sum()), emb.weight.data)
    numeric[4] = 0  # padding row is frozen
    emb.attend(x)
    assert_grad_close(emb.weight.grad.to_dense(), numeric)
    with pytest.raises(ValueError, match=r"`x` must have last axis 3 \(embedding_dim\); got shape \(2, 4\)"):
        emb.attend(np.ones((2, 4)))
    with pytest.raises(RuntimeError, match="Embedding.attend_backward called before attend"):
        Embedding(2, 2).attend_backward(np.ones((1, 2)))


def test_option_errors():
    with pytest.raises(ValueError, match=r"`invalid_ids` must be one of \('raise', 'zero', 'fallback'\); got 'skip'"):
        Embedding(3, 2, invalid_ids="skip")
    with pytest.raises(ValueError, match="`invalid_ids='fallback'` needs `fallback_idx`"):
        Embedding(3, 2, invalid_ids="fallback")
    with pytest.raises(ValueError, match="`fallback_idx` is used only with invalid_ids='fallback'"):
        Embedding(3, 2, fallback_idx=1)
    with pytest.raises(ValueError, match=r"`fallback_idx` must be in \[-3, 3\)"):
        Embedding(3, 2, invalid_ids="fallback", fallback_idx=3)
    with pytest.raises(ValueError, match="`max_norm` must be a positive, finite number or None; got -1"):
        Embedding(3, 2, max_norm=-1)
    with pytest.raises(ValueError, match=r"`max_norm_mode` must be one of \('renorm', 'clip'\); got 'scale'"):
        Embedding(3, 2, max_norm=1, max_norm_mode="scale")
    with pytest.raises(ValueError, match="`norm_type` must be a finite number > 0"):
        Embedding(3, 2, max_norm=1, norm_type=float("inf"))
    with pytest.raises(ValueError, match=r"`special_ids\[1\]` must be one of \('frozen', 'trainable'\); got 'pad'"):
        Embedding(3, 2, special_ids={1: "pad"})
    with pytest.raises(ValueError, match="`special_ids` repeats padding_idx 0"):
        Embedding(3, 2, padding_idx=0, special_ids={0: "frozen"})
    with pytest.raises(TypeError, match="`special_ids` must be a dict"):
        Embedding(3, 2, special_ids=[1])
    with pytest.raises(ValueError, match=r"`indices` must be sorted, unique"):
        RowSparseGrad(np.array([1, 1]), np.ones((2, 2)), (3, 2))


def test_lr_scale_zero_then_nonzero_unfreezes_but_freeze_rows_stays():
    e = Embedding(5, 2)
    e.set_lr_scale([1], 0.0)
    assert e.frozen_rows.tolist() == [1]
    e.set_lr_scale([1], 1.0)
    assert e.frozen_rows.tolist() == []
    e.freeze_rows([2])
    e.set_lr_scale([2], 3.0)  # a scale does not undo freeze_rows
    assert e.frozen_rows.tolist() == [2]
    e.set_lr_scale([[3, 4]], np.array([[0.5, 2.0]]))  # one scale per id, any matching shape
    with pytest.raises(ValueError, match=r"`scale` must be one number or one per id \(2\); got shape \(3,\)"):
        e.set_lr_scale([1, 2], np.array([1.0, 2.0, 3.0]))


def test_clip_gradient_is_finite_for_p_below_one_with_zero_components():
    w = np.array([[0.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    emb = Embedding.from_pretrained(w, freeze=False, max_norm=0.5, norm_type=0.5, max_norm_mode="clip")
    out = emb([0, 1])
    emb.backward(np.ones_like(out))
    assert np.isfinite(emb.weight.grad.values).all()


def test_special_ids_errors_and_stale_state():
    with pytest.raises(ValueError, match=r"`special_ids` names row 0 twice \(negative ids count from the end\)"):
        Embedding(5, 2, special_ids={-5: "frozen", 0: "trainable"})
    e = Embedding(4, 2)
    e([1])
    with pytest.raises(IndexError):
        e([7])
    with pytest.raises(RuntimeError, match="Embedding.backward called before forward"):
        e.backward(np.ones((1, 2)))
    with pytest.raises(ValueError, match="`ids` must be a rectangular array of integers; ragged nested lists are not"):
        e([[1, 2], [3]])
