"""What a report says about where things came from: each model's file, sha256, accuracy and training command
(from the manifest for shipped models), and the private references of the attacked classes (opt-in)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from mia_app.assets import REPO_ROOT, load_manifest
from mia_app.run_folder import RunFolder


def _manifest_entry(path: str) -> dict | None:
    """The manifest entry of a shipped file, or of the first file under a shipped folder (a prior)."""
    rel = path.removeprefix(str(REPO_ROOT) + "/").rstrip("/")
    files = load_manifest()["files"]
    exact = [e for e in files if e["path"] == rel]
    under = [e for e in files if e["path"].startswith(rel + "/")]
    return (exact or under or [None])[0]


def model_provenance(run: str | Path) -> list[dict[str, Any]]:
    """One record per model the run used: role, path, sha256 (as the run recorded it), private-test accuracy
    and the command that trained it (for shipped models; "not shipped: ..." otherwise)."""
    folder = RunFolder(Path(run))
    cfg = folder.config()
    recorded = {}
    if (folder.path / "models.json").is_file():
        recorded = json.loads((folder.path / "models.json").read_text())
    metrics = json.loads((folder.path / "metrics.json").read_text()) if (folder.path / "metrics.json").is_file() else {}
    models = [("target T", "target", cfg.get("target"))]
    if recorded:  # our attack fingerprints what it used; a peer (MIFace, PPA) never touches the prior or E_id
        models += [("prior", "prior", cfg.get("prior")), ("E_id (loss)", "id_encoder", cfg.get("id_encoder"))]
    models.append(("evaluation E", "eval", metrics.get("eval_model")))
    out = []
    for role, key, path in models:
        if not path:
            continue
        entry = _manifest_entry(str(path)) if key != "id_encoder" else None
        acc = entry.get("test_acc") if entry else None
        digest = recorded.get(key) or _digest_now(key, str(path))
        out.append({
            "role": role, "path": str(path), "sha256": digest,
            "accuracy": f"{acc:.1%}" if isinstance(acc, (int, float)) else "",
            "trained_by": ((entry or {}).get("provenance") or {}).get("command")
                          or ("built in (see the model card)" if key == "id_encoder" else "not shipped: see its file"),
        })
    return out


def _digest_now(key: str, path: str) -> str:
    """The sha256 of a model the run did not fingerprint (a peer's run: T and E only), computed from the file as
    it is now; "" when it is gone."""
    from mia_app.attack.fingerprint import path_digest
    from mia_app.attack.models import local_path
    from mia_app.models.id_encoders import id_encoder_digest

    if key == "id_encoder":
        return id_encoder_digest(path)
    return path_digest(path) if local_path(path) is not None else ""


def private_references(run: str | Path, per_class: int = 2) -> dict[int, list[Image.Image]]:
    """The first ``per_class`` private-train images of every attacked class (the owner's view: demo mode, or an
    audit of one's own model)."""
    from mia_app.attack.config import AttackConfig
    from mia_app.data import load_benchmark

    folder = RunFolder(Path(run))
    cfg = AttackConfig.from_yaml(folder.path / "config.yaml")
    bench = load_benchmark(cfg.data)
    out = {}
    for cls in sorted({c for c, _, _ in folder.final_entries()}):
        imgs = bench.private_train.of_class(cls)[:per_class]
        out[cls] = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in imgs]
    return out
