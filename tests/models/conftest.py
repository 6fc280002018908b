import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Single-threaded torch: on a shared 2-core machine, contended worker threads slow tiny models 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
