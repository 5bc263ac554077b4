"""ControlUnits with the tiny ControlNet: several units, weight-0 units left out, schedules reach the pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from anim.control.units import ControlUnits
from anim.errors import InputError
from anim.preset import ControlUnit
from tests.control.conftest import write_levels

SIZE = 64
ARGS = {"cfg_scale": 7.0, "steps": 2, "sampler": "euler_a", "seed": 3, "width": SIZE, "height": SIZE}


@pytest.fixture(scope="module")
def embeds(tiny_models):
    from anim.diffusion.conditioning import PromptEncoder

    return PromptEncoder.from_models(tiny_models).pair("a dancer on a stage", "blurry")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """An image folder (3 frames) and one image, both with a bright square for canny to find."""
    from PIL import Image

    root = tmp_path_factory.mktemp("unit-inputs")
    folder = write_levels(root / "frames", ["0.png", "1.png", "2.png"], [30, 60, 90], size=(96, 64))
    for name in ("0.png", "1.png", "2.png"):
        image = np.asarray(Image.open(folder / name)).copy()
        image[16:48, 20:60] = 240
        Image.fromarray(image).save(folder / name)
    still = write_levels(root, ["still.png"], [128], size=(SIZE, SIZE)) / "still.png"
    return folder, still


def _two_units(tmp_path, inputs, **kwargs):
    """Unit 0: canny on the folder (model 'tiny'); unit 1: a ready map (model 'tiny-b', its own network)."""
    from anim.models import load_controlnet

    folder, still = inputs
    specs = [ControlUnit(model="tiny", input=str(folder), annotator="canny", weight="0:(0.5)"),
             ControlUnit(model="tiny-b", input=str(still), annotator="none", resize="stretch")]
    loaded = []

    def loader(source, **kw):
        loaded.append(source)
        return load_controlnet("tiny", **kw)

    units = ControlUnits(specs, run_dir=tmp_path, width=SIZE, height=SIZE, device="cpu", dtype=torch.float32,
                         load_controlnet=loader, **kwargs)
    return units, loaded


def _row(w0, s0, e0, w1, s1, e1):
    return {"cn0_weight": w0, "cn0_guidance_start": s0, "cn0_guidance_end": e0,
            "cn1_weight": w1, "cn1_guidance_start": s1, "cn1_guidance_end": e1}


ROWS = [_row(0.5, 0.0, 1.0, 0.8, 0.1, 0.9),  # both units
        _row(0.0, 0.0, 1.0, 1.2, 0.2, 0.7),  # unit 0 at weight 0: left out
        _row(0.9, 0.3, 0.6, 0.0, 0.0, 1.0)]  # unit 1 at weight 0: left out


def _spy_pipeline(monkeypatch):
    """Record the ControlNet arguments of every ControlNet img2img pipeline call."""
    import diffusers

    cls = diffusers.StableDiffusionControlNetImg2ImgPipeline
    original, seen = cls.__call__, []

    def spy(self, *args, **kwargs):
        seen.append({k: kwargs[k] for k in ("controlnet_conditioning_scale", "control_guidance_start",
                                            "control_guidance_end")})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", spy)
    return seen


def _forward_counter(net):
    counts = [0]
    handle = net.register_forward_pre_hook(lambda *_: counts.__setitem__(0, counts[0] + 1))
    return counts, handle


def test_schedules_reach_the_pipeline_and_weight_zero_units_do_not_run(tmp_path, inputs, diffuser, embeds,
                                                                        monkeypatch):
    units, loaded = _two_units(tmp_path, inputs)
    assert loaded == ["tiny", "tiny-b"] and units.units[0].model is not units.units[1].model
    seen = _spy_pipeline(monkeypatch)
    counters = [_forward_counter(u.model) for u in units.units]
    init = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    cond, uncond = embeds
    ran = []
    for index, row in enumerate(ROWS):
        before = [c[0][0] for c in counters]
        controls = units.for_frame(index, row, None)
        out = diffuser(init=init, cond=cond, uncond=uncond, denoise=0.7, controls=controls, **ARGS)
        assert out.shape == (1, 3, SIZE, SIZE)
        ran.append([c[0][0] > b for c, b in zip(counters, before)])
    for counts, handle in counters:
        handle.remove()
    assert ran == [[True, True], [False, True], [True, False]]
    assert seen[0] == {"controlnet_conditioning_scale": [0.5, 0.8], "control_guidance_start": [0.0, 0.1],
                       "control_guidance_end": [1.0, 0.9]}
    assert seen[1] == {"controlnet_conditioning_scale": 1.2, "control_guidance_start": 0.2,
                       "control_guidance_end": 0.7}
    assert seen[2] == {"controlnet_conditioning_scale": 0.9, "control_guidance_start": 0.3,
                       "control_guidance_end": 0.6}
    # canny on frames 0 and 2; the still image is annotated once, frame 1 clamps to its cached map
    assert units.annotate_calls == 3 and units.cache_hits == 1
    assert "3 map(s) annotated" in units.note()


def test_control_images_are_device_tensors_in_unit_range(tmp_path, inputs):
    units, _ = _two_units(tmp_path, inputs)
    controls = units.for_frame(0, ROWS[0], None)
    assert len(controls) == 2
    for control in controls:
        assert control.image.shape == (1, 3, SIZE, SIZE) and control.image.dtype == torch.float32
        assert 0.0 <= float(control.image.min()) and float(control.image.max()) <= 1.0
    assert float(controls[1].image.mean()) == pytest.approx(128 / 255, abs=1e-6)
    assert units.for_frame(1, _row(1, 0.5, 0.5, 0, 0, 1), None) == []  # empty guidance window


def test_loopback_unit_annotates_every_frame_without_cache(tmp_path):
    from anim.models import load_controlnet

    spec = ControlUnit(model="tiny", input="loopback", annotator="canny")
    units = ControlUnits([spec], run_dir=tmp_path, width=SIZE, height=SIZE, device="cpu", dtype=torch.float32,
                         load_controlnet=load_controlnet)
    row = {"cn0_weight": 1.0, "cn0_guidance_start": 0.0, "cn0_guidance_end": 1.0}
    assert units.uses_loopback and units.for_frame(0, row, None) == []  # no previous frame yet
    previous = torch.zeros(1, 3, SIZE, SIZE)
    previous[..., 16:48, 16:48] = 1.0
    for index in (1, 2):
        (control,) = units.for_frame(index, row, previous)
        assert control.image.shape == (1, 3, SIZE, SIZE) and float(control.image.max()) == 1.0
    assert units.annotate_calls == 2 and not (tmp_path / "control").exists()


def test_unit_errors_name_the_unit(tmp_path):
    from anim.errors import ModelError

    fake = lambda *a, **k: object()  # noqa: E731
    with pytest.raises(InputError, match=r"controlnet\.0\.input.*missing\.mp4"):
        ControlUnits([ControlUnit(model="tiny", input=str(tmp_path / "missing.mp4"))], run_dir=tmp_path,
                     width=SIZE, height=SIZE, device="cpu", dtype=None, load_controlnet=fake)
    with pytest.raises(ModelError, match=r"controlnet\.1: annotator 'openpose'.*pose_offline"):
        ControlUnits([ControlUnit(model="tiny"), ControlUnit(model="tiny", annotator="openpose",
                                                             annotator_model=str(tmp_path))],
                     run_dir=tmp_path, width=SIZE, height=SIZE, device="cpu", dtype=None, load_controlnet=fake)
    with pytest.raises(InputError, match=r"controlnet\.0: annotator pose_json needs"):
        ControlUnits([ControlUnit(model="tiny", annotator="pose_json")], run_dir=tmp_path, width=SIZE,
                     height=SIZE, device="cpu", dtype=None, load_controlnet=fake)


def test_pose_json_unit_draws_the_skeleton(tmp_path):
    import json

    folder = tmp_path / "poses"
    folder.mkdir()
    keypoints = [[20 + i, 10 + 2 * i, 1.0] for i in range(18)]
    (folder / "000.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": sum(keypoints, [])}]}))
    units = ControlUnits([ControlUnit(model="tiny", input=str(folder), annotator="pose_json")], run_dir=tmp_path,
                         width=SIZE, height=SIZE, device="cpu", dtype=None, load_controlnet=lambda *a, **k: object())
    (control,) = units.for_frame(4, {"cn0_weight": 1.0, "cn0_guidance_start": 0.0, "cn0_guidance_end": 1.0}, None)
    assert float(control.image.max()) == 1.0 and (tmp_path / "control" / "0" / "000000.png").is_file()
