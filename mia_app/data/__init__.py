"""Face benchmarks behind one interface: ``load_benchmark(config) -> Benchmark``."""

from mia_app.config import FolderConfig, OrlConfig, SynthIDConfig
from mia_app.data.benchmark import Benchmark, Split, to_signed, to_uint8


def load_benchmark(cfg: SynthIDConfig | FolderConfig | OrlConfig) -> Benchmark:
    if isinstance(cfg, SynthIDConfig):
        from mia_app.data.synthid import load_synthid

        return load_synthid(cfg)
    if isinstance(cfg, FolderConfig):
        from mia_app.data.folder import load_folder

        return load_folder(cfg)
    if isinstance(cfg, OrlConfig):
        from mia_app.data.orl import load_orl

        return load_orl(cfg)
    raise ValueError(f"unknown data config {type(cfg).__name__}")


__all__ = ["Benchmark", "Split", "load_benchmark", "to_signed", "to_uint8"]
