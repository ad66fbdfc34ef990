"""``report``: the demo's main job before the dashboard: benchmark splits and shipped model accuracies."""

from __future__ import annotations

import argparse

from mia_app.cli.common import add_data_args, data_config, set_threads


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="prepare the benchmark and report identities, splits and T/E accuracy")
    add_data_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.assets import AssetError, load_manifest, shipped_path
    from mia_app.data import load_benchmark
    from mia_app.models.classifiers import load_classifier
    from mia_app.train_classifier import accuracy

    set_threads()
    bench = load_benchmark(data_config(args))
    s = bench.summary()
    print(f"benchmark   {s['name']}  (sha256 {s['sha256'][:12]})")
    print(f"identities  {s['identities']} private, {s['public_identities']} public (disjoint latents)")
    print(f"splits      private-train {s['private_train']}, private-test {s['private_test']}, "
          f"public {s['public_images']}")
    print(f"resolution  {s['resolution']} px")
    for entry in load_manifest()["files"]:
        if "role" not in entry:
            continue
        try:
            model, meta = load_classifier(shipped_path(entry["path"]))
        except AssetError as err:
            print(f"{entry['role']:<11} {err}")
            continue
        if meta["benchmark_sha256"] != s["sha256"]:
            print(f"{entry['role']:<11} {entry['path']} was trained on {meta['benchmark']}, not this one: skipped")
            continue
        acc = accuracy(model, bench.private_test.images, bench.private_test.labels)
        print(f"{entry['role']:<11} {meta['arch']:<7} private-test acc {acc:.2%}  (manifest {entry['test_acc']:.2%})")
    return 0
