"""Form fields derived from the pydantic config models, so the UI follows AttackConfig without a copy of it.

A FieldSpec names a path into the config dict (``("schemes", "B3")``) and the widget kind its annotation
implies. Values collected from the widgets are written back with ``set_path`` and the whole dict is then
validated by AttackConfig: the config model stays the only validation.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

Kind = Literal["bool", "int", "float", "choice", "text"]


@dataclass(frozen=True)
class FieldSpec:
    path: tuple[str, ...]
    kind: Kind
    label: str
    info: str = ""
    choices: tuple[Any, ...] = ()
    optional: bool = False  # None allowed (an empty number box)

    def coerce(self, value: Any) -> Any:
        """Widget value -> config value. Number boxes give floats (or None when empty)."""
        if value is None or value == "":
            return None if self.optional or self.kind in ("int", "float") else value
        if self.kind == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        return value


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return annotation, False


def _spec(path: tuple[str, ...], annotation: Any, description: str | None) -> FieldSpec | None:
    annotation, optional = _unwrap_optional(annotation)
    label = path[-1]
    info = description or ""
    if annotation is bool:
        return FieldSpec(path, "bool", label, info, optional=optional)
    if annotation is int:
        return FieldSpec(path, "int", label, info, optional=optional)
    if annotation is float:
        return FieldSpec(path, "float", label, info, optional=optional)
    if typing.get_origin(annotation) is Literal:
        return FieldSpec(path, "choice", label, info, typing.get_args(annotation), optional)
    if annotation is str:
        return FieldSpec(path, "text", label, info, optional=optional)
    return None  # lists, dicts, unions of models: not a single widget


def model_specs(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[FieldSpec]:
    """Every scalar field of ``model``, recursing into nested models."""
    out: list[FieldSpec] = []
    for name, field in model.model_fields.items():
        annotation, _ = _unwrap_optional(field.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += model_specs(annotation, (*prefix, name))
        elif (spec := _spec((*prefix, name), field.annotation, field.description)) is not None:
            out.append(spec)
    return out


def spec_at(model: type[BaseModel], path: tuple[str, ...]) -> FieldSpec | None:
    """The spec of one (possibly nested) field, or None when the model has no such scalar field."""
    head, *rest = path
    field = model.model_fields.get(head)
    if field is None:
        return None
    annotation, _ = _unwrap_optional(field.annotation)
    if rest:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sub = spec_at(annotation, tuple(rest))
            return FieldSpec(path, sub.kind, sub.label, sub.info, sub.choices, sub.optional) if sub else None
        return None
    return _spec(path, field.annotation, field.description)


def get_path(data: dict[str, Any], path: tuple[str, ...], default: Any = None) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value
