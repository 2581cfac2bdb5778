"""CIFAR-10-C corruptions (softlabels.evaluate.corruptions): each corruption's defining property on images
built for the purpose, seeding, the parameter tables, reading the published tar, the CLI and the rules."""

from __future__ import annotations

import colorsys
import io
import tarfile
from pathlib import Path

import numpy as np

from softlabels.data.splits import balanced_prefix
import pytest
import yaml
from PIL import Image
from scipy import ndimage

from softlabels.evaluate import corruptions as C

import corruption_reference as REF

SEVERITY = 3


def flat(value: int, n: int = 8, size: int = 32) -> np.ndarray:
    return np.full((n, size, size, 3), value, dtype=np.uint8)


def random_images(n: int = 6, seed: int = 0) -> np.ndarray:
    """Smooth-ish random colour images (a blurred noise field, so blurs and warps have structure to act on)."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random((n, 32, 32, 3)), sigma=(0, 2, 2, 0))
    x = (x - x.min()) / (x.max() - x.min())
    return (x * 255).astype(np.uint8)


def synthetic_overlays(seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(300 + 10 * k, 400 - 15 * k, 3), dtype=np.uint8) for k in range(5)]


def run(images, name, severity=SEVERITY, seed=0, overlays=None):
    return C.corrupt(images, name, severity, C.corruption_rng(seed, name, severity), overlays)


# ---------------------------------------------------------------------------------------------------------
# Parameter tables
# ---------------------------------------------------------------------------------------------------------
def test_tables_cover_the_15_benchmark_corruptions_with_five_severities():
    assert len(C.CORRUPTIONS) == 15
    assert set(C.PARAMETERS) == set(C.CORRUPTIONS)
    assert all(len(v) == 5 for v in C.PARAMETERS.values())


@pytest.mark.parametrize(
    "name, severity, expected",
    [
        ("gaussian_noise", 3, 0.08),
        ("gaussian_noise", 5, 0.10),
        ("shot_noise", 3, 100),
        ("impulse_noise", 3, 0.03),
        ("defocus_blur", 3, (0.5, 0.6)),
        ("glass_blur", 3, (0.4, 1, 1)),
        ("glass_blur", 5, (0.4, 1, 2)),
        ("motion_blur", 3, (6, 2)),
        ("zoom_blur", 3, 1.16),
        ("snow", 3, (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9)),
        ("frost", 3, (0.9, 0.4)),
        ("fog", 3, (0.75, 2.5)),
        ("brightness", 3, 0.15),
        ("contrast", 3, 0.4),
        ("elastic_transform", 3, (32 * 0.08, 32 * 0.06, 32 * 0.06)),
        ("pixelate", 3, 0.85),
        ("jpeg_compression", 1, 80),
        ("jpeg_compression", 3, 58),
    ],
)
def test_severity_selects_the_documented_parameter(name, severity, expected):
    assert C.parameter(name, severity) == pytest.approx(expected)


def test_bad_severity_or_name_is_refused():
    with pytest.raises(ValueError, match="severity"):
        C.parameter("fog", 6)
    with pytest.raises(ValueError, match="unknown corruption 'rain'"):
        C.parameter("rain", 3)


def test_zoom_factors_are_one_to_stop_in_hundredths():
    factors = C.zoom_factors(C.parameter("zoom_blur", 3))
    assert len(factors) == 16
    assert factors[0] == 1.0 and factors[-1] == pytest.approx(1.15)


# ---------------------------------------------------------------------------------------------------------
# Every corruption: type, shape, range, seeding
# ---------------------------------------------------------------------------------------------------------
RANDOM_CORRUPTIONS = [
    "gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
    "elastic_transform",
]


@pytest.mark.parametrize("name", C.CORRUPTIONS)
def test_output_is_uint8_of_the_input_shape_and_seeded(name):
    images = random_images(4)
    overlays = synthetic_overlays()
    a = run(images, name, overlays=overlays)
    b = run(images, name, overlays=overlays)
    assert a.dtype == np.uint8 and a.shape == images.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, images), "the corruption changed nothing"
    if name in RANDOM_CORRUPTIONS:
        assert not np.array_equal(a, run(images, name, seed=1, overlays=overlays))


def test_a_corruption_does_not_depend_on_which_others_are_generated():
    images = random_images(3)
    overlays = synthetic_overlays()
    both = C.corrupt_all(images, ["gaussian_noise", "fog"], SEVERITY, seed=5, frost_overlays=overlays)
    alone = C.corrupt_all(images, ["fog"], SEVERITY, seed=5, frost_overlays=overlays)
    np.testing.assert_array_equal(both["fog"], alone["fog"])


def test_non_uint8_input_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        run(random_images(2).astype(np.float32), "contrast")


# ---------------------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_gaussian_noise_std_is_c_on_flat_grey(severity):
    out = run(flat(128, n=20), "gaussian_noise", severity=severity).astype(np.float64) / 255
    c = C.parameter("gaussian_noise", severity)
    assert out.std() == pytest.approx(c, abs=0.003)
    assert out.mean() == pytest.approx(128 / 255, abs=0.004)  # truncation lowers it by < 1/255


def test_shot_noise_variance_grows_with_intensity_as_x_over_c():
    c = C.parameter("shot_noise", SEVERITY)
    variances = {}
    for value in (51, 153):  # 0.2 and 0.6
        out = run(flat(value, n=20), "shot_noise").astype(np.float64) / 255
        variances[value] = out.var()
        assert out.var() == pytest.approx((value / 255) / c, rel=0.1)
    assert variances[153] / variances[51] == pytest.approx(3.0, rel=0.15)


def test_impulse_noise_saturates_a_fraction_c_half_salt_half_pepper():
    out = run(flat(128, n=20), "impulse_noise")
    c = C.parameter("impulse_noise", SEVERITY)
    salt, pepper = np.mean(out == 255), np.mean(out == 0)
    assert salt + pepper == pytest.approx(c, abs=0.003)
    assert salt == pytest.approx(pepper, abs=0.003)
    assert np.all((out == 0) | (out == 255) | (out == 128))


# ---------------------------------------------------------------------------------------------------------
# Blurs
# ---------------------------------------------------------------------------------------------------------
def single_bright_pixel(size: int = 32, at=(16, 16)) -> np.ndarray:
    image = np.zeros((1, size, size, 3), dtype=np.uint8)
    image[0, at[0], at[1]] = 255
    return image


def test_defocus_kernel_is_a_disc_of_the_given_radius():
    kernel = C.disk_kernel(3.0, alias_blur=0.01)  # negligible anti-aliasing
    half = kernel.shape[0] // 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    inside = xx**2 + yy**2 <= 9
    assert kernel.sum() == pytest.approx(1.0)
    assert kernel[~inside].max() < 1e-12
    np.testing.assert_allclose(kernel[inside], 1 / inside.sum())


def test_defocus_blur_of_a_bright_pixel_is_the_antialiased_disc():
    # severity 3: radius 0.5 (the centre pixel alone), anti-aliased by a 3x3 Gaussian of sigma 0.6
    out = run(single_bright_pixel(), "defocus_blur").astype(np.float64)
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * 0.6**2))
    expected = np.outer(g, g) / np.outer(g, g).sum() * 255
    np.testing.assert_allclose(out[0, 15:18, 15:18, 0], expected, atol=1)
    assert out[0].sum() == out[0, 15:18, 15:18].sum()
    # severity 5: the radius-1.5 disc is the full 3x3 block, each weight 1/9
    out5 = run(single_bright_pixel(), "defocus_blur", severity=5)
    np.testing.assert_array_equal(out5[0, 15:18, 15:18, 0], np.full((3, 3), 255 // 9))


def test_motion_blur_streaks_along_the_angle():
    image = single_bright_pixel().astype(np.float64)
    out = C.directional_blur(image, radius=6, sigma=2, angles_deg=np.array([0.0]))
    weights = C.motion_kernel(6, 2)
    assert len(weights) == 13
    # out(p) gathers x(p + (0, i)), so the bright pixel lands at columns 16 - i of its own row
    np.testing.assert_allclose(out[0, 16, 4:17, 0], np.rint(255 * weights[::-1]))
    off_row = np.delete(out[0, :, :, 0], 16, axis=0)
    assert off_row.max() == 0


def test_motion_blur_is_directional_horizontal_lines_survive_vertical_lines_smear():
    horizontal = np.zeros((10, 32, 32, 3), dtype=np.uint8)
    horizontal[:, 16] = 255
    vertical = np.zeros_like(horizontal)
    vertical[:, :, 16] = 255
    change_h = np.abs(run(horizontal, "motion_blur").astype(float) - horizontal).mean()
    change_v = np.abs(run(vertical, "motion_blur").astype(float) - vertical).mean()
    assert change_v > 2 * change_h  # angles lie within ±45° of the horizontal


def test_glass_blur_shuffle_moves_pixels_locally_up_and_left():
    rows, cols = np.mgrid[0:32, 0:32]
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)[None].repeat(5, axis=0)
    out = C.local_shuffle(image.copy(), delta=1, passes=2, rng=np.random.default_rng(0))
    d_row = out[..., 0].astype(int) - rows
    d_col = out[..., 1].astype(int) - cols
    assert d_row.min() >= -2 and d_row.max() <= 0
    assert d_col.min() >= -2 and d_col.max() <= 0
    assert (d_row != 0).mean() > 0.3  # most pixels were moved
    np.testing.assert_array_equal(out[:, :2], image[:, :2])  # rows 0..d untouched
    np.testing.assert_array_equal(out[:, :, :2], image[:, :, :2])


def test_glass_blur_keeps_a_flat_image_flat():
    np.testing.assert_array_equal(run(flat(100), "glass_blur"), flat(100))


def test_zoom_blur_is_the_mean_of_the_image_and_its_central_zooms():
    images = random_images(2)
    x = images.astype(np.float32) / 255
    factors = C.zoom_factors(C.parameter("zoom_blur", SEVERITY))
    zooms = []
    for z in factors:  # scipy's zoom of the central crop, image by image
        crop = int(np.ceil(32 / z))
        top = (32 - crop) // 2
        zoomed = np.stack([ndimage.zoom(im[top : top + crop, top : top + crop], (z, z, 1), order=1) for im in x])
        trim = (zoomed.shape[1] - 32) // 2
        zooms.append(zoomed[:, trim : trim + 32, trim : trim + 32])
    expected = (x + np.sum(zooms, axis=0)) / (len(factors) + 1) * 255
    out = run(images, "zoom_blur").astype(np.float64)
    assert np.abs(out - expected).max() < 1.0 + 1e-4


# ---------------------------------------------------------------------------------------------------------
# Weather
# ---------------------------------------------------------------------------------------------------------
def test_fog_on_flat_grey_spans_its_documented_range():
    # x = 0.5, m = 0.5, s = 0.75: (0.5 + 0.75 P) * 0.5 / 1.25 with P spanning [0, 1] -> [0.2, 0.5]
    out = run(flat(128, n=4), "fog").astype(np.float64)
    low, high = 0.2 * 255 * 128 / 127.5, (0.2 + 0.3) * 255 * 128 / 127.5
    for image in out:
        assert image.min() == pytest.approx(low, abs=1.01)
        assert image.max() == pytest.approx(high, abs=1.01)
        assert np.all(image[..., 0] == image[..., 1])  # grey clouds


def test_plasma_fractal_is_normalised_and_smooth():
    maps = C.plasma_fractal(4, 32, 2.5, np.random.default_rng(0))
    assert maps.shape == (4, 32, 32)
    np.testing.assert_allclose(maps.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1)
    neighbour_step = np.abs(np.diff(maps, axis=2)).mean()
    assert neighbour_step < 0.5 * np.abs(maps - maps.mean()).mean() * 2  # correlated, not white noise


def _assert_matches_reference(name: str, summary: np.ndarray) -> None:
    """Block means within the tolerance of tests/corruption_reference.json (how it was made: its module)."""
    reference = REF.load_reference()[name]
    assert summary.shape == reference.shape
    worst = np.abs(summary - reference).max()
    assert worst <= REF.TOLERANCE[name], f"{name} moved from its seeded reference by {worst:.4g}"


def test_plasma_fractal_matches_its_seeded_reference():
    maps = C.plasma_fractal(2, 32, 2.5, np.random.default_rng(0))
    _assert_matches_reference("plasma_fractal", REF.block_means(maps))


def test_frost_adds_a_crop_of_a_shrunken_overlay():
    overlays = synthetic_overlays()
    black = flat(0, n=3)
    out = run(black, "frost", overlays=overlays).astype(np.float64)
    weight = C.parameter("frost", SEVERITY)[1]
    small = [C.resize_bilinear_cv(o, C.FROST_SCALE) for o in overlays]
    for image in out:
        found = False
        for overlay in small:
            for top in range(overlay.shape[0] - 32):
                for left in range(overlay.shape[1] - 32):
                    crop = np.floor(np.clip(weight * overlay[top : top + 32, left : left + 32], 0, 255))
                    if np.array_equal(crop, image):
                        found = True
                        break
                if found:
                    break
            if found:
                break
        assert found, "a frosted black image is not 0.4 x a crop of a shrunken overlay"


def test_frost_shrink_samples_every_fifth_pixel():
    overlay = np.random.default_rng(0).integers(0, 256, size=(63, 112, 3)).astype(np.uint8)
    small = C.resize_bilinear_cv(overlay, 0.2)
    assert small.shape == (13, 22, 3)  # round(63 * 0.2), round(112 * 0.2)
    np.testing.assert_array_equal(small, overlay[2::5, 2::5][:13, :22])


def test_frost_brightens_dark_images_and_needs_overlays():
    dark = flat(30)
    assert run(dark, "frost", overlays=synthetic_overlays()).mean() > dark.mean() + 20
    with pytest.raises(ValueError, match="frost"):
        run(dark, "frost", overlays=None)


def test_snow_only_brightens_and_adds_streaks():
    images = random_images(6)
    out = run(images, "snow").astype(int)
    assert np.all(out >= images.astype(int) - 1)  # weighted max with 1.5·luma + 0.5, plus flakes ≥ 0
    assert out.mean() > images.mean() + 5


@pytest.mark.parametrize("name", ["snow", "elastic_transform"])
def test_seeded_corruption_matches_its_reference(name):
    images = REF.reference_images()
    out = C.corrupt(images, name, REF.SEVERITY, C.corruption_rng(0, name, REF.SEVERITY), None)
    _assert_matches_reference(name, REF.block_means(out))


def test_brightness_shifts_hsv_value_by_c_keeping_hue_and_saturation():
    images = random_images(3)
    c = C.parameter("brightness", SEVERITY)
    out = run(images, "brightness")
    v_in = images.max(axis=-1) / 255
    v_out = out.max(axis=-1) / 255
    np.testing.assert_allclose(v_out, np.minimum(v_in + c, 1), atol=1.01 / 255)
    unclipped = v_in + c < 0.95
    for (n, i, j) in np.argwhere(unclipped)[::97]:
        h0, s0, _ = colorsys.rgb_to_hsv(*(images[n, i, j] / 255))
        h1, s1, _ = colorsys.rgb_to_hsv(*(out[n, i, j] / 255))
        assert s1 == pytest.approx(s0, abs=0.02)
        if s0 > 0.2:
            assert min(abs(h1 - h0), 1 - abs(h1 - h0)) < 0.02


def test_contrast_scales_deviation_from_the_channel_mean_by_c():
    images = random_images(3)
    c = C.parameter("contrast", SEVERITY)
    x = images.astype(np.float64)
    mean = x.mean(axis=(1, 2), keepdims=True)
    out = run(images, "contrast").astype(np.float64)
    np.testing.assert_allclose(out, np.floor((x - mean) * c + mean + 1e-9), atol=1)


# ---------------------------------------------------------------------------------------------------------
# Digital
# ---------------------------------------------------------------------------------------------------------
def test_elastic_transform_stays_in_the_value_range_and_moves_little():
    images = random_images(6)
    out = run(images, "elastic_transform").astype(int)
    lo = images.reshape(6, -1).min(axis=1).astype(int)[:, None, None, None]
    hi = images.reshape(6, -1).max(axis=1)[:, None, None, None]
    assert np.all(out >= lo - 1) and np.all(out <= hi)
    assert np.abs(out - images).mean() < 0.15 * np.abs(images - images.mean()).mean() + 10


def test_pixelate_is_a_box_downsample_to_c_times_32_and_back():
    images = random_images(5)
    out = run(images, "pixelate")
    side = int(32 * C.parameter("pixelate", SEVERITY))
    assert side == 27
    for image, got in zip(images, out):
        small = Image.fromarray(image).resize((side, side), Image.Resampling.BOX)
        np.testing.assert_array_equal(got, np.asarray(small.resize((32, 32), Image.Resampling.BOX)))


def test_jpeg_compression_equals_a_pillow_roundtrip_at_the_quality():
    images = random_images(4)
    out = run(images, "jpeg_compression")
    quality = C.parameter("jpeg_compression", SEVERITY)
    for image, got in zip(images, out):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        np.testing.assert_array_equal(got, np.asarray(Image.open(io.BytesIO(buffer.getvalue()))))
    other = C.corrupt(images, "jpeg_compression", 1, np.random.default_rng(0))
    assert not np.array_equal(out, other)  # quality 80 differs from 58


# ---------------------------------------------------------------------------------------------------------
# The published CIFAR-10-C tar (source: download), on a fake tar with small severity blocks
# ---------------------------------------------------------------------------------------------------------
BLOCK = 20


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def fake_cifar10c(path: Path, names=("gaussian_noise", "fog"), labels=None) -> np.ndarray:
    """A tar laid out like CIFAR-10-C with BLOCK images per severity; pixel (0,0,0) = severity, (0,0,1) = row
    within the block, (0,0,2) = which corruption."""
    labels = np.arange(BLOCK) % 10 if labels is None else labels
    with tarfile.open(path, "w") as tar:
        members = {"labels": np.tile(labels, C.CIFAR10C_SEVERITIES).astype(np.uint8)}
        for k, name in enumerate(names):
            data = np.zeros((C.CIFAR10C_SEVERITIES * BLOCK, 32, 32, 3), dtype=np.uint8)
            data[:, 0, 0, 0] = np.repeat(np.arange(1, 6), BLOCK)
            data[:, 0, 0, 1] = np.tile(np.arange(BLOCK), C.CIFAR10C_SEVERITIES)
            data[:, 0, 0, 2] = k
            members[name] = data
        members["spatter"] = np.zeros((3,), dtype=np.uint8)  # not asked for: must not be read
        for name, array in members.items():
            payload = npy_bytes(array)
            info = tarfile.TarInfo(f"CIFAR-10-C/{name}.npy")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return labels


def test_severity_rows():
    assert C.severity_rows(3) == (20000, 30000)
    assert C.severity_rows(1, block=BLOCK) == (0, BLOCK)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_reading_the_tar_slices_the_severity_block_at_the_indices(tmp_path, severity):
    tar = tmp_path / "CIFAR-10-C.tar"
    labels = fake_cifar10c(tar)
    indices = np.array([7, 2, 19, 0])
    rows = C.read_cifar10c_rows(
        tar, ["fog", "gaussian_noise"], severity, indices, expected_labels=labels[indices], block=BLOCK
    )
    assert set(rows) == {"fog", "gaussian_noise"}
    for k, name in enumerate(["gaussian_noise", "fog"]):
        assert rows[name].shape == (4, 32, 32, 3) and rows[name].dtype == np.uint8
        np.testing.assert_array_equal(rows[name][:, 0, 0, 0], severity)
        np.testing.assert_array_equal(rows[name][:, 0, 0, 1], indices)
        np.testing.assert_array_equal(rows[name][:, 0, 0, 2], k)


def test_reading_the_tar_checks_labels_and_members(tmp_path):
    tar = tmp_path / "CIFAR-10-C.tar"
    labels = fake_cifar10c(tar)
    wrong = (labels[[1, 2]] + 1) % 10
    with pytest.raises(ValueError, match="labels.npy disagrees with CIFAR-10 at test index 1"):
        C.read_cifar10c_rows(tar, ["fog"], 2, np.array([1, 2]), expected_labels=wrong, block=BLOCK)
    with pytest.raises(ValueError, match="no member named snow.npy"):
        C.read_cifar10c_rows(tar, ["snow"], 2, np.array([1]), block=BLOCK)
    with pytest.raises(ValueError, match="expected 50000 C-ordered rows"):
        C.read_cifar10c_rows(tar, ["fog"], 2, np.array([1]))  # real block size: the fake is too short


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------
def write_inputs(tmp_path: Path, n_images: int = 40):
    rng = np.random.default_rng(3)
    images = random_images(n_images, seed=4)
    labels = rng.integers(0, 10, size=n_images)
    np.savez(tmp_path / "cifar10_test.npz", images=images, labels=labels)
    test = np.array([5, 1, 18, 12, 7, 3])
    np.savez(tmp_path / "splits.npz", train=np.setdiff1d(np.arange(n_images), test), test=test)
    return images, labels, test


def write_config(tmp_path: Path, **corruption) -> Path:
    config = yaml.safe_load((C_REPO / "config.yaml").read_text())
    config["evaluation"]["corruption"].update(corruption)
    for preset in config["scales"].values():  # the quick/smoke presets set the source too
        if "source" in corruption and "corruption" in preset.get("evaluation", {}):
            preset["evaluation"]["corruption"]["source"] = corruption["source"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


C_REPO = Path(__file__).resolve().parents[1]


def test_cli_generate_writes_the_configured_corruptions(tmp_path):
    from softlabels.cli import main

    images, _, test = write_inputs(tmp_path)
    config = write_config(tmp_path, source="generate", severity=2, corruptions=["contrast", "frost"], seed=3)
    overlays = []
    for k, overlay in enumerate(synthetic_overlays()):
        overlays.append(str(tmp_path / f"frost{k}.png"))
        Image.fromarray(overlay).save(overlays[-1])
    out = tmp_path / "out" / "holdout.npz"
    args = ["corrupt", "build", "--test-images", str(tmp_path / "cifar10_test.npz"), "--splits",
            str(tmp_path / "splits.npz"), "--output", str(out), "--configfile", str(config), "--config",
            "scale=paper", "--frost", *overlays]
    assert main(args) == 0
    with np.load(out) as data:
        assert sorted(data.files) == ["contrast", "frost", "indices"]
        np.testing.assert_array_equal(data["indices"], test)
        expected = C.corrupt(images[test], "contrast", 2, C.corruption_rng(3, "contrast", 2))
        np.testing.assert_array_equal(data["contrast"], expected)
        assert data["frost"].shape == (len(test), 32, 32, 3)


def test_cli_download_source_reads_the_tar_and_reports_bad_input(tmp_path, monkeypatch, capsys):
    from softlabels.cli import main

    images, labels, test = write_inputs(tmp_path, n_images=BLOCK)
    tar = tmp_path / "CIFAR-10-C.tar"
    fake_cifar10c(tar, labels=labels)
    monkeypatch.setattr(C, "CIFAR10C_BLOCK", BLOCK)
    config = write_config(tmp_path, source="download", corruptions=["fog", "gaussian_noise"], severity=4)
    out = tmp_path / "holdout.npz"
    base = ["corrupt", "build", "--test-images", str(tmp_path / "cifar10_test.npz"), "--splits",
            str(tmp_path / "splits.npz"), "--output", str(out), "--configfile", str(config), "--config",
            "scale=paper"]
    assert main(base) == 2
    assert "pass --cifar10c" in capsys.readouterr().err
    assert main([*base, "--cifar10c", str(tar)]) == 0
    with np.load(out) as data:
        np.testing.assert_array_equal(data["indices"], test)
        np.testing.assert_array_equal(data["fog"][:, 0, 0, 0], 4)
        np.testing.assert_array_equal(data["fog"][:, 0, 0, 1], test)
    np.savez(tmp_path / "cifar10_test.npz", images=images, labels=(labels + 1) % 10)
    assert main([*base, "--cifar10c", str(tar)]) == 2
    assert "labels.npy disagrees" in capsys.readouterr().err


def test_cli_holdout_limit_cuts_the_rows(tmp_path):
    from softlabels.cli import main

    _, labels, test = write_inputs(tmp_path)
    config = yaml.safe_load(write_config(tmp_path, source="generate", corruptions=["brightness"]).read_text())
    config["evaluation"]["cifar10h_holdout_limit"] = 4
    config["evaluation"]["calibration"]["bin_size"] = 2  # two calibration bins (checked when the config loads)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "holdout.npz"
    assert main(["corrupt", "build", "--test-images", str(tmp_path / "cifar10_test.npz"), "--splits",
                 str(tmp_path / "splits.npz"), "--output", str(out), "--configfile",
                 str(tmp_path / "config.yaml"), "--config", "scale=paper"]) == 0
    with np.load(out) as data:
        np.testing.assert_array_equal(data["indices"], balanced_prefix(test, labels, 4))
        assert data["brightness"].shape == (4, 32, 32, 3)


# ---------------------------------------------------------------------------------------------------------
# The real frost overlays and the rules
# ---------------------------------------------------------------------------------------------------------
def test_real_frost_overlays_shrink_to_the_expected_sizes(data_mirror):
    folder = data_mirror / "cifar-10-c" / "frost"
    paths = [folder / f for f in ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")]
    overlays = C.load_frost_overlays(paths)
    sizes = [C.resize_bilinear_cv(o, C.FROST_SCALE).shape for o in overlays]
    assert sizes == [(120, 180, 3), (63, 112, 3), (63, 112, 3), (70, 105, 3), (99, 132, 3)]
    out = run(random_images(20), "frost", overlays=overlays)
    assert out.mean() > random_images(20).mean()


def test_load_frost_overlays_names_a_bad_file(tmp_path):
    bad = tmp_path / "frost1.png"
    bad.write_text("not a picture")
    with pytest.raises(ValueError, match="frost1.png"):
        C.load_frost_overlays([bad])


@pytest.mark.parametrize(
    "source, rule, needs",
    [
        ("generate", "corrupt_holdout", "frost5.jpg"),
        pytest.param("download", "fetch_cifar10c", "CIFAR-10-C.tar", marks=pytest.mark.slow),
    ],
)
def test_rule_dag_follows_the_source(tmp_path, snakemake_runner, source, rule, needs):
    config = write_config(tmp_path, source=source)
    result = snakemake_runner(tmp_path / "wd", "--configfile", str(config), "--config", "scale=smoke",
                              "--cores", "1", "-n", "-p", "--", "results/data/cifar10c_holdout_s3.npz")
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert rule in text and needs in text
    if source == "generate":
        assert "fetch_cifar10c" not in text and "frost6" not in text
