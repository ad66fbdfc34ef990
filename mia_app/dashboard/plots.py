"""Plotly figures from step records (StepEvent dicts, from the job store or a run's metrics.jsonl).

The x axis is the step count over the whole job (batches and stages in order); dotted lines mark where a
stage or batch begins.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

MAX_POINTS = 600  # per trace: the browser stays quick on long GPU runs


def _thin(n: int) -> list[int]:
    stride = max(1, -(-n // MAX_POINTS))
    idx = list(range(0, n, stride))
    if n and idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


def _base(title: str, y_title: str, height: int = 280) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=10, t=40, b=40), xaxis_title="step",
                      yaxis_title=y_title, legend=dict(orientation="h", y=-0.25), template="plotly_white")
    return fig


def _stage_marks(fig: go.Figure, records: list[dict[str, Any]]) -> None:
    prev = None
    for i, r in enumerate(records):
        key = (r.get("batch"), r.get("stage"))
        if prev is not None and key != prev:
            fig.add_vline(x=i + 1, line_dash="dot", line_color="#999",
                          annotation_text=f"b{key[0]} s{key[1]}", annotation_font_size=9)
        prev = key


def _empty(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font_size=13)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def series(records: list[dict[str, Any]], keys: list[str]) -> dict[str, tuple[list[int], list[float]]]:
    idx = _thin(len(records))
    out = {}
    for key in keys:
        pts = [(i + 1, records[i]["logs"][key]) for i in idx if key in records[i]["logs"]]
        out[key] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def log_keys(records: list[dict[str, Any]], prefix: str) -> list[str]:
    return sorted({k for r in records for k in r["logs"] if k.startswith(prefix)})


def loss_figure(records: list[dict[str, Any]]) -> go.Figure:
    fig = _base("Losses per term", "loss")
    if not records:
        return _empty(fig, "waiting for the first step…")
    for key, (x, y) in series(records, log_keys(records, "L_")).items():
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=key))
    x, y = series(records, ["total"])["total"]
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="total", line=dict(dash="dash", color="black")))
    _stage_marks(fig, records)
    return fig


def weights_figure(records: list[dict[str, Any]]) -> go.Figure:
    fig = _base("Learned uncertainty weights (scheme D)", "normalised weight")
    keys = log_keys(records, "w_")
    if not keys:
        return _empty(fig, "no learned weights: scheme D is off" if records else "waiting for the first step…")
    for key, (x, y) in series(records, keys).items():
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=key))
    fig.update_yaxes(range=[0, 1])
    _stage_marks(fig, records)
    return fig


def confidence_figure(records: list[dict[str, Any]]) -> go.Figure:
    fig = _base("Target confidence p_T(y | x̂)", "T confidence")
    if not records:
        return _empty(fig, "waiting for the first step…")
    x, y = series(records, ["T_conf"])["T_conf"]
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="T_conf", line=dict(color="#2a7")))
    fig.update_yaxes(range=[0, 1])
    _stage_marks(fig, records)
    return fig


def compare_figure(runs: dict[str, list[dict[str, Any]]]) -> go.Figure:
    """Total loss and T confidence of several runs, overlaid (one colour per run)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("total loss", "T confidence"))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for i, (name, records) in enumerate(runs.items()):
        color = palette[i % len(palette)]
        s = series(records, ["total", "T_conf"])
        fig.add_trace(go.Scatter(x=s["total"][0], y=s["total"][1], name=name, line=dict(color=color),
                                 legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(x=s["T_conf"][0], y=s["T_conf"][1], name=name, line=dict(color=color),
                                 legendgroup=name, showlegend=False), row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=50, r=10, t=40, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="step")
    return fig
