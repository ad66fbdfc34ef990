"""The attacked models a user may pick: every shipped target T (undefended and defended), with what it is."""

from __future__ import annotations

from mia_app.assets import load_manifest

DEFENSE_NAMES = {"none": "undefended", "negls": "NegLS", "bido": "BiDO-HSIC", "mid": "MID"}


def shipped_targets() -> list[tuple[str, str]]:
    """(label, path) of each target in the manifest, the undefended first: ``target-negls · NegLS · acc 97.1%``."""
    entries = [e for e in load_manifest()["files"] if e.get("role") == "target"]
    entries.sort(key=lambda e: (e.get("defense", "none") != "none", e["path"]))
    out = []
    for e in entries:
        stem = e["path"].rsplit("/", 1)[-1].removesuffix(".safetensors")
        acc = e.get("test_acc")
        label = f"{stem} · {DEFENSE_NAMES.get(e.get('defense', 'none'), e.get('defense'))}"
        out.append((label + (f" · private-test acc {100 * acc:.1f}%" if acc is not None else ""), e["path"]))
    return out


def check_shipped_target(path: str) -> str:
    """``path`` if it is one of the shipped targets; a ValueError otherwise (the picker offers nothing else)."""
    if path not in {p for _, p in shipped_targets()}:
        raise ValueError(f"target model {path!r} is not a shipped target; upload a checkpoint instead")
    return path
