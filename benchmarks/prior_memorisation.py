"""Does the pixel prior copy its training faces? Near-copy rate of its samples, beside unseen real faces.

    python benchmarks/prior_memorisation.py --prior assets/orl/prior \\
        --out results/benchmarks/orl_prior_memorisation.json

Reads the prior's own training config (``prior_config.json``: data, seed, held-out fraction, augmentation), so
the training faces are exactly those it trained on (the public pool minus its held-out identities).
Draws ``--n`` faces from noise under the codes of the training faces (the codes it saw, the case most likely to
copy), and compares them with (a) the held-out public identities' real faces and (b) the private people's real
faces, neither ever seen by the prior; see ``mia_app.evaluation.memorisation`` for the near-copy rule. Writes a
grid of samples beside their nearest training faces (``--grid``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mia_app.config import PriorTrainConfig
from mia_app.data import load_benchmark, to_signed
from mia_app.evaluation import feature_cache
from mia_app.evaluation.memorisation import memorisation_report, nearest_ratio, with_mirrors
from mia_app.prior.model import IdentityPrior
from mia_app.prior.sampler import sample_from_noise
from mia_app.prior.train import heldout_mask, public_codes
from mia_app.viz import save_grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", type=Path, required=True)
    ap.add_argument("--n", type=int, default=120, help="samples drawn (codes of training faces, cycled)")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps of each sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--grid", type=Path, default=None, help="PNG: 16 samples above their nearest training faces")
    args = ap.parse_args()

    meta = json.loads((args.prior / "prior_config.json").read_text())
    cfg = PriorTrainConfig.model_validate(meta["train_config"])
    bench = load_benchmark(cfg.data)
    held = heldout_mask(bench.public.labels, cfg.heldout_fraction, cfg.seed)
    train = to_signed(bench.public.images[~held])
    # a cache, not a result: beside the evaluation's feature cache (data/, ignored), never in results/
    cache = feature_cache.cache_dir() / f"public-codes-{bench.content_hash()[:16]}.safetensors"
    codes = public_codes(bench, cache, cfg.id_encoder)[~held]
    prior = IdentityPrior.from_pretrained(args.prior).eval()
    pick = torch.arange(args.n) % len(codes)
    t0 = time.time()
    with torch.no_grad():
        samples = torch.cat([sample_from_noise(prior, codes[pick[i:i + 40]], args.steps, seed=args.seed + i)
                             for i in range(0, args.n, 40)]).clamp(-1, 1)
    seconds = time.time() - t0
    unseen = {"heldout_public": to_signed(bench.public.images[held]),
              "private": to_signed(torch.cat([bench.private_train.images, bench.private_test.images]))}
    report = {"prior": str(args.prior), "data": cfg.data.model_dump(mode="json"),
              "augment": cfg.augment.model_dump(mode="json"),
              "mix": cfg.mix.model_dump(mode="json") if cfg.mix else None,
              "samples_from": "noise, under the codes of the training faces", "ddim_steps": args.steps,
              "seed": args.seed, "sampling_seconds": round(seconds, 1)}
    for name, x in unseen.items():
        if len(x):
            report[f"vs_{name}"] = memorisation_report(samples, train, x)
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.grid is not None:
        pool = with_mirrors(train)
        d = torch.cdist(samples[:16].flatten(1), pool.flatten(1))
        nearest = pool[d.argmin(1)]
        _, ratio = nearest_ratio(samples[:16], pool)
        save_grid(torch.cat([samples[:16], nearest]), args.grid, nrow=16)
        print(f"wrote {args.grid} (top: samples; bottom: nearest training face; ratios "
              f"{[round(r, 2) for r in ratio.tolist()]})")


if __name__ == "__main__":
    main()
