from typing import Any, Callable

import pytest

from tests.orders.support import clock, receiver  # noqa: F401 - fixtures


@pytest.fixture
def settings_for(settings_for: Callable[..., Any]) -> Callable[..., Any]:
    """tests/conftest.py's settings_for, with paper fills AT the signal price (slippage 0): these
    tests check the gate's accounting against hand-computed prices; the simulated fill itself
    is tests/orders/test_fills.py's."""

    def build(**env: str) -> Any:
        return settings_for(**{"MULTIALPHA__BACKTEST__SLIPPAGE_TICKS": "0", **env})

    return build
