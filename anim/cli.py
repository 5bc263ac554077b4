"""Command line: `render.py PRESET [key=value ...] [options]` and `render.py batch ...`."""
from __future__ import annotations

import argparse
import copy
import signal
import sys
import threading
import time
from pathlib import Path

from anim.errors import AnimError, one_line

USAGE_EXAMPLES = """examples:
  python render.py presets/smoke.yaml
  python render.py presets/zoom_tunnel.yaml max_frames=24 motion.zoom="0:(1.05)" --dry-run
  python render.py presets/zoom_tunnel.yaml --frames 0:30 --out outputs/tunnel
  python render.py --resume outputs/tunnel
  python render.py my_deforum_settings.txt max_frames=24 --dry-run   # a Deforum settings file or Parseq export
  python render.py import-deforum my_deforum_settings.txt -o preset.yaml
  python render.py finish outputs/tunnel output.formats=[mp4,gif]   # (re)run upscale/interpolate/formats only
  python render.py serve outputs/night                # live web page over a batch root (render.py serve -h)
"""


def build_parser() -> argparse.ArgumentParser:
    """The render command's arguments."""
    parser = argparse.ArgumentParser(
        prog="render.py", description="Render a keyframed Stable Diffusion animation from a YAML preset.",
        epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset", nargs="?", help="preset YAML file (optional with --resume)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override preset keys, dotted paths, values as YAML (motion.zoom=\"0:(1.05)\")")
    parser.add_argument("--out", type=Path, help="run folder (default outputs/<preset>-<time>/)")
    parser.add_argument("--frames", metavar="A:B", help="render only frames A..B-1 (half-open, like a slice)")
    parser.add_argument("--dry-run", action="store_true", help="resolve the schedule, write CSV/plot, load no model")
    parser.add_argument("--preview", action="store_true", help="camera path only: warp frame 0 by the motion, no diffusion")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run in RUN_DIR")
    parser.add_argument("--force", action="store_true", help="resume even though the preset changed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one or two lines and return 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "batch":
            from anim.batch.cli import batch_main

            return batch_main(argv[1:])
        if argv and argv[0] == "import-deforum":
            return import_main(argv[1:])
        if argv and argv[0] == "serve":
            from anim.serve.cli import serve_main

            return serve_main(argv[1:])
        command, argv = (finish_main, argv[1:]) if argv and argv[0] == "finish" else (render_main, argv)
        if threading.current_thread() is not threading.main_thread():
            return command(argv)
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return command(argv)
        finally:
            signal.signal(signal.SIGTERM, previous)
    except AnimError as exc:
        print(f"anim: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, read-only folder, a path that is a file: one line naming the path
        print(f"anim: error: {one_line(os_error_line(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anim: interrupted; resume with --resume RUN_DIR", file=sys.stderr)
        return 130
    except Terminated:
        print("anim: terminated (SIGTERM); the frames made are on disk; resume with --resume RUN_DIR",
              file=sys.stderr)
        return 143


class Terminated(BaseException):
    """SIGTERM reached a render: stop like Ctrl-C (frames on disk stay, the writer flushes), say so."""


def _raise_terminated(*_) -> None:
    raise Terminated()


def os_error_line(exc: OSError) -> str:
    """`path: reason` for an OSError (disk full, permission, read-only file system, ...)."""
    path = exc.filename or ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{path}: {reason}" if path else reason


def render_main(argv: list[str]) -> int:
    """Parse, load the preset, then dry-run, preview or render."""
    from anim.errors import PresetError
    from anim.runfolder import open_run

    args = build_parser().parse_intermixed_args(argv)  # key=value overrides may come before or after flags
    # The positionals are the preset file and key=value overrides, in any order: the preset is the one
    # that is not key=value (or is an existing file whose name holds '=').
    words = ([args.preset] if args.preset else []) + args.overrides
    files = [w for w in words if "=" not in w or Path(w).exists()]
    if len(files) > 1:
        raise PresetError(f"more than one preset given ({', '.join(files)}); overrides are key=value")
    args.preset = files[0] if files else None
    args.overrides = [w for w in words if w not in files]
    if not args.preset and not args.resume:
        raise PresetError("no preset given: python render.py PRESET.yaml (or --resume RUN_DIR)")
    run = open_run(args.preset, args.overrides, out=args.out, resume=args.resume, force=args.force)
    if run.loaded.notes:
        print(f"anim: note: {import_note(run.loaded.notes, args.preset)}", file=sys.stderr)
    try:
        if args.dry_run:
            return dry_run(run, args.frames)
        from anim.engine import (
            render_run,  # imports torch and diffusers: only when frames are made
        )

        print(render_run(run, frames=args.frames, preview=args.preview, quiet=args.quiet).summary())
        return 0
    finally:
        run.close()


def import_note(notes: list[str], source: str | None) -> str:
    """One line saying which imported settings were not carried over, and where the reasons are."""
    keys = [line.split(" = ", 1)[0] for line in notes]
    shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    return (f"{len(keys)} setting(s) not carried over: {shown} (reasons: python render.py import-deforum "
            f"{source} -o preset.yaml)")


def import_main(argv: list[str]) -> int:
    """`render.py import-deforum SETTINGS [-o preset.yaml]`: write the anim preset of a Deforum settings file
    (or Parseq export), beginning with a comment block of what was not carried over and why."""
    from anim.importers import header_comment
    from anim.media.files import atomic_write_text
    from anim.plan import import_settings, validate_preset
    from anim.preset.yamlio import dump_yaml

    parser = argparse.ArgumentParser(prog="render.py import-deforum",
                                     description="Write the anim preset of a Deforum settings file or Parseq export.")
    parser.add_argument("settings", help="Deforum *_settings.txt (JSON) or Parseq export")
    parser.add_argument("-o", "--out", type=Path, help="preset YAML to write (default: print it)")
    args = parser.parse_args(argv)
    imported = import_settings(args.settings, required=True)
    validate_preset(copy.deepcopy(imported.data), args.settings, imported.preset_lines())  # fails before writing
    text = header_comment(imported, args.settings) + dump_yaml(imported.data)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    atomic_write_text(args.out, text)
    print(f"wrote {args.out} ({len(imported.notes)} setting(s) not carried over, listed at its top)")
    return 0


def finish_main(argv: list[str]) -> int:
    """`render.py finish RUN_DIR [output.key=value ...]`: (re)run only the finishing steps (upscale, interpolate,
    formats) of a run whose frames are all rendered; steps done with the same settings are skipped."""
    from anim.errors import PresetError
    from anim.runfolder import RESOLVED, open_run

    parser = argparse.ArgumentParser(prog="render.py finish",
                                     description="Upscale, interpolate and encode the formats of a rendered run.")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder whose frames are rendered")
    parser.add_argument("overrides", nargs="*", metavar="output.key=value",
                        help="change output settings first (recorded in preset.resolved.yaml)")
    parser.add_argument("--redo", action="store_true", help="run every step again, even those already done")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_intermixed_args(argv)
    other = [o for o in args.overrides if not o.startswith("output.")]
    if other:
        raise PresetError(f"override {other[0]!r}: finish changes output.* keys only; render again for the others")
    if not (args.run_dir / RESOLVED).is_file():
        raise PresetError(f"{args.run_dir}: not a run folder (no {RESOLVED})")
    run = open_run(None, args.overrides, resume=args.run_dir)
    try:
        from anim.engine.video_out import finish_run

        video = finish_run(run, quiet=args.quiet, redo=args.redo)
    finally:
        run.close()
    print(f"finished {run.dir}" + (f": {video}" if video else ""))
    return 0


def dry_run(run, frames_text: str | None) -> int:
    """Write preset.resolved.yaml, schedule.csv and schedule.png, print a summary; no model."""
    from anim.plan import parse_frame_range

    started = time.perf_counter()
    frames = parse_frame_range(frames_text, run.preset.max_frames)
    run.write_plan(frames)
    print(summary(run, frames, time.perf_counter() - started))
    return 0


def summary(run, frames: range, seconds: float) -> str:
    """A compact, human summary of what the render will do."""
    p, table = run.preset, run.table
    lines = [
        f"{run.source}: {len(frames)} of {p.max_frames} frames ({frames.start}..{frames.stop - 1}), "
        f"{p.width}x{p.height} @ {p.fps:g} fps = {p.max_frames / p.fps:.1f} s",
        f"model {p.model}, sampler {p.sampler}, seed {p.seed} ({p.seed_behavior}), motion {p.motion.mode}, "
        f"colour {p.color_coherence}",
    ]
    if p.engine == "animatediff":
        from anim.plan import window_layout

        windows = window_layout(p.max_frames, p.animatediff.context, p.animatediff.overlap)
        lines.append(f"engine animatediff ({p.motion_adapter}): {len(windows)} window(s) of up to "
                     f"{p.animatediff.context} frames, {p.animatediff.overlap} held from the window before")
    varying = table.varying()
    for name in varying[:12]:
        column = table.column(name)
        lines.append(f"  {name:<20} {column.min():>10.4g} .. {column.max():<10.4g}")
    if len(varying) > 12:
        lines.append(f"  ... and {len(varying) - 12} more varying values (see schedule.csv)")
    for name in table.text_names:  # sampler / checkpoint schedules: where each value starts
        values = table.texts(name)
        starts = [f"{f}: {v}" for f, v in enumerate(values) if f == 0 or values[f - 1] != v]
        if len(starts) > 1:
            lines.append(f"  {name:<20} " + ", ".join(starts[:6]) + (", ..." if len(starts) > 6 else ""))
    keyframes = sorted({row.prompt for row in table.prompts})
    lines.append(f"prompts: {len(keyframes)} distinct, blend {p.prompt_blend} frames")
    lines.append(f"wrote {run.dir}/ preset.resolved.yaml schedule.csv schedule.png ({seconds:.2f} s, no model loaded)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
