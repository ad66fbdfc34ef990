"""Quality of a trained prior (either kind): conditioning fidelity, Fréchet distances, and what its SDEdit pass
alone does to T's accuracy.

Fidelity: for held-out public identities (never in the prior's training data), generate faces from noise under
the code c of one real image and report cos(E_id(x̂), c) with the prior's own code encoder. References: the
same cosine for another *real* image of that identity (ceiling) and for a random other identity's code (floor).
The same three figures are also judged by SFace (cos(SFace(x̂), SFace(x_ref))), the teacher of the student.
Fréchet distance: N generated faces against N real public faces, on SFace and MobileNetV2 deep-tap features.
Zero-step SDEdit: T's top-1 accuracy on the prior's SDEdit outputs of the attack's T-selected sources under the
initial codes c⁰, with no optimisation step (the attack's starting point), against the sources' own accuracy.

    python benchmarks/prior_quality.py --prior assets/latent_prior --attack configs/attack/cpu-quick.yaml \
        --out results/benchmarks/prior_quality-latent.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from mia_app.attack.config import AttackConfig
from mia_app.config import PriorTrainConfig, SynthIDConfig
from mia_app.data import load_benchmark
from mia_app.data.benchmark import to_signed, to_uint8
from mia_app.evaluation.frechet import frechet_distance
from mia_app.models.id_encoders import embed_images, load_id_encoder
from mia_app.models.mobilenet_v2 import load_mobilenet_v2
from mia_app.prior.io import prior_from_pretrained
from mia_app.prior.sampler import sample_from_noise, sdedit_sample
from mia_app.prior.train import heldout_mask


def heldout_pairs(prior_cfg: dict, n: int):
    """(benchmark, index of a reference image, index of another image) for up to n held-out public identities."""
    train = prior_cfg.get("train_config", {})
    if prior_cfg.get("kind", "pixel") == "pixel":
        cfg = PriorTrainConfig.model_validate(train)
        bench = load_benchmark(cfg.data)
        held = heldout_mask(bench.public.labels, cfg.heldout_fraction, cfg.seed)
    else:  # the latent prior trains on fresh generator latents: the whole public pool is held out
        bench = load_benchmark(SynthIDConfig.model_validate(train.get("data", {})))
        held = torch.ones(len(bench.public), dtype=torch.bool)
    labels = bench.public.labels
    refs, others = [], []
    for i in labels[held].unique().tolist():
        idx = (held & (labels == i)).nonzero().squeeze(1)
        if len(idx) >= 2:
            refs.append(idx[0])
            others.append(idx[1])
    return bench, torch.stack(refs[:n]), torch.stack(others[:n])


def identity_figures(encoder, x_gen_uint8, ref_uint8, other_uint8) -> dict:
    e_gen, e_ref, e_other = (F.normalize(embed_images(encoder, x).float(), dim=1)
                             for x in (x_gen_uint8, ref_uint8, other_uint8))
    return {"fidelity_cos_mean": (e_gen * e_ref).sum(1).mean().item(),
            "fidelity_cos_std": (e_gen * e_ref).sum(1).std().item(),
            "ceiling_real_same_identity_cos": (e_other * e_ref).sum(1).mean().item(),
            "floor_generated_vs_other_identity_cos": (e_gen * e_ref.roll(1, 0)).sum(1).mean().item()}


@torch.no_grad()
def zero_step_sdedit(prior_path: str, attack: AttackConfig, classes: list[int]) -> dict:
    """T's accuracy on the attack's sources and on their SDEdit under c⁰ with no optimisation: the candidates the
    engine starts from (``Inversion.initial_candidates``), as the preset asks and with the trial selection off."""
    from mia_app.attack.engine import Inversion
    from mia_app.attack.models import AttackModels

    cfg = attack.model_copy(update={"prior": prior_path})
    models = AttackModels.load(cfg)
    bench = load_benchmark(cfg.data)
    report = {"classes": len(classes), "strength": cfg.sampler.strength, "ddim_steps": cfg.sampler.num_steps,
              "init_sources": cfg.init_sources, "init_draws": cfg.init_draws}
    settings = {"as_configured": cfg}
    if cfg.init_sources is not None or cfg.init_draws > 1:
        settings["no_trial_selection"] = cfg.model_copy(update={"init_sources": None, "init_draws": 1})
    for label, c in settings.items():
        inv = Inversion(c, models, bench)
        hits_src = hits_sde = total = 0
        for b, i in enumerate(range(0, len(classes), c.identities_per_batch)):
            c0, z_src, x_src, y, noise = inv.initial_candidates(classes[i : i + c.identities_per_batch], b)
            code = F.normalize(c0, dim=1).repeat_interleave(c.candidates, 0)
            x_hat = models.prior.decode(sdedit_sample(models.prior, z_src, code, c.sampler.strength,
                                                      c.sampler.num_steps, c.sampler.guidance, noise=noise))
            hits_src += (models.target(x_src).argmax(1) == y).sum().item()
            hits_sde += (models.target(x_hat).argmax(1) == y).sum().item()
            total += len(y)
        report[label] = {"candidates": total, "T_acc_sources": hits_src / total, "T_acc_sdedit_c0": hits_sde / total}
    report["T_acc_sources"] = report["as_configured"]["T_acc_sources"]
    report["T_acc_sdedit_c0"] = report["as_configured"]["T_acc_sdedit_c0"]
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="assets/latent_prior")
    ap.add_argument("--attack", default="configs/attack/cpu-quick.yaml",
                    help="attack preset whose sampler, candidates and selection the zero-step figure uses")
    ap.add_argument("--classes", type=int, default=100, help="target classes 0..N-1 for the zero-step figure")
    ap.add_argument("--n", type=int, default=256, help="held-out identities for fidelity and Fréchet")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps from noise")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prior_cfg = json.loads((Path(args.prior) / "prior_config.json").read_text())
    if "train_config" not in prior_cfg:
        raise SystemExit(f"{args.prior}/prior_config.json has no train_config: held-out identities unknown")
    bench, ref, other = heldout_pairs(prior_cfg, args.n)
    # The pixel prior was trained on SFace codes (before the student existed); the latent prior names its encoder.
    code_encoder = prior_cfg.get("code_encoder", "sface")
    encoder = load_id_encoder(code_encoder, "cpu")
    prior = prior_from_pretrained(args.prior).eval()
    codes = F.normalize(embed_images(encoder, bench.public.images[ref]).float(), dim=1)
    with torch.no_grad():
        x_gen = torch.cat([sample_from_noise(prior, codes[i : i + 64], args.steps, args.guidance, seed=i)
                           for i in range(0, len(codes), 64)])
    gen_u8, ref_u8, other_u8 = to_uint8(x_gen), bench.public.images[ref], bench.public.images[other]
    sface = load_id_encoder("sface", "cpu")
    mnet = load_mobilenet_v2()
    real = bench.public.images[torch.randperm(len(bench.public), generator=torch.Generator().manual_seed(1))[
        : len(ref)]]
    pool = lambda u8: F.adaptive_avg_pool2d(  # noqa: E731
        mnet.taps(to_signed(u8), ("deep",))["deep"], 1).flatten(1)
    with torch.no_grad():
        fd_mnet = frechet_distance(torch.cat([pool(gen_u8[i : i + 64]) for i in range(0, len(ref), 64)]),
                                   torch.cat([pool(real[i : i + 64]) for i in range(0, len(ref), 64)]))
        fd_sface = frechet_distance(embed_images(sface, gen_u8), embed_images(sface, real))
    report = {
        "prior": args.prior,
        "kind": prior_cfg.get("kind", "pixel"),
        "code_encoder": code_encoder,
        "n_heldout_identities": len(ref),
        "ddim_steps": args.steps,
        "guidance": args.guidance,
        **identity_figures(encoder, gen_u8, ref_u8, other_u8),
        "judged_by_sface": identity_figures(sface, gen_u8, ref_u8, other_u8),
        "frechet_sface": {"N": len(ref), "backbone": "SFace 128-d", "value": fd_sface},
        "frechet_mobilenet": {"N": len(ref), "backbone": "MobileNetV2 deep tap (96-d, avg-pooled)", "value": fd_mnet},
        "zero_step_sdedit": zero_step_sdedit(args.prior, AttackConfig.from_yaml(args.attack),
                                             list(range(args.classes))),
    }
    floor = report["floor_generated_vs_other_identity_cos"]
    gap = report["ceiling_real_same_identity_cos"] - floor
    report["fidelity_gap_closed"] = (report["fidelity_cos_mean"] - floor) / gap
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        from mia_app.viz import save_grid

        save_grid(x_gen[:32], args.out.with_suffix(".png"), nrow=8, scale=2)


if __name__ == "__main__":
    main()
