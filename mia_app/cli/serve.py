"""``serve``: the Gradio dashboard (same as ``python app.py``); settings come from MIA_* variables."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="serve the dashboard on http://127.0.0.1:7860 (starts a worker if none is alive)")
    p.add_argument("--host", help="bind address (MIA_HOST; 0.0.0.0 to expose it)")
    p.add_argument("--port", type=int, help="port (MIA_PORT, default 7860)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.dashboard.server import serve
    from mia_app.dashboard.settings import DashboardSettings

    settings = DashboardSettings.from_env()
    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    serve(settings.model_copy(update=overrides) if overrides else settings)
    return 0
