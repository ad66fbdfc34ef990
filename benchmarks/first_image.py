"""Seconds from a fresh process to the first image event and to one finished identity, at a preset.

    MIA_THREADS=2 python benchmarks/first_image.py --config configs/attack/cpu-quick.yaml --target 3

Run it twice: the first run of a latent-prior preset also renders its source pool (cached under
``$MIA_DATA_DIR/source-pools/``), the second shows what a dashboard user waits for afterwards.
"""

from __future__ import annotations

import time

T0 = time.time()  # before the heavy imports: a dashboard worker pays for them too

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import torch  # noqa: E402

from mia_app.attack.config import AttackConfig  # noqa: E402
from mia_app.attack.events import BaseCallback  # noqa: E402
from mia_app.attack.run import run_attack  # noqa: E402


class FirstImage(BaseCallback):
    def __init__(self):
        self.seconds: float | None = None

    def on_images(self, event) -> None:
        if self.seconds is None:
            self.seconds = time.time() - T0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/attack/cpu-quick.yaml")
    ap.add_argument("--target", type=int, default=3)
    ap.add_argument("--out", default="/tmp/mia-first-image")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("MIA_THREADS", "2")))
    cb = FirstImage()
    cfg = AttackConfig.from_yaml(args.config, identities_per_batch=1)
    summary = run_attack(cfg, [args.target], args.out, [cb])
    print(json.dumps({"first_image_s": round(cb.seconds, 1), "one_identity_s": round(time.time() - T0, 1),
                      "attack_s": summary["seconds"], "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
