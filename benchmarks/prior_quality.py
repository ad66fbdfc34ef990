"""Quality of a trained prior: conditioning fidelity and Fréchet distance to public images.

Fidelity: for public identities held out of prior training, generate faces from noise under their SFace
code c and report cos(E_id(x̂), c). References: the same cosine for a *real* held-out image of that
identity (ceiling), and for a random other identity's code (floor).
Fréchet distance: N generated faces vs N real public faces, on SFace (128-d) and MobileNetV2 deep-tap
(pooled, 96-d) features.

    python benchmarks/prior_quality.py --prior assets/prior --n 256

The held-out identities and the data come from the prior's own ``prior_config.json`` (its training config);
``--train-run`` reuses a training folder's cached SFace codes instead of recomputing them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from mia_app.config import PriorTrainConfig
from mia_app.data import load_benchmark
from mia_app.evaluation.frechet import frechet_distance
from mia_app.models.mobilenet_v2 import load_mobilenet_v2
from mia_app.models.sface import load_sface
from mia_app.prior.model import IdentityPrior
from mia_app.prior.sampler import sample_from_noise
from mia_app.prior.train import heldout_mask, public_codes


@torch.no_grad()
def batched(fn, x: torch.Tensor, bs: int = 64) -> torch.Tensor:
    return torch.cat([fn(x[i : i + bs]) for i in range(0, len(x), bs)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="assets/prior")
    ap.add_argument("--train-run", type=Path, default=None,
                    help="training folder whose cached public codes to reuse (default: recompute into .cache/)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    prior_cfg = json.loads((Path(args.prior) / "prior_config.json").read_text())
    if "train_config" not in prior_cfg:
        raise SystemExit(f"{args.prior}/prior_config.json has no train_config: held-out identities unknown")
    cfg = PriorTrainConfig.model_validate(prior_cfg["train_config"])
    bench = load_benchmark(cfg.data)
    cache = (args.train_run or Path(".cache") / "prior_quality") / "public_codes.safetensors"
    codes = public_codes(bench, cache)
    held = heldout_mask(bench.public.labels, cfg.heldout_fraction, cfg.seed)
    prior = IdentityPrior.from_pretrained(args.prior).eval()
    sface, mnet = load_sface(), load_mobilenet_v2()
    idx = held.nonzero().squeeze(1)[: args.n]
    c = codes[idx]
    x_gen = torch.cat([sample_from_noise(prior, c[i : i + 64], args.steps, args.guidance, seed=i)
                       for i in range(0, len(c), 64)])
    e_gen = batched(sface, x_gen)
    fidelity = (e_gen * c).sum(1)
    # ceiling: another real image of the same held-out identity vs this code
    labels = bench.public.labels[idx]
    real_cos, rand_cos = [], []
    for j, i in enumerate(idx.tolist()):
        same = ((bench.public.labels == labels[j]) & (torch.arange(len(codes)) != i)).nonzero().squeeze(1)
        if len(same):
            real_cos.append((codes[same[0]] * c[j]).sum().item())
        rand_cos.append((e_gen[j] * c[(j + 1) % len(c)]).sum().item())
    n_fd = min(args.n, len(idx))
    real = bench.public.as_float(torch.randperm(len(bench.public), generator=torch.Generator().manual_seed(1))[:n_fd])
    e_real = batched(sface, real)
    pool = lambda x: F.adaptive_avg_pool2d(mnet.taps(x, ("deep",))["deep"], 1).flatten(1)  # noqa: E731
    report = {
        "prior": args.prior,
        "n_heldout_codes": len(idx),
        "ddim_steps": args.steps,
        "guidance": args.guidance,
        "fidelity_cos_mean": fidelity.mean().item(),
        "fidelity_cos_std": fidelity.std().item(),
        "ceiling_real_same_identity_cos": sum(real_cos) / max(1, len(real_cos)),
        "floor_generated_vs_other_identity_cos": sum(rand_cos) / len(rand_cos),
        "frechet_sface": {"N": n_fd, "backbone": "SFace 128-d", "value": frechet_distance(e_gen[:n_fd], e_real)},
        "frechet_mobilenet": {"N": n_fd, "backbone": "MobileNetV2 deep tap (96-d, avg-pooled)",
                              "value": frechet_distance(batched(pool, x_gen[:n_fd]), batched(pool, real))},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
        from mia_app.viz import save_grid

        save_grid(x_gen[:32], args.out.with_suffix(".png"), nrow=8, scale=2)


if __name__ == "__main__":
    main()
