"""The attacked models a user may pick: every shipped target T (undefended and defended), with what it is and the
benchmark it was trained on (the picker offers only the targets of the chosen benchmark)."""

from __future__ import annotations

from mia_app.assets import load_manifest
from mia_app.config import data_kind

DEFENSE_NAMES = {"none": "undefended", "negls": "NegLS", "bido": "BiDO-HSIC", "mid": "MID"}
ARCH_NAMES = {"vgg": "VGG", "resnet": "ResNet", "softmax": "softmax regression", "mlp": "MLP"}


def target_benchmark(entry: dict) -> str:
    """The data kind (``synthid``, ``orl``, ``folder``) a manifest entry's model was trained on."""
    return data_kind(entry.get("provenance", {}).get("config", {}).get("data", {}))


def shipped_targets(benchmark: str | None = None) -> list[tuple[str, str]]:
    """(label, path) of each target in the manifest (of ``benchmark`` only, when given), undefended first:
    ``target-negls · VGG · NegLS · private-test acc 99.1%``."""
    entries = [e for e in load_manifest()["files"] if e.get("role") == "target"]
    if benchmark is not None:
        entries = [e for e in entries if target_benchmark(e) == benchmark]
    entries.sort(key=lambda e: (e.get("defense", "none") != "none", e["path"]))
    out = []
    for e in entries:
        stem = e["path"].removeprefix("assets/").removesuffix(".safetensors")
        acc = e.get("test_acc")
        parts = [stem, ARCH_NAMES.get(e.get("arch"), e.get("arch")),
                 DEFENSE_NAMES.get(e.get("defense", "none"), e.get("defense"))]
        label = " · ".join(str(p) for p in parts if p)
        out.append((label + (f" · private-test acc {100 * acc:.1f}%" if acc is not None else ""), e["path"]))
    return out


def shipped_eval(benchmark: str) -> str | None:
    """The shipped evaluation model E of ``benchmark`` (its manifest path), or None."""
    entries = [e for e in load_manifest()["files"] if e.get("role") == "eval" and target_benchmark(e) == benchmark]
    return entries[0]["path"] if entries else None


def check_shipped_target(path: str, benchmark: str | None = None) -> str:
    """``path`` if it is one of the shipped targets (of ``benchmark``, when given); a ValueError otherwise."""
    entry = next((e for e in load_manifest()["files"] if e.get("role") == "target" and e["path"] == path), None)
    if entry is None:
        raise ValueError(f"target model {path!r} is not a shipped target; upload a checkpoint instead")
    if benchmark is not None and target_benchmark(entry) != benchmark:
        raise ValueError(f"target model {path!r} was trained on another benchmark than the preset's ({benchmark})")
    return path


def eval_model_for(benchmark: str, synthid_eval: str) -> str | None:
    """E for runs on ``benchmark``: the server's ``eval_model`` setting on SynthID, the benchmark's shipped E
    otherwise (None when it has none)."""
    return synthid_eval if benchmark == "synthid" else shipped_eval(benchmark)
