"""Serve the dashboard: settings from the environment, a worker if none is alive, then Gradio."""

from __future__ import annotations

import logging
import signal

from mia_app.dashboard.context import DashboardContext
from mia_app.dashboard.layout import CSS, build_demo
from mia_app.dashboard.media import served_folders
from mia_app.dashboard.settings import DashboardSettings
from mia_app.service.store import JobStore

log = logging.getLogger("mia_app.dashboard")


def _interrupt(signum, frame) -> None:
    # SIGTERM (docker stop, make's Ctrl-C chain) ends Gradio's blocking loop like Ctrl-C does, so the
    # `finally` below stops the worker we started.
    raise KeyboardInterrupt


def recover(store: JobStore) -> list[int]:
    """At start-up: jobs a dead worker left ``running`` become ``interrupted``; finished jobs are left alone."""
    recovered = store.recover_orphans()
    if recovered:
        log.warning("jobs %s were left running by a dead worker: interrupted", recovered)
    return recovered


def exposure_warning(settings: DashboardSettings) -> str | None:
    """Lab mode (no login) bound to anything but loopback: anyone who reaches the port can launch and see all."""
    if settings.hosted or settings.loopback:
        return None
    return (f"lab mode (no login) bound to {settings.host}: anyone who reaches this port can launch attacks and "
            "see every job; set MIA_USERS or MIA_AUTH for a hosted server, or MIA_HOST=127.0.0.1")


def serve(settings: DashboardSettings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dashboard %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup probes, one line each
    settings = settings or DashboardSettings.from_env()
    if (warning := exposure_warning(settings)) is not None:
        log.warning(warning)
    ctx = DashboardContext.create(settings)
    recover(ctx.store)
    ctx.supervisor.ensure()
    demo = build_demo(ctx)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.queue(default_concurrency_limit=8).launch(
            server_name=settings.host, server_port=settings.port, css=CSS,
            auth=(lambda user, password: settings.accounts().check(user, password)) if settings.hosted else None,
            allowed_paths=served_folders(settings.hosted, settings.runs, settings.results),
            # a hosted page shows no Python errors (they carry server paths); the log has them
            max_file_size="200mb", show_error=not settings.hosted,
        )
    finally:
        ctx.supervisor.shutdown()
