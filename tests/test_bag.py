"""EmbeddingBag against a slow loop reference, finite differences and PyTorch."""

import warnings

import numpy as np
import pytest

from npembed import EmbeddingBag

from .conftest import torch_or_skip
from .gradcheck import assert_grad_close, numerical_grad


def reference(weight, bags, weights, mode, skip=None, empty=0.0):
    """Obviously correct loops: ``bags`` is a list of id lists, ``weights`` a matching list or None."""
    out = []
    for k, bag in enumerate(bags):
        w = [1.0] * len(bag) if weights is None else weights[k]
        keep = [(i, wi) for i, wi in zip(bag, w) if i != skip and i >= 0]
        if not keep:
            out.append(np.full(weight.shape[1], empty))
            continue
        e = np.array([weight[i] for i, _ in keep])
        ws = np.array([wi for _, wi in keep])
        if mode == "sum":
            out.append((ws[:, None] * e).sum(0))
        elif mode == "mean":
            out.append((ws[:, None] * e).sum(0) / ws.sum())
        elif mode == "sqrtn":
            out.append((ws[:, None] * e).sum(0) / np.sqrt((ws**2).sum()))
        elif mode == "max":
            out.append(e.max(0))
        else:
            out.append(e.min(0))
    return np.array(out)


def _random_bags(rng, n_bags, V, max_len=6, allow_empty=True):
    lens = rng.integers(0 if allow_empty else 1, max_len, size=n_bags)
    bags = [list(rng.integers(0, V, size=L)) for L in lens]
    return bags


def _csr(bags):
    flat = np.array([i for b in bags for i in b], dtype=np.int64)
    offs = np.cumsum([0] + [len(b) for b in bags])[:-1]
    return flat, offs


MODE_WEIGHTS = [(m, False) for m in ("sum", "mean", "sqrtn", "max", "min")] + [(m, True) for m in ("sum", "mean", "sqrtn")]


@pytest.mark.parametrize("mode,weighted", MODE_WEIGHTS)
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_forward_and_gradients_match_reference_and_finite_differences(rng, mode, padding_idx, weighted):
    V, d = 7, 3
    bag = EmbeddingBag(V, d, mode=mode, padding_idx=padding_idx, rng=1, dtype=np.float64)
    bags = _random_bags(rng, 6, V)
    bags[0] = [2, 2] if padding_idx is not None else []  # only padding, or empty
    bags[1] = [4, 4, 1, 4]  # repeated ids
    flat, offs = _csr(bags)
    w_flat = rng.uniform(0.5, 1.5, size=flat.shape) if weighted else None
    w_list = None
    if weighted:
        w_list, pos = [], 0
        for b in bags:
            w_list.append(list(w_flat[pos : pos + len(b)]))
            pos += len(b)
    out = bag(flat, offs, w_flat)
    np.testing.assert_allclose(out, reference(bag.weight.data, bags, w_list, mode, padding_idx), rtol=1e-12, atol=1e-12)
    probe = rng.standard_normal(out.shape)
    gw = bag.backward(probe)

    def loss():
        return float((bag(flat, offs, w_flat) * probe).sum())

    numeric = numerical_grad(loss, bag.weight.data)
    if padding_idx is not None:
        numeric[padding_idx] = 0
    assert_grad_close(bag.weight.grad.to_dense(), numeric, rtol=1e-5, atol=1e-7)
    if weighted:
        assert_grad_close(gw, numerical_grad(loss, w_flat), rtol=1e-5, atol=1e-7)
    else:
        assert gw is None


def test_include_padding_counts_the_padding_row(rng):
    bag = EmbeddingBag(5, 2, mode="mean", padding_idx=0, include_padding=True, rng=0, dtype=np.float64)
    w = bag.weight.data
    out = bag(np.array([[0, 1, 3]]))
    np.testing.assert_allclose(out[0], (w[1] + w[3]) / 3)  # the zero padding row counts in the mean
    bag.backward(np.ones_like(out))
    assert bag.weight.grad.indices.tolist() == [1, 3]  # ...but never gets a gradient


def test_three_input_forms_agree(rng):
    bag = EmbeddingBag(9, 4, mode=("mean", "max"), rng=0)
    fixed = rng.integers(0, 9, size=(3, 4))
    a = bag(fixed)
    b = bag(fixed.ravel(), offsets=[0, 4, 8])
    c = bag(fixed.ravel(), offsets=[0, 4, 8, 12], include_last_offset=True)
    padded = np.concatenate([fixed, np.full((3, 2), 7)], axis=1)
    mask = np.concatenate([np.ones((3, 4), bool), np.zeros((3, 2), bool)], axis=1)
    e = bag(padded, mask=mask)
    for x in (b, c, e):
        np.testing.assert_array_equal(a, x)
    assert a.shape == (3, 8)  # two modes side by side


def test_empty_bags_and_empty_value():
    bag = EmbeddingBag(4, 2, mode="max", empty_value=-1.0, rng=0)
    out = bag(np.array([1, 2]), offsets=[0, 0, 2])  # bags: [], [1, 2], []
    np.testing.assert_array_equal(out[[0, 2]], -1.0)
    bag.backward(np.ones_like(out))
    assert bag.weight.grad.indices.tolist() == [1, 2]
    assert bag(np.array([], dtype=np.int64), offsets=[0, 0]).shape == (2, 2)


def test_max_ties_give_the_gradient_to_the_earliest_position():
    w = np.array([[1.0, 5.0], [1.0, 2.0], [0.0, 5.0]])
    bag = EmbeddingBag.from_pretrained(w, freeze=False, mode="max")
    out = bag(np.array([[1, 0, 2]]))
    assert out.tolist() == [[1.0, 5.0]]
    bag.backward(np.array([[10.0, 20.0]]))
    dense = bag.weight.grad.to_dense()
    assert dense.tolist() == [[0.0, 20.0], [10.0, 0.0], [0.0, 0.0]]


def test_invalid_ids_policy_applies_to_bags():
    bag = EmbeddingBag(4, 2, mode="sum", invalid_ids="zero", rng=0, dtype=np.float64)
    out = bag(np.array([[1, 9, -1]]))
    np.testing.assert_array_equal(out[0], bag.weight.data[1])
    with pytest.raises(IndexError, match=r"`ids` must be in \[0, 4\); got 9 at position \(0, 1\)"):
        EmbeddingBag(4, 2)(np.array([[1, 9]]))


@pytest.mark.parametrize("case", range(12))
def test_matches_torch_embedding_bag(case):
    torch = torch_or_skip()
    rng = np.random.default_rng(case)
    mode = ["sum", "mean", "max"][case % 3]
    include_last = bool(case % 2)
    padding_idx = [None, 3][(case // 2) % 2]
    weighted = mode == "sum" and case % 4 == 0
    for dtype, tdtype, atol in ((np.float32, torch.float32, 1e-6), (np.float64, torch.float64, 1e-12)):
        V, d = 11, 5
        w = rng.standard_normal((V, d)).astype(dtype)
        bags = _random_bags(rng, 7, V, allow_empty=mode != "max")
        flat, offs = _csr(bags)
        if include_last:
            offs = np.append(offs, len(flat))
        psw = rng.uniform(0.1, 2, size=flat.shape).astype(dtype) if weighted else None
        bag = EmbeddingBag.from_pretrained(w, freeze=False, mode=mode, padding_idx=padding_idx)
        out = bag(flat, offs, psw, include_last_offset=include_last)
        probe = rng.standard_normal(out.shape).astype(dtype)
        gw = bag.backward(probe)
        tw = torch.tensor(w, requires_grad=True)
        tpsw = torch.tensor(psw, requires_grad=True) if weighted else None
        tout = torch.nn.functional.embedding_bag(
            torch.tensor(flat), tw, torch.tensor(offs), mode=mode, per_sample_weights=tpsw,
            include_last_offset=include_last, padding_idx=padding_idx,
        )
        (tout * torch.tensor(probe)).sum().backward()
        np.testing.assert_allclose(out, tout.detach().numpy(), atol=atol, rtol=0)
        dense = np.zeros_like(w) if bag.weight.grad is None else bag.weight.grad.to_dense()
        np.testing.assert_allclose(dense, tw.grad.numpy(), atol=atol, rtol=0)
        if weighted:
            np.testing.assert_allclose(gw, tpsw.grad.numpy(), atol=atol * 10, rtol=0)


def test_errors_name_the_problem():
    bag = EmbeddingBag(5, 2, mode="sum")
    ids = np.array([1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"1-D `ids` need `offsets`, the start of each bag"):
        bag(ids)
    with pytest.raises(ValueError, match=r"`offsets` must start at 0 \(the first bag starts at the first id\); got 1"):
        bag(ids, offsets=[1, 2])
    with pytest.raises(ValueError, match=r"`offsets` must not decrease; got 3 then 2 at position 2"):
        bag(ids, offsets=[0, 3, 2])
    with pytest.raises(ValueError, match=r"`offsets` must be <= len\(ids\) = 4; got 6 at position 1"):
        bag(ids, offsets=[0, 6])
    with pytest.raises(ValueError, match=r"with include_last_offset=True the last offset must equal len\(ids\) = 4; got 3"):
        bag(ids, offsets=[0, 3], include_last_offset=True)
    with pytest.raises(TypeError, match="`offsets` must be integers; got dtype float64"):
        bag(ids, offsets=[0.0, 2.0])
    with pytest.raises(ValueError, match="`offsets` is for 1-D `ids`; 2-D `ids` are fixed-length bags"):
        bag(ids.reshape(2, 2), offsets=[0, 1])
    with pytest.raises(ValueError, match=r"`per_sample_weights` must have the shape of `ids` \(4,\); got \(3,\)"):
        bag(ids, [0, 2], np.ones(3))
    with pytest.raises(ValueError, match="`per_sample_weights` is not defined for mode 'max'"):
        EmbeddingBag(5, 2, mode=("sum", "max"))(ids, [0, 2], np.ones(4))
    with pytest.raises(ValueError, match="the `per_sample_weights` of bag 1 sum to zero: its weighted mean is undefined"):
        EmbeddingBag(5, 2, mode="mean")(ids, [0, 2], np.array([1.0, 1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="pass either `offsets` \\(1-D ids\\) or `mask` \\(padded 2-D ids\\), not both"):
        bag(ids.reshape(2, 2), offsets=[0], mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match=r"`mask` must have the shape of 2-D `ids` \(2, 2\); got \(2, 3\)"):
        bag(ids.reshape(2, 2), mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"`mode` must be one of \['max', 'mean', 'min', 'sqrtn', 'sum'\] \(or a sequence of them\); got 'median'"):
        EmbeddingBag(5, 2, mode="median")
    with pytest.raises(ValueError, match="`mode` lists a mode twice"):
        EmbeddingBag(5, 2, mode=("sum", "sum"))
    with pytest.raises(ValueError, match="EmbeddingBag supports max_norm_mode='renorm' only"):
        EmbeddingBag(5, 2, max_norm=1.0, max_norm_mode="clip")
    with pytest.raises(RuntimeError, match="EmbeddingBag.backward called before forward"):
        EmbeddingBag(5, 2).backward(np.ones((1, 2)))
    bag(ids, [0, 2])
    with pytest.raises(ValueError, match=r"`grad_output` must have shape \(2, 2\); got \(2, 3\)"):
        bag.backward(np.ones((2, 3)))


def test_sqrtn_zero_weights_large_and_tiny_weights():
    bag = EmbeddingBag(5, 2, mode="sqrtn", init=np.ones((5, 2)))
    with pytest.raises(ValueError, match="the `per_sample_weights` of bag 0 squares sum to zero: its weighted sqrtn is undefined"):
        bag(np.array([[1, 2], [3, 4]]), per_sample_weights=np.array([[0, 0], [1, 1]], np.float32))
    for scale in (1e20, 1e-23):  # squares summed in float64: no overflow, no underflow
        out = bag(np.array([[1, 2]]), per_sample_weights=np.array([[scale, scale]], np.float32))
        np.testing.assert_allclose(out, np.sqrt(2), rtol=1e-6)
    with pytest.raises(ValueError, match="`per_sample_weights` must be finite in the table's dtype float32"):
        bag(np.array([[1, 2]]), per_sample_weights=np.array([[1e300, 1.0]]))


def test_mask_with_weights_returns_full_shaped_weight_gradient_and_ignores_filler(rng):
    bag = EmbeddingBag(6, 3, mode="sum", rng=0, dtype=np.float64)
    ids = np.array([[1, 2], [3, -1]])  # -1 is filler under the mask, never checked
    w = np.array([[1.0, np.nan], [2.0, np.nan]])  # so are the filler weights
    mask = np.array([[True, False], [True, False]])
    out = bag(ids, per_sample_weights=w, mask=mask)
    gw = bag.backward(np.ones_like(out))
    assert gw.shape == (2, 2) and gw[0, 1] == 0 and gw[1, 1] == 0
    np.testing.assert_allclose(gw[0, 0], bag.weight.data[1].sum())


def test_failed_forward_leaves_nothing_for_backward():
    bag = EmbeddingBag(4, 2, mode="sum")
    bag(np.array([[1, 2]]))
    with pytest.raises(IndexError):
        bag(np.array([[1, 9]]))
    with pytest.raises(RuntimeError, match="EmbeddingBag.backward called before forward"):
        bag.backward(np.ones((1, 2)))
    with pytest.raises(ValueError, match="`ids` must be a rectangular array; ragged nested lists are not"):
        bag([[1, 2], [3]])
    with pytest.raises(TypeError, match=r"`mode` must be a mode name or a sequence of them, e.g. \('mean', 'max'\); got None"):
        EmbeddingBag(3, 2, mode=None)


def test_scale_grad_by_freq_counts_over_all_ids_of_the_call():
    bag = EmbeddingBag(4, 2, mode="sum", scale_grad_by_freq=True, init=np.ones((4, 2)))
    out = bag(np.array([2, 1, 1, 1]), offsets=[0, 2])
    bag.backward(np.ones_like(out))
    assert bag.weight.grad.indices.tolist() == [1, 2]
    assert bag.weight.grad.values[:, 0].tolist() == [1.0, 1.0]  # 3 occurrences / 3, 1 occurrence / 1


def test_ids_outside_every_bag_are_still_checked_and_odd_id_arrays_agree_with_the_general_path():
    """No bags at all (``offsets=[]``, or only the end with include_last_offset) leave every id
    outside a bag: they are range-checked all the same, and backward runs; big-endian ids and
    np.matrix ids give what a list gives."""
    w = np.arange(50 * 5, dtype=np.float64).reshape(50, 5)
    bag = EmbeddingBag.from_pretrained(w, freeze=False, mode="sum", dtype=np.float64)
    ids = np.array([3, 1, 10**9, -5])
    for offs, last in (([], False), ([4], True)):
        with pytest.raises(IndexError, match=r"`ids` must be in \[0, 50\); got 1000000000 at position 2\."):
            bag(ids, offs, include_last_offset=last)
        out = bag(np.array([3, 1, 0, 4]), offs, include_last_offset=last)
        assert out.shape == (0, 5)
        bag.backward(np.zeros((0, 5)))
        np.testing.assert_array_equal(bag.weight.grad.indices, [])
        bag.weight.grad = None
        bag(np.array([3, 1, 0, 4]), offs, np.full(4, 2.0), include_last_offset=last)  # the general path
        np.testing.assert_array_equal(bag.backward(np.zeros((0, 5))), np.zeros(4))
        np.testing.assert_array_equal(bag.weight.grad.indices, [])
        bag.weight.grad = None
    plain = np.array([[1, 2, 3], [4, 5, 6]])
    want = w[plain].sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix's own warning
        matrix = np.matrix(plain)
    for given in (plain.astype(">i4"), plain.astype(">i8"), matrix):
        np.testing.assert_array_equal(bag(given), want)
        bag.backward(np.ones((2, 5)))
        np.testing.assert_array_equal(bag.weight.grad.indices, [1, 2, 3, 4, 5, 6])
        bag.weight.grad = None
    np.testing.assert_array_equal(bag(np.array([1, 2, 3, 4], dtype=">i2"), [0, 2]), [w[1] + w[2], w[3] + w[4]])
    # donate is accepted and changes nothing (nothing of the gradient is kept)
    grads = []
    for donate in (False, True):
        g = np.ones((2, 5))
        bag(plain)
        bag.backward(g, donate=donate)
        g[:] = 7.0
        grads.append(bag.weight.grad.to_dense())
        bag.weight.grad = None
    np.testing.assert_array_equal(grads[0], grads[1])
    with pytest.raises(TypeError, match=r"`donate` must be True or False; got 'yes'\."):
        bag.backward(np.ones((2, 5)), donate="yes")
    emb = bag.embedding
    for given in (plain.astype(">i4"), matrix):
        np.testing.assert_array_equal(emb(given), w[plain])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16])
@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_the_one_pass_forward_keeps_its_own_ids_and_agrees_with_the_general_path(rng, dtype, mode):
    """Unweighted sum/mean of in-range integer ids range-check and copy the ids inside the kernel:
    the result, the gradient and the errors are the general path's, and ids changed by the caller
    after forward do not change backward."""
    w = rng.standard_normal((40, 8))
    ids = rng.integers(0, 40, size=30).astype(dtype)
    ids[[4, 17]] = 2  # the padding id
    offs = np.array([0, 0, 9, 21])
    g = rng.standard_normal((4, 8))
    results = []
    for weights in (None, np.ones(30)):  # with weights: the general path
        bag = EmbeddingBag.from_pretrained(w, freeze=False, mode=mode, padding_idx=2, dtype=np.float64)
        given = ids.copy()
        out = bag(given, offs, weights)
        given[:] = 39  # the caller reuses its id buffer
        bag.backward(g)
        results.append((out, bag.weight.grad.to_dense()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)
    two_d = EmbeddingBag.from_pretrained(w, mode=mode, dtype=np.float64)(ids[:30].reshape(5, 6))
    np.testing.assert_allclose(two_d, w[ids.reshape(5, 6).astype(np.int64)].sum(1) / (6 if mode == "mean" else 1), rtol=1e-12)
    bad = ids.copy()
    bad[25] = 40
    with pytest.raises(IndexError, match=r"`ids` must be in \[0, 40\); got 40 at position 25\."):
        EmbeddingBag.from_pretrained(w, mode=mode)(bad, offs)
    if np.dtype(dtype).kind == "i":
        bad[25] = -3
        with pytest.raises(IndexError, match=r"`ids` must be in \[0, 40\); got -3 at position 25\."):
            EmbeddingBag.from_pretrained(w, mode=mode)(bad, offs)
    # an offsets error comes after an id error, as on the general path
    with pytest.raises(IndexError, match=r"got -?\d+ at position 25"):
        EmbeddingBag.from_pretrained(w, mode=mode)(bad, [0, 31])
