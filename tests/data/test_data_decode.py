"""load_image on odd-but-valid and broken files; load_batch geometry against Pillow's resize."""

import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from embedrobust.data import load_batch, load_image, resize_crop, resized_shape
from embedrobust.errors import DataError

# a clean run must not warn (Pillow's palette-transparency warning, torch's read-only array warning, ...)
pytestmark = pytest.mark.filterwarnings("error")


def rgb_of(path):
    """(H, W, 3) numpy view of load_image's result."""
    out = load_image(path)
    assert out.dtype == torch.uint8 and out.ndim == 3 and out.shape[0] == 3
    return out.permute(1, 2, 0).numpy()


def on_white(c, a):
    """Independent reference: colour c with alpha a (0..255) over white, rounded."""
    return np.round(np.asarray(c, float) * a / 255 + 255 * (1 - a / 255)).astype(int)


def test_rgb_is_unchanged(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "x.png")
    np.testing.assert_array_equal(rgb_of(tmp_path / "x.png"), a)


def test_grayscale_l(tmp_path):
    Image.fromarray(np.array([[0, 77], [200, 255]], np.uint8)).save(tmp_path / "x.png")
    out = rgb_of(tmp_path / "x.png")
    np.testing.assert_array_equal(out, np.repeat(np.array([[0, 77], [200, 255]])[..., None], 3, -1))


def test_la_composites_on_white(tmp_path):
    im = Image.new("LA", (2, 1))
    im.putpixel((0, 0), (100, 128))
    im.putpixel((1, 0), (0, 0))  # fully transparent black: must become white
    im.save(tmp_path / "x.png")
    out = rgb_of(tmp_path / "x.png")
    np.testing.assert_array_equal(out[0, 0], on_white([100] * 3, 128))
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])


def test_palette_without_transparency(tmp_path):
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 128, 0, 10, 20, 30] + [0] * (256 * 3 - 9))
    im.putdata([0, 1, 2])
    im.save(tmp_path / "x.png")
    np.testing.assert_array_equal(rgb_of(tmp_path / "x.png")[0], [[255, 0, 0], [0, 128, 0], [10, 20, 30]])


def test_palette_with_transparent_index(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([12, 34, 56, 0, 0, 0] + [0] * (256 * 3 - 6))
    im.putdata([0, 1])
    im.save(tmp_path / "x.png", transparency=1)
    out = rgb_of(tmp_path / "x.png")
    np.testing.assert_array_equal(out[0], [[12, 34, 56], [255, 255, 255]])


def test_rgba_composites_on_white(tmp_path):
    a = np.array([[[255, 0, 0, 255], [255, 0, 0, 64], [17, 99, 3, 0]]], np.uint8)
    Image.fromarray(a).save(tmp_path / "x.png")
    out = rgb_of(tmp_path / "x.png")
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[0, 1], on_white([255, 0, 0], 64))
    np.testing.assert_array_equal(out[0, 2], [255, 255, 255])


@pytest.mark.parametrize(
    "cmyk", [(0, 0, 0, 0), (0, 255, 255, 0), (0, 0, 0, 128), (51, 102, 0, 64)], ids=["white", "red", "grey", "mix"]
)
def test_cmyk_jpeg(tmp_path, cmyk):
    Image.new("CMYK", (16, 16), cmyk).save(tmp_path / "x.jpg", quality=95)
    out = rgb_of(tmp_path / "x.jpg").astype(int)
    c = np.asarray(cmyk, float)
    expected = np.round((255 - c[:3]) * (255 - c[3]) / 255)
    assert np.abs(out - expected).max() <= 3  # lossy codec on a flat colour


def test_cmyk_tiff_exact(tmp_path):
    Image.new("CMYK", (2, 2), (51, 102, 0, 64)).save(tmp_path / "x.tif")
    expected = np.round((255 - np.array([51, 102, 0])) * (255 - 64) / 255)
    np.testing.assert_array_equal(rgb_of(tmp_path / "x.tif")[0, 0], expected)


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    v = np.array([[0, 65535], [32768, 4096]], np.uint16)
    Image.fromarray(v).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        assert im.mode == "I;16"
    out = rgb_of(tmp_path / "x.png")
    np.testing.assert_array_equal(out[..., 0], np.round(v / 65535 * 255))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_16bit_big_endian_tiff(tmp_path):
    v = np.array([[1000, 60000]], np.uint16)
    Image.frombytes("I;16B", (2, 1), v.astype(">u2").tobytes()).save(tmp_path / "x.tif")
    np.testing.assert_array_equal(rgb_of(tmp_path / "x.tif")[0, :, 1], np.round(v[0] / 65535 * 255))


def test_32bit_integer_outside_16bit_range_is_stretched(tmp_path):
    v = np.array([[-100, 100000]], np.int32)
    Image.fromarray(v).save(tmp_path / "x.tif")
    np.testing.assert_array_equal(rgb_of(tmp_path / "x.tif")[0, :, 0], [0, 255])


def test_one_bit(tmp_path):
    im = Image.new("1", (2, 2))
    im.putdata([0, 1, 1, 0])
    im.save(tmp_path / "x.png")
    np.testing.assert_array_equal(rgb_of(tmp_path / "x.png")[..., 0], [[0, 255], [255, 0]])


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((2, 4, 3), np.uint8)
    a[0, 0] = [255, 0, 0]  # red marker top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(a).save(tmp_path / "x.png", exif=exif)
    out = rgb_of(tmp_path / "x.png")
    assert out.shape == (4, 2, 3)
    np.testing.assert_array_equal(out, np.rot90(a, k=-1))  # top-left goes to top-right


def _png_bytes(tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    return (tmp_path / "ok.png").read_bytes()


@pytest.mark.parametrize(
    "kind, make, words",
    [
        ("empty", lambda tmp: b"", "empty"),
        ("truncated", lambda tmp: _png_bytes(tmp)[:200], "truncated"),
        ("text", lambda tmp: b"this is not an image\n", "not an image"),
        ("corrupt", lambda tmp: _png_bytes(tmp)[:60] + bytes(2000), "corrupt"),
    ],
)
def test_broken_file_raises_data_error_with_path(tmp_path, kind, make, words):
    path = tmp_path / f"broken_{kind}.png"
    path.write_bytes(make(tmp_path))
    with pytest.raises(DataError, match=words) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_zero_size_png(tmp_path):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", 0, 4, 8, 2, 0, 0, 0)
    path = tmp_path / "zero.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    with pytest.raises(DataError, match="zero size") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def _smooth(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("h, w, size", [(20, 40, 10), (33, 47, 16), (25, 10, 10), (9, 9, 4), (12, 30, 24)])
def test_load_batch_matches_pillow_resize_and_centre_crop(tmp_path, h, w, size):
    a = _smooth(h, w, h * w)
    Image.fromarray(a).save(tmp_path / "x.png")
    # independent reference: Pillow's bilinear resize (antialiased when shrinking) and a floor-centred crop
    scale = size / min(h, w)
    nh, nw = max(size, int(h * scale + 0.5)), max(size, int(w * scale + 0.5))
    top, left = (nh - size) // 2, (nw - size) // 2
    ref = np.asarray(Image.fromarray(a).resize((nw, nh), Image.Resampling.BILINEAR))[
        top : top + size, left : left + size
    ]
    out = load_batch([tmp_path / "x.png"], size)[0].permute(1, 2, 0).numpy().astype(int)
    # upscaling differs by rounding only; shrinking is identical in practice
    assert np.abs(out - ref.astype(int)).max() <= 1


def test_load_batch_shape_dtype_and_determinism(tmp_path):
    paths = []
    for i, (h, w) in enumerate([(10, 20), (31, 17), (8, 8)]):
        Image.fromarray(_smooth(h, w, i)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    a, b = load_batch(paths, 12), load_batch(paths, 12)
    assert a.shape == (3, 3, 12, 12) and a.dtype == torch.uint8
    assert torch.equal(a, b)


def test_load_batch_same_size_is_identity(tmp_path):
    a = _smooth(6, 6, 3)
    Image.fromarray(a).save(tmp_path / "x.png")
    np.testing.assert_array_equal(load_batch([tmp_path / "x.png"], 6)[0].permute(1, 2, 0).numpy(), a)


def test_crop_is_centred(tmp_path):
    # a 4-row band in the middle of a 12x4 (H x W) image stays in the middle of the 4x4 crop, untouched
    a = np.zeros((12, 4, 3), np.uint8)
    a[4:8] = 200
    out = resize_crop(torch.from_numpy(a).permute(2, 0, 1).contiguous(), 4)
    assert torch.equal(out, torch.full((3, 4, 4), 200, dtype=torch.uint8))


def test_load_batch_empty():
    assert load_batch([], 8).shape == (0, 3, 8, 8)


@given(st.integers(1, 500), st.integers(1, 500), st.integers(1, 300))
def test_resized_shape_keeps_aspect(h, w, size):
    nh, nw = resized_shape(h, w, size)
    assert min(nh, nw) == size and max(nh, nw) >= size
    long_exact = max(h, w) * size / min(h, w)
    assert abs(max(nh, nw) - long_exact) <= 0.5 or max(nh, nw) == size
