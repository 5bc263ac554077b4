"""Benchmark: parse and evaluate 20 mixed schedules over 10,000 frames.

Run from the repository root:  .venv/bin/python bench/schedules.py [--frames 10000] [--repeat 5]
Prints per-schedule evaluate time (best of --repeat) and the total; the target is well under 1 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere
from anim.keyframes import parse_schedule  # noqa: E402

AUDIO_LIKE = ", ".join(f"{f}:({1 + (f % 7) / 100:.2f})" for f in range(0, 10_000, 10))  # 1000 numeric keys

SCHEDULES = {
    "zoom_const": "0:(1.02)",
    "angle_numeric": "0:(0), 2500:(30), 5000:(-30), 7500:(10), 9999:(0)",
    "tx_expression": "0:(3*sin(t/8))",
    "ty_mixed": "0:(0), 1000:(4*cos(2*pi*t/120)), 6000:(2), max_f:(0)",
    "tz_where": "0:(where(t>5000, 1/(t-4000), 0.5))",
    "rot_x_clamp": "0:(clamp(sin(t/50)*2, -1, 1))",
    "rot_y_keys_maxf": "0:(0), max_f/4:(1), max_f/2:(-1), 3*max_f/4:(1), max_f:(0)",
    "rot_z_powers": "0:(0.5*(t/max_f)**2 - (t/max_f)**3)",
    "fov_step": {0: {"value": 40, "ease": "step"}, 3000: {"value": 60, "ease": "step"}, 7000: 80},
    "noise_ease_io": {0: {"value": 0.02, "ease": "ease_in_out"}, 5000: {"value": 0.08, "ease": "ease_in"},
                      9999: 0.02},
    "strength_ease_out": {0: {"value": 0.65, "ease": "ease_out"}, "max_f": 0.4},
    "cfg_cubic": {k: {"value": v, "ease": "cubic"} for k, v in
                  [(0, 7), (1500, 9), (3000, 6), (5000, 8), (8000, 7), (9999, 7.5)]},
    "contrast_cubic_mixed": {0: 1.0, 2000: {"value": 1.1, "ease": "cubic"}, 4000: {"value": 0.9, "ease": "cubic"},
                             6000: "1 + 0.05*sin(t/30)", 9000: 1.0},
    "seed_like": "0:(s + floor(t/12))",
    "cx_abs": "0:(0.5 + 0.1*abs(sin(t/40)))",
    "cy_minmax": "0:(min(max(cos(t/25), -0.5), 0.5) + 0.5)",
    "audio_1000_keys": AUDIO_LIKE,
    "log_exp": "0:(log(1 + t) / exp(t/5000))",
    "comparisons": "0:((t > 2000) & (t < 8000) | (t % 1000 < 50))",
    "expr_segments": ", ".join(f"{k}:({k % 3 + 1}*sin(t/{k % 7 + 3}))" for k in range(0, 10_000, 500)),
}


def bench(frames: int, repeat: int) -> None:
    """Parse each schedule once (timed), then evaluate it ``repeat`` times and keep the best."""
    total_parse = total_eval = 0.0
    print(f"{'schedule':<24}{'parse ms':>10}{'eval ms':>10}")
    for name, spec in SCHEDULES.items():
        start = time.perf_counter()
        schedule = parse_schedule(spec, name)
        parse_s = time.perf_counter() - start
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            schedule.evaluate(frames, seed=42)
            best = min(best, time.perf_counter() - start)
        total_parse, total_eval = total_parse + parse_s, total_eval + best
        print(f"{name:<24}{parse_s * 1e3:>10.2f}{best * 1e3:>10.2f}")
    print(f"{len(SCHEDULES)} schedules x {frames} frames: parse {total_parse:.3f} s, "
          f"evaluate {total_eval:.3f} s, total {total_parse + total_eval:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench(args.frames, args.repeat)


if __name__ == "__main__":
    main()
