"""A tiny strategy-plugin distribution written into a temp directory (no network, no pip):
``tinyplug`` provides strategy type ``tiny_sma`` (the example plugin's class). Installing
a new version = replacing its ``.dist-info`` as ``pip install -U`` does."""

from __future__ import annotations

import shutil
from pathlib import Path

MODULE = '''"""tinyplug: a test plugin."""
from multialpha.hookspecs import StrategyType, hookimpl


@hookimpl
def multialpha_strategy_types():
    return [StrategyType(name="tiny_sma", strategy_class="multialpha_example.strategy:SmaExample",
                         timeframes=("minute", "hour", "day"), description="test plugin")]
'''


def install(site: Path, version: str) -> None:
    """Install (or upgrade to) ``version`` of tinyplug into ``site`` (a directory on sys.path)."""
    site.mkdir(parents=True, exist_ok=True)
    for old in site.glob("tinyplug-*.dist-info"):
        shutil.rmtree(old)
    (site / "tinyplug.py").write_text(MODULE)
    info = site / f"tinyplug-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tinyplug\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[multialpha]\ntinyplug = tinyplug\n")
    (info / "RECORD").write_text("")
