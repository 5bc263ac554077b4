"""YAML in and out for presets: line numbers per key path, no YAML 1.1 surprises."""
from __future__ import annotations

import re
from typing import Any

import yaml

from anim.errors import PresetError

# YAML 1.1 reads `1:30` as 90 and `0:1.5` as 1.5 (base 60). A Deforum schedule like `0:5` must stay
# text, so the loader below resolves ints and floats without the sexagesimal forms.
_INT_RE = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
    r"|\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class PresetLoader(yaml.SafeLoader):
    """SafeLoader without base-60 numbers; records nothing itself (see `load_with_lines`)."""


PresetLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
PresetLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_RE, list("-+0123456789"))
PresetLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))

Path_ = tuple[str, ...]


# Bounds checked before anything is expanded: a YAML alias bomb (`&a [*b, *b, ...]` nested) or a huge
# document becomes one clean error in well under a second, never gigabytes of memory.
MAX_YAML_BYTES = 4 * 2**20  # a preset with very long prompts is a few KiB
MAX_YAML_NODES = 100_000  # scalars, lists and mappings, counted with every alias expanded


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """Parse YAML text with the preset loader; a syntax error or an oversized document names the source."""
    return _load(text, source)[0]


def load_with_lines(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML and return (data, {key path: 1-based line}); duplicate keys are an error."""
    data, root = _load(text, source)
    lines: dict[Path_, int] = {}
    if root is not None:
        _walk(root, (), lines, source)
    return data, lines


def _load(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """(data, root node): the document composed once, bounded, then constructed."""
    if len(text) > MAX_YAML_BYTES:
        raise PresetError(f"{source}: {len(text) / 2**20:.1f} MiB of YAML; a preset is at most "
                          f"{MAX_YAML_BYTES // 2**20} MiB")
    loader = None
    try:
        loader = PresetLoader(text)  # the reader refuses control characters here already
        root = loader.get_single_node()
        if root is None:
            return None, None
        expanded_size(root, source)
        return loader.construct_document(root), root
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise PresetError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise PresetError(f"{source}: YAML nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value the constructor cannot build
        raise PresetError(f"{source}: invalid YAML value ({exc})") from None
    finally:
        if loader is not None:
            loader.dispose()


def expanded_size(root: yaml.Node, source: str, limit: int = MAX_YAML_NODES) -> int:
    """How many nodes the document holds with every alias expanded (each shared node counted once per use,
    computed once per node); PresetError past `limit` or for an alias that contains itself."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise PresetError(f"{source}:{node.start_mark.line + 1}: a YAML alias that contains itself")
        active.add(key)
        children: list = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise PresetError(f"{source}: the YAML expands to more than {limit:,} values (aliases of aliases?); "
                                  "a preset is far smaller")
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], source: str) -> None:
    """Record the line of every mapping key and sequence item below `node`."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise PresetError(f"{source}:{line}: duplicate key '{'.'.join(path + (key,))}' (first at line {seen[key]})")
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (str(index),)] = item.start_mark.line + 1
            _walk(item, path + (str(index),), lines, source)


def dump_yaml(data: Any) -> str:
    """Readable block-style YAML that round-trips through `parse_yaml`."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
