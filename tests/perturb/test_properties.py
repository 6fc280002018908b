"""Properties every registered perturbation must have, and unit checks of the building blocks."""

import inspect
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrobust.errors import EmbedRobustError, UnknownNameError
from embedrobust.perturb import (
    PRESETS,
    TABLES,
    blur,
    combined,
    describe_registry,
    get_perturbation,
    interp_params,
    list_perturbations,
    scaled,
    weather,
    with_table,
)

# Attacks need the encoder they attack; tests/attack covers them.
NAMES = [n for n in list_perturbations() if not get_perturbation(n).needs_encoder]


def _img(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth-ish content so blurs and codecs act as on photographs
    x = torch.rand((n, 3, size // 4, size // 4), generator=g)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _mid(p):
    return p.severities[2]


def test_all_19_imagenet_c_corruptions_and_7_edits_are_registered():
    assert len(PRESETS["imagenet-c"]) == 15 and len(PRESETS["imagenet-c-extra"]) == 4
    edits = {"webp", "rescale", "crop_resize", "rotate", "sharpness", "gamma", "hue"}
    assert set(PRESETS["imagenet-c-all"]) | edits <= set(NAMES)
    assert len(PRESETS["paper9"]) == 9
    assert {"jpeg_compression", "brightness", "contrast", "glass_blur"} <= set(PRESETS["paper9"])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [32, 224])
def test_shape_dtype_range_preserved(name, size):
    x = _img(1, size)
    p = get_perturbation(name)
    y = p(x, _mid(p), torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(y, x)


@pytest.mark.parametrize("name", [n for n in NAMES if get_perturbation(n).identity is not None])
def test_identity_value_leaves_images_unchanged(name):
    x = _img()
    p = get_perturbation(name)
    assert torch.equal(p.fn(x, p.identity, torch.Generator().manual_seed(0), **({"scale": 1.0} if p.spatial else {})), x) \
        or torch.allclose(p.fn(x, p.identity, torch.Generator().manual_seed(0),
                               **({"scale": 1.0} if p.spatial else {})), x, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_same_bytes(name):
    x = _img()
    p = get_perturbation(name)
    a = p(x, _mid(p), torch.Generator().manual_seed(7))
    b = p(x, _mid(p), torch.Generator().manual_seed(7))
    assert a.numpy().tobytes() == b.numpy().tobytes()


@pytest.mark.parametrize("name", [n for n in NAMES if get_perturbation(n).random])
def test_different_seeds_give_different_draws(name):
    x = _img()
    p = get_perturbation(name)
    a = p(x, _mid(p), torch.Generator().manual_seed(1))
    b = p(x, _mid(p), torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", [n for n in NAMES if not get_perturbation(n).random])
def test_deterministic_families_ignore_the_generator(name):
    x = _img()
    p = get_perturbation(name)
    assert torch.equal(p(x, _mid(p), torch.Generator().manual_seed(1)), p(x, _mid(p), torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("name", NAMES)
def test_batch_items_are_perturbed_independently_of_batch_size(name):
    p = get_perturbation(name)
    if p.random:
        pytest.skip("random families draw per batch")
    x = _img(3)
    assert torch.allclose(p(x, _mid(p))[1:2], p(x[1:2], _mid(p)), atol=1e-5)


@pytest.mark.parametrize("name", [n for n in NAMES if get_perturbation(n).unit == "severity"])
def test_severity_out_of_range_is_a_user_error(name):
    with pytest.raises(EmbedRobustError, match="outside"):
        get_perturbation(name)(_img(1), 5.5)


def test_bad_shape_is_a_user_error():
    with pytest.raises(EmbedRobustError, match="shape"):
        get_perturbation("contrast")(torch.rand(3, 8, 8), 0.5)


@given(st.floats(0, 5))
@settings(max_examples=50, deadline=None)
def test_interp_params_is_exact_at_integers_and_between_neighbours(s):
    table = blur.GLASS
    p = interp_params(table, (0.0, 0.0, 0.0), s)
    k = math.floor(s)
    lo = (0.0, 0.0, 0.0) if k == 0 else table[min(k, 5) - 1]
    hi = table[min(k, 4)]
    for a, b, v in zip(lo, hi, p):
        assert min(a, b) - 1e-12 <= v <= max(a, b) + 1e-12
    if s == int(s) and s > 0:
        assert p == tuple(float(v) for v in table[int(s) - 1])


def _glass_loop(q: np.ndarray, offsets: np.ndarray, d: int) -> np.ndarray:
    """The reference's pixel loop (one-way copy through NumPy views), for checking the vectorised one."""
    x = q.copy()
    h, w = x.shape[:2]
    for it in range(offsets.shape[0]):
        for a, hh in enumerate(range(h - d, d, -1)):
            for b, ww in enumerate(range(w - d, d, -1)):
                dx, dy = offsets[it, a, b]
                x[hh, ww], x[hh + dy, ww + dx] = x[hh + dy, ww + dx], x[hh, ww]
    return x


@given(st.integers(1, 3), st.integers(1, 3), st.integers(8, 14), st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_glass_copy_equals_the_sequential_reference_loop(d, iters, size, seed):
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 256, size=(size, size + 1, 3)).astype(np.uint8)
    offsets = rng.integers(-d, d, size=(iters, size - 2 * d, size + 1 - 2 * d, 2))
    want = _glass_loop(q, offsets, d)
    got = blur.glass_copy(torch.from_numpy(q).permute(2, 0, 1)[None], torch.from_numpy(offsets)[None], d)
    assert np.array_equal(got[0].permute(1, 2, 0).numpy(), want)


def test_combined_chain_applies_each_part_at_the_same_severity():
    x = _img()
    c = combined("jpeg_compression", "gaussian_blur")
    assert c.name == "jpeg_compression+gaussian_blur"
    assert get_perturbation("jpeg_compression+gaussian_blur") is c
    want = get_perturbation("gaussian_blur")(get_perturbation("jpeg_compression")(x, 18), 2.0)
    assert torch.equal(c(x, 2.0), want)
    assert torch.equal(c(x, 0.0), x)


def test_combined_needs_two_known_families():
    with pytest.raises(EmbedRobustError):
        combined("gaussian_blur")
    with pytest.raises(UnknownNameError):
        get_perturbation("gaussian_blur+not_a_family")


def test_scaled_multiplies_pixel_parameters_by_size_over_224():
    x = _img(1, 32)
    small = scaled("gaussian_blur", 32)
    assert small.scale == pytest.approx(32 / 224)
    assert torch.allclose(small(x, 7.0), get_perturbation("gaussian_blur")(x, 1.0), atol=1e-6)
    assert scaled("contrast", 32) is get_perturbation("contrast")


def test_scaled_spatial_corruptions_are_milder_on_small_images():
    x = _img(1, 32)
    for name in ["defocus_blur", "glass_blur", "motion_blur"]:
        full = (get_perturbation(name)(x, 3.0) - x).abs().mean()
        small = (scaled(name, 32)(x, 3.0) - x).abs().mean()
        assert small < full, name


@pytest.mark.parametrize("name", list_perturbations())
def test_declared_options_are_the_functions_keyword_options(name):
    p = get_perturbation(name)
    params = list(inspect.signature(p.fn).parameters.items())[3:]  # after (images, value, generator)
    bound = {"scale", "table", "encoder"}  # set by the pipeline (scaled, with_table, bind_perturbations)
    assert p.options == tuple(k for k, q in params if k not in bound and q.kind in (q.POSITIONAL_OR_KEYWORD,
                                                                                     q.KEYWORD_ONLY))


def test_describe_registry_lists_every_family():
    text = describe_registry()
    for n in NAMES:
        assert n in text
    assert "identity" in text.splitlines()[0]


def test_value_at_interpolates_natural_units():
    p = get_perturbation("gaussian_noise")
    assert p.value_at(0) == 0.0 and p.value_at(3) == pytest.approx(0.18)
    assert p.value_at(2.5) == pytest.approx(0.15)
    assert get_perturbation("shot_noise").value_at(0.5) == pytest.approx(120.0)  # 1/c linear from 0


def test_rotate_by_90_degrees_is_a_quarter_turn():
    x = _img(1, 32)
    y = get_perturbation("rotate")(x, 90.0)
    assert torch.allclose(y, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)


def test_hue_third_turn_maps_red_to_green():
    x = torch.zeros(1, 3, 4, 4)
    x[:, 0] = 1.0
    y = get_perturbation("hue")(x, 1 / 3)
    assert torch.allclose(y[:, 1], torch.ones(1, 4, 4), atol=1e-6) and float(y[:, [0, 2]].abs().max()) < 1e-6


def test_gamma_is_a_power_law():
    x = _img(1)
    assert torch.allclose(get_perturbation("gamma")(x, 2.0), x**2)


def test_crop_resize_and_rescale_keep_constant_images_constant():
    x = torch.full((1, 3, 32, 32), 0.3)
    for name, v in [("crop_resize", 0.5), ("rescale", 0.3)]:
        assert torch.allclose(get_perturbation(name)(x, v), x, atol=1e-6)


def test_plasma_fractal_is_normalised_and_seeded():
    uni = lambda g: (lambda shape: torch.rand((2, *shape), generator=g, dtype=torch.float64))  # noqa: E731
    a = weather.plasma_fractal(2, 32, 2.0, uni(torch.Generator().manual_seed(0)))
    b = weather.plasma_fractal(2, 32, 2.0, uni(torch.Generator().manual_seed(0)))
    assert torch.equal(a, b) and float(a.amin()) == 0.0 and float(a.amax()) == 1.0


def test_frost_textures_ship_with_the_package():
    t = weather._frost_asset(0)
    assert t.shape[0] == 3 and t.shape[1] * 2 == 600 and 0.0 <= float(t.min()) <= float(t.max()) <= 1.0


# --- fast paths: each must equal (or be exact in distribution like) the plain computation ----------------------


def test_glass_copy_small_int_offsets_equal_int64_offsets_on_large_images():
    # int8 draws (the fast path) with bounds far outside the int8 range: same result as int64 draws
    g = torch.Generator().manual_seed(3)
    q = torch.randint(0, 256, (2, 3, 150, 170), generator=g).float()
    off = torch.randint(-3, 3, (2, 2, 150 - 6, 170 - 6, 2), generator=g)
    assert torch.equal(blur.glass_copy(q, off.to(torch.int8), 3), blur.glass_copy(q, off, 3))


@pytest.mark.parametrize("x0,c", [(37 / 255, 60.0), (0.123456, 12.0), (1.0, 3.0), (0.5 + 0.3 / 255, 500.0), (0.7, 0.7)])
def test_poisson_sampler_is_poisson(x0, c):
    from scipy import stats

    from embedrobust.perturb import noise

    x = torch.full((400_000,), x0)
    k = noise.poisson_scaled(x, c, torch.Generator().manual_seed(0)).long()
    lam = float(torch.tensor(x0)) * c
    counts = torch.bincount(k).double().numpy()
    pmf = stats.poisson.pmf(np.arange(len(counts)), lam) * k.numel()
    keep = pmf > 5
    chi2 = float((((counts - pmf) ** 2 / pmf)[keep]).sum())
    assert stats.chi2.sf(chi2, int(keep.sum()) - 1) > 1e-4
    assert abs(float(k.double().mean()) - lam) < 5 * math.sqrt(lam / k.numel()) + 1e-9


def test_poisson_sampler_falls_back_outside_its_tables():
    from embedrobust.perturb import noise

    x = torch.tensor([0.5, 1.5])  # a value above 1: torch.poisson
    k = noise.poisson_scaled(x, 2000.0, torch.Generator().manual_seed(0))
    assert k.shape == x.shape and float(k[1]) > float(k[0]) > 0


def test_distance_transform_is_exact_and_capped():
    g = torch.Generator().manual_seed(0)
    edges = torch.rand(2, 1, 40, 50, generator=g) < 0.01
    d = weather.distance_to(edges, cap=20)
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(50.0), indexing="ij")
    for b in range(2):
        pts = edges[b, 0].nonzero().float()
        want = torch.cdist(torch.stack([ys, xs], -1).view(-1, 2), pts).amin(1).view(40, 50).clamp(max=20.0)
        assert torch.allclose(d[b, 0], want, atol=1e-5)


def test_pil_box_upscale_fast_path_equals_the_weight_matrices():
    from embedrobust.perturb import _ops

    g = torch.Generator().manual_seed(0)
    small = torch.randint(0, 256, (1, 3, 67, 89), generator=g).float()
    fast = _ops.pil_box_resize(small, 224, 224)
    slow = torch.matmul(_ops.pil_box_matrix(67, 224).float(), torch.matmul(small, _ops.pil_box_matrix(89, 224).float().T))
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("name", ["glass_blur", "motion_blur", "snow", "spatter", "elastic_transform", "zoom_blur",
                                  "saturate"])
def test_chunked_processing_equals_whole_batch(name, monkeypatch):
    from embedrobust.perturb import _ops

    x = _img(5, 40)
    p = get_perturbation(name)
    whole = p(x, 3.0, torch.Generator().manual_seed(4))
    monkeypatch.setattr(_ops, "_IMAGE_CHUNK_BYTES", 2 * x[0].numel() * x.element_size())  # two images a chunk
    assert torch.allclose(p(x, 3.0, torch.Generator().manual_seed(4)), whole, atol=1e-6)


def test_channels_last_input_gives_the_same_output():
    x = _img(2, 32)
    xc = x.contiguous(memory_format=torch.channels_last)
    for name in ["gaussian_blur", "spatter", "pixelate", "jpeg_compression", "webp"]:  # the codecs keep the layout
        p = get_perturbation(name)
        assert torch.equal(p(x, _mid(p), torch.Generator().manual_seed(0)), p(xc, _mid(p), torch.Generator().manual_seed(0)))


# --- CIFAR-10-C severity tables ---------------------------------------------------------------------------------

CIFAR = sorted(TABLES["cifar10-c"])


def test_cifar10_c_table_covers_the_verified_families():
    assert len(CIFAR) == 18 and "frost" not in CIFAR  # frost's textures are rescaled differently there
    assert with_table("shot_noise", "cifar10-c").severities == (500, 250, 100, 75, 50)
    assert with_table("jpeg_compression", "cifar10-c").levels([1, 5]) == [80.0, 40.0]
    assert blur.glass_params(3.0, table="cifar10-c") == (0.4, 1, 1)
    assert np.array_equal(blur.zoom_factors(1.0, table="cifar10-c"), np.arange(1, 1.06, 0.01))  # as make_cifar_c
    assert with_table("gaussian_blur", "cifar10-c").scale == 1.0
    assert with_table("glass_blur", "imagenet-c") is get_perturbation("glass_blur")


def test_unknown_table_or_family_without_one_is_a_user_error():
    with pytest.raises(EmbedRobustError, match="cifar10-c"):
        with_table("frost", "cifar10-c")
    with pytest.raises(EmbedRobustError, match="no 'tiny' severity table"):
        with_table("fog", "tiny")


@pytest.mark.parametrize("name", CIFAR)
def test_cifar10_c_variants_keep_shape_range_and_seed(name):
    p = with_table(name, "cifar10-c")
    x = _img(2, 32)
    for s in (1, 3, 5):
        v = float(s) if p.unit == "severity" else p.severities[s - 1]
        a = p(x, v, torch.Generator().manual_seed(1))
        assert a.shape == x.shape and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
        assert torch.equal(a, p(x, v, torch.Generator().manual_seed(1)))


def test_cifar10_c_severities_differ_from_imagenet_c_where_the_tables_do():
    x = _img(1, 32)
    a = with_table("glass_blur", "cifar10-c")(x, 3.0, torch.Generator().manual_seed(0))
    b = scaled("glass_blur", 32)(x, 3.0, torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)
