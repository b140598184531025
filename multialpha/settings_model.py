"""The config's shape: one pydantic model per runtime section, and :class:`Settings`, the whole file.

The ``redis:`` section is :mod:`multialpha.settings_redis`; the instrument, strategy and
reference-feed entries are :mod:`multialpha.settings_strategies`; the shared base and the
keyed validation error are :mod:`multialpha.settings_base`.

Field defaults here are the third level of precedence (after environment overrides
and the file). Loading, ``${VAR}`` expansion and error reporting are
:mod:`multialpha.config`, which re-exports every section model, so
``from multialpha.config import Settings`` keeps working.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import ConfigDict, Field, field_validator, model_validator

from multialpha.config_env import _webhook_url, destination, shared_ticker_conflict
from multialpha.settings_base import _KeyedError, _Model
from multialpha.settings_redis import RedisSettings
from multialpha.settings_strategies import InstrumentSpec, ReferenceFeed, StrategySettings


class DatabentoSettings(_Model):
    api_key: str = ""
    dataset: str = "GLBX.MDP3"
    schema_: str = Field("trades", alias="schema")
    live_gateway: str = "auto"
    live_port: int | Literal["auto"] = "auto"
    historical_gateway: str = "auto"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def uses_sandbox(self) -> bool:
        """No key means the embedded sandbox stands in for Databento."""
        return not self.api_key


class PortfolioSettings(_Model):
    starting_cash: float = Field(250_000, gt=0)
    max_positions: int = Field(2, ge=1)
    daily_stop_loss: float = Field(2_500, gt=0)
    # What reaching -daily_stop_loss does. `flatten`: close every open position and block
    # entries until the next CME trading day (a stop that leaves positions open keeps losing);
    # `block`: only block entries, open positions run to their own exits.
    on_daily_stop: Literal["flatten", "block"] = "flatten"
    # TradersPost nets positions per ticker and broker account: two strategies trading one root
    # through one webhook share a position, and one's exit closes the other's. So that is a
    # config error unless this is true (you accept the netting, e.g. the account is a sink).
    allow_shared_tickers: bool = False


class BacktestSettings(_Model):
    # Simulated fills (backtest AND paper trading, multialpha/orders/fills.py): a market order
    # fills this many ticks worse than its signal price, per side (buy higher, sell lower).
    # An instrument's own `slippage_ticks` overrides it. 0 = fills at the signal price.
    slippage_ticks: int = Field(1, ge=0)


class ReportSettings(_Model):
    # The capital daily returns are measured against (`multialpha report`, the backtest
    # summary): return of trading day D = P&L of D / capital. Unset = portfolio.starting_cash.
    capital: float | None = Field(None, gt=0)


class OrdersSettings(_Model):
    mode: Literal["paper", "live"] = "paper"
    webhook_url_env: str = "TRADERSPOST_WEBHOOK_URL"
    timeout_s: float = Field(5.0, gt=0)
    max_attempts: int = Field(6, ge=1)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    rate_per_minute: int = Field(60, ge=1)
    rate_per_hour: int = Field(500, ge=1)
    # An entry older than this when it would be sent (market time since its signal bar
    # closed: a backlog, a slow catch-up) is refused and journaled `expired`: a market order
    # at a price the market left minutes ago is not the trade the strategy decided.
    max_age_s: float = Field(120.0, gt=0, allow_inf_nan=False)
    # An entry in a symbol whose exit is still being delivered waits (wall seconds, on the
    # bar path) for that exit's outcome: delivered -> the entry goes on; otherwise the gate
    # refuses it (the position is still on the book). A healthy webhook answers in ms, so
    # quick re-entries and reversals decide as in the backtest.
    exit_wait_s: float = Field(30.0, ge=0, allow_inf_nan=False)


class RiskSettings(_Model):
    """Per-order sanity limits: the last line against a strategy bug or a bad price.

    ``None`` turns a limit off.
    """

    # Contracts per order: a size or sizing bug must not send 100 lots.
    max_quantity: int | None = Field(10, ge=1)
    # Dollars per order, price x multiplier x quantity: catches a size that is sane in
    # contracts but not in money (a wrong multiplier, a wrong root).
    max_notional: float | None = Field(2_000_000.0, gt=0, allow_inf_nan=False)
    # Refuse an entry whose price is more than this % away from the last bar close of that
    # contract: a stale, corrupt or wrong-contract price is not a signal.
    price_band_pct: float | None = Field(5.0, gt=0, allow_inf_nan=False)


class MlVetoSettings(_Model):
    mode: Literal["enforce", "shadow", "off"] = "enforce"
    on_missing: Literal["block", "allow"] = "block"
    # With a real DATABENTO_API_KEY, models trained on sandbox data (manifest data_source:
    # sandbox) run in shadow (logged loudly, never block) unless this is true.
    allow_sandbox_models: bool = False

    @field_validator("mode", mode="before")
    @classmethod
    def _unquoted_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `mode: off` as False; that is what the user meant.
        return "off" if v is False else v


class HubSettings(_Model):
    grace_s: float = Field(1.0, ge=0)
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_cap_s: float = Field(60.0, gt=0)
    silence_timeout_s: float = Field(40.0, gt=0)
    redis_buffer_bars: int = Field(20_000, ge=1)
    # Entries per symbol's bar log (one per traded minute). `multialpha verify` replays a whole
    # trading day from it and marks carried positions at the previous day's last close: at least
    # two CME trading days (2 x 1,380 minutes). The default keeps a week (worker catch-up too).
    bar_log_maxlen: int = Field(10_080, ge=2 * 1_380)
    heartbeat_ttl_s: int = Field(10, ge=1)
    health_port: int | None = Field(None, ge=1, le=65535)  # /healthz + /metrics on loopback
    # After a roll the previous front's bars keep coming on their own channel for this many
    # trading days (Keys.prev_bars): positions still in it are marked and exited at its prices.
    roll_overlap_days: int = Field(2, ge=0)


class WorkerSettings(_Model):
    qcheck_s: float = Field(0.5, gt=0)
    warmup_daily_bars: int = Field(250, ge=0)
    warmup_hourly_bars: int = Field(338, ge=0)
    cache_dir: str = ".multialpha/cache"
    trade_replayed_bars: bool = False
    heartbeat_ttl_s: int = Field(10, ge=1)
    health_port_base: int | None = Field(None, ge=1, le=65535)  # worker i serves on base + i
    # Cross-strategy turn order at the portfolio gate (worker/turns.py): how long a
    # strategy waits for the strategies before it to finish a minute; 0 = no turns.
    turn_timeout_s: float = Field(2.0, ge=0)
    # Without a minute-close notice from the hub for this long (wall seconds), quiet-market
    # closes fall back to the clock (an old hub, or a hub that is down).
    notice_stale_s: float = Field(180.0, gt=0)


class SupervisorSettings(_Model):
    heartbeat_timeout_s: float = Field(30.0, gt=0)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    healthy_reset_s: float = Field(300.0, gt=0)
    flap_restarts: int = Field(5, ge=1)
    flap_window_s: float = Field(300.0, gt=0)
    stop_timeout_s: float = Field(10.0, gt=0)
    health_port: int | None = Field(None, ge=1, le=65535)


class AlertsSettings(_Model):
    # apprise notification URLs (tgram://, discord://, slack://, mailto://, ntfy://, json://,
    # jsons://, ...); put secrets in the environment: urls: ["${MULTIALPHA_ALERT_URL:-}"].
    # Blank entries (an unset variable) are ignored.
    urls: list[str] = Field(default_factory=list)
    # Deprecated: a plain http(s) webhook in this variable is posted as JSON (json(s)://).
    webhook_url_env: str = "MULTIALPHA_ALERT_WEBHOOK_URL"
    window_s: float = Field(900.0, gt=0)          # one-off events: one per key per window
    hub_disconnect_s: float = Field(60.0, gt=0)
    # Bar lag, in market seconds of open market, per symbol (status/rules.py):
    # threshold = max(bar_lag_s, bar_lag_factor x the bar_lag_quantile of the symbol's last
    # bar_lag_window gaps between bars); at least bar_lag_cold_s until bar_lag_min_gaps are known.
    bar_lag_s: float = Field(180.0, gt=0)
    bar_lag_factor: float = Field(4.0, ge=1)
    bar_lag_quantile: float = Field(0.99, gt=0, le=1)
    bar_lag_window: int = Field(1000, ge=10)
    bar_lag_min_gaps: int = Field(30, ge=1)
    bar_lag_cold_s: float = Field(1800.0, gt=0)
    pending_order_s: float = Field(60.0, gt=0)


class VerifySettings(_Model):
    # `multialpha up` runs `multialpha verify` for each trading day this long after its close
    # (16:00 America/Chicago), when the workers have closed the day's bars (docs/verify.md).
    after_close: bool = True
    delay_s: float = Field(600.0, ge=0, le=3000)  # < the 60 min halt: done before the next open
    timeout_s: float = Field(1800.0, gt=0)


class SandboxSettings(_Model):
    seed: int = 7
    speed: float = Field(60.0, ge=0)  # 0 = as fast as the client reads
    from_date: str = "2025-12-01"
    days: int = Field(420, ge=1)
    # Generated hourly bars kept across runs (sandbox/store.py); "" = none (regenerate every run).
    store_dir: str = ".multialpha/sandbox-store"

    @field_validator("from_date")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        from datetime import date

        date.fromisoformat(v)
        return v


class Settings(_Model):
    databento: DatabentoSettings = DatabentoSettings()
    redis: RedisSettings = RedisSettings()
    contract_map_path: str = "Data/Databento_contract_map.yml"
    models_path: str = "models"
    runtime_dir: str = ".multialpha"
    portfolio: PortfolioSettings = PortfolioSettings()
    orders: OrdersSettings = OrdersSettings()
    backtest: BacktestSettings = BacktestSettings()
    report: ReportSettings = ReportSettings()
    risk: RiskSettings = RiskSettings()
    ml_veto: MlVetoSettings = MlVetoSettings()
    hub: HubSettings = HubSettings()
    worker: WorkerSettings = WorkerSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    alerts: AlertsSettings = AlertsSettings()
    verify: VerifySettings = VerifySettings()
    sandbox: SandboxSettings = SandboxSettings()
    reference_feeds: dict[str, ReferenceFeed] = Field(default_factory=dict)
    strategies: dict[str, StrategySettings]
    instruments: dict[str, InstrumentSpec]

    # Where the file was read from; relative paths resolve against its folder.
    source_path: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _cross_refs(self) -> "Settings":
        for name, strat in self.strategies.items():
            for root in strat.instruments:
                if root not in self.instruments:
                    raise _KeyedError(
                        f"strategies.{name}.instruments.{root}",
                        f"unknown instrument {root!r}; known: {', '.join(sorted(self.instruments))}",
                    )
            for i, feed in enumerate(strat.reference_feeds):
                if feed not in self.reference_feeds:
                    raise _KeyedError(
                        f"strategies.{name}.reference_feeds.{i}",
                        f"unknown reference feed {feed!r}; known: {', '.join(sorted(self.reference_feeds))}",
                    )
        for name, feed in self.reference_feeds.items():
            if feed.source == "hub" and feed.symbol not in self.instruments:
                raise _KeyedError(
                    f"reference_feeds.{name}.symbol",
                    f"source 'hub' needs an instrument, {feed.symbol!r} is not in instruments",
                )
        # Without an environment only the variable names are known: one name, one destination.
        # load() repeats this with the environment (two names holding the same URL).
        conflict = shared_ticker_conflict(self, {})
        if conflict:
            raise _KeyedError(*conflict)
        return self

    # -- derived views -------------------------------------------------------
    def path(self, value: str) -> Path:
        """Resolve a configured path relative to the config file's folder."""
        p = Path(value).expanduser()
        if p.is_absolute() or not self.source_path:
            return p
        return Path(self.source_path).parent / p

    @property
    def enabled_strategies(self) -> dict[str, StrategySettings]:
        return {n: s for n, s in self.strategies.items() if s.enabled}

    def hub_symbols(self) -> list[str]:
        """Roots the hub subscribes: every enabled strategy's plus hub-fed references."""
        roots = {r for s in self.enabled_strategies.values() for r in s.instruments}
        for s in self.enabled_strategies.values():
            for feed in s.reference_feeds:
                ref = self.reference_feeds[feed]
                if ref.source == "hub":
                    roots.add(ref.symbol)
        return sorted(roots)

    def commission(self, strategy: str, root: str) -> float:
        own = self.strategies[strategy].instruments[root].commission
        return self.instruments[root].commission if own is None else own

    def slippage_ticks(self, root: str) -> int:
        """Ticks a simulated (backtest / paper) fill is worse than its signal price, per side."""
        own = self.instruments[root].slippage_ticks
        return self.backtest.slippage_ticks if own is None else own

    @property
    def report_capital(self) -> float:
        """The capital daily returns are measured against (report.capital, else starting cash)."""
        return float(self.report.capital if self.report.capital is not None else self.portfolio.starting_cash)

    def webhook_env(self, strategy: str) -> str:
        return self.strategies[strategy].webhook_url_env or self.orders.webhook_url_env

    def order_destination(self, strategy: str, environ: Mapping[str, str] | None = None) -> str:
        """'live' only with orders.mode: live AND a webhook URL present."""
        env = os.environ if environ is None else environ
        if self.orders.mode == "live" and _webhook_url(env, self.webhook_env(strategy)):
            return "live"
        return "paper"

    def destination_key(self, strategy: str, environ: Mapping[str, str] | None = None) -> str:
        """A short stable id of where this strategy's orders go; strategies that share it share positions.

        Live: :func:`multialpha.config_env.destination` (the URL's hash, or the variable's name
        when it is unset); paper: ``env:`` + the variable's name.
        """
        env = os.environ if environ is None else environ
        name = self.webhook_env(strategy)
        return destination(env, name) if self.orders.mode == "live" else "env:" + name
