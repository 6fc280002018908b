import pytest

from embedrobust.models import create_encoder

TINY_VIT = {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": "none", "image_size": 32}
TINY_CLIP = {"library": "open_clip", "arch": "embedrobust-tiny-clip", "pretrained": "none"}


@pytest.fixture(scope="session")
def vit():
    return create_encoder(TINY_VIT)


@pytest.fixture(scope="session")
def clip():
    return create_encoder(TINY_CLIP)
