import math

import pytest

from npembed.schedules import Constant, Cosine, LinearDecay, WarmUp, make_schedule


def test_schedules_values():
    assert Constant(0.1)(0) == Constant(0.1)(10**6) == 0.1
    lin = LinearDecay(1.0, 100, final_lr=0.1)
    assert lin(0) == 1.0 and lin(50) == pytest.approx(0.55) and lin(100) == pytest.approx(0.1) and lin(500) == pytest.approx(0.1)
    cos = Cosine(1.0, 100)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0.0)
    w = WarmUp(Constant(1.0), 4)
    assert [w(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    m = make_schedule("cosine", 2.0, 10, warmup_steps=2)
    assert m(0) == pytest.approx(2.0 * 0.5) and m(5) == pytest.approx(1.0)
    assert all(math.isfinite(m(s)) for s in range(30))


def test_schedule_errors():
    with pytest.raises(ValueError, match=r"`lr_schedule` must be one of \('constant', 'linear', 'cosine'\); got 'step'"):
        make_schedule("step", 0.1, 10)
    with pytest.raises(ValueError, match="`total_steps` must be a positive integer; got 0"):
        LinearDecay(0.1, 0)
    with pytest.raises(ValueError, match=r"`final_lr` must be in \[0, lr=0.1\]; got 0.5"):
        Cosine(0.1, 10, final_lr=0.5)
    with pytest.raises(ValueError, match="`warmup_steps` must be a non-negative integer; got -1"):
        WarmUp(Constant(0.1), -1)
    with pytest.raises(ValueError, match="`lr` must be a positive, finite number; got 0"):
        Constant(0)


def test_numpy_numbers_and_negative_steps():
    import numpy as np

    s = LinearDecay(np.float32(0.5), np.int64(10))
    assert s(-3) == 0.5 and s(5) == pytest.approx(0.25)
    assert WarmUp(Constant(1.0), np.int64(4))(-5) == 0.25
