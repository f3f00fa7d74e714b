"""Each compiled kernel against a plain NumPy or loop reference, serial and parallel paths alike."""

import numpy as np
import pytest

from npembed import kernels


@pytest.fixture(params=["serial", "parallel"])
def path(request, monkeypatch):
    monkeypatch.setattr(kernels, "PARALLEL_MIN_WORK", 1 << 62 if request.param == "serial" else 0)
    return request.param


def test_gather_rows_matches_fancy_indexing(rng, path):
    w = rng.standard_normal((50, 7)).astype(np.float32)
    ids = rng.integers(0, 50, size=333)
    np.testing.assert_array_equal(kernels.gather_rows(w, ids), w[ids])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16])
def test_gather_checked_gathers_copies_and_flags(rng, path, dtype):
    w = rng.standard_normal((50, 7)).astype(np.float32)
    ids = rng.integers(0, 50, size=333).astype(dtype)
    out, flat = kernels.gather_checked(w, ids)
    np.testing.assert_array_equal(out, w[ids])
    assert flat.dtype == np.int64 and flat.tolist() == ids.tolist()
    ids[5] = 50  # one past the end
    assert kernels.gather_checked(w, ids) is None
    if dtype != np.uint16:
        ids[5] = -1
        assert kernels.gather_checked(w, ids) is None


def test_embedding_keeps_its_own_copy_of_the_ids(rng):
    from npembed import Embedding

    emb = Embedding(10, 3, rng=0)
    ids = np.array([[1, 2], [3, 1]], dtype=np.int32)
    emb(ids)
    ids[:] = 9  # the caller reuses its buffer before backward
    emb.backward(np.ones((2, 2, 3), np.float32))
    assert emb.weight.grad.indices.tolist() == [1, 2, 3]
    assert emb.weight.grad.values[0].tolist() == [2.0, 2.0, 2.0]


def test_gather_rows_empty(rng, path):
    w = rng.standard_normal((5, 3)).astype(np.float32)
    assert kernels.gather_rows(w, np.empty(0, np.int64)).shape == (0, 3)


def _coalesce_reference(ids, rows, skip):
    out = {}
    for i, r in zip(ids, rows):
        if i == skip:
            continue
        out[int(i)] = out.get(int(i), 0) + r.astype(np.float64)
    keys = sorted(out)
    return np.array(keys, dtype=np.int64), np.array([out[k] for k in keys]).reshape(len(keys), rows.shape[1])


def _coalesce_in_order(ids, rows, skip=-1, frozen=None):
    """The loop reference, adding each id's rows in input order in the rows' own dtype: the
    kernel must give exactly these bits."""
    out = {}
    for i, r in zip(ids.tolist(), rows):
        if i == skip or (frozen is not None and frozen[i]):
            continue
        out[i] = r.copy() if i not in out else out[i] + r
    keys = sorted(out)
    return np.array(keys, dtype=np.int64), np.array([out[k] for k in keys], dtype=rows.dtype).reshape(len(keys), rows.shape[1])


def test_coalesce_rows_sums_repeated_ids_and_skips_padding(rng, path):
    ids = rng.integers(0, 9, size=200)
    rows = rng.standard_normal((200, 4))
    uniq, summed = kernels.coalesce_rows(ids, rows, skip=3)
    ref_u, ref_s = _coalesce_reference(ids, rows, 3)
    np.testing.assert_array_equal(uniq, ref_u)
    np.testing.assert_allclose(summed, ref_s, rtol=1e-12, atol=1e-12)
    assert 3 not in uniq


@pytest.mark.parametrize("n, num_rows", [(0, 5), (1, 1), (7, 3), (32, 1000), (33, 2), (500, 70), (5000, 1 << 20), (3000, 1 << 40)])
def test_coalesce_rows_adds_in_input_order_to_the_bit(rng, path, n, num_rows):
    """Radix-sorted groups, every size and id width: same ids, counts and bits as the loop."""
    hi = min(num_rows, max(n // 3, 1)) if n > 100 and num_rows < 100 else num_rows
    ids = rng.integers(0, hi, size=n)
    if n > 10:
        ids[: n // 4] = ids[n // 4 : 2 * (n // 4)]  # plenty of repeats, also for wide ids
    rows = rng.standard_normal((n, 5)).astype(np.float32)
    frozen = np.zeros(max(num_rows, 1), dtype=bool) if num_rows <= 1 << 20 else None
    if frozen is not None and n:
        frozen[ids[-1]] = True
    skip = int(ids[0]) if n else -1
    uniq, summed, counts = kernels.coalesce_rows(ids, rows, skip=skip, frozen=frozen, return_counts=True, num_rows=num_rows)
    ref_u, ref_s = _coalesce_in_order(ids, rows, skip, frozen)
    np.testing.assert_array_equal(uniq, ref_u)
    np.testing.assert_array_equal(summed, ref_s)
    kept = np.array([i for i in ids.tolist() if i != skip and (frozen is None or not frozen[i])], dtype=np.int64)
    assert counts.tolist() == [int((kept == u).sum()) for u in uniq]


@pytest.mark.parametrize("n", [0, 1, 5, 32, 33, 1000, 20000])
@pytest.mark.parametrize("nbits", [1, 7, 11, 12, 20, 33, 62])
def test_stable_argsort_matches_numpy(rng, n, nbits):
    keys = rng.integers(0, 1 << nbits, size=n, dtype=np.int64)
    if n > 4:
        keys[::3] = keys[0]  # ties: their input order must be kept
    np.testing.assert_array_equal(kernels._stable_argsort(keys, nbits), np.argsort(keys, kind="stable"))


def test_coalesce_rows_is_exact_for_repeated_integers():
    # Every repeat must land: 1000 copies of the same id sum to exactly 1000.
    ids = np.zeros(1000, dtype=np.int64)
    rows = np.ones((1000, 2), dtype=np.float32)
    uniq, summed = kernels.coalesce_rows(ids, rows)
    assert uniq.tolist() == [0]
    assert summed.tolist() == [[1000.0, 1000.0]]


def test_coalesce_rows_all_skipped():
    uniq, summed = kernels.coalesce_rows(np.array([2, 2]), np.ones((2, 3)), skip=2)
    assert uniq.shape == (0,) and summed.shape == (0, 3)


def test_masked_mean_and_backward_match_reference(rng, path):
    x = rng.standard_normal((6, 5, 3))
    mask = rng.random((6, 5)) < 0.6
    mask[2] = False  # an empty row pools to zeros
    out, counts = kernels.masked_mean(x, mask)
    ref = np.zeros((6, 3))
    for b in range(6):
        if mask[b].any():
            ref[b] = x[b][mask[b]].mean(axis=0)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    assert counts.tolist() == mask.sum(1).tolist()
    g = rng.standard_normal((6, 3))
    gx = kernels.masked_mean_backward(g, mask, counts)
    ref_gx = np.where(mask[..., None], g[:, None, :] / np.maximum(counts, 1)[:, None, None], 0.0)
    np.testing.assert_allclose(gx, ref_gx, rtol=1e-12)


def test_sgd_rows(rng, path):
    w = rng.standard_normal((10, 4))
    ref = w.copy()
    idx = np.array([1, 4, 7])
    rows = rng.standard_normal((3, 4))
    kernels.sgd_rows(w, idx, rows, 0.5)
    ref[idx] -= 0.5 * rows
    np.testing.assert_allclose(w, ref, rtol=1e-15)


def test_adam_rows_touches_only_given_rows(rng, path):
    w = rng.standard_normal((10, 4))
    m = rng.standard_normal((10, 4)) * 0.1
    v = rng.random((10, 4)) * 0.1
    w0, m0, v0 = w.copy(), m.copy(), v.copy()
    idx = np.array([0, 5])
    g = rng.standard_normal((2, 4))
    kernels.adam_rows(w, m, v, idx, g, 0.9, 0.999, 1e-8, 0.01)
    em = m0[idx] + (g - m0[idx]) * 0.1
    ev = v0[idx] + (g * g - v0[idx]) * 0.001
    np.testing.assert_allclose(m[idx], em, rtol=1e-12)
    np.testing.assert_allclose(v[idx], ev, rtol=1e-12)
    np.testing.assert_allclose(w[idx], w0[idx] - 0.01 * em / (np.sqrt(ev) + 1e-8), rtol=1e-12)
    others = np.setdiff1d(np.arange(10), idx)
    np.testing.assert_array_equal(w[others], w0[others])
    np.testing.assert_array_equal(m[others], m0[others])


def test_serial_and_parallel_give_the_same_bits(rng, monkeypatch):
    w = rng.standard_normal((300, 16)).astype(np.float32)
    ids = rng.integers(0, 300, size=(64, 9))
    x = kernels.gather_rows(w, ids.ravel()).reshape(64, 9, 16)
    mask = rng.random((64, 9)) < 0.7
    results = []
    for threshold in (1 << 62, 0):
        monkeypatch.setattr(kernels, "PARALLEL_MIN_WORK", threshold)
        out, counts = kernels.masked_mean(x, mask)
        back = kernels.masked_mean_backward(out, mask, counts)
        results.append((kernels.gather_rows(w, ids.ravel()), out, back))
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


def test_ordered_pairs_lists_every_ordered_pair_inside_baskets():
    flat = np.array([3, 1, 2, 5, 4])
    offsets = np.array([0, 3, 3, 5])  # baskets [3,1,2], [], [5,4]
    keys = kernels.ordered_pairs(flat, offsets, 10)
    expected = sorted(a * 10 + b for basket in ([3, 1, 2], [5, 4]) for a in basket for b in basket if a != b)
    assert sorted(keys.tolist()) == expected


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: __import__("npembed").Adagrad(ps, lr=0.1),
        lambda ps: __import__("npembed").Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5),
        lambda ps: __import__("npembed").RowWiseAdagrad(ps, lr=0.1, weight_decay=0.05),
        lambda ps: __import__("npembed").SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: __import__("npembed").SGD(ps, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
        lambda ps: __import__("npembed").SGD(ps, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01),
    ],
)
def test_fused_row_updates_match_the_rule(path, make, monkeypatch):
    """Fused Adagrad / momentum kernels give what the optimizer's own array rule gives on the same
    rows, with per-row learning-rate scales and repeated ids, over several steps."""
    from npembed import Optimizer, Parameter, RowSparseGrad

    def run(fused):
        p = Parameter(np.linspace(-1, 1, 40 * 6).reshape(40, 6))
        opt = make([p])
        with monkeypatch.context() as mp:
            if not fused:
                mp.setattr(type(opt), "_lazy_rows", Optimizer._lazy_rows)
            r = np.random.default_rng(1)
            for step in range(4):
                ids = r.integers(0, 40, size=30)
                scale = r.choice([0.5, 1.0, 2.0], size=40)
                p.grad = RowSparseGrad.from_rows(ids, r.standard_normal((30, 6)), (40, 6), lr_scale=scale)
                opt.step()
        return p.data, opt.state[0]

    w_fused, s_fused = run(True)
    w_rule, s_rule = run(False)
    np.testing.assert_allclose(w_fused, w_rule, rtol=1e-12, atol=1e-14)
    for k in s_rule:
        if isinstance(s_rule[k], np.ndarray):
            np.testing.assert_allclose(s_fused[k], s_rule[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls, kw", [
    ("Adam", {}), ("Adam", dict(weight_decay=0.1)), ("AdamW", dict(weight_decay=0.3)),
    ("SGD", dict(momentum=0.9)), ("SGD", dict(momentum=0.8, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.02)), ("SGD", dict(weight_decay=0.1)),
    ("Adagrad", dict(weight_decay=0.1, lr_decay=0.01)),
])
def test_compiled_replay_gives_the_python_replays_bits(path, cls, kw, monkeypatch):
    """Exact mode's compiled replays of idle steps against the generic replay (each rule's own
    array code, a loop over steps): same bits, float32, with a schedule and per-row lr scales."""
    import npembed
    from npembed import Optimizer

    def run(compiled):
        emb = npembed.Embedding(60, 5, rng=0)
        emb.set_lr_scale(np.arange(10), 0.5)
        emb.freeze_rows([11, 12])
        opt = getattr(npembed, cls)(emb.parameters(), lr=0.01, sparse_mode="exact", **kw)
        r = np.random.default_rng(3)
        with monkeypatch.context() as mp:
            if not compiled:
                mp.setattr(type(opt), "_replay", Optimizer._replay)
            for step in range(40):
                opt.lr = 0.01 * (1 - step / 50)
                ids = r.integers(0, 60, size=(4, 3))
                out = emb(ids)
                emb.backward(np.sin(out))
                opt.step()
                opt.zero_grad()
            opt.catch_up()
        return emb.weight.data.copy(), opt.state[0]

    w_c, s_c = run(True)
    w_p, s_p = run(False)
    np.testing.assert_array_equal(w_c, w_p)
    for k in s_p:
        if isinstance(s_p[k], np.ndarray):
            np.testing.assert_array_equal(s_c[k], s_p[k])


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_unweighted_bag_kernel_matches_the_general_one(rng, path, mode):
    from npembed.kernels.bag import bag_forward

    w = rng.standard_normal((30, 40)).astype(np.float32)  # rows of 160 bytes: the prefetching path
    ids = rng.integers(0, 30, size=200)
    ids[[3, 50, 51]] = 7  # the skipped (padding) id
    ids[[10, 11]] = -1  # invalid ids under invalid_ids="zero"
    offs = np.array([0, 0, 5, 50, 52, 120, 200])  # with an empty bag
    plain = bag_forward(w, ids, offs, None, mode, 7, 0.5)
    general = bag_forward(w, ids, offs, np.ones(200, np.float32), mode, 7, 0.5)
    # float32 sums in another order (the plain kernel adds eight or four rows, then the output row)
    np.testing.assert_allclose(plain[0], general[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(plain[2], general[2])  # weight sums (the mean's counts)
    np.testing.assert_array_equal(plain[3], general[3])
    assert plain[0][0].tolist() == [0.5] * 40  # the empty bag


@pytest.mark.parametrize("bad", [-1, 7])
def test_plain_bag_kernel_leaves_out_a_padding_or_invalid_id_at_any_position(rng, path, bad):
    """The unweighted kernel adds eight, four or one id at a time: a skipped id (padding 7, or -1
    under invalid_ids="zero") in any slot of any group is left out, and the bags around it whole."""
    from npembed.kernels.bag import bag_forward

    w = rng.standard_normal((30, 16)).astype(np.float32)
    base = rng.integers(8, 30, size=21)  # bags of 21: groups of 8, 8, 4 and a single id
    for p in range(21):
        ids = np.concatenate([base, base, base])
        ids[21 + p] = bad
        offs = np.array([0, 21, 42, 63])
        out, _, _, counts = bag_forward(w, ids, offs, None, "sum", 7, 0.0)
        keep = [i for i in range(21, 42) if i != 21 + p]
        np.testing.assert_allclose(out[1], w[ids[keep]].astype(np.float64).sum(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out[[0, 2]], np.tile(w[base].astype(np.float64).sum(0), (2, 1)), rtol=1e-5, atol=1e-5)
        assert counts.tolist() == [21, 20, 21]


def test_sgd_scatter_adds_every_row_in_input_order(rng, path):
    w = rng.standard_normal((20, 6)).astype(np.float32)
    ids = rng.integers(-1, 20, size=300)  # -1: an invalid id looked up as zero, no gradient
    rows = rng.standard_normal((300, 6)).astype(np.float32)
    frozen = np.zeros(20, dtype=bool)
    frozen[4] = True
    scale = rng.choice([0.5, 1.0, 2.0], size=20).astype(np.float32)
    ref = w.copy()
    for i, r in enumerate(ids.tolist()):
        if r >= 0 and r != 7 and not frozen[r]:
            ref[r] -= np.float32(0.1) * scale[r] * rows[i]
    got = w.copy()
    kernels.sgd_scatter(got, ids, rows, 0.1, skip=7, frozen=frozen, lr_scale=scale)
    np.testing.assert_array_equal(got, ref)


def test_plain_sgd_uses_the_scatter_and_matches_summing_first(rng):
    """The fused path (rows added in order) and the summed gradient agree to rounding."""
    import npembed

    def run(fused):
        emb = npembed.Embedding(50, 4, padding_idx=0, rng=0)
        opt = npembed.SGD(emb.parameters(), lr=0.1)
        r = np.random.default_rng(2)
        for _ in range(5):
            ids = r.integers(0, 50, size=(8, 6))
            emb(ids)
            emb.backward(r.standard_normal((8, 6, 4)).astype(np.float32))
            if not fused:
                emb.weight.grad.indices  # reading the gradient sums it first
            assert (emb.weight.grad.raw_rows() is not None) == fused
            opt.step()
            opt.zero_grad()
        return emb.weight.data

    np.testing.assert_allclose(run(True), run(False), rtol=1e-5, atol=1e-6)


def test_a_reused_gradient_buffer_does_not_change_the_stored_gradient():
    import npembed

    for opt_cls in (npembed.SGD, npembed.Adam):
        emb = npembed.Embedding(10, 3, rng=0)
        before = emb.weight.data.copy()
        opt = opt_cls(emb.parameters(), lr=0.1)
        g = np.ones((4, 3), np.float32)
        emb(np.array([1, 2, 2, 5]))
        emb.backward(g)
        g[:] = 1000.0  # the caller reuses its buffer before the step
        opt.step()
        assert np.abs(emb.weight.data - before).max() < 0.25


def test_donated_gradient_is_kept_uncopied_and_never_written():
    import npembed

    ids = np.array([[1, 2], [2, 5]])
    g = np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 10
    for opt_cls, kw in [(npembed.SGD, {}), (npembed.SGD, {"momentum": 0.9}), (npembed.Adam, {}),
                        (npembed.Adam, {"weight_decay": 0.1}), (npembed.AdamW, {}), (npembed.Adagrad, {}),
                        (npembed.RowWiseAdagrad, {}), (npembed.Adam, {"sparse_mode": "exact"})]:
        tables = []
        for donate in (False, True):
            emb = npembed.Embedding(10, 3, rng=0)
            opt = opt_cls(emb.parameters(), lr=0.1, **kw)
            given = g.copy()
            for _ in range(3):
                emb(ids)
                emb.backward(given, donate=donate)
                raw = emb.weight.grad.raw_rows()  # None: summed at once (nothing of `given` kept)
                if donate:
                    assert np.shares_memory(raw[1], given)  # donated: kept as given, no copy
                else:
                    assert raw is None or not np.shares_memory(raw[1], given)
                opt.step()
                opt.zero_grad()
            np.testing.assert_array_equal(given, g)  # npembed never writes into the caller's gradient
            tables.append(emb.weight.data.copy())
        np.testing.assert_array_equal(tables[0], tables[1])  # the same bits either way


@pytest.mark.parametrize("dim", [3, 64])
def test_a_gradient_that_may_not_be_kept_is_summed_at_once_unless_an_sgd_may_read_its_rows(rng, dim):
    """Without donate, the caller's rows are not kept: an SGD (plain SGD adds one row per
    position, and momentum or weight decay may be set to 0 before its step) gets a copy, every
    other optimizer the rows summed per id during backward (no copy). The step's bits are those
    of the donated rows in every case."""
    import npembed

    ids = np.array([[3, 1, 3], [0, 3, 7]])
    g = rng.standard_normal((2, 3, dim)).astype(np.float32)
    for opt_cls, kw, position_rows in [(npembed.SGD, {}, True), (npembed.SGD, {"momentum": 0.9}, True),
                                       (npembed.SGD, {"weight_decay": 0.1}, True), (npembed.Adam, {}, False),
                                       (npembed.AdamW, {}, False), (npembed.Adagrad, {}, False),
                                       (npembed.RowWiseAdagrad, {}, False)]:
        tables = []
        for donate in (False, True):
            emb = npembed.Embedding(10, dim, padding_idx=0, rng=0)
            emb.freeze_rows([7])
            opt = opt_cls(emb.parameters(), lr=0.1, **kw)
            given = g.copy()
            for step in range(2):
                emb(ids)
                emb.backward(given, donate=donate)
                grad = emb.weight.grad
                assert (grad.raw_rows() is None) == (not donate and not position_rows), (opt_cls, kw, donate)
                if not donate:
                    given[:] = 1000.0  # the caller reuses its buffer: the step must not see it
                opt.step()
                opt.zero_grad()
                given[:] = g
            tables.append(emb.weight.data.copy())
        np.testing.assert_array_equal(tables[0], tables[1])
    summed = npembed.Embedding(10, dim, padding_idx=0, rng=0)
    summed.freeze_rows([7])
    summed(ids)
    adam = npembed.Adam(summed.parameters(), lr=0.1)
    summed.backward(g)
    assert summed.weight.grad.raw_rows() is None and adam is not None
    np.testing.assert_array_equal(summed.weight.grad.indices, [1, 3])  # padding 0 and frozen 7 left out
    np.testing.assert_allclose(summed.weight.grad.values, [g[0, 1], g[0, 0] + g[0, 2] + g[1, 1]], rtol=1e-6)
    # the optimizers are asked at each backward; one that is gone no longer counts
    emb = npembed.Embedding(10, dim, rng=0)
    assert emb.weight._reads_position_rows  # no optimizer yet: one may come, so copy
    opt = npembed.SGD(emb.parameters(), lr=0.1, momentum=0.5)
    opt2 = npembed.Adam(emb.parameters(), lr=0.1)
    assert emb.weight._reads_position_rows
    del opt
    assert not emb.weight._reads_position_rows and len(emb.weight._readers) == 1
    del opt2
    assert emb.weight._reads_position_rows and not emb.weight._readers


def test_sgd_gives_the_same_bits_however_its_optimizers_came_about():
    # Repeated ids, large values: adding rows one by one and adding their sum differ in the last
    # bits, so plain SGD must get the per-position rows whenever it could read them.
    import copy
    import pickle

    import npembed

    rng = np.random.default_rng(0)
    ids = np.array([[1, 1, 1, 1, 2, 2, 1, 1]])
    g = (rng.standard_normal((1, 8, 8)) * 1e3).astype(np.float32)

    def run(order, donate):
        emb = npembed.Embedding(10, 8, rng=0)
        keep = []
        if order in ("sgd first", "adam beside sgd", "momentum off before step"):
            opt = npembed.SGD(emb.parameters(), lr=0.37, momentum=0.9 if order == "momentum off before step" else 0.0)
        if order == "adam beside sgd":
            keep.append(npembed.Adam(emb.parameters(), lr=1e-3))
        if order == "deep copy":  # the copy must not inherit the original's (summing) Adam
            keep.append(npembed.Adam(emb.parameters(), lr=1e-3))
            emb = copy.deepcopy(emb)
        if order == "copied with its sgd":
            emb, opt = copy.deepcopy((emb, npembed.SGD(emb.parameters(), lr=0.37)))
            keep.append(npembed.Adam(emb.parameters(), lr=1e-3))
        emb(ids)
        emb.backward(g.copy(), donate=donate)
        if order in ("sgd after backward", "deep copy"):
            opt = npembed.SGD(emb.parameters(), lr=0.37)
        if order == "momentum off before step":
            opt.momentum = 0.0
        opt.step()
        return emb.weight.data.copy()

    ref = run("sgd first", True)
    summed = npembed.Embedding(10, 8, rng=0).weight.data.copy()
    summed[1] -= np.float32(0.37) * g[0, [0, 1, 2, 3, 6, 7]].sum(axis=0)
    summed[2] -= np.float32(0.37) * g[0, [4, 5]].sum(axis=0)
    assert not np.array_equal(ref, summed)  # the check below could fail
    for order in ("sgd first", "sgd after backward", "adam beside sgd", "deep copy", "copied with its sgd",
                  "momentum off before step"):
        for donate in (False, True):
            np.testing.assert_array_equal(run(order, donate), ref, err_msg=f"{order}, donate={donate}")
    # a parameter pickles without its optimizers' registrations
    emb = npembed.Embedding.from_pretrained(np.ones((4, 2), np.float32), freeze=False)
    opt = npembed.Adam(emb.parameters(), lr=0.1)
    p2 = pickle.loads(pickle.dumps(emb.weight))
    assert not p2._readers and np.array_equal(p2.data, emb.weight.data) and emb.weight._readers and opt


def test_an_optimizer_that_defines_equality_still_registers():
    import npembed

    class Tagged(npembed.Adam):
        def __eq__(self, other):
            return isinstance(other, Tagged)

        __hash__ = None  # unhashable, as a class with __eq__ alone is

    emb = npembed.Embedding(6, 2, rng=0)
    opt = Tagged(emb.parameters(), lr=0.1)
    emb(np.array([1, 1]))
    emb.backward(np.ones((2, 2), np.float32))
    assert emb.weight.grad.raw_rows() is None  # Adam's kind: summed at once
    opt.step()


def test_a_converted_gradient_is_not_copied_twice():
    import npembed

    emb = npembed.Embedding(10, 3, rng=0)
    emb(np.array([1, 2, 2]))
    g = np.ones((3, 3), dtype=np.float64)  # converted to the table's float32: already a new array
    emb.backward(g)
    raw = emb.weight.grad.raw_rows()[1]
    # a view of the converted array (a second copy would own its memory)
    assert raw.dtype == np.float32 and not np.shares_memory(raw, g) and raw.base is not None
    with pytest.raises(TypeError, match=r"`donate` must be True or False; got 1\."):
        emb.backward(g, donate=1)


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_unweighted_bag_kernel_any_bag_length(rng, path, mode):
    """The plain (unweighted) kernel against a loop, bags of every length, repeated ids."""
    from npembed.kernels.bag import bag_forward

    w = rng.standard_normal((1000, 40)).astype(np.float32)
    ids = rng.integers(0, 1000, size=300)
    ids[:8] = 5  # repeated ids
    offs = np.array([0, 1, 4, 8, 9, 22, 100, 300])  # lengths 1, 3, 4, 1, 13, 78, 200
    plain = bag_forward(w, ids, offs, None, mode, -2, 0.0)
    ref = np.array([w[ids[a:b]].astype(np.float64).sum(0) / ((b - a) if mode == "mean" else 1)
                    for a, b in zip(offs[:-1], offs[1:])])
    np.testing.assert_allclose(plain[0], ref, rtol=1e-5, atol=1e-5)
    assert plain[3].tolist() == np.diff(offs).tolist()


@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("d", [3, 40, 64])  # rows of 12 bytes (no prefetch), 160 and 256 (prefetched)
def test_unweighted_bag_kernel_skips_padding_and_invalid_ids_anywhere(rng, path, mode, d):
    """Padding (skip) and invalid (negative) ids at every place of a group of four, empty bags."""
    from npembed.kernels.bag import bag_forward

    w = rng.standard_normal((500, d)).astype(np.float32)
    ids = rng.integers(0, 500, size=400)
    ids[rng.random(400) < 0.15] = 7  # padding
    ids[rng.random(400) < 0.1] = -1  # invalid_ids="zero"
    ids[-6:] = 7  # a last bag of padding only
    offs = np.concatenate([[0], np.cumsum(rng.integers(0, 12, size=60))])
    offs = np.concatenate([offs[offs < 394], [394, 394, 400]])  # an empty bag, then the padding one
    out, _, wsum, counts = bag_forward(w, ids, offs, None, mode, 7, -3.0)
    for b, (a, e) in enumerate(zip(offs[:-1], offs[1:])):
        kept = [r for r in ids[a:e] if r != 7 and r >= 0]
        assert counts[b] == len(kept) and wsum[b] == len(kept)
        if not kept:
            assert (out[b] == -3.0).all()
            continue
        ref = w[kept].astype(np.float64).sum(0) / (len(kept) if mode == "mean" else 1)
        np.testing.assert_allclose(out[b], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5), (300,), (2,)])  # (a strided single element counts as contiguous)
def test_dense_adam_kernel_gives_the_numpy_rule_bit_for_bit(rng, path, dtype, shape):
    import npembed

    w, g, m = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    v = np.abs(rng.standard_normal(shape)).astype(dtype)

    def strided(a):  # a non-contiguous copy: Adam._update takes its NumPy path for it
        out = np.empty(a.shape + (2,), dtype=a.dtype)[..., 0]
        out[...] = a
        return out

    ref = [strided(a) for a in (w, m, v)]
    assert not ref[0].flags.c_contiguous
    b1, b2, eps, lr, t = 0.9, 0.999, 1e-8, 0.01, 7
    opt = npembed.Adam([npembed.Parameter(np.zeros(shape, dtype))], lr=lr, betas=(b1, b2), eps=eps)
    opt._update(ref[0], strided(g), {"exp_avg": ref[1], "exp_avg_sq": ref[2]}, t, lr)
    assert kernels.adam_dense(w, g, m, v, b1, b2, eps, lr, t)
    for a, b in zip((w, m, v), ref):
        assert a.tobytes() == np.ascontiguousarray(b).tobytes()
    # anything but four C-contiguous arrays of one shape and float dtype: not done here
    assert not kernels.adam_dense(w.astype(np.float16), g, m, v, b1, b2, eps, lr, t)
    assert not kernels.adam_dense(strided(w), g, m, v, b1, b2, eps, lr, t)
