"""``python -m mia_app <command>``: the one CLI. Subcommands live in ``mia_app/cli/``."""

from mia_app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
