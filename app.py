"""Entry point of the hosted demo. The Gradio dashboard lands with the dashboard issue; until then this
prints how to drive the lab from the command line."""

from __future__ import annotations

import sys

USAGE = """mia_app: diffusion-prior model inversion attacks on face classifiers.

The dashboard is not built yet. Use the CLI:

  python -m mia_app report                      benchmark splits and the shipped T / E accuracies
  python -m mia_app attack --config configs/attack/cpu-quick.yaml --targets 0 --out runs/quick
  python -m mia_app evaluate --run runs/quick   E-judged success of a run
  python -m mia_app --help                      every command
"""


def main() -> int:
    print(USAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
