"""sampler_schedule and checkpoint_schedule through the engine on tiny models: the switch happens at the keyframe (the
frames from it on equal a render with the new sampler / model resumed from the same earlier frames), every model is
loaded once, families do not mix, lockstep and AnimateDiff rules, dry-run loads nothing."""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from anim.cli import main
from anim.engine.cache import ModelCache
from anim.engine.group import lockstep_key, render_group
from anim.engine.loop import render_run
from anim.errors import ModelError, PresetError
from anim.media.png import read_png_metadata, read_png_u8
from anim.plan import load_preset
from anim.runfolder import open_run

TINY = {
    "model": "tiny", "width": 64, "height": 64, "fps": 4, "max_frames": 4, "seed": 1, "steps": 3,
    "sampler": "euler_a", "prompts": {0: "a cabin in the woods"}, "motion": {"mode": "2d", "zoom": "0:(1.03)"},
    "denoise": 0.6, "output": {"video": False},
}


@pytest.fixture(scope="module")
def cache():
    return ModelCache()


@pytest.fixture(scope="module")
def tiny2(tiny_dir, tmp_path_factory):
    """A second SD1.5 model: the tiny one with every UNet weight nudged, saved as its own diffusers folder."""
    folder = tmp_path_factory.mktemp("models") / "tiny2"
    shutil.copytree(tiny_dir, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    gen = torch.Generator().manual_seed(3)
    save_file({k: v + 0.05 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in state.items()}, weights)
    return folder


def preset_file(folder, name, **changes):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
    return path


def render(tmp_path, name, cache, start_from=None, **changes):
    """Render a TINY preset with `changes`; `start_from` (run, n): its first n frames copied in first (a resume)."""
    out = tmp_path / name
    if start_from is not None:
        source, n = start_from
        (out / "frames").mkdir(parents=True)
        for f in range(n):
            shutil.copy(source.frame_path(f), out / "frames")
    run = open_run(str(preset_file(tmp_path / "presets", name, **changes)), [], out=out, force=True)
    render_run(run, quiet=True, cache=cache)
    return run


def pixels(run, frame):
    return read_png_u8(run.frame_path(frame))


def parameters(run, frame):
    return read_png_metadata(run.frame_path(frame))[0].splitlines()[-1]


def test_the_sampler_switches_at_its_keyframe(tmp_path, cache):
    # (img2img at denoise 0.6 with 3 steps runs one step, where Euler a and DPM++ 2M Karras agree: DDIM does not)
    switched = render(tmp_path, "switched", cache, sampler_schedule='0: ("Euler a"), 2: ("DDIM")')
    plain = render(tmp_path, "plain", cache)
    resumed = render(tmp_path, "resumed", cache, start_from=(switched, 2), sampler="ddim")
    for f in (0, 1):
        assert np.array_equal(pixels(switched, f), pixels(plain, f))
    assert not np.array_equal(pixels(switched, 2), pixels(plain, 2))  # the samplers differ on this model
    for f in (2, 3):
        assert np.array_equal(pixels(switched, f), pixels(resumed, f)), f"frame {f}"
    assert "Sampler: Euler a," in parameters(switched, 1) and "Sampler: DDIM," in parameters(switched, 2)
    rows = list(csv.DictReader(open(switched.dir / "schedule.csv", newline="")))
    assert [row["sampler"] for row in rows] == ["euler_a", "euler_a", "ddim", "ddim"]
    assert [row["checkpoint"] for row in rows] == ["tiny"] * 4


def test_a_checkpoint_schedule_loads_each_model_once_and_switches_at_its_keyframes(tmp_path, cache, tiny2,
                                                                                    monkeypatch):
    import anim.engine.cache

    loads = []
    real = anim.engine.cache.load_models
    monkeypatch.setattr(anim.engine.cache, "load_models", lambda name, **k: loads.append(name) or real(name, **k))
    switched = render(tmp_path, "switched", ModelCache(), checkpoint_schedule={2: str(tiny2), 3: "tiny"})
    assert loads == ["tiny", str(tiny2)]  # frame 3 goes back to tiny, still loaded
    monkeypatch.setattr(anim.engine.cache, "load_models", real)
    plain = render(tmp_path, "plain", cache)
    resumed = render(tmp_path, "resumed", cache, start_from=(switched, 2), model=str(tiny2))
    for f in (0, 1):
        assert np.array_equal(pixels(switched, f), pixels(plain, f))
    assert np.array_equal(pixels(switched, 2), pixels(resumed, 2))
    assert not np.array_equal(pixels(switched, 2), pixels(plain, 2))
    hashes = [parameters(switched, f).split("Model hash: ")[1].split(",")[0] for f in range(4)]
    assert hashes[0] == hashes[1] == hashes[3] != hashes[2]
    assert "Model: tiny," in parameters(switched, 1) and "Model: tiny2," in parameters(switched, 2)
    assert "Model: tiny," in parameters(switched, 3)


def test_sd15_and_sdxl_do_not_mix(tmp_path, anim_cache):
    from anim.models.tiny import tiny_sdxl_dir

    sdxl = str(tiny_sdxl_dir(anim_cache))
    run = open_run(str(preset_file(tmp_path, "mixed", checkpoint_schedule={0: "tiny", 2: sdxl})), [],
                   out=tmp_path / "mixed")
    with pytest.raises(ModelError, match=r"checkpoint_schedule: tiny-v1-sdxl is SDXL but tiny is SD1\.5; .*all SD1\.5 "
                                         r"or all SDXL"):
        render_run(run, quiet=True, cache=ModelCache())
    assert not list((tmp_path / "mixed").glob("frames/*.png"))


def test_lockstep_groups_sampler_schedules_and_renders_checkpoint_schedules_alone(tmp_path, cache):
    sampler = load_preset(preset_file(tmp_path, "s", sampler_schedule="0: (euler), 2: (ddim)")).preset
    checkpoint = load_preset(preset_file(tmp_path, "c", checkpoint_schedule="0: (tiny)")).preset
    assert lockstep_key(sampler) == lockstep_key(load_preset(preset_file(tmp_path, "p")).preset) is not None
    assert lockstep_key(checkpoint) is None
    # each lockstep item builds its own scheduler from its frame's sampler: a one-member group equals the solo render
    group = open_run(str(preset_file(tmp_path, "g", sampler_schedule="0: (euler), 2: (ddim)")), [], out=tmp_path / "g")
    assert render_group([group], cache=cache) == [None]
    alone = render(tmp_path, "alone", cache, sampler_schedule="0: (euler), 2: (ddim)")
    for f in range(4):
        assert np.array_equal(pixels(group, f), pixels(alone, f)), f"frame {f}"
    assert "Sampler: DDIM," in parameters(group, 2)


def test_animatediff_refuses_a_checkpoint_schedule(tmp_path):
    with pytest.raises(PresetError, match=r"engine animatediff: .*checkpoint_schedule is not used"):
        load_preset(preset_file(tmp_path, "ad", engine="animatediff", motion_adapter="tiny", init_video="v.mp4",
                                checkpoint_schedule="0: (tiny)"))


def test_dry_run_checks_the_schedules_and_loads_no_model(tmp_path, monkeypatch, capsys):
    import anim.engine.cache

    monkeypatch.setattr(anim.engine.cache, "load_models", lambda *a, **k: pytest.fail("dry-run loaded a model"))
    path = preset_file(tmp_path, "p", sampler_schedule='0: ("Euler a"), max_f: (ddim)',
                       checkpoint_schedule='2: ("/nowhere/b.safetensors")')
    assert main([str(path), "--dry-run", "--out", str(tmp_path / "dry")]) == 0
    assert "checkpoint           0: tiny, 2: /nowhere/b.safetensors" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "dry" / "schedule.csv", newline="")))
    assert [(r["sampler"], r["checkpoint"]) for r in rows] == [("euler_a", "tiny")] * 2 + [
        ("euler_a", "/nowhere/b.safetensors"), ("ddim", "/nowhere/b.safetensors")]
    bad = preset_file(tmp_path, "bad", sampler_schedule='0: ("Euler a"), 2: ("DPM fast")')
    assert main([str(bad), "--dry-run", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sampler_schedule: unknown sampler 'DPM fast'" in err
    assert err.endswith("""at column 22 in "0: ("Euler a"), 2: ("DPM fast")\"""")
