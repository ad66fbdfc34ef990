"""Attack presets (YAML AttackConfigs) and the checks a config must pass before it is queued."""

from __future__ import annotations

from pathlib import Path

from mia_app.assets import REPO_ROOT
from mia_app.attack.config import AttackConfig
from mia_app.attack.models import online
from mia_app.config import data_kind
from mia_app.user_input import read_yaml

PRIOR_HINT = ("train one with `python -m mia_app train-prior --config configs/prior/latent.yaml --ship` (the latent "
              "prior) or `--config configs/prior/cpu.yaml --ship` (the pixel prior)")
TARGET_HINT = ("train it with `python -m mia_app train-classifier --role target "
               "--config configs/classifier/target.yaml --ship`")


def list_presets(folder: Path) -> dict[str, Path]:
    """Preset name (file stem) -> path, sorted by name."""
    return {p.stem: p for p in sorted(Path(folder).glob("*.yaml"))}


BENCHMARK_LABELS = {"synthid": "SynthID (synthetic faces)", "orl": "AT&T/ORL (real faces)", "folder": "Face folder"}


def preset_benchmark(path: Path) -> str | None:
    """The data kind a preset attacks (``synthid`` when it names none); None when the file is not readable YAML."""
    try:
        data = read_yaml(path).get("data") or {}
    except ValueError:
        return None
    return data_kind(data) if isinstance(data, dict) else None


def presets_of(presets: dict[str, Path], benchmark: str | None) -> dict[str, Path]:
    """The presets of one benchmark (all of them when ``benchmark`` is None); an unreadable preset stays listed
    under every benchmark, so that choosing it shows why it is refused."""
    if benchmark is None:
        return presets
    return {n: p for n, p in presets.items() if preset_benchmark(p) in (benchmark, None)}


def default_preset(presets: dict[str, Path], preferred: str) -> str | None:
    if preferred in presets:
        return preferred
    return next(iter(presets), None)


def load_preset(path: Path) -> AttackConfig:
    """Raises ValueError with pydantic's message when the preset itself is invalid."""
    return AttackConfig.model_validate(read_yaml(path))


def resolve_local(path: str) -> Path | None:
    """A relative path means the repository's (where assets/ lives), as the attack's own loaders read it."""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [REPO_ROOT / p, p]
    return next((c for c in candidates if c.exists()), None)


def missing_models(cfg: AttackConfig) -> list[str]:
    """Human-readable problems with the prior / target paths; empty when the attack can load both."""
    problems = []
    # A prior that is not a local-looking path may be a hub id, fetched only in online mode (MIA_ONLINE=1).
    if resolve_local(cfg.prior) is None and (cfg.prior.startswith(("assets/", "./", "/", "runs/")) or not online()):
        problems.append(f"prior not found at `{cfg.prior}`: {PRIOR_HINT}")
    if resolve_local(cfg.target) is None:
        hint = TARGET_HINT if cfg.target.startswith("assets/") else "upload a target checkpoint or fix the path"
        problems.append(f"target classifier not found at `{cfg.target}`: {hint}")
    return problems
