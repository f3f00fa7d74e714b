"""The thread-count setting: kernels and BLAS follow it, and results do not depend on it."""

import numba as nb
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import npembed
from npembed import kernels
from npembed.threads import available_cores


def _blas_threads():
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


@pytest.fixture(autouse=True)
def _restore_threads():
    yield
    npembed.set_num_threads()


def test_set_and_restore_threads():
    assert npembed.set_num_threads(np.int64(1)) == 1  # NumPy integers too
    assert npembed.get_num_threads() == 1 and nb.get_num_threads() == 1
    assert _blas_threads() in ({1}, set())  # set() where NumPy's BLAS is not seen by threadpoolctl
    full = npembed.set_num_threads()
    assert full == min(available_cores(), nb.config.NUMBA_NUM_THREADS) == npembed.get_num_threads()
    with npembed.num_threads(1) as n:
        assert n == 1 and npembed.get_num_threads() == 1
        assert _blas_threads() in ({1}, set())
    assert npembed.get_num_threads() == full


def test_thread_count_errors():
    for bad in (0, -1, True, 2.5, "2"):
        with pytest.raises(ValueError, match=rf"the number of threads must be a positive integer or None \(all cores\); got {bad!r}"):
            npembed.set_num_threads(bad)
    top = nb.config.NUMBA_NUM_THREADS
    with pytest.raises(ValueError, match=rf"{top + 1} threads asked for, but numba started with at most {top}; set the environment variable NUMBA_NUM_THREADS={top + 1}"):
        npembed.set_num_threads(top + 1)
    with pytest.raises(ValueError, match="the number of threads must be a positive integer"):
        with npembed.num_threads(0):
            raise AssertionError("the block must not run with a bad thread count")
    assert npembed.get_num_threads() == min(available_cores(), top)


def _train_steps(rng_seed: int) -> list:
    """A few steps of an Embedding + EmbeddingBag model with Adam and Adagrad, every kernel on its
    parallel path: the weights after them."""
    rng = np.random.default_rng(rng_seed)
    emb = npembed.Embedding(500, 16, padding_idx=0, rng=np.random.default_rng(1))
    bag = npembed.EmbeddingBag(300, 8, mode=["sum", "max"], rng=np.random.default_rng(2))
    opt = npembed.Adam(emb.parameters(), lr=0.01)
    opt2 = npembed.Adagrad(bag.parameters(), lr=0.1)
    for _ in range(3):
        ids = rng.zipf(1.3, size=(64, 20)) % 500
        out = emb(ids)
        emb.backward(np.sin(out) + 0.1)
        bids = rng.zipf(1.3, size=(64, 10)) % 300
        bout = bag(bids)
        bag.backward(np.cos(bout))
        opt.step(), opt2.step(), opt.zero_grad(), opt2.zero_grad()
    return [emb.weight.data.copy(), bag.weight.data.copy()]


def test_same_bits_at_any_thread_count(monkeypatch):
    if nb.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: nothing to compare")
    monkeypatch.setattr(kernels, "PARALLEL_MIN_WORK", 0)  # every kernel takes its parallel path
    results = []
    for n in (1, 2):
        with npembed.num_threads(n):
            results.append(_train_steps(0))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(kernels, "PARALLEL_MIN_WORK", 1 << 62)  # and the serial paths agree too
    for a, b in zip(results[0], _train_steps(0)):
        np.testing.assert_array_equal(a, b)


def test_cli_threads_option(capsys):
    from npembed.cli import main

    assert main(["train", "--threads", "0", "--epochs", "1", "--out", "/nonexistent/x"]) == 2
    assert "--threads must be a positive integer (leave it out for all cores); got 0." in capsys.readouterr().err


def test_compile_command_reports_every_kernel(capsys):
    from npembed.cli import main

    assert main(["compile"]) == 0
    out = capsys.readouterr().out
    for name in ("gather_rows", "coalesce_rows", "adam_rows", "adagrad_rows", "momentum_rows", "bag kernels",
                 "sgd_scatter", "exact replays"):
        assert name in out
    assert "11 kernel groups ready in" in out


def _child_steps(_):
    return _train_steps(0)


def test_a_forked_child_runs_the_kernels_serially_with_the_same_bits(monkeypatch):
    """numba ends a child forked after GNU OpenMP started ("fork() called from a process already
    using GNU OpenMP"); npembed's kernels run serially in such a child instead."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork here")
    monkeypatch.setattr(kernels, "PARALLEL_MIN_WORK", 0)  # the parent (and the child) take parallel paths
    here = _train_steps(0)  # the parent's OpenMP threads are busy before the fork
    with mp.get_context("fork").Pool(1) as pool:
        there = pool.map_async(_child_steps, [0]).get(timeout=300)[0]  # a dead child would hang
    for a, b in zip(here, there):
        np.testing.assert_array_equal(a, b)
    assert not kernels._FORKED  # the parent keeps its threads
