"""The dlib judge and the identity encoders on ORL: how well each tells real gray faces apart.

    python benchmarks/orl_judge.py

For each chip alignment (``template``: our fixed 5-point template, the evaluation's default; ``landmarks``;
``resize``) and resolution (64, 32): the private-test images identified by their nearest private-train image
(1-NN, 20 classes, chance 5 %), the same-vs-different verification AUC over all test-train pairs, the mean
distances, and the rate under dlib's 0.6 threshold: the ceiling of judge_top1 on ORL. Then E_id's verification
AUC (cosine) over all 400 ORL images, for SFace and the 32-px student. Writes ``results/benchmarks/orl_judge.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mia_app.config import OrlConfig
from mia_app.data import load_benchmark, to_signed
from mia_app.evaluation.verification import rank_auc
from mia_app.models.dlib_judge import MATCH_THRESHOLD, distance, load_dlib_judge


def judge_ceiling(resolution: int, alignment: str) -> dict:
    bench = load_benchmark(OrlConfig(resolution=resolution))
    judge = load_dlib_judge(alignment)
    train, test = bench.private_train, bench.private_test
    d = distance(judge(to_signed(test.images))[:, None], judge(to_signed(train.images))[None])  # test x train
    same = test.labels[:, None] == train.labels[None, :]
    nearest = train.labels[d.argmin(1)]
    return {
        "resolution": resolution,
        "alignment": alignment,
        "top1_1nn": round((nearest == test.labels).float().mean().item(), 4),
        "chance": round(1 / bench.n_classes, 4),
        "auc": round(rank_auc(-d.flatten(), same.flatten()), 4),
        "dist_same": round(d[same].mean().item(), 4),
        "dist_diff": round(d[~same].mean().item(), 4),
        "under_0.6_same": round((d[same] < MATCH_THRESHOLD).float().mean().item(), 4),
        "under_0.6_diff": round((d[~same] < MATCH_THRESHOLD).float().mean().item(), 4),
        "n_test": len(test),
        "n_gallery": len(train),
    }


def id_encoder_auc(name: str, resolution: int = 64) -> dict:
    """Same-vs-different verification AUC of E_id's cosine over the 400 ORL images (private and public people)."""
    import torch.nn.functional as F

    from mia_app.evaluation.verification import verification_auc
    from mia_app.models.id_encoders import embed_images, load_id_encoder

    bench = load_benchmark(OrlConfig(resolution=resolution))
    splits = (bench.private_train, bench.private_test, bench.public)
    images = torch.cat([s.images for s in splits])
    people = torch.cat([bench.private_train.labels, bench.private_test.labels, bench.public.labels + bench.n_classes])
    embeddings = F.normalize(embed_images(load_id_encoder(name), images).float(), dim=1)
    return {"id_encoder": name, "resolution": resolution, "auc": round(verification_auc(embeddings, people), 4),
            "images": len(images)}


def landmark_crop() -> dict:
    """Where dlib puts the eyes on the 400 full 92x112 ORL images (frontal detector on a 3x upsampled copy, 5-point
    shape), mean over the faces it finds: the figures behind the loader's fixed crop (rows 15-106)."""
    import dlib
    import numpy as np

    from mia_app.assets import asset_path
    from mia_app.data.orl import CROP_TOP, HEIGHT, WIDTH, load_orl_raw

    faces, _ = load_orl_raw()
    detector, shape = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(asset_path("dlib_shape5")))
    points = []
    for face in faces.reshape(-1, HEIGHT, WIDTH):
        big = np.ascontiguousarray(np.repeat(np.repeat(np.repeat(face[:, :, None], 3, 2), 3, 0), 3, 1))
        found = detector(big, 1)
        if found:
            points.append([(p.x / 3, p.y / 3) for p in shape(big, found[0]).parts()])
    mean = np.array(points).mean(0)  # dlib order: right eye outer, inner; left eye outer, inner; nose
    eye_y = float(mean[[0, 2], 1].mean())
    return {"detected": len(points), "of": len(faces.reshape(-1, HEIGHT, WIDTH)),
            "eye_outer_x": [round(float(mean[2, 0]), 1), round(float(mean[0, 0]), 1)], "eye_y": round(eye_y, 1),
            "crop_top": CROP_TOP, "eye_height_in_crop": round((eye_y - CROP_TOP) / WIDTH, 3),
            "eye_span_in_crop": round(float(mean[0, 0] - mean[2, 0]) / WIDTH, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/orl_judge.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [judge_ceiling(r, a) for r in (64, 32) for a in ("template", "landmarks", "resize")]
    encoders = [id_encoder_auc(name) for name in ("sface", "sface32")]
    crop = landmark_crop()
    for row in rows + encoders + [crop]:
        print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "orl (configs/data/orl.yaml)", "rows": rows, "id_encoders": encoders, "crop": crop}
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
