"""Plotly figures from step records (StepEvent dicts, from the job store or a run's metrics.jsonl).

The x axis is the step count over the whole job (batches and stages in order); dotted lines mark where a
stage or batch begins.
"""

from __future__ import annotations

import math
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
    """Scheme D: the normalised weights (left, auto-scaled: they start equal and move little) and the raw
    log-variances s (right; σ = exp(s / 2) in the hover), one colour per term."""
    from plotly.subplots import make_subplots

    keys = log_keys(records, "w_")
    if not keys:
        fig = _base("Learned uncertainty weights (scheme D)", "normalised weight")
        return _empty(fig, "no learned weights: scheme D is off" if records else "waiting for the first step…")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("normalised weight w", "log-variance s (σ = e^(s/2))"))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
    w = series(records, keys)
    s = series(records, ["s_" + k[2:] for k in keys])
    for i, key in enumerate(keys):
        term, color = key[2:], palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=w[key][0], y=w[key][1], mode="lines", name=term, legendgroup=term,
                                 line=dict(color=color)), row=1, col=1)
        sx, sy = s["s_" + term]
        fig.add_trace(go.Scatter(x=sx, y=sy, mode="lines", name=term, legendgroup=term, showlegend=False,
                                 line=dict(color=color), customdata=[math.exp(v / 2) for v in sy],
                                 hovertemplate="step %{x}<br>s = %{y:.4f}<br>σ = %{customdata:.4f}"), row=1, col=2)
    fig.update_layout(title="Learned uncertainty weights (scheme D)", height=300, template="plotly_white",
                      margin=dict(l=50, r=10, t=60, b=40), legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text="step")
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


#: The unweighted terms every run of ours logs, and T's confidence: comparable across schemes. The total is not
#: (scheme D reweights it, and the schemes add terms), so Compare never overlays it.
COMPARE_KEYS = ("L_cls", "L_id", "L_prior", "T_conf")


def compare_figure(runs: dict[str, list[dict[str, Any]]]) -> go.Figure:
    """The unweighted loss terms and T's confidence of several runs, overlaid (one colour per run)."""
    from plotly.subplots import make_subplots

    titles = [k if k != "T_conf" else "T confidence" for k in COMPARE_KEYS]
    fig = make_subplots(rows=1, cols=len(COMPARE_KEYS), subplot_titles=titles)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for i, (name, records) in enumerate(runs.items()):
        color = palette[i % len(palette)]
        s = series(records, list(COMPARE_KEYS))
        for col, key in enumerate(COMPARE_KEYS, start=1):
            fig.add_trace(go.Scatter(x=s[key][0], y=s[key][1], name=name, line=dict(color=color),
                                     legendgroup=name, showlegend=col == 1), row=1, col=col)
    fig.update_layout(height=320, margin=dict(l=50, r=10, t=40, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="step")
    return fig
