import pytest
import torch

from embedrobust.models import create_encoder

TINY_VIT = {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": "none", "image_size": 32}
TINY_CLIP = {"library": "open_clip", "arch": "embedrobust-tiny-clip", "pretrained": "none"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Single-threaded torch: on a shared 2-core machine, contended worker threads slow tiny models 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def vit():
    return create_encoder(TINY_VIT)


@pytest.fixture(scope="session")
def clip():
    return create_encoder(TINY_CLIP)
