"""The verdict panel: what a user sees first when a job ends. Did E recognise the target? Each final image
(upscaled) beside the class's private references (demo mode), with E's top-5 and the dlib distance.

Runs of a few identities are judged as they end (``auto_evaluate``, see ``mia_app.service.jobs``); the panel
reads the run folder (``per_image.json``, ``metrics.json``, ``evaluation_error.txt``), so a run evaluated later
from Compare gets its verdict too.
"""

from __future__ import annotations

from pathlib import Path

from mia_app.report.html import verdict_cards, verdict_headline
from mia_app.report.sources import private_references
from mia_app.service.jobs import EVALUATION_ERROR
from mia_app.service.store import Job


def verdict_signature(job: Job) -> tuple:
    """Changes when the panel would: the job's status and which verdict files exist."""
    run = Path(job.run_dir) if job.run_dir else None
    files = tuple((run / f).is_file() for f in ("per_image.json", EVALUATION_ERROR)) if run else ()
    return job.status, files


def verdict_html(job: Job, demo: bool, auto_evaluate: int) -> str:
    """The panel's HTML for ``job`` ("" while it runs, or for a job that is not an attack)."""
    if job.kind not in ("attack", "peer") or not job.run_dir:
        return ""
    run = Path(job.run_dir)
    if job.status == "running" and job.total_steps and job.done_steps >= job.total_steps:
        return "<h3>Verdict</h3><p>Attack finished; judging the final images with E…</p>"
    if job.status != "done":
        return ""
    head = "<h3>Verdict</h3>"
    refs = private_references(run) if demo else None
    if (run / "per_image.json").is_file():
        return head + verdict_headline(run) + verdict_cards(run, refs)
    if (run / EVALUATION_ERROR).is_file():
        reason = (run / EVALUATION_ERROR).read_text().strip()
        return head + f"<p class='bad'>⚠️ E could not judge this run: {reason}</p>" + verdict_cards(run, refs)
    if len(job.targets) > auto_evaluate:
        why = (f"runs of more than {auto_evaluate} identities are not judged automatically"
               if auto_evaluate else "automatic evaluation is off on this server")
        return head + f"<p>Not evaluated yet ({why}): evaluate it in the Compare tab.</p>"
    return head + "<p>No evaluation model E for this benchmark on this server: the run is not judged.</p>"
