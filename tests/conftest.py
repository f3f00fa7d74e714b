import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def torch_or_skip():
    """Import torch, or skip with a visible reason (CI installs it from the test extras)."""
    return pytest.importorskip("torch", reason="torch is not installed: `pip install -e '.[test]'` brings torch==2.13.0")


@pytest.fixture
def shared_data():
    """The team's shared data folder beside the checkout (skips where it is absent)."""
    import pathlib

    here = pathlib.Path(__file__).resolve().parents[1]
    for cand in (here.parent / "shared" / "data", here / "shared" / "data"):
        if cand.exists():
            return cand
    pytest.skip("the team's shared data folder (../shared/data) is not beside this checkout: "
                "the checks against the upstream data files only run in the team's workspace")
