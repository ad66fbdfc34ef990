"""Build the loss composer of one stage from the attack config: the one place terms are chosen.

baseline: prior, id, perc, cls (+ reg in stage 2 if weighted)
B3: + id_contrast (negative bank)       A: prior -> cosine eps loss × w(t)
C: perc -> hierarchical (schemes.perc_*_weight, 0.2/0.5/0.3), + attr (schemes.attr_*_weight), + div
D: uncertainty weighting of all active terms
"""

from __future__ import annotations

from mia_app.attack.config import SCHEME_DEFAULT_WEIGHTS, AttackConfig, StageConfig
from mia_app.losses.attributes import AttributeLoss, DiversityLoss, HierarchicalPerceptionLoss
from mia_app.losses.base import LossTerm
from mia_app.losses.classification import CrossEntropyClsLoss, MaxMarginClsLoss
from mia_app.losses.composer import LossComposer
from mia_app.losses.contrastive import ContrastiveIdentityLoss, NegativeBank
from mia_app.losses.identity import IdentityCosineLoss
from mia_app.losses.perceptual import PerceptualLoss
from mia_app.losses.prior import PriorPreservationLoss, PriorScoreLoss
from mia_app.losses.regularization import LoraWeightPenalty
from mia_app.losses.timestep import timestep_weight
from mia_app.losses.uncertainty import UncertaintyWeighting


def stage_weights(cfg: AttackConfig, scfg: StageConfig) -> dict[str, float]:
    """The stage's weights restricted to active terms, with scheme defaults filled in."""
    s = cfg.schemes
    scheme_terms = {"id_contrast": s.B3, "attr": s.C, "div": s.C}
    weights = {k: v for k, v in scfg.weights.items() if scheme_terms.get(k, True)}
    for name, on in scheme_terms.items():
        if on and name not in weights:
            weights[name] = SCHEME_DEFAULT_WEIGHTS[name]
    # A zero weight is "off": dropping it keeps D's task set to terms that actually train.
    return {k: v for k, v in weights.items() if v > 0}


def build_terms(cfg: AttackConfig, stage: int, names: list[str], bank: NegativeBank | None) -> list[LossTerm]:
    s = cfg.schemes
    prior_kwargs = {"form": s.prior_form, "timestep_weight": timestep_weight(s.timestep_schedule)} if s.A else {}
    factories = {
        "prior": lambda: (PriorScoreLoss if stage == 1 else PriorPreservationLoss)(**prior_kwargs),
        "id": IdentityCosineLoss,
        "perc": lambda: HierarchicalPerceptionLoss(s.perc_tap_weights()) if s.C else PerceptualLoss(),
        "cls": lambda: CrossEntropyClsLoss() if cfg.cls_loss == "ce" else MaxMarginClsLoss(cfg.cls_hinge_margin),
        "id_contrast": lambda: ContrastiveIdentityLoss(s.contrast_form, s.contrast_margin, s.contrast_scale, bank),
        "attr": lambda: AttributeLoss(s.attribute_weights()),
        "div": lambda: DiversityLoss(s.diversity_target),
        "reg": LoraWeightPenalty,
    }
    return [factories[name]() for name in names]


def build_composer(cfg: AttackConfig, stage: int, scfg: StageConfig, bank: NegativeBank | None = None) -> LossComposer:
    weights = stage_weights(cfg, scfg)
    if stage == 1:
        weights.pop("reg", None)
    terms = build_terms(cfg, stage, list(weights), bank)
    weighting = None
    if cfg.schemes.D:
        # One instance per stage: each stage has its own task set (stage 2 may add `reg`).
        weighting = UncertaintyWeighting(list(weights), clamp=cfg.schemes.logvar_clamp)
        weighting.check_terms(terms)
    return LossComposer(terms, weights, weighting)
