"""The perturbation families as data: each family's parameter, severities, domain and reference, its
published severity tables (ImageNet-C's, and CIFAR-10-C's where they differ), and where its function lives.

Declaring is importing nothing heavy: a family's function (``impl``, "module:function") is imported on its first
call, so reading the catalog (config validation, the report, ``embedrobust perturb --list``) needs no torch.
The parameter tables are read here by the declarations (their reference strings) and by the functions.
"""

from __future__ import annotations

import math

from .registry import add_table, declare

_SEVERITY = "severity in [0, 5] (0 = identity; integers = ImageNet-C's parameter tuples)"

def declare_severity_family(name: str, *, impl: str, param: str = _SEVERITY, tags: tuple[str, ...] = ("imagenet-c",),
                            **meta):
    """Declare an ImageNet-C-style family whose parameter is the severity itself (1-5, 0 the identity; integers
    index its published parameter tuples, in-between severities interpolate them)."""
    return declare(name, impl=impl, param=param, severities=(1, 2, 3, 4, 5), identity=0.0, unit="severity",
                   tags=tags, **meta)


# --- blur ----------------------------------------------------------------------------------------------------

declare(
    "gaussian_blur",
    impl="embedrobust.perturb.blur:gaussian_blur",
    param="Gaussian standard deviation sigma (pixels at 224 px)",
    severities=(1.0, 2.0, 3.0, 4.0, 6.0),
    identity=0.0,
    random=False,
    reference="ImageNet-C gaussian_blur: skimage.filters.gaussian(x, sigma=c) (mode nearest, truncate 4)",
    description="Blurs with an isotropic Gaussian kernel.",
    tags=("imagenet-c-extra",),
    bounds=(0.0, math.inf),
    domain_note="any sigma is defined (edges replicated); sigmas beyond the image size blur it towards its mean",
    spatial=True,
)

DEFOCUS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))  # (disk radius px, anti-alias sigma)

add_table("cifar10-c", "defocus_blur", ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)))

declare_severity_family(
    "defocus_blur",
    impl="embedrobust.perturb.blur:defocus_blur",
    random=False,
    reference="ImageNet-C defocus_blur: cv2.filter2D with an anti-aliased disk; (radius, alias) "
    + " ".join(str(c) for c in DEFOCUS),
    description="Convolves with a disk (lens out of focus).",
    spatial=True,
)

GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))  # (sigma, max_delta, iterations)

add_table("cifar10-c", "glass_blur", ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)))

declare_severity_family(
    "glass_blur",
    impl="embedrobust.perturb.blur:glass_blur",
    random=True,
    reference="ImageNet-C glass_blur (imagecorruptions 1.1.2 bit-exact given the same draws; the 'swap' is a "
    "one-way copy); (sigma, max_delta, iterations) " + " ".join(str(c) for c in GLASS),
    description="Blurs, locally shuffles pixels (frosted glass), blurs again.",
    spatial=True,
)

MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))  # (radius px, sigma px)

add_table("cifar10-c", "motion_blur", ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)))

declare_severity_family(
    "motion_blur",
    impl="embedrobust.perturb.blur:motion_blur",
    random=True,
    reference="imagecorruptions 1.1.2 motion_blur (ImageNet-C used ImageMagick's; same (radius, sigma) "
    + " ".join(str(c) for c in MOTION) + "), angle ~ U(-45, 45) degrees",
    description="Averages the image along a random direction (camera shake).",
    spatial=True,
)

ZOOM = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))  # np.arange(1, stop, step)

add_table("cifar10-c", "zoom_blur", ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)))

declare_severity_family(
    "zoom_blur",
    impl="embedrobust.perturb.blur:zoom_blur",
    random=False,
    reference="ImageNet-C zoom_blur: mean of x and clipped_zoom(x, z) for z in np.arange(1, stop, step), "
    "(stop, step) " + " ".join(str(c) for c in ZOOM),
    description="Averages central zooms of the image (radial blur).",
)


# --- codec ---------------------------------------------------------------------------------------------------
declare(
    "jpeg_compression",
    impl="embedrobust.perturb.codec:jpeg_compression",
    param="JPEG quality (1-100)",
    severities=(25, 18, 15, 10, 7),
    identity=None,
    random=False,
    reference="ImageNet-C jpeg_compression: PIL save(format='JPEG', quality=c) and reload (libjpeg, 4:2:0)",
    description="Encodes and decodes with libjpeg at the given quality (4:2:0 chroma subsampling).",
    tags=("imagenet-c",),
    bounds=(1.0, 100.0),  # libjpeg reads quality 0 as 1: admitting it would give two labels for one condition
    integer=True,
)

declare(
    "webp",
    impl="embedrobust.perturb.codec:webp",
    param="WebP quality (0-100, lossy)",
    severities=(60, 40, 20, 10, 5),
    identity=None,
    random=False,
    reference="Pillow save(format='WEBP', quality=c) and reload (libwebp, lossy, 4:2:0)",
    description="Encodes and decodes with libwebp at the given quality (editing: re-upload to the web).",
    tags=("editing",),
    bounds=(0.0, 100.0),  # unlike libjpeg's, libwebp's quality 0 is its own setting (the smallest file)
    integer=True,
)


# --- geometric -----------------------------------------------------------------------------------------------
# ImageNet-C (hendrycks/robustness make_imagenet_c.py) elastic_transform at 224 px, in units of 244 px (its
# constant, "should have been 224"): (alpha, sigma, affine jitter). imagecorruptions 1.1.2 replaced this with a
# milder displacement-only warp; we follow ImageNet-C.
ELASTIC = ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))

# CIFAR-10-C (make_cifar_c.py: IMSIZE * (alpha, sigma, affine) with IMSIZE = 32), stored in the same units of
# 244 px so that one formula serves both: pixels = row * 244 * scale (scale 1 for the 32 px table)
add_table("cifar10-c", "elastic_transform", tuple(tuple(32 * v / 244.0 for v in r) for r in (
    (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))))

declare_severity_family(
    "elastic_transform",
    impl="embedrobust.perturb.geometric:elastic_transform",
    param="severity in [0, 5] (0 = identity; integers = ImageNet-C's (alpha, sigma, affine) x 244 px)",
    random=True,
    reference="ImageNet-C elastic_transform (hendrycks/robustness; not imagecorruptions' variant): random "
    "affine then Gaussian-smoothed displacement; (alpha, sigma, affine)/244 " + " ".join(str(c) for c in ELASTIC),
    description="Warps the image with a random affine map and a smooth random displacement field.",
    spatial=True,
)

declare(
    "pixelate",
    impl="embedrobust.perturb.geometric:pixelate",
    param="downsampling factor c (side ratio; 1 = unchanged)",
    severities=(0.6, 0.5, 0.4, 0.3, 0.25),
    identity=1.0,
    random=False,
    reference="ImageNet-C pixelate: PIL resize to int(c * size) with BOX, back with BOX (imagecorruptions "
    "1.1.2 upsamples with NEAREST instead; we follow ImageNet-C)",
    description="Downsamples by area averaging and upsamples back (blocky).",
    tags=("imagenet-c",),
    bounds=(0.0, 1.0),
    open_bounds=(True, False),  # a side ratio of 0 leaves no image; factors below 1 / side all give one pixel
)

declare(
    "rescale",
    impl="embedrobust.perturb.geometric:rescale",
    param="scale factor (side ratio in (0, 1]; 1 = unchanged)",
    severities=(0.75, 0.5, 0.35, 0.25, 0.15),
    identity=1.0,
    random=False,
    reference="torch bilinear resize (antialiased) down to round(f * size), then back up",
    description="Downscales and upscales back (editing: resolution loss from resizing).",
    tags=("editing",),
    bounds=(0.0, 1.0),
    open_bounds=(True, False),  # a side ratio of 0 leaves no image
)

declare(
    "crop_resize",
    impl="embedrobust.perturb.geometric:crop_resize",
    param="central crop fraction (side ratio in (0, 1]; 1 = unchanged)",
    severities=(0.9, 0.8, 0.7, 0.6, 0.5),
    identity=1.0,
    random=False,
    reference="central crop of round(f * side) then antialiased bilinear resize back (torchvision center_crop + resize)",
    description="Crops the centre and enlarges it back to full size (editing: zoom-in crop).",
    tags=("editing",),
    bounds=(0.0, 1.0),
    open_bounds=(True, False),  # a crop of side 0 leaves no image
)

declare(
    "rotate",
    impl="embedrobust.perturb.geometric:rotate",
    param="rotation angle (degrees, counter-clockwise)",
    severities=(2.0, 5.0, 10.0, 15.0, 25.0),
    identity=0.0,
    random=False,
    reference="torchvision rotate (bilinear, about the centre, same size, corners filled black)",
    description="Rotates about the centre; uncovered corners become black (editing: straighten/tilt).",
    tags=("editing",),
    bounds=(-180.0, 180.0),  # every rotation once (both ends are the same half turn)
)


# --- noise ---------------------------------------------------------------------------------------------------
declare(
    "gaussian_noise",
    impl="embedrobust.perturb.noise:gaussian_noise",
    param="noise standard deviation sigma (in [0, 1] pixel units)",
    severities=(0.08, 0.12, 0.18, 0.26, 0.38),
    identity=0.0,
    random=True,
    reference="ImageNet-C gaussian_noise: clip(x + N(0, c^2), 0, 1)",
    description="Adds i.i.d. Gaussian noise to every pixel and channel.",
    tags=("imagenet-c",),
    bounds=(0.0, math.inf),
    domain_note="any sigma is defined: the result is clipped to [0, 1], so large sigmas approach binary noise",
)

declare(
    "shot_noise",
    impl="embedrobust.perturb.noise:shot_noise",
    param="photon count c per unit intensity (lower = noisier; inf = clean)",
    severities=(60, 25, 12, 5, 3),
    identity=math.inf,
    random=True,
    reference="ImageNet-C shot_noise: clip(Poisson(x * c) / c, 0, 1)",
    description="Replaces each value by a Poisson photon count at rate x * c, rescaled by 1 / c.",
    tags=("imagenet-c",),
    bounds=(0.0, math.inf),
    open_bounds=(True, False),  # c = 0 divides by zero; c = inf is the identity (no noise)
    domain_note="the photon count falls towards 0 as noise grows; inf, no noise, is the identity",
)

declare(
    "impulse_noise",
    impl="embedrobust.perturb.noise:impulse_noise",
    param="fraction of values replaced (salt or pepper, equally likely)",
    severities=(0.03, 0.06, 0.09, 0.17, 0.27),
    identity=0.0,
    random=True,
    reference="ImageNet-C impulse_noise: skimage.util.random_noise(x, mode='s&p', amount=c)",
    description="Sets a fraction of values (per channel) to 0 or 1 with equal probability.",
    tags=("imagenet-c",),
    bounds=(0.0, 1.0),
)

declare(
    "speckle_noise",
    impl="embedrobust.perturb.noise:speckle_noise",
    param="standard deviation c of multiplicative Gaussian noise",
    severities=(0.15, 0.2, 0.35, 0.45, 0.6),
    identity=0.0,
    random=True,
    reference="ImageNet-C speckle_noise: clip(x + x * N(0, c^2), 0, 1)",
    description="Adds Gaussian noise proportional to each value.",
    tags=("imagenet-c-extra",),
    bounds=(0.0, math.inf),
    domain_note="any c is defined: the result is clipped to [0, 1], so large c push values to 0 or 1",
)


# --- photometric ---------------------------------------------------------------------------------------------
declare(
    "brightness",
    impl="embedrobust.perturb.photometric:brightness",
    param="shift of HSV value V (in [0, 1] units)",
    severities=(0.1, 0.2, 0.3, 0.4, 0.5),
    identity=0.0,
    random=False,
    reference="ImageNet-C brightness: rgb2hsv, V = clip(V + c, 0, 1), hsv2rgb",
    description="Adds c to the HSV value channel.",
    tags=("imagenet-c",),
    bounds=(0.0, 1.0),  # at 1 every pixel is at full value: larger shifts change nothing more
)

declare(
    "contrast",
    impl="embedrobust.perturb.photometric:contrast",
    param="contrast factor c (1 = unchanged)",
    severities=(0.4, 0.3, 0.2, 0.1, 0.05),
    identity=1.0,
    random=False,
    reference="ImageNet-C contrast: clip((x - mean) * c + mean), mean per channel over the image",
    description="Scales each channel's deviation from its spatial mean by c.",
    tags=("imagenet-c",),
    bounds=(0.0, math.inf),  # 0 flattens each channel to its mean; a negative factor would invert the image
    domain_note="factors above 1 raise contrast; the result is clipped to [0, 1], so any factor is defined",
)

SATURATE = ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2))  # S' = clip(S * a + b, 0, 1)

add_table("cifar10-c", "saturate", ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)))

declare_severity_family(
    "saturate",
    impl="embedrobust.perturb.photometric:saturate",
    param="severity in [0, 5] (0 = identity; integers = ImageNet-C's (a, b), S' = clip(a S + b))",
    random=False,
    reference="ImageNet-C saturate: rgb2hsv, S = clip(S * a + b, 0, 1), hsv2rgb; (a, b) "
    + " ".join(str(c) for c in SATURATE),
    description="Scales (and offsets) HSV saturation: severities 1-2 desaturate, 3-5 oversaturate.",
    tags=("imagenet-c-extra",),
)

declare(
    "gamma",
    impl="embedrobust.perturb.photometric:gamma",
    param="gamma exponent g (x -> x^g; 1 = unchanged, > 1 darkens)",
    severities=(1.25, 1.5, 2.0, 2.5, 3.0),
    identity=1.0,
    random=False,
    reference="torchvision adjust_gamma (gain 1): x ** g",
    description="Applies a power-law tone curve (editing: gamma / exposure curve).",
    tags=("editing",),
    bounds=(0.0, math.inf),
    open_bounds=(True, True),  # x^0 is 1 everywhere (a white image whatever the input)
    domain_note="x^g is defined for every g > 0: large g only darken further",
)

declare(
    "hue",
    impl="embedrobust.perturb.photometric:hue",
    param="hue shift in turns (-0.5..0.5; 0.5 = 180 degrees)",
    severities=(0.02, 0.05, 0.1, 0.2, 0.5),
    identity=0.0,
    random=False,
    reference="torchvision adjust_hue: rgb->hsv, H = (H + shift) mod 1, hsv->rgb",
    description="Rotates every pixel's hue by the same angle (editing: colour shift).",
    tags=("editing",),
    bounds=(-0.5, 0.5),  # shifts are modulo 1 turn: wider values would alias onto these
)

declare(
    "sharpness",
    impl="embedrobust.perturb.photometric:sharpness",
    param="sharpness factor (1 = unchanged, 0 = smoothed, > 1 sharpened)",
    severities=(2.0, 4.0, 8.0, 12.0, 16.0),
    identity=1.0,
    random=False,
    reference="PIL ImageEnhance.Sharpness (= torchvision adjust_sharpness): blend with a 3x3 smoothing "
    "(1 1 1 / 1 5 1 / 1 1 1) / 13; border pixels unchanged",
    description="Unsharp-mask style sharpening (editing: sharpen slider).",
    tags=("editing",),
    bounds=(0.0, math.inf),  # 0 is the smoothed image; below it the detail would come back inverted
    domain_note="any factor >= 0 is defined (PIL's ImageEnhance extrapolates; the result is clipped to [0, 1])",
)


# --- weather -------------------------------------------------------------------------------------------------
# (loc, scale, zoom, threshold, blur radius, blur sigma, blend)
SNOW = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)

add_table("cifar10-c", "snow", (
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
))

declare_severity_family(
    "snow",
    impl="embedrobust.perturb.weather:snow",
    random=True,
    reference="ImageNet-C snow (imagecorruptions 1.1.2's motion blur): zoomed thresholded Gaussian flakes, "
    "streaked at U(-135, -45) degrees, added twice (rotated 180), over a brightened image",
    description="Adds falling snow flakes and brightens the image.",
    spatial=True,
)

FROST = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))  # out = a x + b frost

declare_severity_family(
    "frost",
    impl="embedrobust.perturb.weather:frost",
    random=True,
    reference="ImageNet-C frost: a x + b frost_k, random texture k of 5 and random crop; (a, b) "
    + " ".join(str(c) for c in FROST) + "; textures from imagecorruptions (Apache-2.0), half size",
    description="Overlays a frost texture (ice on a lens or window).",
    spatial=True,
)

FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))  # (strength, wibble decay)

add_table("cifar10-c", "fog", ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)))

declare_severity_family(
    "fog",
    impl="embedrobust.perturb.weather:fog",
    random=True,
    reference="ImageNet-C fog: plasma fractal (diamond-square) haze; (strength, decay) "
    + " ".join(str(c) for c in FOG),
    description="Adds a fractal haze and lowers contrast.",
)

# (loc, scale, sigma, threshold, strength or mud sigma, mud?)
SPATTER = (
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
)

add_table("cifar10-c", "spatter", (
    (0.62, 0.1, 0.7, 0.7, 0.5, 0),
    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1, 0.69, 0.5, 0),
    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
    (0.65, 0.1, 0.5, 0.68, 0.6, 1),
))

declare_severity_family(
    "spatter",
    impl="embedrobust.perturb.weather:spatter",
    random=True,
    reference="ImageNet-C spatter: water drops (Canny, distance transform, emboss; severities 1-3) or mud "
    "(4-5); OpenCV steps ported to torch (exact Euclidean distance instead of the 5x5 chamfer)",
    description="Splashes water drops or mud on the image.",
    tags=("imagenet-c-extra",),
    spatial=True,
)


# --- adversarial ---------------------------------------------------------------------------------------------
declare(
    "embed_attack",
    impl="embedrobust.attack.family:embed_attack_family",
    param="L-inf radius eps ([0, 1] pixel units)",
    severities=(1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255),
    identity=0.0,
    random=True,
    reference="PGD (Madry et al. 2018); EmbedAttack of layer6ai-labs/ssl-robustness (seed 002)",
    description="worst case: PGD maximising the distance of the embedding from the clean one",
    tags=("adversarial",),
    bounds=(0.0, 1.0),  # pixel units: at 1 the ball already holds every image
    needs_encoder=True,
    options=("steps", "step_size", "distance", "tokens"),
)
