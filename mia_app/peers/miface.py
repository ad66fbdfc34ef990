"""MIFace (Fredrikson, Jha, Ristenpart, CCS 2015) on our target T, as a peer of the diffusion-prior attack.

Primary path: IBM ART's ``art.attacks.inference.model_inversion.MIFace`` on T wrapped in ART's
``PyTorchClassifier`` (input 3×R×R, clip values (-1, 1), T's softmax as the output so that ART's cost is
1 − p_T(y|x) as in the paper). If ART cannot be imported, ``miface_fallback`` runs: a line-by-line port of ART's
loop in torch, **not** ART itself; ``method.json`` of the run says which one produced the images.

Both start from the zero image (mid-gray in our [-1, 1] convention) and do gradient *ascent* on p_T(y|x) (descent
on the cost 1 − p) with step ``learning_rate``, clipping to [-1, 1] after each step, for at most ``max_iter`` steps.

Stopping rule, as ART 1.20 implements it: after each step an image stays *active* while
``cost <= threshold`` or ``cost >= max(cost over the last window_length steps)`` (the window starts at +inf).
That is the *negation* of the paper's Algorithm 1 (which stops when the cost stops improving over the window, or
falls to γ). With ``threshold = 1.0`` (ART's own example notebook, and our default) every image runs exactly
``max_iter`` steps, so the budget is the only stopping rule and ART and the fallback agree.

The run folder has the attack's layout (``config.yaml`` with the data and target, ``final/images.safetensors``
with images N×3×R×R in [-1, 1], labels and T's confidence, ``final/class*_rank*.png``, ``summary.json`` with
seconds) plus ``method.json``, so ``evaluate_run`` judges it like any of our runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mia_app.attack.config import AttackConfig
from mia_app.peers.config import MIFacePeer
from mia_app.peers.running import PeerRun


class GrayInput(nn.Module):
    """T on gray images: N×1×R×R in [-1, 1] replicated to the 3 channels T takes. MIFace then searches the gray
    space Fredrikson et al. searched, instead of colour noise that no gray benchmark image can look like."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.expand(-1, 3, -1, -1))


class SoftmaxOutput(nn.Module):
    """T with a softmax head: ART's ``predict`` then returns probabilities and ``class_gradient`` ∂p_y/∂x."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.model(x), dim=1)


def art_available() -> tuple[bool, str]:
    """(True, version) when ART's MIFace and PyTorchClassifier import; else (False, the exact error)."""
    try:
        import art
        from art.attacks.inference.model_inversion import MIFace  # noqa: F401
        from art.estimators.classification import PyTorchClassifier  # noqa: F401
    except Exception as err:  # ImportError, or anything its import chain raises
        return False, f"{type(err).__name__}: {err}"
    return True, art.__version__


def miface_art(target: nn.Module, x_init: np.ndarray, y: np.ndarray, n_classes: int, max_iter: int,
               window_length: int, threshold: float, learning_rate: float, device: str = "cpu") -> np.ndarray:
    """ART's MIFace on ``target`` (logits model): x_init N×3×R×R float32 in [-1, 1], y N class indices."""
    from art.attacks.inference.model_inversion import MIFace
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=SoftmaxOutput(target).eval(),
        loss=nn.NLLLoss(),  # unused by MIFace (it only calls class_gradient and predict)
        input_shape=tuple(x_init.shape[1:]),
        nb_classes=n_classes,
        clip_values=(-1.0, 1.0),
        device_type="gpu" if device.startswith("cuda") else "cpu",
    )
    attack = MIFace(classifier, max_iter=int(max_iter), window_length=int(window_length), threshold=float(threshold),
                    learning_rate=float(learning_rate), batch_size=len(x_init), verbose=False)
    return attack.infer(x_init.astype(np.float32), y.astype(np.int64))


def miface_fallback(target: nn.Module, x_init: torch.Tensor, y: torch.Tensor, max_iter: int, window_length: int,
                    threshold: float, learning_rate: float) -> torch.Tensor:
    """FALLBACK (used only when ART does not import): a torch port of ART 1.20's ``MIFace.infer`` loop.

    Same update (x += lr·∂p_y/∂x on the active images, clip to [-1, 1]), same cost 1 − p_y and the same
    active/window rule (see the module docstring), with all images in one batch.
    """
    x = x_init.detach().clone().float()
    n = len(x)
    dev = x.device
    active = torch.ones(n, dtype=torch.bool, device=dev)
    window = torch.full((n, window_length), float("inf"), device=dev) if window_length > 0 else None
    rows = torch.arange(n, device=dev)
    i = 0
    while i < max_iter and bool(active.any()):
        xa = x[active].clone().requires_grad_(True)
        p = F.softmax(target(xa), dim=1)
        (grad,) = torch.autograd.grad(p[torch.arange(len(xa), device=dev), y[active]].sum(), xa)
        x[active] = (xa.detach() + learning_rate * grad).clamp(-1.0, 1.0)
        with torch.no_grad():
            cost = 1 - F.softmax(target(x), dim=1)[rows, y]
        worst = window.max(1).values if window is not None else torch.full((n,), float("inf"), device=dev)
        active = (cost <= threshold) | (cost >= worst)
        if window is not None:
            window[:, i % window_length] = cost
        i += 1
    return x


def run_miface(cfg: AttackConfig, targets: list[int], out: str | Path, max_iter: int = 300,
               window_length: int = 100, threshold: float = 1.0, learning_rate: float = 0.1,
               images_per_class: int = 1, init_noise: float = 0.0, backend: str = "auto", color: str = "auto",
               callbacks: list | None = None) -> dict:
    """Invert ``targets`` of ``cfg.target`` with MIFace and write a run folder evaluable by ``evaluate_run``.

    ``images_per_class`` > 1 needs ``init_noise`` > 0: the first image starts from zero, the others from zero
    plus N(0, init_noise²) noise seeded by ``cfg.seed`` (from zero alone MIFace is deterministic).
    ``backend``: ``auto`` (ART if it imports, else the fallback), ``art`` or ``fallback``.
    ``color``: ``auto`` (gray on a gray benchmark), ``rgb`` or ``gray``.
    """
    peer = MIFacePeer(kind="miface", max_iter=max_iter, window_length=window_length, threshold=threshold,
                      learning_rate=learning_rate, images_per_class=images_per_class, init_noise=init_noise,
                      backend=backend, color=color)
    return run_miface_peer(cfg, peer, targets, out, callbacks)


def run_miface_peer(cfg: AttackConfig, peer: MIFacePeer, targets: list[int], out: str | Path,
                    callbacks: list | None = None) -> dict:
    """The peer entry point (see ``mia_app.peers.run_peer``); ``run_miface`` takes the settings one by one."""
    ok, art_info = art_available()
    if peer.backend == "art" and not ok:
        raise ImportError(f"ART requested but it does not import: {art_info}")
    run = PeerRun(cfg, peer, targets, out, callbacks)
    k = peer.images_per_class
    y = torch.tensor(run.targets).repeat_interleave(k)
    g = torch.Generator().manual_seed(run.cfg.seed)
    res = run.bench.resolution
    gray = peer.color == "gray" or (peer.color == "auto" and run.bench.gray)
    model = GrayInput(run.target) if gray else run.target
    x0 = torch.zeros(len(y), 1 if gray else 3, res, res)
    if k > 1:
        noise = torch.randn(x0.shape, generator=g) * peer.init_noise
        noise[::k] = 0  # the first image of each class starts from exactly zero
        x0 = (x0 + noise).clamp(-1, 1)
    use_art = peer.backend == "art" or (peer.backend == "auto" and ok)
    t0 = time.time()
    if use_art:
        x = torch.from_numpy(miface_art(model, x0.numpy(), y.numpy(), run.target_meta["n_classes"],
                                        peer.max_iter, peer.window_length, peer.threshold, peer.learning_rate,
                                        device=str(run.device))).to(run.device)
        implementation = f"IBM ART {art_info}: art.attacks.inference.model_inversion.MIFace on PyTorchClassifier"
    else:
        x = miface_fallback(model, x0.to(run.device), y.to(run.device), peer.max_iter, peer.window_length,
                            peer.threshold, peer.learning_rate)
        implementation = "FALLBACK mia_app.peers.miface.miface_fallback (torch port of ART 1.20's MIFace loop)"
    seconds = time.time() - t0
    x = x.float().clamp(-1, 1).expand(-1, 3, -1, -1).contiguous()
    with torch.no_grad():
        conf = F.softmax(run.target(x), 1).gather(1, y[:, None].to(run.device)).squeeze(1).cpu()
    if k > run.cfg.keep:  # final selection by T, as every other method's (PPA's without transforms here)
        from mia_app.attack.selection import final_selection

        keep = final_selection(conf, y, run.cfg.keep)
        x, y, conf = x[keep.to(x.device)], y[keep], conf[keep]
    extra = {
        "kept": f"{min(k, run.cfg.keep)} of {k} per identity, by T's confidence",
        "method_reference": "MIFace (Fredrikson et al., CCS 2015)",
        "implementation": implementation,
        "art_import": art_info if ok else f"failed: {art_info}",
        "search_space": f"gray 1x{res}x{res}, replicated to T's 3 channels" if gray else f"RGB 3x{res}x{res}",
        "init": "zero image (mid-gray)" + (f" + N(0, {peer.init_noise}^2) for extra images" if k > 1 else ""),
        "objective": "gradient ascent on p_T(y|x) (descent on 1 - p), T's softmax, clip to [-1, 1]",
        "stopping_rule": "ART 1.20's: active while cost <= threshold or cost >= max(window); threshold 1.0 "
                         "means every image runs max_iter steps",
        "target": run.cfg.target,
    }
    return run.finish(x, y, conf, seconds, extra) | {"implementation": implementation}
