import subprocess
import sys

import pytest

from mia_app.cli import COMMANDS, build_parser, main
from mia_app.cli.attack import parse_targets


def test_every_command_has_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([name, "--help"])
        assert e.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "mia_app", "--help"], capture_output=True, text=True, check=True)
    assert "attack" in out.stdout and "train-classifier" in out.stdout


def test_parse_targets():
    assert parse_targets("0,2-4, 7") == [0, 2, 3, 4, 7]
    with pytest.raises(ValueError):
        parse_targets(",")


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    assert main(["attack", "--config", str(tmp_path / "missing.yaml"), "--targets", "0", "--out", str(tmp_path)]) == 2
    assert "no attack config" in capsys.readouterr().err
