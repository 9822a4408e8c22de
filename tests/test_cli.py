"""The front door: `sqlgrpo --help` works and stays instant (no torch import)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sqlgrpo.cli import build_parser, main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: sqlgrpo" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: sqlgrpo" in capsys.readouterr().out


def test_top_level_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, json\n"
        "from sqlgrpo.cli import build_parser\n"
        "build_parser()\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_command_has_a_handler() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():
        assert subparser.get_default("handler") is not None, name
