"""A run's results, read for people: every number with its n and 95% CI, chance beside dlib top-1, caveats.

The dashboard's Compare tab and verdict panel and the HTML report all read runs through ``readings``, so they
say the same thing the same way. Sources, in a run folder: ``metrics.json`` (written by ``evaluate``),
``per_identity.csv`` (for bootstrap CIs over identities) and, before evaluation, ``summary.json`` (T's
confidence only, which is not evidence: T is the model under attack).

CIs: E acc@k is Wilson's interval over images (``evaluate`` computes it); KNN, dlib distance, dlib top-1 and
perceptual distance are a bootstrap over identities of the per-identity means (``mia_app.ablation.stats``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mia_app.ablation.stats import bootstrap_mean

Better = Literal["higher", "lower", ""]


@dataclass(frozen=True)
class Reading:
    key: str
    label: str
    value: float | None
    ci: tuple[float, float] | None = None
    n: str = ""
    note: str = ""
    better: Better = ""
    percent: bool = False

    def text(self) -> str:
        """``84.5 [79.0, 89.0]`` (percent readings ×100, one decimal), ``n/a`` when missing."""
        if self.value is None:
            return "n/a"
        scale, digits = (100.0, 1) if self.percent else (1.0, 3 if abs(self.value) < 10 else 2)
        out = f"{self.value * scale:.{digits}f}"
        if self.ci is not None:
            out += f" [{self.ci[0] * scale:.{digits}f}, {self.ci[1] * scale:.{digits}f}]"
        return out

    def as_row(self) -> dict[str, str]:
        arrow = {"higher": " ↑", "lower": " ↓"}.get(self.better, "")
        return {"metric": self.label + arrow, "value [95% CI]": self.text(), "n": self.n, "note": self.note}


def _per_identity(run: Path) -> dict[str, list[float]]:
    f = run / "per_identity.csv"
    if not f.is_file():
        return {}
    cols: dict[str, list[float]] = {}
    with open(f, newline="") as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                if k != "class" and v not in ("", None):
                    cols.setdefault(k, []).append(float(v))
    return cols


def _boot(values: list[float] | None) -> tuple[float, float] | None:
    if not values:
        return None
    lo, hi = bootstrap_mean({0: values})["ci95"]
    return None if lo is None else (lo, hi)


def _ci(pair: Any) -> tuple[float, float] | None:
    return (float(pair[0]), float(pair[1])) if isinstance(pair, (list, tuple)) and len(pair) == 2 else None


def readings(run: str | Path) -> list[Reading]:
    """The run's results as readable rows; an unevaluated run gives T's confidence and says what is missing."""
    run = Path(run)
    metrics_file = run / "metrics.json"
    if not metrics_file.is_file():
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
        n = len(summary.get("targets") or [])
        return [Reading("target_conf_mean", "T confidence (mean)", summary.get("target_conf_mean"),
                        n=f"{n} identities" if n else "", better="higher",
                        note="not evaluated with E yet: T is the attacked model, its confidence is not evidence")]
    m = json.loads(metrics_file.read_text())
    per_id = _per_identity(run)
    n_img, n_id = m.get("n_images"), m.get("n_identities")
    images = f"{n_img} images, {n_id} identities"
    n_classes = _n_classes(str(m.get("eval_model") or ""))
    chance = f"chance {100 / n_classes:.1f}%" if n_classes else "chance unknown (E's file not found)"
    ids = f"{n_id} identities (bootstrap)"
    out = [
        Reading("E_acc@1", "E acc@1 %", m.get("E_acc@1"), _ci(m.get("E_acc@1_ci95")), images, better="higher",
                percent=True, note=f"E = {m.get('eval_arch') or '?'} ({Path(str(m.get('eval_model', ''))).name}); "
                                   f"{chance}"),
        Reading("E_acc@5", "E acc@5 %", m.get("E_acc@5"), _ci(m.get("E_acc@5_ci95")), images, better="higher",
                percent=True),
        Reading("knn_dist", "KNN distance (E features)", m.get("knn_dist"), _boot(per_id.get("knn_dist")), ids,
                better="lower", note="to the nearest private-train image of the class"),
    ]
    gallery = m.get("judge_gallery")
    if m.get("judge_top1") is not None:
        if gallery == 1:
            caveat = "one-class gallery: top-1 is 1 by construction; read the dlib distance instead"
        else:
            caveat = f"chance 1/{gallery} = {100 / gallery:.1f}%" if gallery else ""
        out += [
            Reading("judge_top1", "dlib top-1 %", m.get("judge_top1"), _boot(per_id.get("judge_top1")), ids,
                    caveat, "higher", True),
            Reading("judge_dist", "dlib distance", m.get("judge_dist"), _boot(per_id.get("judge_dist")), ids,
                    "same person below 0.6 (dlib's threshold)", "lower"),
        ]
    else:
        out.append(Reading("judge_top1", "dlib top-1 %", None, note=m.get("judge_note") or "dlib judge not run"))
    out.append(Reading("perc_dist", "perceptual distance", m.get("perc_dist"), _boot(per_id.get("perc_dist")), ids,
                       str(m.get("perc_backend") or ""), "lower"))
    for key, label in (("frechet_sface", "Fréchet distance, SFace"), ("frechet_mobilenet", "Fréchet, MobileNetV2")):
        fd = m.get(key)
        if isinstance(fd, dict):
            out.append(Reading(key, label, fd.get("value"), n=f"N = {fd.get('N')} vs {fd.get('N_private')} private",
                               note="biased upwards at small N: compare runs at equal N only", better="lower"))
    out.append(Reading("T_acc@1", "T acc@1 %", m.get("T_acc@1"), n=images, percent=True,
                       note="T is the attacked model: shows the attack converged, not that it worked"))
    return out


def _n_classes(eval_model: str) -> int | None:
    """The number of classes E chooses among (E's own header), for its chance level; None when unreadable."""
    from mia_app.attack.models import local_path
    from mia_app.models.classifiers import read_meta

    path = local_path(eval_model) if eval_model else None
    try:
        return int(read_meta(path)["n_classes"]) if path is not None else None
    except (ValueError, KeyError, OSError):  # a moved or foreign file: the row says chance is unknown
        return None


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def config_diff(configs: dict[str, dict]) -> list[dict[str, Any]]:
    """Rows ``{"setting": key, <run>: value, ...}`` for every flattened key whose value differs between runs
    (a key one run lacks shows as ``—``), sorted by key. Equal configs give no rows."""
    flat = {name: flatten(cfg) for name, cfg in configs.items()}
    keys = sorted(set().union(*flat.values())) if flat else []
    rows = []
    for key in keys:
        values = [flat[name].get(key, "—") for name in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            rows.append({"setting": key, **{name: v for name, v in zip(flat, values, strict=True)}})
    return rows
