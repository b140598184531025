"""The backtest's sandbox: a week of paper trading is produced by the backtest, which runs the
live worker with the real paper OrderRouter and gate, so its journal is a paper journal."""

from tests.backtest.conftest import bt_dirs, sandbox  # noqa: F401 - fixtures
