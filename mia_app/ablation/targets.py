"""One ablation over several attacked models: every row (floor, PPA, ours, ...) on every T, a block per T.

An auditor's question is "how much does defense X protect my model?": the same attacks on the undefended T and
on each defended T, same identities, seeds and judge. ``AblationConfig.target_models`` lists the checkpoints;
each gets its own sub-ablation in ``<out>/<T's file stem>/`` (resumable like any ablation), and ``defenses.md``
puts them side by side: per T, each row's E acc@1, dlib top-1 and KNN distance with CIs, and the change from the
first (undefended) T.
"""

from __future__ import annotations

import json
from pathlib import Path

from mia_app.ablation.config import AblationConfig
from mia_app.ablation.summary import paired_rows, write_summary
from mia_app.ablation.tables import delta_ci, mean_ci, render_scoreboard

#: the three judges of success, as (summary key, column title)
KEY_METRICS = (("acc@1", "E acc@1 %"), ("judge_top1", "dlib top-1 %"), ("knn_dist", "KNN dist"))


def target_slug(path: str) -> str:
    return Path(path).stem


def per_target(acfg: AblationConfig) -> list[AblationConfig]:
    """The sub-ablation of each T: the same rows with ``target`` overridden, in ``<out>/<stem>/``."""
    slugs = [target_slug(t) for t in acfg.target_models]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"target_models must have distinct file names, got {acfg.target_models}")
    out = acfg.out_dir()
    return [acfg.model_copy(update={"target_models": [], "out": out / slug,
                                    "attack_overrides": acfg.attack_overrides | {"target": t}})
            for t, slug in zip(acfg.target_models, slugs, strict=True)]


def target_info(path: str) -> dict:
    """What the table says about a T: its defense and private-test accuracy (from the manifest when shipped)."""
    from mia_app.assets import REPO_ROOT, load_manifest
    from mia_app.attack.models import local_path
    from mia_app.models.classifiers import read_meta

    local = local_path(path)
    meta = read_meta(local) if local is not None else {}
    entry = next((e for e in load_manifest()["files"] if local is not None and local.resolve().is_relative_to(REPO_ROOT)
                  and e["path"] == str(local.resolve().relative_to(REPO_ROOT))), {})
    report = local.with_suffix(".json") if local is not None else None
    acc = entry.get("test_acc")
    if acc is None and report is not None and report.is_file():
        acc = json.loads(report.read_text()).get("test_acc")
    return {"path": path, "defense": meta.get("defense", "none"), "test_acc": acc, "arch": meta.get("arch")}


def run_over_targets(acfg: AblationConfig, progress: bool = True, run: bool = True) -> dict:
    """Run (or resume) the sub-ablation of every T, then write ``summary.json`` and ``defenses.md``."""
    from mia_app.ablation.runner import run_ablation
    from mia_app.attack.sharding import current_shard

    summaries = {}
    for sub, t in zip(per_target(acfg), acfg.target_models, strict=True):
        summaries[t] = run_ablation(sub, progress=progress, run=run)
    if not current_shard().is_main:  # under torchrun rank 0 writes the side-by-side report
        return {"name": acfg.name, "shard": [current_shard().rank, current_shard().world]}
    out = acfg.out_dir()
    infos = {t: target_info(t) for t in summaries}  # read once: the summary and the table both show them
    combined = {"name": acfg.name, "target_models": acfg.target_models,
                "targets": {t: {"info": infos[t], "folder": str(out / target_slug(t)),
                                "complete": s.get("complete", False)} for t, s in summaries.items()}}
    write_summary(out / "summary.json", combined)
    combined["this_call"] = {key: [f"{target_slug(t)}/{cell}" for t, sm in summaries.items()
                                   for cell in sm.get("this_call", {}).get(key, [])]
                             for key in ("ran", "evaluated", "skipped")}
    (out / "defenses.md").write_text(render_defenses(acfg, summaries, infos))
    return combined | {"per_target": summaries}


def render_defenses(acfg: AblationConfig, summaries: dict[str, dict], infos: dict[str, dict]) -> str:
    """Rows x targets for the three judges, each with its CI and the change from the first T; then each T's full
    scoreboard block."""
    first = acfg.target_models[0]
    lines = [f"# `{acfg.name}`: every attack on every target", "",
             "Each cell: mean [95% CI] over (seed, identity); below it, Δ = this target − the first "
             f"(`{target_slug(first)}`) for the same row, a paired bootstrap over the same (seed, identity) pairs "
             "(`*`: the CI excludes 0).", ""]
    names = list(dict.fromkeys(n for s in summaries.values() for n in s.get("variants", {})))
    for key, title in KEY_METRICS:
        head = ["row"] + [f"{target_slug(t)} ({infos[t]['arch']}, {infos[t]['defense']}, acc "
                          f"{_pct(infos[t]['test_acc'])})" for t in summaries]
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in names:
            cells = []
            ref = summaries[first].get("variants", {}).get(name)
            for t, s in summaries.items():
                entry = s.get("variants", {}).get(name)
                if entry is None or entry["metrics"][key].get("mean") is None:
                    cells.append("not run" if entry is None else "n/a")  # n/a: e.g. no dlib judge here
                    continue
                cell = mean_ci(key, entry["metrics"][key])
                if t != first and ref is not None and (vs := paired_rows(entry, ref, acfg)) is not None:
                    cell += f"<br>Δ {delta_ci(key, vs)}"
                cells.append(cell)
            lines.append("| " + " | ".join([name, *cells]) + " |")
        lines.append("")
    for t, s in summaries.items():
        lines += [f"## T = `{t}` ({infos[t]['arch']}, {infos[t]['defense']}, private-test acc "
                  f"{_pct(infos[t]['test_acc'])})", ""]
        if not s.get("variants"):
            lines.append("no finished cells yet")
        elif s.get("floor"):
            lines += render_scoreboard(s)
        else:
            lines.append(f"see `{target_slug(t)}/table.md`")
        lines.append("")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"
