"""JobStore: the SQLite queue shared by the dashboard (writes jobs, reads progress) and the workers.

One connection per thread (sqlite3 connections must not cross threads) and WAL mode, so the UI's readers
never block a worker's writes. Every state change is a single UPDATE guarded by the expected old status,
which is what makes claiming and cancelling atomic across processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
#: A worker whose heartbeat is older than this is dead even if its pid looks alive (pid reuse, other host).
HEARTBEAT_TIMEOUT_S = 30.0

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids (and so run folder names) are never reused
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN {STATUSES}),
    config TEXT NOT NULL,
    targets TEXT NOT NULL,
    run_dir TEXT,
    error TEXT,
    session TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    total_steps INTEGER NOT NULL DEFAULT 0,
    done_steps INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,  -- 'step': data = StepEvent json; 'images': data = {{"path": relative to run_dir}}
    stage INTEGER,
    step INTEGER,
    batch INTEGER,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, kind, id);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    stopped REAL
);
"""


@dataclass
class Job:
    id: int
    kind: str
    name: str
    status: str
    config: dict[str, Any]
    targets: list[int]
    run_dir: str | None
    error: str | None
    session: str | None
    created: float
    started: float | None
    finished: float | None
    cancel_requested: bool
    worker_id: str | None
    total_steps: int
    done_steps: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        d = dict(row)
        d["config"] = json.loads(d["config"])
        d["targets"] = json.loads(d["targets"])
        d["cancel_requested"] = bool(d["cancel_requested"])
        return cls(**d)


@dataclass
class Worker:
    id: str
    pid: int
    host: str
    started: float
    heartbeat: float
    stopped: float | None

    def alive(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if self.stopped is not None or now - self.heartbeat > HEARTBEAT_TIMEOUT_S:
            return False
        return self.host != socket.gethostname() or pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A killed child its parent has not reaped yet is a zombie: signal 0 still succeeds, yet it runs nothing.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (macOS): trust the signal
        return True
    return state not in ("Z", "X")


class QueueFull(ValueError):
    """A submission refused because its owner already has ``max_active`` queued or running jobs."""


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:40] or "run"


class JobStore:
    def __init__(self, db: str | Path, runs_root: str | Path | None = None):
        self.db = Path(db)
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.runs_root = Path(runs_root) if runs_root is not None else self.db.parent
        self._local = threading.local()
        self.conn.executescript(_SCHEMA)

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: autocommit; multi-statement changes use explicit BEGIN IMMEDIATE.
            conn = sqlite3.connect(self.db, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def journal_mode(self) -> str:
        return self.conn.execute("PRAGMA journal_mode").fetchone()[0]

    # ---- jobs: dashboard side --------------------------------------------------------------------------
    def _check_active(self, session: str | None, max_active: int | None) -> None:
        """Inside the caller's write transaction: the cap check and the insert are one atomic step, so concurrent
        launches (several tabs, several app instances) cannot all pass the check before any of them inserts."""
        if max_active is None:
            return
        active = self.conn.execute("SELECT COUNT(*) FROM jobs WHERE session IS ? AND status IN ('queued', 'running')",
                                   (session,)).fetchone()[0]
        if active >= max_active:
            raise QueueFull(f"you already have {active} queued or running jobs (the limit is {max_active}); wait "
                            "or cancel one")

    def submit(self, kind: str, name: str, config: dict[str, Any], targets: list[int], session: str | None = None,
               run_dir: str | Path | None = None, max_active: int | None = None) -> Job:
        """Queue a job. Its run folder is ``<runs_root>/job-<id:06d>-<name>`` unless given. ``max_active``: refuse
        (``QueueFull``) when ``session`` already has that many queued or running jobs, atomically."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            self._check_active(session, max_active)
            cur = c.execute(
                "INSERT INTO jobs (kind, name, config, targets, session, created) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, name, json.dumps(config), json.dumps(list(targets)), session, time.time()),
            )
            job_id = cur.lastrowid
            folder = Path(run_dir) if run_dir is not None else self.runs_root / f"job-{job_id:06d}-{slug(name)}"
            c.execute("UPDATE jobs SET run_dir = ? WHERE id = ?", (str(folder), job_id))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        row = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id}")
        return Job.from_row(row)

    def jobs(self, session: str | None = None, statuses: tuple[str, ...] | None = None, limit: int = 200) -> list[Job]:
        sql, args = "SELECT * FROM jobs WHERE 1=1", []
        if session is not None:
            sql += " AND session = ?"
            args.append(session)
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args += list(statuses)
        rows = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Job.from_row(r) for r in rows]

    def count_active(self, session: str | None) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE session IS ? AND status IN ('queued', 'running')", (session,)
        ).fetchone()[0]

    def cancel(self, job_id: int) -> str:
        """A queued job is cancelled at once; a running one is flagged and its worker stops within one step."""
        c = self.conn
        if c.execute("UPDATE jobs SET status = 'cancelled', finished = ?, cancel_requested = 1 "
                     "WHERE id = ? AND status = 'queued'", (time.time(), job_id)).rowcount:
            return "cancelled"
        if c.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", (job_id,)).rowcount:
            return "cancel requested"
        return f"job {job_id} is {self.get(job_id).status}; nothing to cancel"

    def retry(self, job_id: int, max_active: int | None = None) -> Job:
        """Queue an interrupted, failed or cancelled job again, under its id and run folder. An attack or peer
        job starts over (its partial run folder is removed: the engine writes a run in one pass); a ``cli`` job
        keeps its folder, and an ablation then resumes, skipping its finished cells."""
        job = self.get(job_id)
        if job.status not in ("interrupted", "failed", "cancelled"):
            raise ValueError(f"job {job_id} is {job.status}; only interrupted, failed or cancelled jobs are retried")
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            self._check_active(job.session, max_active)
            if c.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()[0] != job.status:
                raise ValueError(f"job {job_id} changed status meanwhile; look again")
            # The partial folder goes before the job is queued again: no worker can claim it while it is removed.
            if job.kind != "cli" and (folder := self.owned_folder(job)) is not None:
                try:
                    shutil.rmtree(folder)
                except OSError as err:
                    raise ValueError(f"job {job_id}: its partial run folder could not be removed ({err})") from err
            c.execute("UPDATE jobs SET status = 'queued', started = NULL, finished = NULL, error = NULL, "
                      "worker_id = NULL, cancel_requested = 0, done_steps = 0, total_steps = 0 WHERE id = ?",
                      (job_id,))
            c.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return self.get(job_id)

    def owned_folder(self, job: Job) -> Path | None:
        """The run folder this job created (its deterministic name, under runs_root), if it exists: an evaluation
        job points at another job's run, an ablation at results/, and neither is the job's to remove."""
        if not job.run_dir:
            return None
        folder = Path(job.run_dir).resolve()
        owned = folder.name.startswith(f"job-{job.id:06d}-") and folder.is_relative_to(self.runs_root.resolve())
        return folder if owned and folder.is_dir() else None

    def delete(self, job_id: int, remove_files: bool = True) -> None:
        """Forget a finished job and the run folder it created. Active jobs must be cancelled first."""
        job = self.get(job_id)
        if job.status in ACTIVE:
            raise ValueError(f"job {job_id} is {job.status}; cancel it before deleting")
        self.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        if remove_files and (folder := self.owned_folder(job)) is not None:
            shutil.rmtree(folder)

    # ---- jobs: worker side ------------------------------------------------------------------------------
    def claim(self, worker_id: str, kinds: tuple[str, ...] | None = None) -> Job | None:
        """Atomically take the next queued job, round-robin by owner: the owner with the fewest running jobs,
        then the one served least recently, then the oldest of that owner's jobs. One user's eight jobs do not
        starve another's one. The ``status = 'queued'`` guard makes concurrent claims safe."""
        kind_sql = f" AND q.kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        row = self.conn.execute(
            "UPDATE jobs SET status = 'running', started = ?, worker_id = ? "
            f"WHERE id = (SELECT q.id FROM jobs q WHERE q.status = 'queued'{kind_sql} ORDER BY "
            "(SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.session IS q.session), "
            "(SELECT COALESCE(MAX(s.started), 0) FROM jobs s WHERE s.session IS q.session), q.id LIMIT 1) "
            "AND status = 'queued' RETURNING *",
            (time.time(), worker_id, *(kinds or ())),
        ).fetchone()
        return Job.from_row(row) if row is not None else None

    def set_total_steps(self, job_id: int, total: int) -> None:
        self.conn.execute("UPDATE jobs SET total_steps = ? WHERE id = ?", (total, job_id))

    def finish(self, job_id: int, status: str, error: str | None = None, worker_id: str | None = None) -> None:
        """Move a running job to a final status. ``worker_id``: only if that worker still holds it (a worker
        wrongly taken for dead must not finish the job a retry gave to another)."""
        if status not in STATUSES or status in ACTIVE:
            raise ValueError(f"not a final status: {status!r}")
        sql = "UPDATE jobs SET status = ?, error = ?, finished = ? WHERE id = ? AND status = 'running'"
        args: tuple = (status, error, time.time(), job_id)
        if worker_id is not None:
            sql, args = sql + " AND worker_id = ?", (*args, worker_id)
        self.conn.execute(sql, args)

    def cancel_requested(self, job_id: int) -> bool:
        row = self.conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        # A job deleted under a running worker counts as cancelled: nobody wants its results any more.
        return row is None or bool(row[0])

    # ---- events -----------------------------------------------------------------------------------------
    def add_step(self, job_id: int, stage: int, step: int, batch: int, data: dict[str, Any]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("INSERT INTO events (job_id, kind, stage, step, batch, data) VALUES (?, 'step', ?, ?, ?, ?)",
                      (job_id, stage, step, batch, json.dumps(data)))
            c.execute("UPDATE jobs SET done_steps = done_steps + 1 WHERE id = ?", (job_id,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def add_images(self, job_id: int, stage: int, step: int, batch: int, path: str) -> None:
        self.conn.execute(
            "INSERT INTO events (job_id, kind, stage, step, batch, data) VALUES (?, 'images', ?, ?, ?, ?)",
            (job_id, stage, step, batch, json.dumps({"path": path})),
        )

    def events(self, job_id: int, kind: str = "step", after_id: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """(event id, data) in emission order, only those after ``after_id`` (incremental polling)."""
        rows = self.conn.execute("SELECT id, data FROM events WHERE job_id = ? AND kind = ? AND id > ? ORDER BY id",
                                 (job_id, kind, after_id)).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    # ---- workers ----------------------------------------------------------------------------------------
    def register_worker(self, worker_id: str, pid: int) -> None:
        now = time.time()
        self.conn.execute("INSERT OR REPLACE INTO workers (id, pid, host, started, heartbeat) VALUES (?, ?, ?, ?, ?)",
                          (worker_id, pid, socket.gethostname(), now, now))

    def heartbeat(self, worker_id: str) -> None:
        self.conn.execute("UPDATE workers SET heartbeat = ? WHERE id = ?", (time.time(), worker_id))

    def stop_worker(self, worker_id: str) -> None:
        self.conn.execute("UPDATE workers SET stopped = ? WHERE id = ?", (time.time(), worker_id))

    def workers(self) -> list[Worker]:
        return [Worker(**dict(r)) for r in self.conn.execute("SELECT * FROM workers ORDER BY started").fetchall()]

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers() if w.alive()]

    def recover_orphans(self) -> list[int]:
        """Mark ``running`` jobs whose worker is dead as ``interrupted``; returns their ids."""
        # Running jobs first, workers second: a worker that registers and claims between the two reads is then
        # seen alive, rather than its fresh job taken for an orphan.
        running = self.jobs(statuses=("running",), limit=10_000)
        live = {w.id for w in self.live_workers()}
        orphans = [j for j in running if j.worker_id not in live]
        for job in orphans:
            self.conn.execute(
                "UPDATE jobs SET status = 'interrupted', finished = ?, error = ? WHERE id = ? AND status = 'running'",
                (time.time(), f"worker {job.worker_id} died while running this job", job.id),
            )
        return [j.id for j in orphans]
