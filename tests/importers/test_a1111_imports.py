"""Deforum's A1111-side settings import with Deforum's meaning: each schedule behind its enable_* switch, the noise
multiplier only where the file knows the switch, the late-2022 variation seed, blank-frame rerolls, perlin octaves;
Parseq's fractional seeds become variation-seed travel. Checked through the imported preset's frame table."""
from __future__ import annotations

import json

from anim.importers import import_file
from anim.plan import build_table, load_preset
from tests.importers.test_import_rules import write


def table(tmp_path, **changes):
    return build_table(load_preset(write(tmp_path, **changes)))


def column(rows, name):
    return [rows.row(f)[name] for f in range(len(rows))]


def test_switched_schedules_follow_their_switch(tmp_path):
    on = table(tmp_path, enable_clipskip_scheduling=True, clipskip_schedule="0: (2), 4: (2), 5: (1)",
               enable_subseed_scheduling=True, subseed_schedule="0: (77)", subseed_strength_schedule="0: (0), 9: (0.9)",
               enable_ddim_eta_scheduling=True, ddim_eta_schedule="0: (0.5)",
               enable_noise_multiplier_scheduling=True, noise_multiplier_schedule="0: (1.05)")
    assert column(on, "clip_skip")[:6] == [2, 2, 2, 2, 2, 1]
    assert column(on, "subseed") == [77] * 10 and column(on, "subseed_strength")[9] == 0.9
    assert column(on, "ddim_eta") == [0.5] * 10 and column(on, "noise_multiplier") == [1.05] * 10
    off = table(tmp_path, enable_clipskip_scheduling=False, clipskip_schedule="0: (2)",
                enable_subseed_scheduling=False, subseed_strength_schedule="0: (0.5)")
    assert column(off, "clip_skip") == [1] * 10 and column(off, "subseed_strength") == [0.0] * 10
    notes = import_file(write(tmp_path, enable_clipskip_scheduling=False, clipskip_schedule="0: (3)")).notes
    assert not [n for n in notes if "clip" in n.key]  # switched off: ignored silently, as Deforum does


def test_the_noise_multiplier_counts_only_where_the_file_knows_its_switch(tmp_path):
    old = table(tmp_path)  # no enable_noise_multiplier_scheduling: made before it existed, rendered at 1.0
    assert column(old, "noise_multiplier") == [1.0] * 10
    new = table(tmp_path, enable_noise_multiplier_scheduling=True)  # Deforum's default schedule: 1.05
    assert column(new, "noise_multiplier") == [1.05] * 10


def test_old_variation_seed_rerolls_and_perlin(tmp_path):
    loaded = load_preset(write(tmp_path, seed_enable_extras=True, subseed=123, subseed_strength=0.25,
                               reroll_blank_frames="reroll", reroll_patience=3.0, noise_type="perlin",
                               perlin_octaves=6, perlin_persistence=0.7)).preset
    assert (loaded.subseed, loaded.subseed_strength) == (123, 0.25)
    assert (loaded.reroll_blank_frames, loaded.reroll_patience) == ("reroll", 3)
    assert (loaded.perlin_octaves, loaded.perlin_persistence) == (6, 0.7)
    random_sub = import_file(write(tmp_path, seed_enable_extras=True, subseed=-1, subseed_strength=0.5))
    assert "subseed" not in random_sub.data and any("random variation seed" in n.reason for n in random_sub.notes)
    eta = table(tmp_path, enable_ancestral_eta_scheduling=True, ancestral_eta_schedule="0: (0.5)")
    assert column(eta, "ancestral_eta") == [0.5] * 10


def test_parseq_fractional_seeds_travel_between_seeds(tmp_path):
    export = tmp_path / "travel.json"
    frames = [{"frame": i, "seed": 10 + i / 4, "deforum_prompt": "a cat"} for i in range(5)]
    export.write_text(json.dumps({"rendered_frames": frames}))
    rows = build_table(load_preset(export))
    assert column(rows, "seed") == [10, 10, 10, 10, 11]
    assert column(rows, "subseed") == [11, 11, 11, 11, 12]
    assert column(rows, "subseed_strength") == [0.0, 0.25, 0.5, 0.75, 0.0]
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps({"rendered_frames": [
        {"frame": i, "seed": 5, "subseed": 6, "subseed_strength": i / 2, "clipskip": 2, "deforum_prompt": "a"}
        for i in range(3)]}))
    rows = build_table(load_preset(explicit))
    assert column(rows, "subseed_strength") == [0.0, 0.5, 1.0] and column(rows, "clip_skip") == [2, 2, 2]
