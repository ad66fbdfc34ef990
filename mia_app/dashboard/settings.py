"""DashboardSettings: every deployment knob of the dashboard, read from environment variables once.

| variable | meaning |
|---|---|
| MIA_DB, MIA_RUNS_DIR, MIA_RESULTS_DIR | job store, run folders, ablation results |
| MIA_PRESETS_DIR, MIA_DEFAULT_PRESET | attack presets offered in the UI (YAML AttackConfigs) |
| MIA_ABLATIONS_DIR | ablation configs the Ablation tab can launch (YAML AblationConfigs) |
| MIA_AUTH=user:pass[,user2:pass2] | hosted mode: Gradio login; each user sees and limits only their own jobs |
| MIA_USERS=path | hosted mode from a users file of salted hashes (`python -m mia_app users add NAME --file path`) |
| MIA_MAX_STEPS, MIA_MAX_CANDIDATES, MIA_MAX_TARGETS, MIA_MAX_QUEUED | hosted limits (per stage / per session) |
| MIA_MAX_COMPUTE | hosted limit on a job's sampler passes (``AttackConfig.compute_units``; hosted default 400 000) |
| MIA_DEMO=0/1 | private reference images: shown in lab mode (the benchmark is synthetic), hidden when hosted |
| MIA_START_WORKER=0 | do not start a worker subprocess (workers run elsewhere) |
| MIA_HOST, MIA_PORT | where to serve (127.0.0.1:7860) |
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from mia_app.assets import REPO_ROOT
from mia_app.config import StrictModel

#: A hosted job's default compute cap in sampler passes: cpu-quick on all 100 classes, the ``cpu`` preset on 34.
HOSTED_COMPUTE = 400_000
#: A hosted job's largest search space (generator latents T ranks; each rendered, and cached per seed): 4x the
#: presets' 4000.
HOSTED_SEARCH_SPACE = 16_000


class DashboardSettings(StrictModel):
    db: Path = Path("runs/jobs.sqlite")
    runs: Path = Path("runs")
    results: Path = Path("results")
    presets: Path = REPO_ROOT / "configs" / "attack"
    default_preset: str = "cpu-quick"
    ablations: Path = REPO_ROOT / "configs" / "ablation"
    auth: dict[str, str] | None = Field(None, description="MIA_AUTH's accounts, {user: salted hash}")
    users_file: Path | None = None
    max_steps: int | None = Field(None, ge=1, description="per stage")
    max_candidates: int | None = Field(None, ge=1)
    max_targets: int | None = Field(None, ge=1)
    max_queued: int | None = Field(None, ge=1, description="queued + running jobs per session")
    max_compute: int | None = Field(None, ge=1, description="sampler passes per job (AttackConfig.compute_units)")
    demo: bool | None = Field(None, description="show private reference images; unset: in lab mode only")
    start_worker: bool = True
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    poll_s: float = Field(1.0, gt=0, le=60)
    eval_model: str = "assets/eval.safetensors"
    auto_evaluate: int = Field(10, ge=0, le=1000, description="runs of at most this many identities are judged "
                                                               "with E when they end (0: never)")

    @field_validator("auth", mode="before")
    @classmethod
    def _parse_auth(cls, v):
        from mia_app.dashboard.accounts import hash_password, parse_auth

        if isinstance(v, str):
            return parse_auth(v)
        if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, str) for x in v):  # ("user", "password")
            return {v[0]: hash_password(v[1])}
        return v

    @model_validator(mode="after")
    def _defaults_follow_the_mode(self) -> DashboardSettings:
        if self.users_file is not None and not self.users_file.is_file():
            raise ValueError(f"MIA_USERS: no users file at {self.users_file}")
        if self.demo is None:  # private reference faces are never shown to strangers unless asked for
            object.__setattr__(self, "demo", not self.hosted)
        return self

    @property
    def hosted(self) -> bool:
        return bool(self.auth) or self.users_file is not None

    def accounts(self):
        """Every account (MIA_AUTH's and the users file's, read now so an added user can log in at once)."""
        from mia_app.dashboard.accounts import Accounts, read_users_file

        hashes = dict(self.auth or {})
        if self.users_file is not None:
            hashes |= read_users_file(self.users_file)
        return Accounts(hashes)

    @property
    def search_space_cap(self) -> int | None:
        return HOSTED_SEARCH_SPACE if self.hosted else None

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")

    @property
    def compute_cap(self) -> int | None:
        """``max_compute``, or when hosted and unset ``HOSTED_COMPUTE``: per-stage step caps alone do not bound
        a job (200 sampler steps per step, many candidates, many classes)."""
        if self.max_compute is not None:
            return self.max_compute
        return HOSTED_COMPUTE if self.hosted else None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DashboardSettings:
        env = dict(os.environ if env is None else env)
        names = {"db": "MIA_DB", "runs": "MIA_RUNS_DIR", "results": "MIA_RESULTS_DIR", "presets": "MIA_PRESETS_DIR",
                 "ablations": "MIA_ABLATIONS_DIR", "default_preset": "MIA_DEFAULT_PRESET", "auth": "MIA_AUTH",
                 "users_file": "MIA_USERS", "max_steps": "MIA_MAX_STEPS", "max_candidates": "MIA_MAX_CANDIDATES",
                 "max_targets": "MIA_MAX_TARGETS", "max_queued": "MIA_MAX_QUEUED", "max_compute": "MIA_MAX_COMPUTE",
                 "demo": "MIA_DEMO", "start_worker": "MIA_START_WORKER", "host": "MIA_HOST", "port": "MIA_PORT",
                 "auto_evaluate": "MIA_AUTO_EVALUATE", "eval_model": "MIA_EVAL_MODEL"}
        values = {field: env[var] for field, var in names.items() if env.get(var, "") != ""}
        # The job store and run folders default to runs/ next to each other unless set separately.
        if "db" not in values and "runs" in values:
            values["db"] = str(Path(values["runs"]) / "jobs.sqlite")
        return cls.model_validate(values, strict=False)
