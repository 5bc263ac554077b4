"""What a preset file is, by its content (whatever its extension): an anim YAML preset, a Deforum settings
file or a Parseq export; and the preset data the latter two become."""
from __future__ import annotations

from pathlib import Path

from anim.errors import PresetError
from anim.importers.common import Imported, key_lines, read_json_object
from anim.importers.deforum import from_deforum, is_deforum
from anim.importers.deforum_sampler import DEFAULT_MODEL
from anim.importers.parseq import MOTION, from_parseq, is_parseq
from anim.preset.schema import Preset

EXPECTED = ("a Deforum settings file (a JSON object with keys such as animation_mode, max_frames, prompts) "
            "or a Parseq export (a JSON object with rendered_frames)")


def sniff(path: str | Path) -> str:
    """'deforum', 'parseq' or 'yaml' (an anim preset, also when it is written as JSON). A .json/.txt file
    that is a JSON object but neither Deforum's nor Parseq's is an error naming the file."""
    data, _text = read_json_object(Path(path))
    return _kind(Path(path), data)


def _kind(path: Path, data: dict | None) -> str:
    """What the file whose JSON object (None: not JSON) is `data` holds (see `sniff`)."""
    if data is None:
        if path.suffix.lower() == ".json":
            raise PresetError(f"{path}: not a JSON object; expected {EXPECTED}")
        return "yaml"
    if is_parseq(data):
        return "parseq"
    if is_deforum(data):
        return "deforum"
    if any(key in Preset.model_fields for key in data) or path.suffix.lower() in (".yaml", ".yml"):
        return "yaml"  # an anim preset written as JSON
    raise PresetError(f"{path}: a JSON object with none of the keys expected of {EXPECTED}")


def read_settings(path: str | Path) -> Imported | None:
    """The preset data of a Deforum settings file or a Parseq export, read once; None for an anim preset."""
    path = Path(path)
    data, text = read_json_object(path)
    kind = _kind(path, data)
    if kind == "yaml":
        return None
    return _parseq_preset(path, data) if kind == "parseq" else _deforum_preset(path, data, text)


def import_file(path: str | Path) -> Imported:
    """The preset data of a Deforum settings file or a Parseq export (PresetError naming the file otherwise)."""
    imported = read_settings(path)
    if imported is None:
        raise PresetError(f"{path}: not {EXPECTED}")
    return imported


def _parseq_preset(path: Path, data: dict) -> Imported:
    """A Parseq export on its own: a preset that reads it (`parseq: PATH`), 3D when it moves in 3D."""
    probe = from_parseq(data, str(path))
    if "prompts" not in probe.data:
        raise PresetError(f"{path}: the Parseq export has no deforum_prompt per frame; give the prompts in a "
                          f"preset with `parseq: {path}`")
    three_d = any(key in probe.data.get("motion", {}) for key in MOTION if key.endswith(("_z", "3d_x", "3d_y")))
    return Imported(kind="parseq", data={"model": DEFAULT_MODEL, "parseq": str(path),
                                         "motion": {"mode": "3d" if three_d else "2d"}}, notes=probe.notes)


def _deforum_preset(path: Path, data: dict, text: str) -> Imported:
    """A Deforum settings file's preset; its errors name the file (and the key's line) once."""
    lines = key_lines(text)
    try:
        return from_deforum(data, lines)
    except PresetError as exc:
        key = str(exc).split(":", 1)[0]
        line = lines.get(key)
        raise PresetError(f"{path}{':' + str(line) if line else ''}: {exc}") from None


def header_comment(imported: Imported, source: str) -> str:
    """The comment block an imported preset begins with: where it came from and every setting that was
    changed from Deforum's default but not carried over, with the reason."""
    lines = [f"# Imported by anim from {source} ({imported.kind}).",
             "# Render it with: python render.py THIS_FILE.yaml"]
    if imported.notes:
        lines.append(f"# Not carried over (or carried with a change), {len(imported.notes)}:")
        lines.extend(f"#   {note.line()}" for note in imported.notes)
    else:
        lines.append("# Every setting that differs from Deforum's defaults was carried over.")
    return "\n".join(line.replace("\n", " ") for line in lines) + "\n"
