"""Evaluate a run folder with the evaluation model E (never used by the attack) and independent judges.

Besides E's top-k accuracy and KNN distance it reports, per run and per identity:

* ``judge_dist`` / ``judge_match@0.6``: dlib ResNet face distance to the nearest private image of the class, and
  the fraction under dlib's 0.6 same-person threshold (optional: needs ``dlib``; see ``judge``); ``judge_top1``:
  whether the nearest private image among the attacked classes (``judge_gallery`` of them) is of the right class.
  On 32 px SynthID the nearest-of-60 distance of *another* person's face is often under 0.6 (public faces: 85 %),
  so read match@0.6 next to judge_top1 and its chance level 1 / judge_gallery;
* ``perc_dist``: LPIPS-style distance to the nearest private image of the class (official ``lpips`` when it is
  importable and its weights load, else unit-normalised MobileNetV2 taps; ``perc_backend`` says which);
* ``frechet_sface`` / ``frechet_mobilenet``: Fréchet distance between the attack images and the private images
  of the attacked classes, on SFace embeddings (unit-norm, 128-d) and on MobileNetV2's average-pooled deep tap
  (96-d), each with ``N`` (attack images), ``N_private`` and ``backbone``.

Private images and E are used here only. Features of the private images are cached in-process per data config
and class, so an ablation evaluating many runs of the same classes computes them once.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from mia_app.assets import shipped_path
from mia_app.attack.config import AttackConfig
from mia_app.attack.models import load_target
from mia_app.data import Benchmark, load_benchmark, to_signed
from mia_app.evaluation.metrics import (
    FrechetDistance,
    JudgeDistance,
    KNNDistance,
    PerceptualDistance,
    TopKAccuracy,
    mobilenet_taps,
)
from mia_app.models.classifiers import load_classifier

log = logging.getLogger("mia_app.evaluation")
DEFAULT_EVAL = "assets/eval.safetensors"
JudgeMode = Literal["auto", "on", "off"]
PER_IDENTITY_COLUMNS = ["class", "E_acc@1", "E_acc@5", "T_acc@1", "knn_dist", "judge_dist", "judge_match@0.6",
                        "perc_dist", "judge_top1", "n_images"]

# (feature kind, data key, class) -> features of that class's private-train images (tensor or dict of tensors).
_PRIVATE_CACHE: dict[tuple, torch.Tensor | dict[str, torch.Tensor]] = {}
_PERC_BACKEND: dict[str, tuple] = {}


def resolve_eval_path(eval_model: str | Path) -> Path:
    eval_model = str(eval_model)
    return shipped_path(eval_model) if eval_model.startswith("assets/") else Path(eval_model)


def clear_cache() -> None:
    _PRIVATE_CACHE.clear()


def _private_reference(kind: str, data_key: str, bench: Benchmark, classes: list[int], fn: Callable,
                       on_disk: bool = True):
    """(features, labels) of the private-train images of ``classes``; ``fn`` maps images in [-1, 1] to a
    tensor N×D or a dict of N×… tensors. Cached per class in memory and, when ``on_disk`` (``kind`` must then
    name the backbone by content), in ``feature_cache``."""
    from mia_app.evaluation import feature_cache

    feats, labels = [], []
    for c in classes:
        key = (kind, data_key, c)
        if key not in _PRIVATE_CACHE and on_disk and (hit := feature_cache.load(kind, data_key, c)) is not None:
            _PRIVATE_CACHE[key] = hit
        if key not in _PRIVATE_CACHE:
            x = to_signed(bench.private_train.of_class(c))
            if len(x) == 0:
                raise ValueError(f"no private images of class {c}")
            with torch.no_grad():
                _PRIVATE_CACHE[key] = fn(x)
            if on_disk:
                feature_cache.save(kind, data_key, c, _PRIVATE_CACHE[key])
        f = _PRIVATE_CACHE[key]
        feats.append(f)
        n = len(next(iter(f.values()))) if isinstance(f, dict) else len(f)
        labels.append(torch.full((n,), c, dtype=torch.long))
    if isinstance(feats[0], dict):
        merged = {k: torch.cat([f[k] for f in feats]) for k in feats[0]}
    else:
        merged = torch.cat(feats)
    return merged, torch.cat(labels)


def _batched(fn: Callable, batch: int = 256) -> Callable:
    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])

    return run


def _official_lpips():
    """(taps_fn, name) for the official ``lpips`` (AlexNet, v0.1) if it imports, loads and matches its own forward
    on a self-check; None otherwise. Its distance is Σ_layers mean_positions Σ_c w_c (â_c − b̂_c)², so the taps
    are the unit-normalised features scaled by sqrt(w) (``normalize=False, reduce="sum"``)."""
    if "lpips" in _PERC_BACKEND:
        return _PERC_BACKEND["lpips"]
    result = None
    try:
        import lpips  # optional; it needs torchvision (never installed here) and downloads its backbone

        model = lpips.LPIPS(net="alex", verbose=False).eval().requires_grad_(False)
        weights = [lin.model[-1].weight.detach().clamp_min(0).sqrt() for lin in model.lins]

        def taps_fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                if x.shape[-1] < 64:
                    x = torch.nn.functional.interpolate(x, size=64, mode="bilinear", align_corners=False)
                outs = model.net.forward(model.scaling_layer(x))
                return {str(k): lpips.normalize_tensor(o) * w.view(1, -1, 1, 1)
                        for k, (o, w) in enumerate(zip(outs, weights, strict=True))}

        from mia_app.evaluation.metrics import lpips_style_pairwise

        probe = torch.rand(2, 3, 32, 32) * 2 - 1
        ours = lpips_style_pairwise(taps_fn(probe[:1]), taps_fn(probe[1:]), normalize=False, reduce="sum")
        up = torch.nn.functional.interpolate(probe, size=64, mode="bilinear", align_corners=False)
        with torch.no_grad():
            theirs = model(up[:1], up[1:]).flatten()
        if torch.allclose(ours.flatten(), theirs, rtol=1e-3, atol=1e-5):
            result = (taps_fn, "lpips-alex-v0.1")
        else:
            log.warning("official LPIPS skipped: its self-check disagrees with our reading of its layers "
                        "(lpips API drift?); perc_dist uses MobileNetV2 taps")
    # ImportError: lpips or torchvision missing (the usual case here); OSError: the AlexNet download failed;
    # RuntimeError: a corrupt or mismatched checkpoint; AttributeError: lpips renamed the internals we read.
    except (ImportError, OSError, RuntimeError, AttributeError) as err:
        log.warning("official LPIPS skipped (%s: %s); perc_dist uses MobileNetV2 taps", type(err).__name__, err)
    _PERC_BACKEND["lpips"] = result
    return result


def _judge(mode: JudgeMode):
    """The dlib judge, or None with a message when dlib is missing and ``mode`` is ``auto``."""
    if mode == "off":
        return None, "judge disabled (judge='off')"
    try:
        from mia_app.models.dlib_judge import load_dlib_judge

        return load_dlib_judge(), None
    except ImportError as err:
        if mode == "on":
            raise
        note = f"dlib judge skipped: {err}"
        print(f"warning: {note}", file=sys.stderr)
        return None, note


def _nan_to_none(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


@torch.no_grad()
def check_judge_is_not_target(eval_path: Path, target: str, allow: bool = False) -> None:
    """E must be another model than T (by content): T's accuracy on images optimised against T is 1.0 by
    construction and says nothing about whether they show the identity. ``allow`` is for sanity checks only."""
    from mia_app.assets import file_digest
    from mia_app.attack.models import local_path

    target_path = local_path(target)
    if allow or target_path is None or not target_path.is_file():
        return
    if file_digest(Path(eval_path)) == file_digest(target_path):
        raise ValueError(f"the evaluation model {Path(eval_path).name} is the attacked classifier T itself (same "
                         "sha256): its accuracy on the attack's images says nothing; judge with another model, "
                         "or pass --allow-target-as-judge for a sanity check")


def image_verdicts(y: torch.Tensor, e_logits: torch.Tensor, t_logits: torch.Tensor,
                   judge: dict[str, torch.Tensor] | None) -> list[dict]:
    """One record per final image, in the file's order (rank = its order within its class, as the PNGs'):
    E's top-5 classes with their probabilities, whether E's top-1 is the target, T's confidence, and the dlib
    judge's distance to the nearest private image of the class and its identification (None without dlib)."""
    p_e = F.softmax(e_logits.float(), 1)
    top = p_e.topk(min(5, p_e.shape[1]), dim=1)
    t_conf = F.softmax(t_logits.float(), 1).gather(1, y[:, None]).squeeze(1)
    seen: dict[int, int] = {}
    out = []
    for i, c in enumerate(y.tolist()):
        rank = seen.get(c, 0)
        seen[c] = rank + 1
        out.append({
            "index": i, "class": c, "rank": rank,
            "E_top5": [[int(k), round(float(v), 4)] for k, v in zip(top.indices[i], top.values[i], strict=True)],
            "E_recognises": bool(top.indices[i, 0] == c),
            "T_conf": round(float(t_conf[i]), 4),
            "dlib_dist": round(float(judge["dist"][i]), 4) if judge is not None else None,
            "dlib_top1": bool(judge["top1"][i]) if judge is not None else None,
        })
    return out


def evaluate_run(run: str | Path, eval_model: str = DEFAULT_EVAL, judge: JudgeMode = "auto",
                 perceptual: Literal["auto", "mobilenet"] = "auto", facenet: bool = False,
                 allow_target_as_judge: bool = False) -> dict:
    """Judge a finished run folder; writes ``metrics.json``, ``per_identity.csv`` and ``per_image.json``
    (``image_verdicts``) into it and returns the metrics.

    Args:
        judge: ``auto`` uses the dlib judge when dlib imports (otherwise its keys are None and ``judge_note``
            says why), ``on`` requires it, ``off`` skips it.
        perceptual: ``auto`` prefers the official ``lpips`` when usable, ``mobilenet`` always uses our taps.
        facenet: also judge with FaceNet (VGGFace2) from ``facenet-pytorch``, as PPA does (online users only:
            not installable here); adds ``facenet_dist``, ``facenet_match@1.1`` and ``facenet_top1``.
        allow_target_as_judge: let E be T itself (refused otherwise, before anything is written).
    """
    run = Path(run)
    final = run / "final" / "images.safetensors"
    if not final.is_file():
        raise FileNotFoundError(f"{run} has no final images; is it a finished attack run?")
    cfg = AttackConfig.from_yaml(run / "config.yaml")
    data = load_file(str(final))
    x, y = data["images"].float(), data["labels"].long()
    bench = load_benchmark(cfg.data)
    eval_path = resolve_eval_path(eval_model)
    check_judge_is_not_target(eval_path, cfg.target, allow_target_as_judge)
    E, e_meta = load_classifier(eval_path)
    T, _ = load_target(cfg.target)
    if e_meta["n_classes"] != bench.n_classes:
        raise ValueError(f"E has {e_meta['n_classes']} classes, the benchmark {bench.n_classes}")
    classes = sorted(int(c) for c in y.unique())
    data_key = cfg.data.model_dump_json()

    acc_e, acc_t = TopKAccuracy(), TopKAccuracy()
    e_logits, t_logits = E(x), T(x)
    acc_e.update(e_logits, y)
    acc_t.update(t_logits, y)

    from mia_app.evaluation.feature_cache import file_digest

    e_key = f"E:sha256={file_digest(str(eval_path.resolve()), eval_path.stat().st_mtime_ns)}"
    priv_feat, priv_labels = _private_reference(e_key, data_key, bench, classes, _batched(E.features))
    knn = KNNDistance(priv_feat, priv_labels)
    knn.update(E.features(x), y)

    dlib_judge, judge_note = _judge(judge)
    jd = None
    if dlib_judge is not None:
        ref, ref_labels = _private_reference("dlib", data_key, bench, classes, dlib_judge.describe)
        jd = JudgeDistance(ref, ref_labels, threshold=dlib_judge.MATCH_THRESHOLD)
        jd.update(dlib_judge.describe(x), y)

    fn = None
    if facenet:
        from mia_app.models.facenet_judge import load_facenet_judge

        facenet_judge = load_facenet_judge()  # fails early, naming the package, when it is not installed
        ref, ref_labels = _private_reference(f"facenet:{id(facenet_judge.model)}", data_key, bench, classes,
                                             facenet_judge.describe, on_disk=False)
        fn = JudgeDistance(ref, ref_labels, threshold=facenet_judge.MATCH_THRESHOLD)
        fn.update(facenet_judge.describe(x), y)

    official = _official_lpips() if perceptual == "auto" else None
    taps_fn, backend = official if official else (mobilenet_taps, "mobilenet_v2-taps(early,mid,deep)")
    ptaps, plabels = _private_reference(f"perc:{backend}", data_key, bench, classes, taps_fn)
    perc = PerceptualDistance(ptaps, plabels, taps_fn, normalize=official is None,
                              reduce="mean" if official is None else "sum", backend=backend)
    perc.update(x, y)

    from mia_app.models.sface import load_sface

    sface = load_sface("cpu")
    fd_sface = FrechetDistance("SFace (unit-norm 128-d embedding)")
    fd_sface.update(_batched(sface)(x))
    fd_sface.update(_private_reference("sface", data_key, bench, classes, _batched(sface))[0], real=True)
    fd_mnet = FrechetDistance("MobileNetV2 ImageNet, avg-pooled deep tap (features[13], 96-d)")
    deep = _private_reference("perc:mobilenet_v2-taps(early,mid,deep)", data_key, bench, classes, mobilenet_taps)[0]
    fd_mnet.update(mobilenet_taps(x)["deep"].mean((2, 3)))
    fd_mnet.update(deep["deep"].mean((2, 3)), real=True)

    e, t, k, p = acc_e.compute(), acc_t.compute(), knn.compute(), perc.compute()
    j = jd.compute() if jd is not None else {}
    metrics = {
        "n_images": len(y),
        "n_identities": len(classes),
        "eval_model": str(eval_model),
        "eval_arch": e_meta.get("arch"),
        "E_acc@1": e["acc@1"], "E_acc@1_ci95": e["acc@1_ci95"],
        "E_acc@5": e["acc@5"], "E_acc@5_ci95": e["acc@5_ci95"],
        "T_acc@1": t["acc@1"], "T_acc@5": t["acc@5"],
        "knn_dist": k["knn_dist"],
        "judge_dist": _nan_to_none(j.get("judge_dist")),
        "judge_match@0.6": _nan_to_none(j.get("judge_match@0.6")),
        "judge_top1": _nan_to_none(j.get("judge_top1")),
        "judge_gallery": j.get("judge_gallery"),
        "judge": "dlib_face_recognition_resnet_model_v1 (template alignment)" if jd is not None else None,
        "perc_dist": p["perc_dist"],
        "perc_backend": p["perc_backend"],
        "frechet_sface": fd_sface.compute(),
        "frechet_mobilenet": fd_mnet.compute(),
        "private_reference": f"private_train of the {len(classes)} attacked classes ({len(priv_labels)} images)",
        "seed": cfg.seed,
    }
    if judge_note:
        metrics["judge_note"] = judge_note
    if fn is not None:
        fj = fn.compute()
        metrics.update({"facenet_dist": _nan_to_none(fj["judge_dist"]),
                        f"facenet_match@{fn.threshold:g}": _nan_to_none(fj[fn.match_key]),
                        "facenet_top1": _nan_to_none(fj["judge_top1"]), "facenet": facenet_judge.name})
    with open(run / "per_identity.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PER_IDENTITY_COLUMNS)
        counts = {int(c): int((y == c).sum()) for c in classes}
        for c in classes:
            w.writerow([c, e["acc@1_per_class"][c], e["acc@5_per_class"][c], t["acc@1_per_class"][c],
                        k["knn_dist_per_class"][c], j.get("judge_dist_per_class", {}).get(c, ""),
                        j.get("judge_match@0.6_per_class", {}).get(c, ""), p["perc_dist_per_class"][c],
                        j.get("judge_top1_per_class", {}).get(c, ""), counts[c]])
    per_image = image_verdicts(y, e_logits, t_logits, jd.per_image() if jd is not None else None)
    (run / "per_image.json").write_text(json.dumps(per_image, indent=1))
    # metrics.json last: its presence marks the run as evaluated (the ablation runner resumes on it).
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
