"""The CLI surface: every product command is listed, unlanded ones say so."""

from __future__ import annotations

import subprocess
import sys

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


MINIMAL_ARGS = {"worker": ["--strategy", "ibs_a"], "systemd": ["--output", "/nonexistent-dir"]}


def test_unlanded_commands_fail_with_one_line() -> None:
    """A command whose work has not landed exits non-zero with one line saying so."""
    unlanded = [
        name for name, cmd in main.commands.items()
        if cmd.callback is not None and "not_landed" in cmd.callback.__code__.co_names
    ]
    for name in unlanded:
        result = CliRunner().invoke(main, [name, *MINIMAL_ARGS.get(name, [])])
        assert result.exit_code == 1, name
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "not implemented yet" in lines[0], name
