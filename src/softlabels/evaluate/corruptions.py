"""CIFAR-10-C corruptions of the chapter-5 hold-out (thesis §5.2; Hendrycks & Dietterich, ICLR 2019).

Chapter 5 reports cross-entropy on CIFAR-10-C at severity 3 (docs/protocol.md#corruption-cross-entropy):
the 15 benchmark corruptions applied to the 3000 CIFAR-10H hold-out images (`splits.npz` `test`). The
corrupted hold-out comes from one of two places (`evaluation.corruption.source`):

- ``generate`` (default, offline): this module's numpy/scipy/Pillow implementation of the 15 corruptions with
  the CIFAR parameter tables of Hendrycks & Dietterich's ``make_cifar_c.py`` (hendrycks/robustness,
  ``ImageNet-C/create_c/make_cifar_c.py``). The images are *not* the published ones (different random draws;
  ImageMagick and OpenCV steps are re-implemented), but every corruption has the published form and strength.
- ``download``: rows of the published CIFAR-10-C tar (Zenodo record 2535967). Each ``<name>.npy`` is
  [50000, 32, 32, 3] uint8, five blocks of 10000 images in CIFAR-10 test order, block s−1 = severity s.

Either way the result is one npz with one uint8 [n, 32, 32, 3] array per corruption name plus ``indices``
(the CIFAR-10 test indices of the rows, in hold-out order).

Every corruption maps uint8 images [N, H, W, 3] to uint8 images of the same shape. Float results are cast
with truncation (as the reference's ``np.uint8(...)``). Randomness comes from one ``numpy.random.Generator``
per (seed, corruption, severity), so a corruption's images do not depend on which others are generated.

Where the generator knowingly differs from ``make_cifar_c.py`` (beyond the random draws):
- ImageMagick's MotionBlurImage (motion blur, snow) is re-implemented: same one-sided Gaussian taps and
  rounded offsets, edge pixels repeated, result rounded to 8 bits.
- OpenCV steps are re-implemented with scipy (elastic warp: bilinear with float weights where OpenCV uses
  5-bit fixed point; defocus: the same kernel with mirrored borders); frost overlays are decoded by Pillow.
- The reference's ToTensor -> ToPILImage round trip of the input (which can lower a pixel by one) is skipped.
- Kept on purpose: glass blur's one-way "swap" (`local_shuffle`), frost drawing from the first five overlays
  (configurable), fog's w·U(−w, w) roughness.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.data.download import CIFAR10C_KEY, fetch_from_config
from softlabels.data.io import save_npz
from softlabels.data.splits import balanced_prefix

#: The 15 benchmark corruptions, in the order of Hendrycks & Dietterich (and of `make_cifar_c.py`).
CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)

#: Per-severity parameters (severity 1..5) of `make_cifar_c.py`, the CIFAR tables (not the ImageNet ones).
PARAMETERS: dict[str, tuple] = {
    # σ of additive N(0, σ²) noise on [0, 1] pixels
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    # photon count c: x' = Poisson(c·x) / c
    "shot_noise": (500, 250, 100, 75, 50),
    # fraction of pixel values set to 0 or 1 (half each)
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    # (disc radius, σ of the 3×3 Gaussian that anti-aliases the disc)
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    # (Gaussian σ, max shuffle distance, shuffle passes)
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    # (ImageMagick motion-blur radius, σ); angle ~ U(−45°, 45°)
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    # zoom factors np.arange(1, stop, 0.01) for these stops
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),
    # (mean, σ, zoom, threshold, blur radius, blur σ, image weight); snow angle ~ U(−135°, −45°)
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    # (image weight, frost weight)
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    # (fog strength, plasma-fractal roughness decay)
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    # shift of HSV value V on [0, 1]
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    # factor on each pixel's deviation from its image's channel mean
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    # (displacement scale α, smoothing σ, affine jitter), all × image size 32
    "elastic_transform": tuple(
        tuple(32 * v for v in row)
        for row in ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
    ),
    # side of the box-downsampled image as a fraction of 32
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    # JPEG quality
    "jpeg_compression": (80, 65, 58, 50, 40),
}

MOTION_BLUR_ANGLE = (-45.0, 45.0)
SNOW_ANGLE = (-135.0, -45.0)
ZOOM_STEP = 0.01
#: Frost overlays are shrunk by this factor (OpenCV bilinear) before a random 32×32 crop.
FROST_SCALE = 0.2
#: Side of the square plasma-fractal height map behind fog.
FOG_MAPSIZE = 32
#: ITU-R 601 luma weights (OpenCV RGB2GRAY), used by snow.
LUMA = np.array([0.299, 0.587, 0.114])

#: CIFAR-10-C layout: images per severity block, severities per file.
CIFAR10C_BLOCK = 10000
CIFAR10C_SEVERITIES = 5


def parameter(name: str, severity: int):
    """The documented parameter of corruption `name` at `severity` (1..5)."""
    if name not in PARAMETERS:
        raise ValueError(f"unknown corruption '{name}'; known: {', '.join(CORRUPTIONS)}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    return PARAMETERS[name][int(severity) - 1]


def corruption_rng(seed: int, name: str, severity: int) -> np.random.Generator:
    """The generator of one corruption's draws: seeded by (seed, corruption index, severity)."""
    return np.random.default_rng([int(seed), CORRUPTIONS.index(name), int(severity)])


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by several corruptions
# ---------------------------------------------------------------------------------------------------------
def to_unit(images: np.ndarray, dtype=np.float64) -> np.ndarray:
    """uint8 [0, 255] -> float [0, 1]."""
    return np.asarray(images, dtype=dtype) / 255.0


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Float [0, 255] -> uint8, clipped and truncated (the reference's `np.uint8` cast)."""
    return np.clip(values, 0, 255).astype(np.uint8)


def spatial_gaussian(x: np.ndarray, sigma: float, mode: str, truncate: float = 4.0) -> np.ndarray:
    """Gaussian filter over the two image axes of [N, H, W(, C)] (skimage `gaussian` semantics)."""
    sigmas = (0, sigma, sigma) + (0,) * (x.ndim - 3)
    return ndimage.gaussian_filter(x, sigma=sigmas, mode=mode, truncate=truncate)


def linear_zoom_matrix(size_in: int, factor: float) -> np.ndarray:
    """[round(size_in·factor), size_in] weights of scipy `ndimage.zoom(order=1)` along one axis.

    Output sample o sits at input coordinate o·(size_in − 1)/(size_out − 1) and is the linear interpolation
    of its two neighbours (order-1 splines need no prefilter, and no coordinate leaves the input).
    """
    size_out = int(round(size_in * factor))
    pos = np.arange(size_out) * ((size_in - 1) / (size_out - 1)) if size_out > 1 else np.zeros(1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = pos - lo
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), lo), 1 - frac)
    np.add.at(weights, (np.arange(size_out), hi), frac)
    return weights


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom [N, H, H, ...] about the centre by `factor` ≥ 1 and crop back to H×H.

    Crops the central ceil(H / factor) square, resizes it by `factor` with bilinear interpolation
    (as scipy `ndimage.zoom`, order 1, applied to both image axes) and keeps the central H×H of the result.
    """
    side = x.shape[1]
    crop = int(np.ceil(side / factor))
    top = (side - crop) // 2
    weights = linear_zoom_matrix(crop, factor)
    trim = (weights.shape[0] - side) // 2
    weights = weights[trim : trim + side].astype(x.dtype)
    patch = np.moveaxis(x[:, top : top + crop, top : top + crop], (1, 2), (-2, -1))  # [N, ..., rows, cols]
    return np.moveaxis(weights @ patch @ weights.T, (-2, -1), (1, 2))


def motion_kernel(radius: float, sigma: float) -> np.ndarray:
    """ImageMagick's one-sided motion-blur weights: w_i ∝ exp(−i² / 2σ²), i = 0..2·ceil(radius)."""
    width = int(2 * np.ceil(radius) + 1)
    weights = np.exp(-(np.arange(width) ** 2) / (2.0 * sigma**2))
    return weights / weights.sum()


def motion_offsets(width: int, angles_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer (row, column) offsets [N, width] of the motion-blur taps along each image's angle.

    Tap i sits at (ceil(i·sin θ − ½), ceil(i·cos θ − ½)): the line from the pixel in direction θ, rounded.
    """
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))[:, None]
    i = np.arange(width)[None, :]
    rows = np.ceil(i * np.sin(theta) - 0.5).astype(np.int64)
    cols = np.ceil(i * np.cos(theta) - 0.5).astype(np.int64)
    return rows, cols


def directional_blur(x: np.ndarray, radius: float, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
    """ImageMagick-style motion blur of [N, H, W(, C)] with one angle per image, edge pixels repeated.

    out(p) = Σ_i w_i · x(p + offset_i), rounded to integers (the 8-bit image ImageMagick writes back).
    """
    weights = motion_kernel(radius, sigma)
    d_rows, d_cols = motion_offsets(len(weights), angles_deg)
    n, h, w = x.shape[:3]
    batch = np.arange(n)[:, None, None]
    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    out = np.zeros(x.shape, dtype=np.float64)
    for tap, weight in enumerate(weights):
        r = np.clip(rows + d_rows[:, tap, None, None], 0, h - 1)
        c = np.clip(cols + d_cols[:, tap, None, None], 0, w - 1)
        out += weight * x[batch, r, c]
    return np.rint(out)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Defocus kernel: the disc x² + y² ≤ r² (normalised), smoothed by a Gaussian of σ = `alias_blur`.

    As `make_cifar_c.py`: the disc lives on a 17×17 grid (larger for r > 8), the anti-aliasing Gaussian is
    3×3 (5×5 for r > 8) with mirrored borders. Rows and columns that are exactly zero are dropped, which
    does not change a correlation with it.
    """
    half = 8 if radius <= 8 else int(np.ceil(radius))
    taps = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    disc = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disc /= disc.sum()
    g = np.exp(-(np.arange(taps) - taps // 2) ** 2 / (2.0 * alias_blur**2))
    g /= g.sum()
    kernel = ndimage.correlate1d(disc, g, axis=0, mode="mirror")
    kernel = ndimage.correlate1d(kernel, g, axis=1, mode="mirror")
    keep_r = np.flatnonzero(kernel.any(axis=1))
    keep_c = np.flatnonzero(kernel.any(axis=0))
    return kernel[keep_r[0] : keep_r[-1] + 1, keep_c[0] : keep_c[-1] + 1]


def plasma_fractal(n: int, mapsize: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """[n, mapsize, mapsize] diamond-square height maps scaled to [0, 1] (fog's cloud layer).

    Start from zeros with step = mapsize and roughness w = 100. While step ≥ 2: every square centre becomes
    the mean of its 4 corners, then every edge midpoint the mean of its 4 diamond neighbours (wrapping
    around), each plus w·U(−w, w); then step /= 2 and w /= `decay`. (The reference writes the mean as sum/4
    and its noise as w·U(−w, w); both are kept.)
    """
    grid = np.zeros((n, mapsize, mapsize))
    step, roughness = mapsize, 100.0

    def noisy_mean(total):
        return total / 4 + roughness * rng.uniform(-roughness, roughness, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[:, 0::step, 0::step]
        square_sum = corners + np.roll(corners, -1, axis=1)
        square_sum = square_sum + np.roll(square_sum, -1, axis=2)
        grid[:, half::step, half::step] = noisy_mean(square_sum)

        centres = grid[:, half::step, half::step]
        corners = grid[:, 0::step, 0::step]
        top_edges = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        grid[:, 0::step, half::step] = noisy_mean(top_edges)
        left_edges = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        grid[:, half::step, 0::step] = noisy_mean(left_edges)

        step //= 2
        roughness /= decay

    grid -= grid.min(axis=(1, 2), keepdims=True)
    return grid / grid.max(axis=(1, 2), keepdims=True)


def sample_bilinear(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """x[n, rows[n], cols[n], c] by bilinear interpolation; `mode` is scipy's border rule."""
    n = x.shape[0]
    batch = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], rows.shape)
    coords = np.stack([batch, rows, cols])
    channels = [ndimage.map_coordinates(x[..., ch], coords, order=1, mode=mode) for ch in range(x.shape[-1])]
    return np.stack(channels, axis=-1)


def affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """[N, 2, 3] affine maps taking the three (x, y) points `src` [3, 2] to `dst` [N, 3, 2]."""
    design = np.hstack([src, np.ones((3, 1))])  # rows (x, y, 1)
    return np.linalg.solve(design[None], dst).transpose(0, 2, 1)


def resize_bilinear_cv(image: np.ndarray, factor: float) -> np.ndarray:
    """OpenCV `resize(fx=fy=factor)` with linear interpolation (half-pixel centres, edge clamp).

    Output side round(side·factor); output pixel i samples input coordinate (i + ½)/factor − ½. For the
    frost factor 0.2 these are the integers 5i + 2, so the result is exact.
    """
    out = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):
        size = out.shape[axis]
        new = int(round(size * factor))
        pos = (np.arange(new) + 0.5) / factor - 0.5
        lo = np.clip(np.floor(pos).astype(np.int64), 0, size - 1)
        hi = np.clip(lo + 1, 0, size - 1)
        frac = np.clip(pos - np.floor(pos), 0, 1)
        shape = [1] * out.ndim
        shape[axis] = new
        frac = frac.reshape(shape)
        out = np.take(out, lo, axis=axis) * (1 - frac) + np.take(out, hi, axis=axis) * frac
    return out


# ---------------------------------------------------------------------------------------------------------
# The 15 corruptions: f(images uint8 [N, H, W, 3], parameter, rng, **resources) -> float [0, 255] or uint8
# ---------------------------------------------------------------------------------------------------------
def gaussian_noise(images, sigma, rng):
    """x' = clip(x + N(0, σ²)) on [0, 1] pixels, independently per value."""
    x = to_unit(images)
    return np.clip(x + rng.normal(scale=sigma, size=x.shape), 0, 1) * 255


def shot_noise(images, photons, rng):
    """x' = clip(Poisson(c·x) / c): photon noise whose variance x/c grows with intensity."""
    x = to_unit(images)
    return np.clip(rng.poisson(x * photons) / photons, 0, 1) * 255


def impulse_noise(images, amount, rng):
    """Salt and pepper: each value is replaced with probability `amount`, by 1 or 0 with equal odds."""
    x = to_unit(images)
    flipped = rng.random(x.shape) <= amount
    salted = rng.random(x.shape) <= 0.5
    x = np.where(flipped & salted, 1.0, x)
    x = np.where(flipped & ~salted, 0.0, x)
    return x * 255


def defocus_blur(images, radius_alias, rng):
    """Correlation of each channel with `disk_kernel(radius, alias_blur)`, mirrored borders."""
    kernel = disk_kernel(*radius_alias)
    x = to_unit(images)
    out = ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")
    return np.clip(out, 0, 1) * 255


def local_shuffle(x: np.ndarray, delta: int, passes: int, rng: np.random.Generator) -> np.ndarray:
    """Glass blur's pixel shuffle of uint8 [N, H, W, C], in place.

    Visits rows h = H−d..d+1 and, within each, columns w = W−d..d+1 (both descending) and sets pixel
    (h, w) to pixel (h + δy, w + δx), δ ~ U{−d, .., d−1}; `passes` times. `make_cifar_c.py` writes this as
    a tuple swap of two numpy views, which copies one way only: the neighbour keeps its value. We do what
    that code does, so the published images' statistics are matched (for d = 1 each pass moves every
    visited pixel by at most one step up and/or left). Sequential within an image, vectorised across images.
    """
    n, h, w = x.shape[:3]
    heights = range(h - delta, delta, -1)
    widths = range(w - delta, delta, -1)
    shifts = rng.integers(-delta, delta, size=(passes, len(heights), len(widths), 2, n))
    batch = np.arange(n)
    for p in range(passes):
        for i, row in enumerate(heights):
            for j, col in enumerate(widths):
                dy, dx = shifts[p, i, j]
                x[batch, row, col] = x[batch, row + dy, col + dx]
    return x


def glass_blur(images, sigma_delta_passes, rng):
    """Gaussian blur (σ, truncated to uint8), `local_shuffle`, Gaussian blur again (nearest-edge borders)."""
    sigma, delta, passes = sigma_delta_passes
    x = (spatial_gaussian(to_unit(images), sigma, mode="nearest") * 255).astype(np.uint8)
    x = local_shuffle(x, delta, passes, rng)
    return np.clip(spatial_gaussian(x / 255.0, sigma, mode="nearest"), 0, 1) * 255


def motion_blur(images, radius_sigma, rng):
    """One-sided Gaussian streak (`directional_blur`) at an angle ~ U(−45°, 45°) per image."""
    radius, sigma = radius_sigma
    angles = rng.uniform(*MOTION_BLUR_ANGLE, size=len(images))
    return np.clip(directional_blur(images.astype(np.float64), radius, sigma, angles), 0, 255)


def zoom_factors(stop: float) -> np.ndarray:
    """The zoom-blur factors np.arange(1, stop, 0.01)."""
    return np.arange(1, stop, ZOOM_STEP)


def zoom_blur(images, stop, rng):
    """Mean of the image and its central zooms by 1, 1.01, .., (stop − 0.01): x' = (x + Σ_z zoom_z(x)) / (k+1)."""
    x = to_unit(images, np.float32)
    factors = zoom_factors(stop)
    total = np.zeros_like(x)
    for factor in factors:
        total += clipped_zoom(x, factor)
    return np.clip((x + total) / (len(factors) + 1), 0, 1) * 255


def snow(images, params, rng):
    """Snowflakes: a thresholded, zoomed N(μ, σ²) layer streaked by motion blur (angle ~ U(−135°, −45°)),
    added twice (as is and rotated 180°) to an image brightened towards 1.5·luma + 0.5."""
    mean, std, zoom, threshold, radius, sigma, weight = params
    x = to_unit(images, np.float32)
    n, h, w = x.shape[:3]
    layer = rng.normal(loc=mean, scale=std, size=(n, h, w))
    layer = clipped_zoom(layer[..., None], zoom)[..., 0]
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8).astype(np.float64)
    angles = rng.uniform(*SNOW_ANGLE, size=n)
    flakes = (np.clip(directional_blur(layer, radius, sigma, angles), 0, 255) / 255.0)[..., None]
    luma = (x @ LUMA.astype(np.float32))[..., None]
    x = weight * x + (1 - weight) * np.maximum(x, luma * 1.5 + 0.5)
    return np.clip(x + flakes + flakes[:, ::-1, ::-1], 0, 1) * 255


def frost(images, weights, rng, frost_overlays):
    """x' = clip(a·x + b·F) on [0, 255], F a random 32×32 crop of a random overlay shrunk by 0.2."""
    if not frost_overlays:
        raise ValueError("frost needs the frost overlay images (frost_overlays)")
    image_weight, frost_weight = weights
    n, h, w = images.shape[:3]
    small = [resize_bilinear_cv(o, FROST_SCALE) for o in frost_overlays]
    choice = rng.integers(len(small), size=n)
    crops = np.empty(images.shape, dtype=np.float64)
    for k, overlay in enumerate(small):
        members = np.flatnonzero(choice == k)
        top = rng.integers(0, overlay.shape[0] - h, size=len(members))
        left = rng.integers(0, overlay.shape[1] - w, size=len(members))
        r = top[:, None, None] + np.arange(h)[None, :, None]
        c = left[:, None, None] + np.arange(w)[None, None, :]
        crops[members] = overlay[r, c]
    return np.clip(image_weight * images.astype(np.float64) + frost_weight * crops, 0, 255)


def fog(images, strength_decay, rng):
    """x' = clip((x + s·P)·m / (m + s)), P a plasma-fractal map in [0, 1], m the image maximum."""
    strength, decay = strength_decay
    x = to_unit(images)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    clouds = plasma_fractal(len(x), FOG_MAPSIZE, decay, rng)[:, : x.shape[1], : x.shape[2], None]
    return np.clip((x + strength * clouds) * peak / (peak + strength), 0, 1) * 255


def brightness(images, shift, rng):
    """HSV value V' = min(V + c, 1) with hue and saturation kept.

    With H and S fixed every channel is proportional to V, so RGB' = RGB·V'/V (black pixels, V = 0,
    become grey V').
    """
    x = to_unit(images)
    value = x.max(axis=-1, keepdims=True)
    new_value = np.clip(value + shift, 0, 1)
    scale = np.divide(new_value, value, out=np.zeros_like(value), where=value > 0)
    out = np.where(value > 0, x * scale, new_value)
    return np.clip(out, 0, 1) * 255


def contrast(images, factor, rng):
    """x' = (x − μ)·c + μ, μ the per-image, per-channel mean."""
    x = to_unit(images)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - mean) * factor + mean, 0, 1) * 255


def elastic_transform(images, params, rng):
    """A random affine warp (three anchor points jittered by U(−a, a), mirrored borders) followed by a
    smooth random displacement field (U(−1, 1) noise, Gaussian σ, truncate 3, times α; reflected
    borders), both with bilinear sampling."""
    alpha, sigma, jitter = params
    x = to_unit(images, np.float32)
    n, h, w = x.shape[:3]
    centre = np.float32([h, w]) // 2
    side = min(h, w) // 3
    anchors = np.array(
        [centre + side, [centre[0] + side, centre[1] - side], centre - side], dtype=np.float64
    )
    moved = anchors[None] + rng.uniform(-jitter, jitter, size=(n, 3, 2))
    forward = affine_from_points(anchors, moved)  # (x, y) -> (x', y')
    full = np.concatenate([forward, np.broadcast_to([[[0.0, 0.0, 1.0]]], (n, 1, 3))], axis=1)
    inverse = np.linalg.inv(full)[:, :2]
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    src_x = inverse[:, 0, 0, None, None] * cols + inverse[:, 0, 1, None, None] * rows + inverse[:, 0, 2, None, None]
    src_y = inverse[:, 1, 0, None, None] * cols + inverse[:, 1, 1, None, None] * rows + inverse[:, 1, 2, None, None]
    x = sample_bilinear(x, src_y, src_x, mode="mirror")

    dx = spatial_gaussian(rng.uniform(-1, 1, size=(n, h, w)), sigma, mode="reflect", truncate=3) * alpha
    dy = spatial_gaussian(rng.uniform(-1, 1, size=(n, h, w)), sigma, mode="reflect", truncate=3) * alpha
    x = sample_bilinear(x, rows[None] + dy, cols[None] + dx, mode="reflect")
    return np.clip(x, 0, 1) * 255


def tile_horizontally(images: np.ndarray) -> np.ndarray:
    """[N, H, W, C] -> one [H, N·W, C] strip (image k in columns k·W..(k+1)·W)."""
    n, h, w, c = images.shape
    return images.transpose(1, 0, 2, 3).reshape(h, n * w, c)


def untile_horizontally(strip: np.ndarray, n: int) -> np.ndarray:
    h, total, c = strip.shape
    return strip.reshape(h, n, total // n, c).transpose(1, 0, 2, 3)


def pixelate(images, fraction, rng):
    """Box-downsample to int(32·c) pixels a side and box-upsample back (Pillow BOX).

    All images are resized at once as one horizontal strip: the box filter of image k's output pixels
    covers exactly image k's input columns, so this equals resizing each image alone.
    """
    n, h, w = images.shape[:3]
    small_h, small_w = int(h * fraction), int(w * fraction)
    strip = Image.fromarray(np.ascontiguousarray(tile_horizontally(images)))
    strip = strip.resize((n * small_w, small_h), Image.Resampling.BOX)
    strip = strip.resize((n * w, h), Image.Resampling.BOX)
    return untile_horizontally(np.asarray(strip), n)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode one uint8 RGB image as JPEG at `quality` with Pillow and decode it."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def jpeg_compression(images, quality, rng):
    """Pillow JPEG encode/decode at the given quality (4:2:0 chroma, Pillow's defaults), image by image
    (the codec's 16×16 blocks and chroma upsampling must not see neighbouring images)."""
    return np.stack([jpeg_roundtrip(image, quality) for image in images])


CORRUPTION_FUNCTIONS: dict[str, Callable] = {name: globals()[name] for name in CORRUPTIONS}


def corrupt(
    images: np.ndarray,
    name: str,
    severity: int,
    rng: np.random.Generator,
    frost_overlays: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Corruption `name` at `severity` of uint8 images [N, H, W, 3] -> uint8 [N, H, W, 3]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    value = parameter(name, severity)
    extra = {"frost_overlays": frost_overlays} if name == "frost" else {}
    out = CORRUPTION_FUNCTIONS[name](images, value, rng, **extra)
    return to_uint8(out) if out.dtype != np.uint8 else out


def corrupt_all(
    images: np.ndarray,
    names: Sequence[str],
    severity: int,
    seed: int,
    frost_overlays: Sequence[np.ndarray] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """{name: corrupt(images, name, severity, corruption_rng(seed, name, severity))} for each name."""
    out = {}
    for name in names:
        start = time.perf_counter()
        out[name] = corrupt(images, name, severity, corruption_rng(seed, name, severity), frost_overlays)
        if log:
            log(f"{name}: {len(images)} images at severity {severity} in {time.perf_counter() - start:.2f} s")
    return out


def load_frost_overlays(paths: Sequence[str | os.PathLike]) -> list[np.ndarray]:
    """The frost overlay pictures as uint8 RGB arrays (an alpha channel is dropped, as OpenCV's imread)."""
    overlays = []
    for path in paths:
        try:
            with Image.open(path) as im:
                overlays.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read frost overlay {path}: {exc}") from exc
    return overlays


# ---------------------------------------------------------------------------------------------------------
# The published CIFAR-10-C (source: download)
# ---------------------------------------------------------------------------------------------------------
def _npy_header(stream) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    return np.lib.format.read_array_header_2_0(stream)


def severity_rows(severity: int, block: int = CIFAR10C_BLOCK) -> tuple[int, int]:
    """Rows [(s−1)·block, s·block) of a CIFAR-10-C file hold severity s."""
    return (severity - 1) * block, severity * block


def _tar_members(tar: tarfile.TarFile, tar_path, names: Sequence[str]) -> dict[str, tarfile.TarInfo]:
    by_name: dict[str, list[tarfile.TarInfo]] = {}
    for member in tar.getmembers():
        if member.isfile():
            by_name.setdefault(os.path.basename(member.name), []).append(member)
    found = {}
    for name in names:
        matches = by_name.get(f"{name}.npy", [])
        if len(matches) != 1:
            what = "no member" if not matches else f"{len(matches)} members"
            raise ValueError(f"{tar_path}: {what} named {name}.npy (expected CIFAR-10-C/{name}.npy)")
        found[name] = matches[0]
    return found


def read_cifar10c_rows(
    tar_path: str | os.PathLike,
    names: Sequence[str],
    severity: int,
    indices: np.ndarray,
    expected_labels: np.ndarray | None = None,
    block: int = CIFAR10C_BLOCK,
) -> dict[str, np.ndarray]:
    """Severity-`severity` rows `indices` of each corruption in the CIFAR-10-C tar, read in place.

    Only `labels.npy` and `<name>.npy` for the requested names are read, and of each image file only the
    severity block. When `expected_labels` (the CIFAR-10 labels of `indices`) is given, labels.npy must
    agree with it in that block.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= block):
        raise ValueError(f"indices must lie in [0, {block}), got {indices.min()}..{indices.max()}")
    first, last = severity_rows(severity, block)
    out = {}
    with tarfile.open(tar_path, mode="r:") as tar:
        members = _tar_members(tar, tar_path, ["labels", *names])
        for name, member in members.items():
            stream = tar.extractfile(member)
            where = f"{tar_path}:{member.name}"
            try:
                shape, fortran, dtype = _npy_header(stream)
            except ValueError as exc:
                raise ValueError(f"{where} is not a .npy file: {exc}") from exc
            if shape[0] != CIFAR10C_SEVERITIES * block or fortran:
                raise ValueError(f"{where}: expected {CIFAR10C_SEVERITIES * block} C-ordered rows, got shape {shape}")
            row_shape = shape[1:]
            if name != "labels" and (row_shape != (32, 32, 3) or dtype != np.uint8):
                raise ValueError(f"{where}: expected uint8 rows of shape (32, 32, 3), got {dtype} {row_shape}")
            row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
            stream.seek(stream.tell() + first * row_bytes)
            raw = stream.read((last - first) * row_bytes)
            if len(raw) != (last - first) * row_bytes:
                raise ValueError(f"{where} is truncated")
            rows = np.frombuffer(raw, dtype=dtype).reshape((last - first, *row_shape))
            out[name] = rows[indices].copy()
    labels = out.pop("labels").astype(np.int64)
    if expected_labels is not None and not np.array_equal(labels, np.asarray(expected_labels, dtype=np.int64)):
        bad = int(np.flatnonzero(labels != expected_labels)[0])
        raise ValueError(
            f"{tar_path}: labels.npy disagrees with CIFAR-10 at test index {indices[bad]} "
            f"(severity {severity}): {labels[bad]} vs {expected_labels[bad]}"
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# The chapter-5 corrupted hold-out file
# ---------------------------------------------------------------------------------------------------------
def generate_holdout(
    images: np.ndarray,
    indices: np.ndarray,
    names: Sequence[str],
    severity: int,
    seed: int,
    frost_overlays: Sequence[np.ndarray] | None,
    log: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """{name: corrupted images[indices]} for each name, plus `indices` (source: generate)."""
    indices = np.asarray(indices, dtype=np.int64)
    out = corrupt_all(images[indices], names, severity, seed, frost_overlays, log=log)
    out["indices"] = indices
    return out


def fetch_cifar10c(config: Mapping, log: Callable[[str], None] = print) -> Path:
    """Download (or copy from a data mirror that lists it) and verify the CIFAR-10-C tar under resources_dir.

    The offline mirror of this project does not hold the 2.9 GB tar; a mirror whose MANIFEST.tsv does not
    list it is skipped and the official URL is used (`softlabels.data.download.Source.from_config`).
    """
    return fetch_from_config(CIFAR10C_KEY, config, log=log)


# ---------------------------------------------------------------------------------------------------------
# Command line: softlabels corrupt {download,build}
# ---------------------------------------------------------------------------------------------------------
def _log(message: str) -> None:
    print(message, flush=True)


def _load_npz(path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise UserError(f"{path}: missing array(s) {', '.join(missing)} (has {', '.join(data.files)})")
            return {k: data[k] for k in keys}
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc


def _holdout_indices(splits_path, n_images: int) -> np.ndarray:
    indices = _load_npz(splits_path, ["test"])["test"].astype(np.int64)
    if indices.ndim != 1 or indices.size == 0 or indices.min() < 0 or indices.max() >= n_images:
        raise UserError(f"{splits_path}: 'test' must be indices into the {n_images} CIFAR-10 test images")
    return indices


def run_download(args) -> int:
    fetch_cifar10c(config_from_args(args), log=_log)
    return 0


def run_build(args) -> int:
    """Write the corrupted hold-out npz, generated or read from CIFAR-10-C as `evaluation.corruption.source`.

    The rows are the hold-out (`splits.npz` `test`, file order), cut to the class-balanced subset of
    `evaluation.cifar10h_holdout_limit` images when that is set, as the evaluation reads them.
    """
    config = config_from_args(args)
    cfg = config["evaluation"]["corruption"]
    severity, names = int(cfg["severity"]), list(cfg["corruptions"])
    test = _load_npz(args.test_images, ["images", "labels"])
    images, labels = test["images"], test["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise UserError(f"{args.test_images}: 'images' must be uint8 [n, 32, 32, 3], got {images.dtype} {images.shape}")
    indices = _holdout_indices(args.splits, len(images))
    limit = config["evaluation"].get("cifar10h_holdout_limit")
    indices = balanced_prefix(indices, labels, limit)  # evaluation uses only these (scales quick/smoke)
    start = time.perf_counter()
    if cfg["source"] == "download":
        if not args.cifar10c:
            raise UserError("evaluation.corruption.source is 'download': pass --cifar10c PATH (the CIFAR-10-C tar)")
        _log(f"reading severity {severity} of {len(names)} corruptions from {args.cifar10c}")
        try:
            arrays = read_cifar10c_rows(
                args.cifar10c, names, severity, indices, expected_labels=labels[indices], block=CIFAR10C_BLOCK
            )
        except (OSError, tarfile.TarError, ValueError) as exc:
            raise UserError(str(exc)) from exc
        arrays["indices"] = indices
    else:
        if "frost" in names and not args.frost:
            raise UserError("the frost corruption needs the overlay pictures: pass --frost PATH [PATH ...]")
        try:
            overlays = load_frost_overlays(args.frost or [])
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        _log(f"generating {len(names)} corruptions of {len(indices)} images at severity {severity}, seed {cfg['seed']}")
        arrays = generate_holdout(images, indices, names, severity, int(cfg["seed"]), overlays, log=_log)
    save_npz(args.output, arrays)
    _log(f"wrote {args.output}: {len(names)} x {len(indices)} images in {time.perf_counter() - start:.1f} s")
    return 0


def register_cli(subparsers) -> None:
    """`softlabels corrupt download` and `softlabels corrupt build`."""
    parser = subparsers.add_parser(
        "corrupt",
        help="CIFAR-10-C corruptions of the hold-out (chapter 5)",
        description="Build the corrupted CIFAR-10H hold-out used for chapter 5's corruption cross-entropy.",
    )
    actions = parser.add_subparsers(dest="corrupt_action", metavar="ACTION", required=True)

    download = actions.add_parser(
        "download", help="fetch and verify the CIFAR-10-C tar (evaluation.corruption.cifar10c)"
    )
    add_config_arguments(download)
    download.set_defaults(func=run_download)

    build = actions.add_parser(
        "build",
        help="write the corrupted hold-out npz (generated, or read from CIFAR-10-C, per evaluation.corruption.source)",
    )
    build.add_argument("--test-images", required=True, help="cifar10_test.npz (images, labels)")
    build.add_argument("--splits", required=True, help="splits.npz; its 'test' indices are the hold-out")
    build.add_argument("--frost", nargs="*", default=[], metavar="PATH", help="frost overlay pictures (generate)")
    build.add_argument("--cifar10c", default=None, metavar="TAR", help="CIFAR-10-C.tar (download)")
    build.add_argument("--output", required=True, help="output npz: one uint8 array per corruption + indices")
    add_config_arguments(build)
    build.set_defaults(func=run_build)
