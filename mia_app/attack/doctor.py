"""The doctor: the seed's debug checks, computed from the per-step readings the engine logs.

It runs as a callback during any attack (writing ``doctor.json`` into the run folder as it goes, so the
dashboard can show it live) and on demand through ``python -m mia_app doctor``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from mia_app.attack.events import BaseCallback, StepEvent

LOGVAR_MOVE_AFTER = 100  # the seed's check: log-vars must have moved after this many steps
TOL = 1e-3


@dataclass
class Check:
    name: str
    status: str  # "pass", "fail" or "n/a"
    measured: str
    expected: str


class Doctor(BaseCallback):
    def __init__(self, out: Path | None = None, logvar_clamp: float | None = None):
        self.out = Path(out) if out else None
        self.logvar_clamp = logvar_clamp
        self.records: list[StepEvent] = []

    @classmethod
    def for_config(cls, cfg, out: Path | None = None) -> Doctor:
        """A doctor that checks log-vars against the attack's own clamp, not the generic default."""
        # getattr: an older attack config (the dashboard still reads them) has no schemes section.
        return cls(out, logvar_clamp=getattr(getattr(cfg, "schemes", None), "logvar_clamp", None))

    def on_step(self, event: StepEvent) -> None:
        self.records.append(event)
        if self.out is not None and (event.step == 1 or event.step % 10 == 0 or event.step == event.steps):
            self.write()

    def on_end(self, summary) -> None:
        self.write()

    def write(self) -> None:
        if self.out is not None:
            (self.out / "doctor.json").write_text(json.dumps([asdict(c) for c in self.checks()], indent=1))

    # ---- the checks ---------------------------------------------------------------------------------
    def _values(self, key: str, stage: int | None = None) -> list[float]:
        return [r.logs[key] for r in self.records if key in r.logs and (stage is None or r.stage == stage)]

    def checks(self) -> list[Check]:
        out = [self._norms(), self._cosines(), self._finite(), self._grad("grad_norm_c", "c_y", 1),
               self._grad("grad_norm_lora", "LoRA weights", 2)]
        logvar_keys = sorted({k for r in self.records for k in r.logs if k.startswith("s_")})
        if logvar_keys:
            out += self._logvars(logvar_keys)
            out.append(self._weights(sorted({k for r in self.records for k in r.logs if k.startswith("w_")})))
        return out

    def _norms(self) -> Check:
        dev = self._values("emb_norm_max_dev") + self._values("code_norm_max_dev")
        if not dev:
            return Check("embedding norms are 1", "n/a", "no readings", f"|norm - 1| < {TOL}")
        worst = max(dev)
        return Check("embedding norms are 1", "pass" if worst < TOL else "fail", f"max |norm - 1| = {worst:.2e}",
                     f"< {TOL}")

    def _cosines(self) -> Check:
        lo, hi = self._values("cos_min"), self._values("cos_max")
        if not lo:
            return Check("cosines lie in [-1, 1]", "n/a", "no identity term", "[-1, 1]")
        ok = min(lo) >= -1 - 1e-5 and max(hi) <= 1 + 1e-5
        return Check("cosines lie in [-1, 1]", "pass" if ok else "fail", f"[{min(lo):.3f}, {max(hi):.3f}]", "[-1, 1]")

    def _finite(self) -> Check:
        bad = sorted({k for r in self.records for k, v in r.logs.items()
                      if (k.startswith("L_") or k == "total") and not math.isfinite(v)})
        n = sum(1 for r in self.records)
        return Check("no loss is inf or NaN", "fail" if bad else ("pass" if n else "n/a"),
                     f"non-finite: {bad}" if bad else f"{n} steps finite", "all finite")

    def _grad(self, key: str, what: str, stage: int) -> Check:
        g = self._values(key, stage)
        if not g:
            return Check(f"gradients reach {what}", "n/a", f"no stage-{stage} steps", "norm > 0")
        return Check(f"gradients reach {what}", "pass" if min(g) > 0 else "fail", f"min norm {min(g):.2e}",
                     "norm > 0 every step")

    def _logvars(self, keys: list[str]) -> list[Check]:
        first = {k: self._values(k)[0] for k in keys}
        start = Check("log-vars start at 0", "pass" if all(abs(v) < 1e-6 for v in first.values()) else "fail",
                      ", ".join(f"{k}={v:.3g}" for k, v in first.items()), "0")
        after = [r for r in self.records if r.step >= LOGVAR_MOVE_AFTER]
        if after:
            moved = {k: abs(after[0].logs[k] - first[k]) for k in keys if k in after[0].logs}
            move = Check(f"log-vars move after {LOGVAR_MOVE_AFTER} steps",
                         "pass" if moved and min(moved.values()) > 1e-4 else "fail",
                         ", ".join(f"|Δ{k}|={v:.3g}" for k, v in moved.items()), "> 1e-4")
        else:
            move = Check(f"log-vars move after {LOGVAR_MOVE_AFTER} steps", "n/a",
                         f"only {max((r.step for r in self.records), default=0)} steps", "> 1e-4")
        values = [abs(v) for k in keys for v in self._values(k)]
        bound = self.logvar_clamp if self.logvar_clamp is not None else 10.0
        bounded = Check("log-vars stay bounded", "pass" if max(values) <= bound + 1e-6 else "fail",
                        f"max |s| = {max(values):.3g}", f"<= {bound}")
        return [start, move, bounded]

    def _weights(self, keys: list[str]) -> Check:
        w = [v for k in keys for v in self._values(k)]
        if not w:
            return Check("task weights lie in (0, 1)", "n/a", "no weights logged", "(0, 1)")
        ok = min(w) > 0 and max(w) < 1
        return Check("task weights lie in (0, 1)", "pass" if ok else "fail", f"[{min(w):.3g}, {max(w):.3g}]", "(0, 1)")

    def table(self) -> str:
        rows = ["| check | status | measured | expected |", "|---|---|---|---|"]
        rows += [f"| {c.name} | {c.status.upper()} | {c.measured} | {c.expected} |" for c in self.checks()]
        return "\n".join(rows)

    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks())
