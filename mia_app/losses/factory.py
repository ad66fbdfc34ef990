"""Build the loss composer of one stage from the attack config: the one place terms are chosen."""

from __future__ import annotations

from mia_app.attack.config import AttackConfig, StageConfig
from mia_app.losses.base import LossTerm
from mia_app.losses.classification import CrossEntropyClsLoss, MaxMarginClsLoss
from mia_app.losses.composer import LossComposer
from mia_app.losses.identity import IdentityCosineLoss
from mia_app.losses.perceptual import PerceptualLoss
from mia_app.losses.prior import PriorPreservationLoss, PriorScoreLoss


def build_terms(cfg: AttackConfig, stage: int, scfg: StageConfig) -> list[LossTerm]:
    cls_term = CrossEntropyClsLoss() if cfg.cls_loss == "ce" else MaxMarginClsLoss()
    prior_term = PriorScoreLoss() if stage == 1 else PriorPreservationLoss()
    terms: dict[str, LossTerm] = {
        "cls": cls_term,
        "id": IdentityCosineLoss(),
        "perc": PerceptualLoss(),
        "prior": prior_term,
    }
    return [terms[name] for name in scfg.weights if scfg.weights[name] > 0 or name in terms]


def build_composer(cfg: AttackConfig, stage: int, scfg: StageConfig) -> LossComposer:
    terms = [t for t in build_terms(cfg, stage, scfg) if t.name in scfg.weights]
    return LossComposer(terms, scfg.weights)
