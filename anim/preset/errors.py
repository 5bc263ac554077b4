"""Preset validation errors as one line each: where (file:line or the override), the key path, what to fix."""
from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from anim.errors import PresetError


def first_error(exc: ValidationError, shell, schema: type) -> PresetError:
    """Turn pydantic's first error into one line: place, key path, what to fix."""
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"] if not _is_union_tag(p))
    if err["type"] == "extra_forbidden":
        parent, key = loc[:-1], loc[-1]
        hint = did_you_mean(key, _fields_at(schema, parent))
        return shell.error(loc, f"unknown key{hint}")
    if err["type"] == "missing":
        return shell.error(loc, "is required")
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if err["type"] in ("literal_error",):
        message = f"got {err.get('input')!r}; " + message[0].lower() + message[1:]
    return shell.error(loc, message)


def _is_union_tag(part: Any) -> bool:
    """pydantic puts union member names (e.g. 'float', 'dict[...]') into locations; drop them."""
    return isinstance(part, str) and (part in ("float", "int", "str") or part.startswith(("dict[", "list[")))


def _fields_at(schema: type, parent: tuple[str, ...]) -> list[str]:
    """Field names of the schema section at a key path (list indices skipped)."""
    model: Any = schema
    for part in parent:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _section_type(field.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _section_type(annotation: Any) -> Any:
    """The schema section (a pydantic model) inside an annotation like Motion or list[ControlUnit], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def did_you_mean(key: str, options: list[str]) -> str:
    """"; did you mean 'zoom'?" when a close match exists, else a short list of valid keys."""
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; valid keys here: {', '.join(options)}" if options else ""
