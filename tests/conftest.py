"""Shared test settings."""
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread: the tests' tiny models run faster so, and far faster on a busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
