"""From the Attack tab's raw inputs to a queued job: validation, hosted limits, uploads.

Every failure is a ``LaunchError`` whose message is meant for the user as is; the UI shows it and stays up.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mia_app.attack.config import AttackConfig
from mia_app.dashboard.attack_form import AttackForm
from mia_app.dashboard.presets import load_preset, missing_models, resolve_local
from mia_app.dashboard.settings import DashboardSettings
from mia_app.dashboard.targets import eval_model_for
from mia_app.service.store import Job, JobStore, QueueFull
from mia_app.user_input import explain, parse_targets


class LaunchError(ValueError):
    """A user-facing reason why a job was not queued."""


def validated(data: dict[str, Any]) -> AttackConfig:
    try:
        return AttackConfig.model_validate(data)
    except ValidationError as err:
        raise LaunchError(f"invalid settings: {explain(err)}") from err


def targets_from(text: str, n_classes: int | None, limit: int | None) -> list[int]:
    try:
        targets = parse_targets(text or "")
    except ValueError as err:
        raise LaunchError(f"targets: {err} (write e.g. `0`, `0,3,7` or `0-9`)") from err
    if n_classes is not None and (bad := [t for t in targets if not 0 <= t < n_classes]):
        raise LaunchError(f"targets {bad} out of range: the benchmark has classes 0..{n_classes - 1}")
    if len(set(targets)) != len(targets):
        raise LaunchError("targets: each class at most once")
    if limit is not None and len(targets) > limit:
        raise LaunchError(f"at most {limit} target classes per job on this server")
    return targets


def check_upload(upload: str | Path, n_classes: int | None = None) -> dict:
    """The header of a user's target checkpoint, or a LaunchError saying why it is refused: only .safetensors
    (no pickles), a mia_app classifier header within bounds, the preset's number of classes. Messages name the
    file, never its server path."""
    src = Path(upload)
    if src.suffix.lower() != ".safetensors":
        raise LaunchError(f"custom target must be a .safetensors file, got {src.name!r} (remove it to attack the "
                          "preset's T)")
    from mia_app.models.classifiers import read_meta

    try:
        meta = read_meta(src)
    except Exception as err:  # safetensors raises several error types for garbage input
        reason = str(err).replace(str(src), src.name)
        raise LaunchError(f"{src.name} is not a mia_app classifier checkpoint: {reason}") from err
    if n_classes is not None and meta["n_classes"] != n_classes:
        raise LaunchError(f"{src.name} has {meta['n_classes']} classes; the preset's benchmark has {n_classes}")
    return meta


def store_upload(upload: str | None, folder: Path, n_classes: int | None = None) -> str | None:
    """A checked upload (``check_upload``) kept under a content-hash name; None when there is none."""
    if not upload:
        return None
    check_upload(upload, n_classes)
    src = Path(upload)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    dest = folder / f"target-{digest}.safetensors"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return str(dest.resolve())


def check_search_space(search_space: int, settings: DashboardSettings) -> None:
    if (cap := settings.search_space_cap) is not None and search_space > cap:
        raise LaunchError(f"search_space is limited to {cap:,} on this server (each latent is rendered and cached)")


def check_hosted_prior(cfg: AttackConfig, preset: AttackConfig, settings: DashboardSettings) -> None:
    """Hosted, the prior is the preset's or a shipped one: a free path would read server files by name, and a hub
    id would make the server download a model of any size."""
    if not settings.hosted or cfg.prior == preset.prior:
        return
    from mia_app.assets import load_manifest

    shipped = {e["path"].split("/")[1] for e in load_manifest()["files"] if e.get("role") == "prior"}
    if not (cfg.prior.startswith("assets/") and cfg.prior.removeprefix("assets/").rstrip("/") in shipped):
        raise LaunchError(f"prior: on this server, the preset's ({preset.prior}) or a shipped one "
                          f"({', '.join(f'assets/{p}' for p in sorted(shipped))})")


def check_limits(cfg: AttackConfig, settings: DashboardSettings, n_identities: int = 1) -> None:
    """The hosted caps: steps per stage, candidates, search space, and the job's whole compute (sampler passes)."""
    check_search_space(cfg.search_space, settings)
    if (cap := settings.compute_cap) is not None and (units := cfg.compute_units(n_identities)) > cap:
        raise LaunchError(f"this job needs {units:,} sampler passes ((stage1.steps + stage2.steps) x "
                          f"sampler.num_steps x candidates x {n_identities} classes, plus the initial trials); "
                          f"this server allows {cap:,} per job")
    if settings.max_steps is not None:
        for stage in ("stage1", "stage2"):
            if getattr(cfg, stage).steps > settings.max_steps:
                raise LaunchError(f"{stage}.steps is limited to {settings.max_steps} on this server")
    if settings.max_candidates is not None and cfg.candidates > settings.max_candidates:
        raise LaunchError(f"candidates is limited to {settings.max_candidates} on this server")


def check_queue(store: JobStore, settings: DashboardSettings, session: str | None, n: int = 1) -> None:
    """Hosted limit: at most ``max_queued`` queued + running jobs per session, counting the ``n`` about to queue."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if settings.max_queued is None:
        return
    active = store.count_active(session)
    if active >= settings.max_queued:
        raise LaunchError(f"you already have {settings.max_queued} queued or running jobs; wait or cancel one")
    if active + n > settings.max_queued:
        raise LaunchError(f"{n} more jobs would exceed the limit of {settings.max_queued} queued or running jobs "
                          f"(you have {active}); choose at most {settings.max_queued - active}")


def submit_capped(store: JobStore, settings: DashboardSettings, kind: str, name: str, config: dict[str, Any],
                  targets: list[int], session: str | None, run_dir: str | Path | None = None) -> Job:
    """``store.submit`` with the hosted queue cap checked in the same transaction as the insert (``check_queue``
    before it only gives the friendlier message); every launch path (attack, peer, evaluation) goes through here."""
    try:
        return store.submit(kind, name, config, targets, session, run_dir=run_dir, max_active=settings.max_queued)
    except QueueFull as err:
        raise LaunchError(str(err)) from err


def prepare_attack(store: JobStore, settings: DashboardSettings, form: AttackForm, preset_path: Path,
                   values: list[Any], targets_text: str, run_name: str | None, upload: str | None,
                   session: str | None, n_classes: int | None,
                   shipped_target: str | None = None, ours: bool = True) -> tuple[AttackConfig, list[int]]:
    """The validated AttackConfig and targets of the form, within the server's limits; raises LaunchError.

    T is the uploaded checkpoint if any, else ``shipped_target`` (one of ``dashboard.targets.shipped_targets``),
    else the preset's. ``ours``: the job runs our attack (a peer job checks its own limits instead)."""
    try:
        preset = load_preset(preset_path)
    except ValidationError as err:
        raise LaunchError(f"preset {preset_path.name} is invalid: {explain(err)}") from err
    try:
        data = form.build(preset, values, (run_name or "").strip() or None)
    except ValueError as err:
        raise LaunchError(str(err)) from err
    if not (run_name or "").strip():  # an unnamed job says what it runs, not only which preset it came from
        on = [k for k in ("B3", "A", "C", "D") if (data.get("schemes") or {}).get(k)]
        data["name"] = f"{preset.name}-{'+'.join(on)}" if on else preset.name
    targets = targets_from(targets_text, n_classes, settings.max_targets)
    if (target := store_upload(upload, settings.runs / "uploads", n_classes)) is not None:
        data["target"] = target
    elif shipped_target:
        from mia_app.dashboard.targets import check_shipped_target

        try:
            data["target"] = check_shipped_target(shipped_target, preset.data.kind)
        except ValueError as err:
            raise LaunchError(str(err)) from err
    cfg = validated(data)
    check_hosted_prior(cfg, preset, settings)
    if ours:
        check_limits(cfg, settings, len(targets))
    if problems := missing_models(cfg):
        raise LaunchError("; ".join(problems))
    check_queue(store, settings, session)
    return cfg, targets


def submit_attack(store: JobStore, settings: DashboardSettings, form: AttackForm, preset_path: Path,
                  values: list[Any], targets_text: str, run_name: str | None, upload: str | None,
                  session: str | None, n_classes: int | None, shipped_target: str | None = None) -> Job:
    cfg, targets = prepare_attack(store, settings, form, preset_path, values, targets_text, run_name, upload,
                                  session, n_classes, shipped_target)
    config = cfg.model_dump(mode="json") | evaluate_block(settings, cfg, len(targets))
    return submit_capped(store, settings, "attack", cfg.name, config, targets, session)


def evaluate_block(settings: DashboardSettings, cfg: AttackConfig, n_targets: int) -> dict[str, Any]:
    """``{"evaluate": {"eval_model": E}}`` when the run is small enough to judge as it ends (``auto_evaluate``
    identities at most) and its benchmark has an E on this server; ``{}`` otherwise (Compare evaluates later)."""
    if n_targets > settings.auto_evaluate:
        return {}
    eval_model = eval_model_for(cfg.data.kind, settings.eval_model)
    if eval_model is None or resolve_local(eval_model) is None:
        return {}
    return {"evaluate": {"eval_model": eval_model}}


def check_peer_limits(peer, settings: DashboardSettings, n_identities: int = 1) -> None:
    """The hosted caps, read for a peer: its optimisation steps, its candidates per identity, and its compute
    (steps x candidates x classes, one generator-and-T pass each)."""
    steps = getattr(peer, "steps", None) or getattr(peer, "max_iter", None)
    if settings.max_steps is not None and steps is not None and steps > settings.max_steps:
        raise LaunchError(f"{peer.kind} steps are limited to {settings.max_steps} on this server")
    cands = getattr(peer, "candidates", None) or getattr(peer, "images_per_class", None)
    if settings.max_candidates is not None and cands is not None and cands > settings.max_candidates:
        raise LaunchError(f"{peer.kind} candidates are limited to {settings.max_candidates} on this server")
    if (space := getattr(peer, "search_space", None)) is not None:
        check_search_space(space, settings)
    final = getattr(getattr(peer, "final", None), "iterations", 0)  # PPA's final selection: transforms per image
    units = (max(steps or 0, 1) + final) * (cands or 1) * n_identities
    if (cap := settings.compute_cap) is not None and units > cap:
        raise LaunchError(f"this {peer.kind} job needs {units:,} passes (steps x candidates x {n_identities} "
                          f"classes); this server allows {cap:,} per job")


def submit_peer(store: JobStore, settings: DashboardSettings, form: AttackForm, preset_path: Path,
                values: list[Any], peer_data: dict[str, Any], targets_text: str, run_name: str | None,
                upload: str | None, session: str | None, n_classes: int | None,
                shipped_target: str | None = None) -> Job:
    """Queue a peer attack (``kind: peer`` job): the form's AttackConfig gives T, data, seed, keep and device."""
    from mia_app.peers import parse_peer

    try:
        peer = parse_peer(dict(peer_data))
    except ValidationError as err:
        raise LaunchError(f"invalid {peer_data.get('kind')} settings: {explain(err)}") from err
    name = (run_name or "").strip() or peer.display_name()
    ours = peer.kind in ("stage1_only", "plg_max_margin")  # our attack with another preset: our caps apply too
    cfg, targets = prepare_attack(store, settings, form, preset_path, values, targets_text, name, upload,
                                  session, n_classes, shipped_target, ours=ours)
    check_peer_limits(peer, settings, len(targets))
    config = {"attack": cfg.model_dump(mode="json"), "peer": peer.model_dump(mode="json")}
    config |= evaluate_block(settings, cfg, len(targets))
    return submit_capped(store, settings, "peer", name, config, targets, session)
