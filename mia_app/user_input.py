"""What a user types, read once and refused in one line: YAML files, target lists, validation errors.

The CLI, the dashboard and the ablation runner all read through here, so a bad input gets the same message
wherever it was typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: Configs are a few KB; a cap keeps a hostile file from costing memory before it is refused.
MAX_YAML_BYTES = 256 * 1024
#: More classes than any benchmark here has; a range like ``0-99999999`` is refused before a list is built.
MAX_TARGETS = 100_000


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases: an alias bomb (nested ``*a`` references) expands
    to gigabytes, and no config here needs them."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            line = event.start_mark.line + 1
            raise yaml.YAMLError(f"anchors and aliases (&{event.anchor}, *{event.anchor}) are not allowed in "
                                 f"configs (line {line})")
        return super().compose_node(parent, index)


def parse_yaml(text: str, what: str = "config") -> dict[str, Any]:
    """A YAML mapping (empty text: ``{}``); anything else, aliases, or more than ``MAX_YAML_BYTES`` is a
    ``ValueError`` naming ``what``."""
    if len(text.encode()) > MAX_YAML_BYTES:
        raise ValueError(f"{what}: larger than {MAX_YAML_BYTES // 1024} KiB; configs are a few KB")
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ValueError(f"{what}: not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:  # thousands of nested brackets: well under the size cap, deeper than any config
        raise ValueError(f"{what}: nested too deeply to be a config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a mapping of settings (key: value), got a {type(data).__name__}")
    return data


def read_yaml(path: str | Path, what: str | None = None) -> dict[str, Any]:
    """``parse_yaml`` of a file; a missing file or a folder is a ``FileNotFoundError`` naming it."""
    path = Path(path)
    what = what or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file")
    if path.stat().st_size > MAX_YAML_BYTES:  # refused before reading it
        raise ValueError(f"{what}: larger than {MAX_YAML_BYTES // 1024} KiB; configs are a few KB")
    return parse_yaml(path.read_text(), what)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a repeated object out again instead of as an alias, so what we write, ``read_yaml`` reads."""

    def ignore_aliases(self, data) -> bool:  # noqa: ANN001 - PyYAML's signature
        return True


def dump_yaml(data: dict[str, Any]) -> str:
    """YAML of a plain mapping, keys in their order, no anchors or aliases."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)


def parse_targets(text: str) -> list[int]:
    """``0,1,2`` or ``0-9`` or a mix (``0-3,7``): target classes in the order given, each at most once."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part.lstrip("-"):
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError(f"range {part!r} runs backwards")
                if hi - lo >= MAX_TARGETS or len(out) + hi - lo + 1 > MAX_TARGETS:
                    raise ValueError(f"more than {MAX_TARGETS} classes in {part!r} and before it")
                out += range(lo, hi + 1)
            else:
                if len(out) >= MAX_TARGETS:
                    raise ValueError(f"more than {MAX_TARGETS} classes")
                out.append(int(part))
        except ValueError as err:
            raise ValueError(str(err) if "classes" in str(err) or "range" in str(err)
                             else f"{part!r} is not a class index or a range a-b ({err})") from None
    if not out:
        raise ValueError(f"no targets in {text!r}")
    if negative := [t for t in out if t < 0]:
        raise ValueError(f"class indices are >= 0, got {negative[:3]}")
    if len(set(out)) != len(out):
        from collections import Counter

        repeated = sorted(t for t, n in Counter(out).items() if n > 1)[:5]
        raise ValueError(f"each class at most once; repeated: {repeated}")
    return out


def explain(err: Exception) -> str:
    """pydantic's errors as one line, a field per clause: ``stage1.lr: Input should be a finite number``."""
    from pydantic import ValidationError

    if not isinstance(err, ValidationError):
        return " ".join(str(err).split())
    clauses = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = e["msg"].removeprefix("Value error, ")
        clauses.append(f"{where or 'config'}: {msg}")
    return "; ".join(clauses)
