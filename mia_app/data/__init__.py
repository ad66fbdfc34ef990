"""Face benchmarks behind one interface: ``load_benchmark(config) -> Benchmark``."""

from mia_app.config import FolderConfig, SynthIDConfig
from mia_app.data.benchmark import Benchmark, Split, to_signed, to_uint8


def load_benchmark(cfg: SynthIDConfig | FolderConfig) -> Benchmark:
    if isinstance(cfg, SynthIDConfig):
        from mia_app.data.synthid import load_synthid

        return load_synthid(cfg)
    if isinstance(cfg, FolderConfig):
        from mia_app.data.folder import load_folder

        return load_folder(cfg)
    raise ValueError(f"unknown data config {type(cfg).__name__}")


__all__ = ["Benchmark", "Split", "load_benchmark", "to_signed", "to_uint8"]
