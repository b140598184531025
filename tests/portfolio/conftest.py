from pathlib import Path

import pytest

from multialpha import config as cfg
from multialpha.managed_redis import ManagedRedis
from tests.conftest import SHIPPED_CONFIG
from tests.orders.support import clock, receiver  # noqa: F401 - fixtures


@pytest.fixture
def settings_for(redis_server: ManagedRedis, tmp_path: Path):
    """tests/conftest.py's settings_for, with paper fills AT the signal price (slippage 0): these
    tests check the gate's accounting against hand-computed prices; the simulated fill itself
    is tests/orders/test_fills.py's."""
    def build(**env: str):
        environ = {"MULTIALPHA__REDIS__PORT": str(redis_server.port), "MULTIALPHA__REDIS__HOST": redis_server.host,
                   "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "MULTIALPHA_CACHE_DIR": str(tmp_path / "cache"),
                   "MULTIALPHA__BACKTEST__SLIPPAGE_TICKS": "0", **env}
        return cfg.load(SHIPPED_CONFIG, environ=environ)

    return build
