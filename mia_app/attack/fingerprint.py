"""Which weights a run used: sha256 of the prior, T and E_id files, written beside a run's config.

A run folder's ``config.yaml`` names its models by path; a path can be re-shipped with new weights (a retrained
student or prior). The ablation runner compares this fingerprint as well as the config before it reuses a
finished cell, so a table never mixes results of old and new weights under one name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mia_app.assets import file_digest
from mia_app.attack.config import AttackConfig
from mia_app.attack.models import local_path
from mia_app.models.id_encoders import id_encoder_digest

FINGERPRINT_FILE = "models.json"


def path_digest(name: str) -> str:
    """sha256 of a file, or of a folder's (relative name, file sha256) list; ``hub:<id>`` for a hub id."""
    local = local_path(name)
    if local is None:
        return f"hub:{name}"
    if local.is_file():
        return file_digest(local)
    files = sorted(f for f in local.rglob("*") if f.is_file())
    listing = [(str(f.relative_to(local)), file_digest(f)) for f in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def model_fingerprint(cfg: AttackConfig) -> dict[str, str]:
    """{"prior", "target", "id_encoder"}: sha256 (hex) of the weights ``cfg`` names."""
    return {"prior": path_digest(cfg.prior), "target": path_digest(cfg.target),
            "id_encoder": id_encoder_digest(cfg.id_encoder)}


def write_fingerprint(folder: Path, fingerprint: dict[str, str]) -> None:
    (Path(folder) / FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=2) + "\n")


def read_fingerprint(folder: Path) -> dict[str, str] | None:
    path = Path(folder) / FINGERPRINT_FILE
    return json.loads(path.read_text()) if path.is_file() else None
