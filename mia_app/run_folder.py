"""Read-only views of run folders (writer.py's layout), for the dashboard (Compare, jobs) and the HTML report.

Works for any run folder, whether a dashboard job or a CLI ``attack --out`` wrote it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mia_app.user_input import read_yaml

_FINAL = re.compile(r"class(\d+)_rank(\d+)\.png$")
_GRID = re.compile(r"stage(\d)/batch(\d+)_step(\d+)\.png$")


@dataclass
class RunFolder:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def finished(self) -> bool:
        return (self.path / "summary.json").is_file()

    def config(self) -> dict[str, Any]:
        f = self.path / "config.yaml"
        return read_yaml(f) if f.is_file() else {}

    def method(self) -> str:
        """What made the run: ``ours (B3+D)`` / ``ours (baseline)``, or the peer's kind (``ppa``, ...)."""
        note = self.path / "method.json"
        if note.is_file():
            try:
                return json.loads(note.read_text()).get("method", "peer")
            except json.JSONDecodeError:
                return "peer (unreadable method.json)"
        return f"ours ({'+'.join(self.active_schemes()) or 'baseline'})"

    def target(self) -> str:
        """The attacked T and its defense, ``target-negls (negls)``: Compare puts runs on two targets side by side."""
        path = str(self.config().get("target") or "")
        if not path:
            return "n/a"
        from mia_app.attack.models import local_path
        from mia_app.models.classifiers import read_meta

        local = local_path(path)
        try:
            defense = read_meta(local).get("defense", "none") if local is not None else "file missing"
        except ValueError:  # not a readable classifier header: show the name only
            defense = "unreadable"
        return f"{Path(path).stem} ({defense})"

    def benchmark(self) -> str:
        """The data kind the run attacked (``synthid``, ``orl``, ``folder``): runs of two benchmarks do not compare."""
        from mia_app.config import data_kind

        return data_kind(self.config().get("data") or {})

    def active_schemes(self) -> list[str]:
        schemes = self.config().get("schemes") or {}
        return [k for k in ("B3", "A", "C", "D") if schemes.get(k)]

    def metrics(self) -> tuple[str, dict[str, Any]]:
        """(source file, flat scalar metrics): metrics.json once evaluated with E, else summary.json."""
        for name in ("metrics.json", "summary.json"):
            f = self.path / name
            if f.is_file():
                data = json.loads(f.read_text())
                return name, {k: v for k, v in data.items() if isinstance(v, (int, float, str)) and k != "out"}
        return "", {}

    def final_entries(self) -> list[tuple[int, int, Path]]:
        """(class, rank, png path) of the selected finals, by class then rank."""
        found = []
        for p in (self.path / "final").glob("class*_rank*.png"):
            if m := _FINAL.search(p.name):
                found.append((int(m[1]), int(m[2]), p))
        return sorted(found)

    def final_images(self) -> list[tuple[str, str]]:
        """(path, caption) of the selected finals, by class then rank."""
        return [(str(p), f"class {c} · rank {r}") for c, r, p in self.final_entries()]

    def per_image(self) -> list[dict[str, Any]]:
        """``per_image.json`` (E's top-5, the dlib judge, per final image) once evaluated, else []."""
        return self._json_list("per_image.json")

    def steps(self) -> list[dict[str, Any]]:
        """metrics.jsonl: one StepEvent dict per line (a line cut by a crash is skipped)."""
        f = self.path / "metrics.jsonl"
        if not f.is_file():
            return []
        out = []
        for line in f.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def doctor(self) -> list[dict[str, str]]:
        """``doctor.json``: the pre-flight checks' findings, else []."""
        return self._json_list("doctor.json")

    def _json_list(self, name: str) -> list[dict[str, Any]]:
        f = self.path / name
        if not f.is_file():
            return []
        try:
            return json.loads(f.read_text())
        except json.JSONDecodeError:  # caught mid-write: the next poll reads it whole
            return []


def grid_caption(rel: str) -> str:
    m = _GRID.search(rel)
    return f"stage {m[1]} · batch {int(m[2])} · step {int(m[3])}" if m else rel


def list_runs(root: Path, finished_only: bool = True) -> list[RunFolder]:
    """Run folders under ``root`` (one level), newest first."""
    if not Path(root).is_dir():
        return []
    runs = [RunFolder(p) for p in Path(root).iterdir() if (p / "config.yaml").is_file()]
    runs = [r for r in runs if r.finished or not finished_only]
    return sorted(runs, key=lambda r: r.path.stat().st_mtime, reverse=True)
