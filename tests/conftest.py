import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def torch_or_skip():
    """Import torch, or skip with a visible reason (CI installs it from the test extras)."""
    return pytest.importorskip("torch", reason="torch is not installed: `pip install -e '.[test]'` brings torch==2.13.0")
