"""WorkerSupervisor: makes sure a worker process serves the job store, so `make demo` is one command.

The app never runs an attack itself: it starts ``python -m mia_app worker`` when no live worker is registered
and stops (only) the process it started when it exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time

from mia_app.service.store import JobStore

log = logging.getLogger("mia_app.dashboard")
#: a worker of ours that exits with an error this soon after its start is taken to crash at start-up (a broken
#: install, an unwritable store); the next one is started only after BACKOFF_S, not at every poll
CRASHED_AT_START_S = 30.0
BACKOFF_S = 60.0


class WorkerSupervisor:
    def __init__(self, store: JobStore, enabled: bool = True):
        self.store = store
        self.enabled = enabled
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.exited_at: float | None = None
        self._lock = threading.Lock()
        atexit.register(self.shutdown)

    def ours_alive(self) -> bool:
        alive = self.proc is not None and self.proc.poll() is None
        if self.proc is not None and not alive and self.exited_at is None:
            self.exited_at = time.time()  # when we first saw it gone (poll() also reaps it)
        return alive

    def ensure(self) -> None:
        """Start a worker unless one is alive (ours, still importing torch, counts as alive)."""
        if not self.enabled:
            return
        with self._lock:
            if self.ours_alive() or self.store.live_workers() or self.backing_off():
                return
            self.store.runs_root.mkdir(parents=True, exist_ok=True)
            logfile = open(self.store.runs_root / "worker.log", "a")
            cmd = [sys.executable, "-m", "mia_app", "worker", "--db", str(self.store.db), "--runs",
                   str(self.store.runs_root), "--parent-pid", str(os.getpid())]
            self.proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT)
            self.started_at, self.exited_at = time.time(), None
            logfile.close()  # the child holds its own descriptor
            log.info("started worker pid %d (log: %s)", self.proc.pid, logfile.name)

    def backing_off(self) -> bool:
        """Our last worker crashed at start-up and BACKOFF_S has not passed since it started. A worker killed by a
        signal (negative code: kill -9, the OOM killer) is no start-up crash: its replacement starts at once."""
        if self.ours_alive() or self.proc is None or self.proc.returncode <= 0:
            return False
        crashed_at_start = self.exited_at is not None and self.exited_at - self.started_at < CRASHED_AT_START_S
        return crashed_at_start and time.time() - self.started_at < BACKOFF_S

    def status(self) -> str:
        live = self.store.live_workers()
        if live:
            now = time.time()
            return "worker: " + ", ".join(f"pid {w.pid} on {w.host} (heartbeat {now - w.heartbeat:.0f}s ago)"
                                          for w in live)
        if self.ours_alive():
            return f"worker: starting (pid {self.proc.pid})"
        if self.proc is not None:
            again = (f"the next starts in {BACKOFF_S - (time.time() - self.started_at):.0f} s (it crashed at start)"
                     if self.backing_off() else "a new one starts for the next job")
            return (f"worker: exited with code {self.proc.returncode}; see {self.store.runs_root / 'worker.log'}; "
                    + again)
        if not self.enabled:
            return "worker: none alive; start one with `python -m mia_app worker --db " f"{self.store.db}`"
        return "worker: none"

    def shutdown(self) -> None:
        if self.ours_alive():
            self.proc.terminate()  # SIGTERM: the worker marks its job interrupted and exits
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d ignored SIGTERM for 20 s; killing it", self.proc.pid)
                self.proc.kill()
