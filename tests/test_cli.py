"""The CLI surface: every product command is listed, unlanded ones say so."""

from __future__ import annotations

import subprocess
import sys

import click

from click.testing import CliRunner

from multialpha.cli import main

PRODUCT_COMMANDS = ["up", "down", "status", "hub", "worker", "sandbox", "config", "plugins", "backtest", "logs", "systemd"]


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert set(PRODUCT_COMMANDS) <= listed


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "multialpha", "--help"], capture_output=True, text=True, check=True)
    assert "sandbox" in out.stdout


def test_every_command_has_working_help() -> None:
    def walk(group: click.Group, path: list[str]) -> None:
        for name, cmd in group.commands.items():
            result = CliRunner().invoke(main, [*path, name, "--help"])
            assert result.exit_code == 0 and "Usage:" in result.output, (path, name, result.output)
            if isinstance(cmd, click.Group):
                walk(cmd, [*path, name])

    walk(main, [])
