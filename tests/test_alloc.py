"""Tables and optimizer states start on cache lines; large ones on huge pages (npembed._alloc)."""

from __future__ import annotations

import gc
import mmap

import numpy as np
import pytest

import npembed
from npembed import _alloc

needs_hint = pytest.mark.skipif(getattr(mmap, "MADV_HUGEPAGE", None) is None, reason="no MADV_HUGEPAGE on this system")


@pytest.fixture
def small_threshold(monkeypatch):
    """Tables from 64 KiB count as large, so the tests stay small."""
    monkeypatch.setattr(_alloc, "HUGE_MIN_BYTES", 1 << 16)
    monkeypatch.delenv("NPEMBED_HUGE_PAGES", raising=False)


@needs_hint
def test_large_tables_are_aligned_on_huge_pages_small_ones_on_cache_lines(small_threshold):
    big = _alloc.table_empty((1000, 32), np.float32)  # 128 KB
    assert _alloc.in_huge_pages(big) and _alloc.owns(big)
    assert big.ctypes.data % (2 << 20) == 0
    assert big.flags.c_contiguous and big.flags.writeable and big.shape == (1000, 32) and big.dtype == np.float32
    assert not big.any()  # fresh anonymous memory reads as zeros
    for shape in [(10, 32), (3, 5), (0, 7), (1,)]:
        small = _alloc.table_empty(shape, np.float64)
        assert not _alloc.in_huge_pages(small) and _alloc.owns(small)
        assert small.shape == shape and small.flags.c_contiguous
        assert small.size == 0 or small.ctypes.data % 64 == 0  # (an empty array points anywhere)
    z = _alloc.table_zeros((10, 32), np.float64)
    assert not _alloc.in_huge_pages(z) and not z.any() and z.ctypes.data % 64 == 0
    f = _alloc.table_full((1000, 32), 0.25, np.float64)
    assert _alloc.in_huge_pages(f) and (f == 0.25).all()
    c = _alloc.table_copy(np.arange(40000, dtype=np.float64).reshape(1000, 40), np.float32)
    assert _alloc.in_huge_pages(c) and c.dtype == np.float32 and c[999, 39] == 39999.0
    assert not _alloc.owns(np.ones((1000, 32))) and not _alloc.in_huge_pages(np.ones((1000, 32)))


@needs_hint
def test_the_environment_switch_turns_the_hint_off_not_the_alignment(small_threshold, monkeypatch):
    for off in ("0", "false", "No", " off "):
        monkeypatch.setenv("NPEMBED_HUGE_PAGES", off)
        assert not _alloc.huge_pages_enabled()
        t = _alloc.table_empty((1000, 32), np.float32)
        assert not _alloc.in_huge_pages(t) and _alloc.owns(t) and t.ctypes.data % 64 == 0
    for on in ("1", "TRUE", "yes", "On", ""):
        monkeypatch.setenv("NPEMBED_HUGE_PAGES", on)
        assert _alloc.in_huge_pages(_alloc.table_empty((1000, 32), np.float32))
    for bad in ("banana", "2", "-1"):
        monkeypatch.setenv("NPEMBED_HUGE_PAGES", bad)
        with pytest.raises(ValueError, match=rf"the environment variable NPEMBED_HUGE_PAGES must be 1 / true / yes / on or "
                                             rf"0 / false / no / off; got '{bad}'"):
            npembed.Embedding(1000, 32)


@needs_hint
def test_layers_and_optimizer_states_use_them_with_the_same_numbers(small_threshold, monkeypatch):
    ids = np.array([[1, 2, 2], [999, 0, 5]])
    g = np.linspace(-1, 1, 2 * 3 * 32, dtype=np.float32).reshape(2, 3, 32)
    results = []
    for env in ("1", "0"):
        monkeypatch.setenv("NPEMBED_HUGE_PAGES", env)
        huge = env == "1"
        for init in ("normal", "uniform", "zeros", npembed.init.xavier_uniform()):
            table = npembed.Embedding(1000, 32, init=init, rng=3).weight.data
            assert _alloc.in_huge_pages(table) == huge and table.ctypes.data % 64 == 0
        # a user's initialiser returns its own array: copied (never written into), placed as ours
        given = np.ones((1000, 32), np.float32)
        own = npembed.Embedding(1000, 32, padding_idx=0, init=lambda shape, rng, dtype: given, rng=0)
        assert _alloc.in_huge_pages(own.weight.data) == huge and (own.weight.data[1:] == 1).all()
        assert (own.weight.data[0] == 0).all() and (given == 1).all()
        pre = npembed.Embedding.from_pretrained(np.ones((1000, 32)), dtype=np.float32)
        assert _alloc.in_huge_pages(pre.weight.data) == huge and pre.weight.data.dtype == np.float32
        bag = npembed.EmbeddingBag(1000, 32, mode="sum", rng=0)
        assert _alloc.in_huge_pages(bag.embedding.weight.data) == huge
        out = []
        for opt_cls, kw, keys in [(npembed.Adam, {}, ("exp_avg", "exp_avg_sq")), (npembed.SGD, {"momentum": 0.9}, ("momentum_buffer",)),
                                  (npembed.Adagrad, {"initial_accumulator_value": 0.5}, ("sum",))]:
            emb = npembed.Embedding(1000, 32, padding_idx=0, rng=7)
            opt = opt_cls(emb.parameters(), lr=0.1, **kw)
            for _ in range(2):
                emb(ids)
                emb.backward(g)
                opt.step()
                opt.zero_grad()
            state = opt.state[0]
            assert all(_alloc.in_huge_pages(state[k]) == huge for k in keys)
            opt.load_state_dict(opt.state_dict())  # a restored state is placed as a fresh one
            assert all(_alloc.in_huge_pages(opt.state[0][k]) == huge for k in keys)
            out.append(emb.weight.data.copy())
        results.append(out)
    for a, b in zip(*results):  # hints never change a result
        np.testing.assert_array_equal(a, b)


@needs_hint
def test_the_memory_is_released_with_the_table(small_threshold):
    import weakref

    t = _alloc.table_empty((1000, 32), np.float32)
    base = t
    while isinstance(base, np.ndarray):
        base = base.base
    region = weakref.ref(base.obj)  # the mmap behind the table
    view = t[10:20]
    del t, base
    gc.collect()
    assert region() is not None  # a view keeps it alive
    del view
    gc.collect()
    assert region() is None


def test_without_the_hint_tables_are_aligned_ordinary_memory(monkeypatch):
    monkeypatch.setattr(_alloc, "_MADV", None)
    monkeypatch.setattr(_alloc, "HUGE_MIN_BYTES", 1 << 16)
    t = _alloc.table_empty((1000, 32), np.float32)
    assert not _alloc.in_huge_pages(t) and _alloc.owns(t) and t.ctypes.data % 64 == 0
    assert not _alloc.huge_pages_enabled()
    e = npembed.Embedding(300, 16, rng=0)  # small tables too: each 64-byte row on its own cache line
    assert e.weight.data.ctypes.data % 64 == 0 and _alloc.owns(e.weight.data)
