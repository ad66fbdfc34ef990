"""Copy a trained prior into ``assets/`` and record every file in the manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

from mia_app.assets import REPO_ROOT, record_shipped


def ship_prior(folder: Path, config_path: str, cfg, dest: str = "assets/prior") -> list[str]:
    target = REPO_ROOT / dest
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target)
    shipped = []
    for f in sorted(target.rglob("*")):
        if f.is_file():
            rel = str(f.relative_to(REPO_ROOT))
            record_shipped(
                rel,
                role="prior",
                provenance={"command": f"python -m mia_app train-prior --config {config_path} --ship"
                                       + ("" if dest in ("assets/prior", "assets/latent_prior") else f" --dest {dest}"),
                            "config": cfg.model_dump(mode="json")},
                licence="trained here on the SynthID public pool (DCGAN/DigiFace-1M research terms)",
            )
            shipped.append(rel)
    return shipped
