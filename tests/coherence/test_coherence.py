"""Tests of the coherence ops: exact where possible, cv2/skimage as references elsewhere."""

import cv2
import numpy as np
import pytest
import torch
from skimage import color as skcolor
from skimage.exposure import match_histograms as sk_match_histograms

from anim.coherence.color import (
    hsv_to_rgb,
    hue_cut,
    interp,
    lab_to_rgb,
    match_channel,
    match_histograms,
    rgb_to_hsv,
    rgb_to_lab,
)
from anim.coherence.filters import (
    add_noise,
    apply_contrast,
    gaussian_blur,
    gaussian_kernel_1d,
    perlin_noise,
    seeded_noise,
    unsharp_mask,
)
from anim.media.tensors import from_uint8_hwc, quantize_u8, to_uint8_hwc


def smooth_image(height=32, width=40, seed=0, lo=0.0, hi=1.0):
    """(1, 3, H, W) float32 image with natural-looking, slightly blurred random content."""
    rng = np.random.default_rng(seed)
    hwc = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.0)
    hwc = lo + (hi - lo) * (hwc - hwc.min()) / (hwc.max() - hwc.min())
    return torch.from_numpy(hwc).permute(2, 0, 1)[None].contiguous()


def hwc(t):
    return t[0].permute(1, 2, 0).numpy().astype(np.float64)


# ---- colour spaces ---------------------------------------------------------------------------


def test_lab_matches_skimage_and_cv2():
    img = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    lab = hwc(rgb_to_lab(img.double()))
    # skimage rounds the D65 white to (0.95047, 1.08883); ours is the matrix's own row sums (so
    # white is exactly a = b = 0, as cv2): that differs by < 5e-3 Lab units.
    np.testing.assert_allclose(lab, skcolor.rgb2lab(hwc(img)), atol=5e-3)
    # cv2's float Lab approximates the sRGB curve with a spline: it is itself ~0.6 off skimage.
    cv_lab = cv2.cvtColor(hwc(img).astype(np.float32), cv2.COLOR_RGB2Lab)
    np.testing.assert_allclose(lab, cv_lab, atol=1.0)


def test_lab_known_values():
    img = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 3, 1).double()
    lab = rgb_to_lab(img)[0, :, :, 0].T
    torch.testing.assert_close(lab[0], torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(lab[1], torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(lab[2], torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64), atol=2e-2, rtol=0)


def test_lab_round_trip():
    img = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(img)), img, atol=1e-4, rtol=0)
    np.testing.assert_allclose(hwc(lab_to_rgb(rgb_to_lab(img.double()))[:1]), hwc(img[:1]), atol=1e-9)


def test_lab_to_rgb_matches_skimage():
    lab = rgb_to_lab(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)).double())
    np.testing.assert_allclose(hwc(lab_to_rgb(lab)), skcolor.lab2rgb(hwc(lab)), atol=1e-3)


def test_hsv_matches_skimage_and_round_trips():
    img = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4)).double()
    img[0, :, 0, 0] = 0.5  # grey: hue 0, saturation 0
    img[0, :, 0, 1] = 0.0  # black
    hsv = rgb_to_hsv(img)
    np.testing.assert_allclose(hwc(hsv), skcolor.rgb2hsv(hwc(img)), atol=1e-9)
    torch.testing.assert_close(hsv_to_rgb(hsv), img, atol=1e-9, rtol=0)
    np.testing.assert_allclose(hwc(hsv_to_rgb(hsv)), skcolor.hsv2rgb(hwc(hsv)), atol=1e-9)


def test_hsv_primaries():
    rgb = torch.eye(3).reshape(1, 3, 3, 1)  # columns: red, green, blue pixels
    hsv = rgb_to_hsv(rgb)[0, :, :, 0]
    torch.testing.assert_close(hsv[0], torch.tensor([0.0, 1 / 3, 2 / 3]))
    torch.testing.assert_close(hsv[1], torch.ones(3))
    torch.testing.assert_close(hsv_to_rgb(torch.tensor([1.0, 1.0, 1.0]).view(1, 3, 1, 1)).flatten(),
                               torch.tensor([1.0, 0.0, 0.0]))  # hue 1 wraps to red


# ---- histogram matching ----------------------------------------------------------------------


def test_interp_matches_numpy():
    xp = torch.tensor([0.1, 0.4, 0.5, 0.9], dtype=torch.float64)
    fp = torch.tensor([1.0, 3.0, -2.0, 7.0], dtype=torch.float64)
    x = torch.tensor([0.0, 0.1, 0.2, 0.4, 0.45, 0.5, 0.89, 0.9, 1.0], dtype=torch.float64)
    np.testing.assert_allclose(interp(x, xp, fp).numpy(), np.interp(x.numpy(), xp.numpy(), fp.numpy()), atol=1e-12)
    assert torch.equal(interp(x, xp[:1], fp[:1]), torch.ones_like(x))


def test_match_channel_exact_small_case():
    source = torch.tensor([0.0, 0.0, 1.0, 2.0])
    reference = torch.tensor([10.0, 20.0, 30.0, 40.0])
    # quantiles: source 0 -> 0.5, 1 -> 0.75, 2 -> 1.0; reference 0.25/0.5/0.75/1.0 -> 10..40
    assert torch.equal(match_channel(source, reference), torch.tensor([20.0, 20.0, 30.0, 40.0]))


def test_match_channel_against_skimage_with_ties():
    rng = np.random.default_rng(5)
    source = np.round(rng.random((20, 30)) * 40) / 40  # many ties
    reference = rng.random((25, 17)) ** 2
    ours = match_channel(torch.from_numpy(source), torch.from_numpy(reference)).numpy()
    np.testing.assert_allclose(ours, sk_match_histograms(source, reference), atol=1e-12)


@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_match_histograms_matches_skimage(space):
    image = smooth_image(seed=1, lo=0.1, hi=0.7)
    reference = smooth_image(24, 24, seed=2, lo=0.3, hi=1.0)
    ours = match_histograms(image, reference, space)
    convert, back = (lambda x: x, lambda x: x) if space == "rgb" else (skcolor.rgb2lab, skcolor.lab2rgb)
    expected = back(sk_match_histograms(convert(hwc(image)), convert(hwc(reference)), channel_axis=-1))
    assert np.abs(hwc(ours) - np.clip(expected, 0, 1)).mean() < 1 / 255


def test_match_histograms_hsv_matches_skimage_on_cut_circle():
    image = smooth_image(seed=3, lo=0.05, hi=0.8)
    reference = smooth_image(seed=4, lo=0.2, hi=0.9)
    ours = match_histograms(image, reference, "hsv")
    src, ref = skcolor.rgb2hsv(hwc(image)), skcolor.rgb2hsv(hwc(reference))
    cut = hue_cut(torch.from_numpy(src[..., 0]), torch.from_numpy(ref[..., 0]))
    src[..., 0], ref[..., 0] = (src[..., 0] - cut) % 1, (ref[..., 0] - cut) % 1
    matched = sk_match_histograms(src, ref, channel_axis=-1)
    matched[..., 0] = (matched[..., 0] + cut) % 1
    assert np.abs(hwc(ours) - skcolor.hsv2rgb(matched)).mean() < 1 / 255


def test_hue_cut_avoids_a_red_range_straddling_zero():
    hues = torch.tensor([0.95, 0.97, 0.99, 0.01, 0.03, 0.05])
    cut = hue_cut(hues, hues)
    assert 0.05 < cut < 0.95
    assert hue_cut(torch.tensor([0.3, 0.5]), torch.tensor([0.4])) == 0.0  # red side empty: usual cut
    # two gaps, 0.2..0.6 is the widest: the cut lands in it
    cut = hue_cut(torch.tensor([0.1, 0.15, 0.2, 0.6, 0.7, 0.8, 0.9]), torch.tensor([0.0]))
    assert 0.2 < cut < 0.6


def test_hsv_matching_keeps_reds_red():
    # reds on both sides of hue 0: a linear match would swing some of them through green/blue
    hue = torch.tensor([0.97, 0.99, 0.01, 0.03]).view(1, 1, 2, 2)
    image = hsv_to_rgb(torch.cat([hue, torch.ones_like(hue), torch.ones_like(hue)], dim=1))
    out_hue = rgb_to_hsv(match_histograms(image, image.flip(-1), "hsv"))[:, 0]
    circular_distance_to_red = torch.minimum(out_hue, 1 - out_hue)
    assert circular_distance_to_red.max() < 0.05


@pytest.mark.parametrize("space", ["rgb", "lab", "hsv"])
def test_match_to_itself_is_identity(space):
    image = smooth_image(seed=6)
    torch.testing.assert_close(match_histograms(image, image, space), image, atol=2e-4, rtol=0)


def test_match_histograms_none_and_batch_reference():
    image = smooth_image(seed=7).expand(2, 3, 32, 40).contiguous()
    assert match_histograms(image, image, "none") is image
    reference = smooth_image(seed=8)
    out = match_histograms(image, reference, "lab")
    assert out.shape == image.shape and torch.equal(out[0], out[1])
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError):
        match_histograms(image, reference, "xyz")


def test_rgb_matching_takes_reference_values():
    image = torch.tensor([0.1, 0.2, 0.3, 0.4]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    reference = torch.tensor([0.5, 0.6, 0.7, 0.8]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    torch.testing.assert_close(match_histograms(image, reference, "rgb"), reference)


# ---- contrast, blur, unsharp -----------------------------------------------------------------


def test_contrast():
    image = torch.tensor([0.0, 0.25, 0.5, 0.75]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    assert torch.equal(apply_contrast(image, 1.0), image)
    expected = torch.tensor([0.0, 0.5, 1.0, 1.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    assert torch.equal(apply_contrast(image, 2.0), expected)
    assert torch.equal(apply_contrast(image, 0.5), image / 2)


def test_gaussian_kernel_matches_cv2():
    for size, sigma in [(5, 1.0), (3, 0.5), (7, 2.5), (1, 0.0), (3, 0.0), (5, 0.0), (7, 0.0)]:
        np.testing.assert_allclose(gaussian_kernel_1d(size, sigma), cv2.getGaussianKernel(size, sigma).ravel(), atol=1e-7)
    with pytest.raises(ValueError):
        gaussian_kernel_1d(4, 1.0)


@pytest.mark.parametrize("size, sigma", [(5, 1.0), (3, 0.8), (9, 2.0)])
def test_gaussian_blur_matches_cv2(size, sigma):
    image = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(9))
    expected = cv2.GaussianBlur(hwc(image).astype(np.float32), (size, size), sigma)
    np.testing.assert_allclose(hwc(gaussian_blur(image, size, sigma)), expected, atol=1e-5)


def test_unsharp_identity_and_formula():
    image = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(10))
    assert torch.equal(unsharp_mask(image, 0.0), image)
    blur = gaussian_blur(image, 5, 1.0)
    torch.testing.assert_close(unsharp_mask(image, 0.7), (1.7 * image - 0.7 * blur).clamp(0, 1))


def test_unsharp_matches_cv2_deforum_style_reference():
    image = smooth_image(seed=11)
    amount, threshold = 0.8, 3.0
    img = hwc(image).astype(np.float32)
    blurred = cv2.GaussianBlur(img, (5, 5), 1.0)
    expected = np.clip((1 + amount) * img - amount * blurred, 0, 1)
    keep = np.abs(img - blurred) < threshold / 255
    expected[keep] = img[keep]
    np.testing.assert_allclose(hwc(unsharp_mask(image, amount, 5, 1.0, threshold)), expected, atol=1e-5)


def test_unsharp_threshold_keeps_flat_regions():
    image = torch.full((1, 3, 8, 8), 0.5)
    image[..., 4:] = 0.52  # a 5-level step
    out = unsharp_mask(image, 1.0, threshold=10.0)
    assert torch.equal(out, image)
    assert not torch.equal(unsharp_mask(image, 1.0, threshold=1.0), image)


# ---- noise -----------------------------------------------------------------------------------


@pytest.mark.parametrize("noise_type", ["gaussian", "perlin"])
def test_noise_amount_zero_is_exact_and_seeded(noise_type):
    image = smooth_image(seed=12)
    assert torch.equal(add_noise(image, 0.0, seed=1, noise_type=noise_type), image)
    a = add_noise(image, 0.1, seed=5, noise_type=noise_type)
    b = add_noise(image, 0.1, seed=5, noise_type=noise_type)
    c = add_noise(image, 0.1, seed=6, noise_type=noise_type)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 and a.dtype == image.dtype


def test_gaussian_noise_formula():
    image = torch.full((1, 3, 4, 4), 0.5)
    noise = torch.randn((1, 3, 4, 4), generator=torch.Generator("cpu").manual_seed(3))
    expected = (((1 - 0.2) * 0.0 + 0.2 * noise + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(add_noise(image, 0.2, seed=3), expected)
    assert torch.equal(add_noise(image, 1.0, seed=3), ((noise + 1) / 2).clamp(0, 1))


def test_perlin_noise_statistics_and_smoothness():
    field = perlin_noise(64, 96, torch.Generator().manual_seed(0), octaves=4, persistence=0.5)
    assert field.shape == (64, 96)
    assert abs(field.mean().item()) < 1e-9 and abs(field.std().item() - 1) < 1e-9
    neighbour_diff = (field[:, 1:] - field[:, :-1]).abs().mean()
    white = torch.randn(64, 96, generator=torch.Generator().manual_seed(0))
    assert neighbour_diff < 0.5 * (white[:, 1:] - white[:, :-1]).abs().mean()  # spatially coherent


def test_perlin_is_shared_across_channels_and_differs_per_image():
    noise = seeded_noise((2, 3, 16, 16), seed=4, noise_type="perlin")
    assert torch.equal(noise[0, 0], noise[0, 2]) and not torch.equal(noise[0, 0], noise[1, 0])
    with pytest.raises(ValueError):
        seeded_noise((1, 3, 4, 4), seed=0, noise_type="pink")


# ---- 8-bit round trip ------------------------------------------------------------------------


def test_quantize_and_uint8_round_trip_exact():
    image = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(13)) * 1.2 - 0.1
    arr = to_uint8_hwc(image)
    assert arr.dtype == np.uint8 and arr.shape == (9, 7, 3)
    back = from_uint8_hwc(arr, "cpu")
    assert back.shape == (1, 3, 9, 7) and back.dtype == torch.float32
    assert torch.equal(back, quantize_u8(image))
    np.testing.assert_array_equal(to_uint8_hwc(back), arr)
    assert torch.equal(quantize_u8(back), back)  # idempotent


def test_all_uint8_levels_round_trip():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(to_uint8_hwc(from_uint8_hwc(levels)), levels)
    assert np.array_equal(to_uint8_hwc(from_uint8_hwc(levels)[0]), levels)


def test_uint8_matches_pil_png_round_trip(tmp_path):
    from PIL import Image

    image = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(14))
    Image.fromarray(to_uint8_hwc(image)).save(tmp_path / "f.png")
    loaded = np.asarray(Image.open(tmp_path / "f.png").convert("RGB"))
    assert torch.equal(from_uint8_hwc(loaded), quantize_u8(image))


def test_uint8_rejects_bad_input():
    with pytest.raises(ValueError):
        to_uint8_hwc(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        from_uint8_hwc(np.zeros((4, 4, 3), dtype=np.float32))


def test_widest_circular_run():
    from anim.coherence.color import widest_circular_run

    assert widest_circular_run([True, False, True, True, False]) == (2, 2)
    assert widest_circular_run([True, True, False, False, True]) == (4, 3)  # wraps the seam
    assert widest_circular_run([True] * 4) == (0, 4)
    assert widest_circular_run([False] * 3)[1] == 0


@pytest.mark.parametrize("space", ["rgb", "lab", "hsv"])
def test_prepared_reference_gives_the_same_result(space):
    from anim.coherence import prepare_reference

    image = smooth_image(seed=15).expand(2, 3, 32, 40).contiguous()
    reference = smooth_image(20, 20, seed=16)
    prepared = prepare_reference(reference, space)
    assert torch.equal(match_histograms(image, prepared, space), match_histograms(image, reference, space))
    other = "rgb" if space != "rgb" else "lab"
    with pytest.raises(ValueError, match="prepared"):
        match_histograms(image, prepared, other)


def test_one_reference_per_image():
    image = torch.cat([smooth_image(seed=17), smooth_image(seed=18)])
    references = torch.cat([smooth_image(seed=19), smooth_image(seed=20, lo=0.4)])
    out = match_histograms(image, references, "rgb")
    torch.testing.assert_close(out[1:], match_histograms(image[1:], references[1:], "rgb"))
    torch.testing.assert_close(out[:1], match_histograms(image[:1], references[:1], "rgb"))
