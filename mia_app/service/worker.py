"""JobWorker: takes jobs from the store one at a time and runs them, until told to stop.

Start one with ``python -m mia_app worker --db runs/jobs.sqlite``; several may share a database. A worker
registers itself and keeps a heartbeat from a side thread, so a worker that dies (killed, crashed machine)
is recognised by the next one to start, which marks its running job ``interrupted``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from pathlib import Path

from mia_app.attack.events import AttackCancelled
from mia_app.service.jobs import KINDS, RUNNERS, JobStopped
from mia_app.service.store import Job, JobStore, pid_alive

log = logging.getLogger("mia_app.worker")
HEARTBEAT_EVERY_S = 2.0


class JobWorker:
    def __init__(self, store: JobStore, poll_s: float = 0.5, parent_pid: int | None = None):
        self.store = store
        self.poll_s = poll_s
        self.parent_pid = parent_pid  # exit when this process dies: a worker the app started dies with it
        self.id = f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.store.register_worker(self.id, os.getpid())
        for job_id in self.store.recover_orphans():
            log.warning("job %d was left running by a dead worker: marked interrupted", job_id)
        self._heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._heartbeat.start()

    def stop(self) -> None:
        """Ask to stop: the running job stops within one step (marked interrupted), then the loop exits."""
        self._stop.set()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            self.store.heartbeat(self.id)
            if self.parent_pid is not None and not pid_alive(self.parent_pid):
                log.warning("parent process %d is gone: stopping", self.parent_pid)
                self.stop()

    def serve(self, exit_when_idle: bool = False) -> None:
        self.start()
        log.info("worker %s serving %s", self.id, self.store.db)
        try:
            while not self.stopping():
                if self.run_one() is None:
                    if exit_when_idle:
                        break
                    self._stop.wait(self.poll_s)
        finally:
            self._stop.set()
            self.store.stop_worker(self.id)
            log.info("worker %s stopped", self.id)

    # ---- one job --------------------------------------------------------------------------------------------
    def run_one(self) -> Job | None:
        job = self.store.claim(self.id, KINDS)
        if job is None:
            return None
        log.info("job %d (%s %s) started", job.id, job.kind, job.name)
        status, error = "done", None
        try:
            RUNNERS[job.kind](job, self.store, self.stopping)
        except (AttackCancelled, JobStopped):
            if self.store.cancel_requested(job.id):
                status, error = "cancelled", "cancelled on request"
            else:
                status, error = "interrupted", "worker stopped (SIGTERM) while running this job"
        except Exception as err:  # a bad job must not take the worker down: record it, go on to the next
            status, error = "failed", f"{type(err).__name__}: {err}"
            self._save_traceback(job)
        except BaseException:  # KeyboardInterrupt and the like: leave a truthful status, then go down
            self.store.finish(job.id, "interrupted", "worker interrupted", worker_id=self.id)
            raise
        self.store.finish(job.id, status, error, worker_id=self.id)
        log.info("job %d %s%s", job.id, status, f": {error}" if error else "")
        try:
            return self.store.get(job.id)
        except KeyError:  # deleted from the UI while it ran
            return job

    @staticmethod
    def _save_traceback(job: Job) -> None:
        text = traceback.format_exc()
        log.error("job %d failed:\n%s", job.id, text)
        if job.run_dir:
            folder = Path(job.run_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "error.log").write_text(text)
