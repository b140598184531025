"""The runtime directory: state files, pid files, logs, generated secrets.

One folder per deployment (``runtime_dir`` in config, default
``.multialpha`` beside the config file). Processes find each other through
files here — e.g. the sandbox writes ``sandbox.json`` with its ports, key and
CA path, and the hub and workers read it when ``databento.*`` is ``auto``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from multialpha.config import Settings


def runtime_dir(settings: Settings) -> Path:
    d = settings.path(settings.runtime_dir)
    d.mkdir(parents=True, exist_ok=True)
    return d


def log_dir(settings: Settings) -> Path:
    d = runtime_dir(settings) / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def sandbox_state_path(settings: Settings) -> Path:
    return runtime_dir(settings) / "sandbox.json"


def write_json_atomic(path: Path, data: dict[str, Any], mode: int = 0o600) -> None:
    """Write-then-rename so a reader never sees half a file; 0600 for secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
