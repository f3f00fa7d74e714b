import numpy as np
import pytest

import npembed
from npembed import Embedding, RowSparseGrad
from npembed import init as I

from .conftest import torch_or_skip
from .gradcheck import assert_grad_close, numerical_grad


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), ()])
def test_forward_returns_ids_shape_plus_embedding_dim(shape, rng):
    emb = Embedding(20, 6, rng=0)
    ids = rng.integers(0, 20, size=shape)
    out = emb(ids)
    assert out.shape == tuple(shape) + (6,)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, emb.weight.data[ids])


def test_forward_accepts_lists_and_empty_ids():
    emb = Embedding(4, 2)
    assert emb([[1, 2], [3, 0]]).shape == (2, 2, 2)
    assert emb([]).shape == (0, 2)
    assert emb(np.zeros((0, 5), dtype=np.int32)).shape == (0, 5, 2)


def test_batch_seq_to_batch_seq_dim():
    emb = Embedding(1000, 32, rng=1)
    ids = np.random.default_rng(0).integers(0, 1000, size=(8, 50))
    assert emb(ids).shape == (8, 50, 32)


def test_backward_accumulates_repeated_ids():
    emb = Embedding(6, 2, rng=0)
    ids = np.array([[1, 1, 4], [1, 5, 4]])
    out = emb(ids)
    g = np.arange(12, dtype=np.float32).reshape(out.shape)
    emb.backward(g)
    grad = emb.weight.grad
    assert isinstance(grad, RowSparseGrad)
    assert grad.indices.tolist() == [1, 4, 5]
    np.testing.assert_array_equal(grad.values, [g[0, 0] + g[0, 1] + g[1, 0], g[0, 2] + g[1, 2], g[1, 1]])
    assert grad.values.shape == (3, 2)  # only the touched rows: no num_embeddings x dim array


def test_backward_twice_accumulates():
    emb = Embedding(5, 3, rng=0)
    emb([0, 2])
    emb.backward(np.ones((2, 3), np.float32))
    emb([2, 3])
    emb.backward(np.ones((2, 3), np.float32))
    dense = emb.weight.grad.to_dense()
    np.testing.assert_array_equal(dense[:, 0], [1, 0, 2, 1, 0])


def test_padding_row_starts_at_zero_and_gets_no_gradient():
    emb = Embedding(5, 3, padding_idx=2, rng=0)
    np.testing.assert_array_equal(emb.weight.data[2], 0)
    out = emb([[2, 1, 2]])
    np.testing.assert_array_equal(out[0, 0], 0)
    emb.backward(np.ones_like(out))
    assert emb.weight.grad.indices.tolist() == [1]


def test_negative_padding_idx_counts_from_the_end():
    emb = Embedding(5, 3, padding_idx=-1)
    assert emb.padding_idx == 4
    np.testing.assert_array_equal(emb.weight.data[4], 0)


@pytest.mark.parametrize("padding_idx", [None, 0, 3])
def test_gradient_matches_finite_differences(padding_idx, rng):
    emb = Embedding(5, 3, padding_idx=padding_idx, rng=0, dtype=np.float64)
    ids = np.array([[0, 3, 3], [1, 0, 3]])  # repeated ids and, where set, the padding id
    probe = rng.standard_normal(ids.shape + (3,))

    def loss():
        return float((emb(ids) * probe).sum())

    emb(ids)
    emb.backward(probe)
    analytic = emb.weight.grad.to_dense()
    numeric = numerical_grad(loss, emb.weight.data)
    if padding_idx is not None:
        # The padding row is a constant: its true effect is masked out, never learned.
        numeric[padding_idx] = 0
    assert_grad_close(analytic, numeric)


def test_float_and_bool_ids_are_type_errors():
    emb = Embedding(5, 2)
    with pytest.raises(TypeError, match=r"`ids` must be integers; got dtype float64\. Cast with ids.astype"):
        emb(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"`ids` must be integers; got dtype bool\. Convert a mask"):
        emb(np.array([True, False]))
    with pytest.raises(TypeError, match=r"`ids` must be integers; got a bool"):
        emb(True)


def test_out_of_range_id_names_position_value_and_range():
    emb = Embedding(10, 2)
    with pytest.raises(IndexError, match=r"`ids` must be in \[0, 10\); got 10 at position \(1, 2\)\. Was the data encoded"):
        emb(np.array([[1, 2, 3], [4, 5, 10]]))


def test_negative_id_is_refused_not_wrapped():
    emb = Embedding(10, 2)
    with pytest.raises(IndexError, match=r"got -1 at position 2\."):
        emb(np.array([0, 1, -1]))
    with pytest.raises(IndexError, match=r"got 9223372036854775807 at position 0"):
        emb(np.array([2**63 - 1]))


def test_backward_errors():
    emb = Embedding(4, 2)
    with pytest.raises(RuntimeError, match="Embedding.backward called before forward"):
        emb.backward(np.ones((1, 2)))
    emb([1, 2])
    with pytest.raises(ValueError, match=r"`grad_output` must have shape \(2, 2\) \(ids.shape \+ \(embedding_dim,\)\); got \(3, 2\)"):
        emb.backward(np.ones((3, 2)))


def test_constructor_errors():
    with pytest.raises(ValueError, match="`num_embeddings` must be a positive integer; got 0"):
        Embedding(0, 3)
    with pytest.raises(TypeError, match="`embedding_dim` must be a positive integer; got 2.5"):
        Embedding(3, 2.5)
    with pytest.raises(ValueError, match=r"`padding_idx` must be in \[-3, 3\) \(negative counts from the end\); got 3"):
        Embedding(3, 2, padding_idx=3)
    with pytest.raises(TypeError, match="`padding_idx` must be an int or None; got 1.0"):
        Embedding(3, 2, padding_idx=1.0)
    with pytest.raises(ValueError, match=r"`init` must be one of \['glorot_uniform', 'normal'"):
        Embedding(3, 2, init="kaiming")
    with pytest.raises(TypeError, match="`dtype` must be float32 or float64; got int64"):
        Embedding(3, 2, dtype=np.int64)
    with pytest.raises(ValueError, match=r"`init` array must have shape \(3, 2\); got \(2, 3\)"):
        Embedding(3, 2, init=np.zeros((2, 3)))
    with pytest.raises(TypeError, match="`rng` must be a np.random.Generator, an int seed or None; got str"):
        Embedding(3, 2, rng="seed")


def test_bad_initialiser_output_and_dtypes_are_refused():
    with pytest.raises(ValueError, match=r"the `init` callable must return an array of shape \(1000, 3\); got \(2, 3\)"):
        Embedding(1000, 3, init=lambda s, r, d: np.zeros((2, 3), d))
    with pytest.raises(ValueError, match=r"the `init` callable must return an array of shape \(4, 3\); got NoneType"):
        Embedding(4, 3, init=lambda s, r, d: None)
    with pytest.raises(ValueError, match="the `init` callable returned NaN or infinite values"):
        Embedding(4, 3, init=lambda s, r, d: np.full(s, np.nan))
    with pytest.raises(ValueError, match=r"`init` array must be finite; got nan at position \(0, 1\)"):
        Embedding(2, 2, init=np.array([[0.0, np.nan], [1.0, 1.0]]))
    for dt in (np.float16, np.longdouble, "U3"):
        with pytest.raises(TypeError, match="`dtype` must be float32 or float64"):
            Embedding(5, 3, dtype=dt)
    with pytest.raises(TypeError, match="`matrix` has dtype float16; npembed computes in float32 or float64. Pass dtype=np.float32"):
        Embedding.from_pretrained(np.ones((2, 2), np.float16))
    big_endian = np.arange(6, dtype=">f8").reshape(3, 2)
    emb = Embedding.from_pretrained(big_endian)
    np.testing.assert_array_equal(emb([2]), [[4.0, 5.0]])
    with pytest.raises(TypeError, match="`matrix` must hold floats; got dtype <U1"):
        Embedding.from_pretrained(np.array([["a", "b"]]), dtype=np.float32)
    with pytest.raises(ValueError, match=r"`matrix` must have at least one row and one column; got shape \(0, 4\)"):
        Embedding.from_pretrained(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="`rng` as a seed must be a non-negative integer; got -1"):
        Embedding(3, 2, rng=-1)
    with pytest.raises(TypeError, match="`std` must be a number; got '1'"):
        I.normal(0, "1")


def test_init_array_zeroes_the_padding_row_but_from_pretrained_keeps_it():
    m = np.ones((3, 2), dtype=np.float32)
    assert not Embedding(3, 2, init=m, padding_idx=1).weight.data[1].any()
    assert Embedding.from_pretrained(m, padding_idx=1).weight.data[1].tolist() == [1.0, 1.0]
    emb = Embedding.from_pretrained(m, padding_idx=1, freeze=False)
    emb.weight.data[...] = 5
    emb.reset_parameters()  # back to the given matrix, padding row included
    assert emb.weight.data.tolist() == m.tolist()


def test_python_ints_beyond_int64_are_out_of_range_not_a_type_error():
    with pytest.raises(IndexError, match=r"`ids` must be in \[0, 5\); got 18446744073709551616 at position 1"):
        Embedding(5, 2)(np.array([1, 2**64], dtype=object))


def test_initialisers_are_seeded_and_have_their_statistics():
    a = Embedding(2000, 50, rng=7).weight.data
    b = Embedding(2000, 50, rng=7).weight.data
    c = Embedding(2000, 50, rng=8).weight.data
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01  # default: N(0, 1) as PyTorch
    u = Embedding(2000, 50, init=I.uniform(-0.2, 0.3), rng=0).weight.data
    assert u.min() >= -0.2 and u.max() < 0.3 and abs(u.mean() - 0.05) < 0.01
    assert Embedding(10, 4, init="uniform").weight.data.max() <= 0.05
    x = Embedding(200, 100, init="xavier_uniform").weight.data
    bound = np.sqrt(6 / 300)
    assert x.max() <= bound and x.min() >= -bound and x.max() > 0.95 * bound
    assert not Embedding(10, 4, init="zeros").weight.data.any()
    n = Embedding(1000, 100, init=I.normal(2.0, 0.5), dtype=np.float64).weight.data
    assert n.dtype == np.float64 and abs(n.mean() - 2) < 0.01 and abs(n.std() - 0.5) < 0.01
    m = np.arange(6, dtype=np.float32).reshape(3, 2)
    e = Embedding(3, 2, init=m)
    m[0, 0] = 99  # the layer holds a copy
    assert e.weight.data[0, 0] == 0


def test_from_pretrained_freezes_and_keeps_padding_row():
    m = np.arange(12, dtype=np.float32).reshape(4, 3)
    emb = Embedding.from_pretrained(m, padding_idx=1)
    np.testing.assert_array_equal(emb.weight.data, m)  # the padding row keeps its given values
    assert not emb.weight.requires_grad
    out = emb([1, 2])
    emb.backward(np.ones_like(out))
    assert emb.weight.grad is None
    trainable = Embedding.from_pretrained(m, freeze=False)
    trainable([3])
    trainable.backward(np.ones((1, 3)))
    assert trainable.weight.grad.indices.tolist() == [3]
    assert repr(emb) == "Embedding(4, 3, padding_idx=1, freeze=True)"


def test_from_pretrained_errors():
    with pytest.raises(ValueError, match=r"`matrix` must be 2-D \(num_embeddings, embedding_dim\); got shape \(3,\)"):
        Embedding.from_pretrained(np.zeros(3))
    with pytest.raises(TypeError, match="`matrix` must hold floats; got dtype int64. Pass dtype=np.float32"):
        Embedding.from_pretrained(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"`matrix` must be finite; got nan at position \(1, 0\)"):
        Embedding.from_pretrained(np.array([[0.0, 1.0], [np.nan, 2.0]]))


def test_layer_contract():
    emb = Embedding(3, 2)
    assert emb.parameters() == [emb.weight]
    assert emb.backward is not None and callable(emb)


def test_matches_torch_forward_and_gradient(rng):
    torch = torch_or_skip()
    for dtype, tdtype, atol in ((np.float32, torch.float32, 1e-6), (np.float64, torch.float64, 1e-12)):
        for padding_idx in (None, 0, 7):
            w = rng.standard_normal((12, 5)).astype(dtype)
            ids = rng.integers(0, 12, size=(6, 9))
            ids[0, :3] = 7  # repeats (and the padding id where set)
            probe = rng.standard_normal((6, 9, 5)).astype(dtype)
            emb = Embedding.from_pretrained(w, freeze=False, padding_idx=padding_idx)
            out = emb(ids)
            emb.backward(probe)
            t = torch.nn.Embedding.from_pretrained(torch.tensor(w, dtype=tdtype), freeze=False, padding_idx=padding_idx)
            tout = t(torch.tensor(ids))
            (tout * torch.tensor(probe)).sum().backward()
            np.testing.assert_allclose(out, tout.detach().numpy(), atol=atol, rtol=0)
            np.testing.assert_allclose(emb.weight.grad.to_dense(), t.weight.grad.numpy(), atol=atol, rtol=0)


def test_exported_names():
    for name in ("Embedding", "RowSparseGrad", "Parameter", "SGD", "Adam", "MeanPool", "Linear", "SoftmaxCrossEntropy", "load_model"):
        assert hasattr(npembed, name), name
