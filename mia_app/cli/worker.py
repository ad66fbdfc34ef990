"""``worker``: run queued dashboard jobs (attacks, evaluations, ablations) from the job store."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from mia_app.cli.common import set_threads


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="take jobs from the dashboard's queue and run them (GPU when present)")
    p.add_argument("--db", type=Path, default=Path("runs/jobs.sqlite"), help="job store (SQLite)")
    p.add_argument("--runs", type=Path, help="folder for run directories (default: the database's folder)")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between queue checks when idle")
    p.add_argument("--exit-when-idle", action="store_true", help="stop once the queue is empty")
    p.add_argument("--parent-pid", type=int, help="stop when this process exits (set by the dashboard)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.service.store import JobStore
    from mia_app.service.worker import JobWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    set_threads()
    worker = JobWorker(JobStore(args.db, args.runs), args.poll, args.parent_pid)
    # SIGTERM: finish cleanly (the running job stops within one step and is marked interrupted).
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    worker.serve(exit_when_idle=args.exit_when_idle)
    return 0
