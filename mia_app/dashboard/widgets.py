"""One Gradio widget per FieldSpec."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mia_app.dashboard.form import FieldSpec


def widget(spec: FieldSpec, value: Any = None, label: str | None = None, info: str | None = None,
           **kwargs) -> gr.components.Component:
    label = label or spec.label
    info = info if info is not None else (spec.info or None)
    if spec.optional and spec.kind in ("int", "float"):
        info = f"{info + ' · ' if info else ''}empty = default"
    if spec.kind == "bool":
        return gr.Checkbox(value=bool(value), label=label, info=info, **kwargs)
    if spec.kind == "int":
        return gr.Number(value=value, label=label, info=info, precision=0, **kwargs)
    if spec.kind == "float":
        return gr.Number(value=value, label=label, info=info, **kwargs)
    if spec.kind == "choice":
        return gr.Dropdown(choices=list(spec.choices), value=value, label=label, info=info, **kwargs)
    return gr.Textbox(value=value, label=label, info=info, **kwargs)
