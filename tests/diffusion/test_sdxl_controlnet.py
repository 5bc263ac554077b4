"""SDXL with ControlNet units (single, MultiControlNet, weight and guidance window), a ControlNet of the other base
refused in one clear line, cross-frame attention and latent fusion on SDXLDiffuser, and a ControlNet render of the
tiny SDXL model through the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from anim.diffusion.crossframe import CrossFrameInput, encode_anchor
from anim.diffusion.diffuse import ControlInput
from anim.diffusion.fusion import FusionInput
from anim.errors import ModelError

ARGS = {"cfg_scale": 7.0, "steps": 3, "sampler": "euler_a", "seed": 11, "width": 64, "height": 64}


def _image(seed: int) -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def xl_models(anim_cache):
    from anim.models import load_models
    from anim.models.tiny import tiny_sdxl_dir

    return load_models(str(tiny_sdxl_dir(anim_cache)), device="cpu")


@pytest.fixture(scope="module")
def xl(xl_models):
    """An SDXLDiffuser on the tiny SDXL model, shared by this module's tests."""
    from anim.diffusion.sdxl import SDXLDiffuser

    return SDXLDiffuser(xl_models)


@pytest.fixture(scope="module")
def xl_embeds(xl_models):
    from anim.diffusion.sdxl import SDXLPromptEncoder

    return SDXLPromptEncoder.from_models(xl_models).conditioning("a red fox in the snow", "blurry")


@pytest.fixture(scope="module")
def xl_net(xl_models, anim_cache):
    from anim.models import load_controlnet

    return load_controlnet("tiny-sdxl", device=xl_models.device, dtype=xl_models.dtype, cache_dir=anim_cache)


def run(xl, embeds, *, init=None, denoise=1.0, **extra):
    cond, uncond = embeds
    return xl(init=init, cond=cond, uncond=uncond, denoise=denoise, **{**ARGS, **extra})


@pytest.mark.parametrize("img2img", [True, False], ids=["img2img", "txt2img"])
def test_a_controlnet_unit_changes_the_output_and_repeats(xl, xl_embeds, xl_net, img2img):
    given = {"init": _image(1), "denoise": 0.7} if img2img else {}
    plain = run(xl, xl_embeds, **given)
    units = [ControlInput(xl_net, _image(2), weight=1.0)]
    a = run(xl, xl_embeds, controls=units, **given)
    assert a.shape == (1, 3, 64, 64) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, run(xl, xl_embeds, controls=units, **given))
    assert float((a - plain).abs().max()) > 1e-3
    assert torch.equal(run(xl, xl_embeds, **given), plain)  # the plain pipeline is untouched


def test_weight_zero_equals_no_unit_and_the_window_is_used(xl, xl_embeds, xl_net):
    init = _image(1)
    plain = run(xl, xl_embeds, init=init, denoise=0.7)
    zero = [ControlInput(xl_net, _image(2), weight=0.0)]
    assert torch.equal(run(xl, xl_embeds, init=init, denoise=0.7, controls=zero), plain)  # diffusers adds zeros
    half = run(xl, xl_embeds, init=init, denoise=0.7, controls=[ControlInput(xl_net, _image(2), 1.0, 0.0, 0.5)])
    full = run(xl, xl_embeds, init=init, denoise=0.7, controls=[ControlInput(xl_net, _image(2), 1.0)])
    assert not torch.equal(half, plain) and not torch.equal(half, full)


def test_two_units_run_as_a_multicontrolnet(xl, xl_embeds, xl_net):
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    one = [ControlInput(xl_net, _image(2), 0.5, 0.0, 0.5)]
    two = [*one, ControlInput(xl_net, _image(3), 0.5, 0.5, 1.0)]
    a = run(xl, xl_embeds, controls=two)
    assert torch.equal(a, run(xl, xl_embeds, controls=two))
    assert not torch.equal(a, run(xl, xl_embeds, controls=one))
    pipe = xl._pipeline(img2img=False, controls=two)
    assert isinstance(pipe.controlnet, MultiControlNetModel) and pipe.unet is xl.models.unet
    assert pipe is xl._pipeline(img2img=False, controls=two)  # built once per set of ControlNets


def test_a_controlnet_of_the_other_base_is_one_clear_error(xl, xl_embeds, xl_net, diffuser, tiny_models,
                                                           anim_cache):
    from anim.diffusion.conditioning import PromptEncoder
    from anim.models import load_controlnet

    sd15_net = load_controlnet("tiny", device=tiny_models.device, dtype=tiny_models.dtype, cache_dir=anim_cache)
    with pytest.raises(ModelError, match=r"^ControlNet tiny is an SD1\.5 ControlNet and does not fit the SDXL "
                                         r"model tiny-v1-sdxl; use SDXL ControlNets") as caught:
        run(xl, xl_embeds, init=_image(1), denoise=0.7, controls=[ControlInput(sd15_net, _image(2))])
    assert "\n" not in str(caught.value)
    cond, uncond = PromptEncoder.from_models(tiny_models).pair("a cabin", "")
    with pytest.raises(ModelError, match=r"^ControlNet tiny-sdxl is an SDXL ControlNet and does not fit the SD1\.5 "
                                         r"model tiny; use SD1\.5 ControlNets"):
        diffuser(init=None, cond=cond, uncond=uncond, denoise=1.0, **ARGS,
                 controls=[ControlInput(xl_net, _image(2))])


def test_cross_frame_attention_on_sdxl(xl, xl_embeds):
    init = _image(1)
    plain = run(xl, xl_embeds, init=init, denoise=0.6, steps=4)
    anchor = encode_anchor(xl.models.vae, _image(4))
    off = CrossFrameInput(0.0, [anchor], 3)
    assert torch.equal(run(xl, xl_embeds, init=init, denoise=0.6, steps=4, cross_frame=off), plain)
    on = run(xl, xl_embeds, init=init, denoise=0.6, steps=4, cross_frame=CrossFrameInput(1.0, [anchor], 3))
    assert float((on - plain).abs().max()) > 1e-3
    again = run(xl, xl_embeds, init=init, denoise=0.6, steps=4, cross_frame=CrossFrameInput(1.0, [anchor], 3))
    assert torch.equal(again, on)  # repeatable
    assert torch.equal(run(xl, xl_embeds, init=init, denoise=0.6, steps=4), plain)  # and off again afterwards


def test_a_fused_sdxl_call_lands_closer_to_the_guide(xl, xl_embeds):
    vae = xl.models.vae
    guide = encode_anchor(vae, _image(9))
    given = {"init": _image(0), "denoise": 0.8, "steps": 4}
    plain = run(xl, xl_embeds, **given)
    mask = torch.ones(1, 1, 8, 8)
    assert torch.equal(run(xl, xl_embeds, **given, fusion=FusionInput(guide, mask, 0.0)), plain)
    on = run(xl, xl_embeds, **given, fusion=FusionInput(guide, mask, 1.0, 0.0, 1.0))
    assert torch.equal(run(xl, xl_embeds, **given, fusion=FusionInput(guide, mask, 1.0, 0.0, 1.0)), on)
    with torch.inference_mode():
        decoded = (vae.decode(guide / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    far, near = float((plain - decoded).abs().mean()), float((on - decoded).abs().mean())
    print(f"SDXL mean |frame - decoded guide|: plain {far:.4f}, fused {near:.4f}")
    assert near < 0.25 * far
    assert torch.equal(run(xl, xl_embeds, **given), plain)  # nothing left installed


def test_an_sdxl_controlnet_preset_renders_through_the_cli(anim_cache, tmp_path):
    from PIL import Image

    from anim.cli import main
    from anim.media.png import read_png_u8
    from anim.models.tiny import tiny_sdxl_dir

    hint = np.full((64, 64, 3), 20, np.uint8)
    hint[16:48, 20:44] = 240
    Image.fromarray(hint).save(tmp_path / "map.png")
    preset = {"model": str(tiny_sdxl_dir(anim_cache)), "width": 64, "height": 64, "fps": 8, "max_frames": 3,
              "seed": 5, "steps": 2, "prompts": {0: "a red fox in the snow"}, "motion": {"mode": "none"},
              "denoise": 0.5, "color_coherence": "none", "coherence": {"cross_frame": {"weight": 0.5}},
              "controlnet": [{"model": "tiny-sdxl", "input": str(tmp_path / "map.png"), "annotator": "none",
                              "weight": 0.8, "guidance_end": 0.7}]}
    path = tmp_path / "xl.yaml"
    path.write_text(yaml.safe_dump(preset, sort_keys=False))
    assert main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    frames = sorted((tmp_path / "out" / "frames").glob("*.png"))
    assert [f.name for f in frames] == ["000000.png", "000001.png", "000002.png"]
    assert all(read_png_u8(f).shape == (64, 64, 3) and read_png_u8(f).std() > 0 for f in frames)
