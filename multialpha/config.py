"""Loading and validating `config.multi_alpha.yml` — the one place that does it.

Order of precedence, highest first:

1. ``MULTIALPHA__SECTION__KEY=value`` environment overrides (scalars only;
   keys match case-insensitively, so ``...__INSTRUMENTS__6A__SIZE`` works);
2. the YAML file, after ``${VAR}`` / ``${VAR:-default}`` expansion from the
   environment;
3. the defaults declared on the models below.

The file is ``--config PATH``, else ``$MULTIALPHA_CONFIG``, else
``./config.multi_alpha.yml``. A ``.env`` beside the config file (and one in
the working directory) is loaded first; it never overrides a variable that is
already set.

Every problem raises :class:`ConfigError` carrying the file and the dotted key
path; the CLI turns that into exit code 2. Unknown keys are errors.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = "config.multi_alpha.yml"
ENV_CONFIG = "MULTIALPHA_CONFIG"
ENV_OVERRIDE_PREFIX = "MULTIALPHA__"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class ConfigError(Exception):
    """A config problem, located by file and dotted key path."""

    def __init__(self, path: str | os.PathLike[str], key: str, message: str) -> None:
        self.path = str(path)
        self.key = key
        self.message = message
        super().__init__(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)



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


class RedisSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(6379, ge=1, le=65535)
    db: int = Field(0, ge=0)
    password: str = ""
    tls: bool = False
    namespace: str = Field("multialpha", pattern=r"^[A-Za-z0-9_.-]+$")
    # Which Redis `up` uses (docs/supervisor.md, "Which Redis"):
    # auto   - the configured address if a Redis there needs our password (or is one `up`
    #          started); else a managed redis-server (password, persistence) on loopback.
    #          An unauthenticated Redis that `up` did not start is never used silently.
    # always - always a managed redis-server (the configured port, or a free one if taken).
    # never  - never start one: the configured address, as it is (your own Redis).
    managed: Literal["auto", "always", "never"] = "auto"
    # With managed: auto, use a Redis at the configured address that answers without a
    # password (e.g. Debian's redis-server on 6379) instead of starting a managed one.
    allow_unauthenticated: bool = False


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
    bar_log_maxlen: int = Field(10_080, ge=1)
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


class SandboxSettings(_Model):
    seed: int = 7
    speed: float = Field(60.0, ge=0)  # 0 = as fast as the client reads
    from_date: str = "2025-12-01"
    days: int = Field(420, ge=1)

    @field_validator("from_date")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        from datetime import date

        date.fromisoformat(v)
        return v


class ReferenceFeed(_Model):
    symbol: str
    timeframe: Literal["minute", "hour", "day"]
    source: Literal["hub", "none"]
    neutral: float = Field(gt=0)


class StrategyInstrument(_Model):
    size: int = Field(ge=1)
    commission: float | None = Field(None, ge=0)
    ml_enabled: bool = True


class RollSettings(_Model):
    """What a strategy does with a position open when its root rolls (docs/worker.md, "Rolls")."""

    policy: Literal["forward", "exit", "hold"] = "forward"
    # How hour/day series are made continuous across a roll (orders and P&L stay raw).
    adjust: Literal["difference", "ratio"] = "difference"


class StrategySettings(_Model):
    strategy_type: str
    enabled: bool = True
    roll: RollSettings = RollSettings()
    params: dict[str, Any] = Field(default_factory=dict)
    reference_feeds: list[str] = Field(default_factory=list)
    webhook_url_env: str | None = None
    instruments: dict[str, StrategyInstrument]

    @field_validator("instruments")
    @classmethod
    def _not_empty(cls, v: dict[str, StrategyInstrument]) -> dict[str, StrategyInstrument]:
        if not v:
            raise ValueError("a strategy needs at least one instrument")
        return v


class InstrumentSpec(_Model):
    name: str
    product_id: str = Field(pattern=r"^[A-Z0-9]+\.FUT$")
    multiplier: float = Field(gt=0)
    tick_size: float = Field(gt=0)
    margin: float = Field(gt=0)
    commission: float = Field(ge=0)
    sandbox_price: float = Field(gt=0)


class Settings(_Model):
    databento: DatabentoSettings = DatabentoSettings()
    redis: RedisSettings = RedisSettings()
    contract_map_path: str = "Data/Databento_contract_map.yml"
    models_path: str = "models"
    runtime_dir: str = ".multialpha"
    portfolio: PortfolioSettings = PortfolioSettings()
    orders: OrdersSettings = OrdersSettings()
    risk: RiskSettings = RiskSettings()
    ml_veto: MlVetoSettings = MlVetoSettings()
    hub: HubSettings = HubSettings()
    worker: WorkerSettings = WorkerSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    alerts: AlertsSettings = AlertsSettings()
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

    def webhook_env(self, strategy: str) -> str:
        return self.strategies[strategy].webhook_url_env or self.orders.webhook_url_env

    def order_destination(self, strategy: str, environ: Mapping[str, str] | None = None) -> str:
        """'live' only with orders.mode: live AND a webhook URL present."""
        env = os.environ if environ is None else environ
        if self.orders.mode == "live" and env.get(self.webhook_env(strategy)):
            return "live"
        return "paper"

    def destination_key(self, strategy: str, environ: Mapping[str, str] | None = None) -> str:
        """A short stable id of where this strategy's orders go; strategies that share it share positions.

        Live with a URL: ``url:`` + the first 16 hex digits of the URL's sha256 (the URL itself is
        a secret and never appears), so two variables holding one URL give one key. Otherwise
        ``env:`` + the variable's name.
        """
        env = os.environ if environ is None else environ
        name = self.webhook_env(strategy)
        url = _webhook_url(env, name)
        if self.orders.mode == "live" and url:
            return "url:" + hashlib.sha256(url.encode()).hexdigest()[:16]
        return "env:" + name


class _KeyedError(ValueError):
    """Raised inside validators to report an exact key path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _webhook_url(environ: Mapping[str, str], name: str) -> str:
    """The URL in ``$name``, or "" when unset or blank (a blank variable counts as missing)."""
    return (environ.get(name) or "").strip()


def shared_ticker_conflict(s: Settings, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(key, message) for the first root two enabled strategies trade through one webhook, else None.

    TradersPost nets positions per ticker and broker account, so one strategy's exit would
    close the other's position. One webhook = the same variable name, or two names whose
    values in ``environ`` are both set and equal. Checked in paper mode too: a paper config
    must be ready to go live. ``portfolio.allow_shared_tickers: true`` turns it off.
    """
    if s.portfolio.allow_shared_tickers:
        return None
    owners: dict[tuple[str, str], tuple[str, str]] = {}  # (destination, root) -> (strategy, env name)
    for name, strat in s.enabled_strategies.items():
        var = s.webhook_env(name)
        url = _webhook_url(environ, var)
        dest = f"url:{url}" if url else f"env:{var}"
        for root in strat.instruments:
            first = owners.setdefault((dest, root), (name, var))
            if first[0] == name:
                continue
            other, other_var = first
            if other_var == var:
                via = f"the same webhook (${var})"
                fix = "Give one strategy its own webhook_url_env"
            else:
                via = f"the same webhook URL (${other_var} and ${var} hold the same URL)"
                fix = "Point one strategy's webhook_url_env at a webhook of another broker account"
            return (
                f"strategies.{name}.instruments.{root}",
                f"{root} is also traded by strategies.{other}.instruments.{root} through {via}; "
                "TradersPost nets positions per ticker and account, so one strategy's exit would close "
                f"the other's position. {fix}, or set portfolio.allow_shared_tickers: true",
            )
    return None


def live_webhook_problem(s: Settings, environ: Mapping[str, str]) -> str | None:
    """With orders.mode: live, the message naming every enabled strategy's missing webhook variable."""
    if s.orders.mode != "live":
        return None
    missing: dict[str, list[str]] = {}
    for name in s.enabled_strategies:
        var = s.webhook_env(name)
        if not _webhook_url(environ, var):
            missing.setdefault(var, []).append(name)
    if not missing:
        return None
    where = " and ".join(
        f"${var} ({'strategy' if len(names) == 1 else 'strategies'} {', '.join(names)})"
        for var, names in missing.items()
    )
    them = "it" if len(missing) == 1 else "them"
    return f"live needs a TradersPost webhook URL in {where}; set {them} or use mode: paper"


def check_environment(s: Settings, environ: Mapping[str, str], path: str | os.PathLike[str] = "<config>") -> None:
    """The checks that need the environment: webhooks shared by URL, live mode without a URL."""
    conflict = shared_ticker_conflict(s, environ)
    if conflict:
        raise ConfigError(path, *conflict)
    problem = live_webhook_problem(s, environ)
    if problem:
        raise ConfigError(path, "orders.mode", problem)


# -- loading ---------------------------------------------------------------------


def resolve_path(cli_path: str | os.PathLike[str] | None = None) -> Path:
    """--config, then $MULTIALPHA_CONFIG, then ./config.multi_alpha.yml."""
    if cli_path:
        return Path(cli_path)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return Path(DEFAULT_CONFIG)


def load_dotenv_for(path: Path) -> None:
    """Load .env beside the config and in the cwd; never override real env."""
    from dotenv import load_dotenv

    for candidate in (path.parent / ".env", Path.cwd() / ".env"):
        if candidate.is_file():
            load_dotenv(candidate, override=False)


def load(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, expand, override and validate a config file, then check it against ``environ``.

    ``environ`` (default: ``os.environ`` after the ``.env`` files) also decides the checks
    that need the environment: ``orders.mode: live`` needs every enabled strategy's webhook
    URL, and two variables holding one URL are one destination (see
    :func:`shared_ticker_conflict`).
    """
    p = resolve_path(path)
    if environ is None:
        load_dotenv_for(p)
        environ = dict(os.environ)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(p, "", f"cannot read config file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(p, "", f"config file is not UTF-8 text: byte {e.start}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(p, "", f"malformed YAML: {where}{problem}") from None
    except Exception as e:  # noqa: BLE001 - yaml's tag constructors raise anything (`!!int x`, `!!int ""`)
        raise ConfigError(p, "", f"malformed YAML: {type(e).__name__}: {e}"[:300]) from None
    if not isinstance(raw, dict):
        raise ConfigError(p, "", "top level must be a mapping")
    raw = _expand(raw, environ, p, "")
    _apply_overrides(raw, environ, p)
    settings = validate(raw, p)
    check_environment(settings, environ, p)
    return settings


def validate(raw: dict[str, Any], path: str | os.PathLike[str] = "<config>") -> Settings:
    try:
        return Settings.model_validate({**raw, "source_path": str(Path(path).resolve())})
    except ValidationError as e:
        err = e.errors()[0]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _KeyedError):
            raise ConfigError(path, ctx_err.key, ctx_err.message) from None
        key = ".".join(str(x) for x in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(err["loc"])
        elif "input" in err and err["type"] != "missing":
            msg = f"{msg} (got {err['input']!r})"
        raise ConfigError(path, key, msg) from None


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    import difflib

    known = _section_keys(loc)
    if not known:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    return f"; known keys: {', '.join(sorted(known))}"


def _section_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section holding ``loc[-1]`` accepts: walk the models along ``loc``; a dict
    section (strategies, instruments) consumes one more part for its key."""
    import typing

    model: Any = Settings
    parts = list(loc[:-1])
    i = 0
    while i < len(parts):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        fields = {(f.alias or n): f for n, f in model.model_fields.items()}
        f = fields.get(str(parts[i]))
        if f is None:
            return []
        ann = f.annotation
        if typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
            i += 1  # the dict key
        model = ann
        i += 1
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or n for n, f in model.model_fields.items() if n != "source_path"]


def _expand(node: Any, environ: Mapping[str, str], path: Path, key: str) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, environ, path, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, environ, path, f"{key}.{i}") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(path, key, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")

    expanded = _VAR.sub(sub, node)
    # A whole-value substitution is re-typed as YAML so "6390" becomes an int.
    if _VAR.fullmatch(node.strip()):
        return _scalar(expanded)
    return expanded


_BOOLS = {"true": True, "false": False}


def _scalar(text: str) -> Any:
    """Type an environment string: numbers and true/false; everything else stays text.

    Not plain YAML: YAML 1.1 would turn `off`, `no`, `on`, `yes` into booleans.
    """
    if text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def _apply_overrides(raw: dict[str, Any], environ: Mapping[str, str], path: Path) -> None:
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_OVERRIDE_PREFIX):
            continue
        parts = name[len(ENV_OVERRIDE_PREFIX):].split("__")
        node: Any = raw
        keys: list[str] = []
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                raise ConfigError(path, ".".join(keys), f"{name}: not a section, cannot override inside it")
            match = next((k for k in node if str(k).lower() == part.lower()), part.lower())
            keys.append(str(match))
            if i == len(parts) - 1:
                if isinstance(node.get(match), (dict, list)):
                    raise ConfigError(path, ".".join(keys), f"{name}: only scalar settings can be overridden")
                node[match] = _scalar(value)
            else:
                node = node.setdefault(match, {})


@dataclass(frozen=True)
class Summary:
    """What `config check` prints; contains no secret values."""

    lines: list[str]


def summarize(s: Settings, environ: Mapping[str, str] | None = None) -> Summary:
    env = os.environ if environ is None else environ
    lines = [f"config: {s.source_path}"]
    key_state = "set" if s.databento.api_key else "unset (embedded sandbox)"
    lines.append(f"databento: dataset {s.databento.dataset}, DATABENTO_API_KEY {key_state}")
    auth = "password set" if s.redis.password else "no password"
    lines.append(f"redis: {s.redis.host}:{s.redis.port} db {s.redis.db} ({auth}), namespace {s.redis.namespace!r}")
    lines.append(
        f"portfolio: max {s.portfolio.max_positions} positions, daily stop loss ${s.portfolio.daily_stop_loss:,.0f}"
        f" ({s.portfolio.on_daily_stop})"
    )
    r = s.risk
    lines.append(
        "risk per order: "
        + ", ".join([
            f"max {r.max_quantity} contracts" if r.max_quantity is not None else "no quantity limit",
            f"max ${r.max_notional:,.0f} notional" if r.max_notional is not None else "no notional limit",
            f"price band {r.price_band_pct:g}%" if r.price_band_pct is not None else "no price band",
        ])
        + f"; entries expire after {s.orders.max_age_s:g}s"
    )
    lines.append(f"instruments: {len(s.instruments)} ({' '.join(s.instruments)})")
    lines.append(f"strategies: {len(s.strategies)}")
    for name, st in s.strategies.items():
        dest = s.order_destination(name, env)
        url_state = "set" if env.get(s.webhook_env(name)) else "unset"
        where = (
            "LIVE to TradersPost"
            if dest == "live"
            else f"paper journal (orders.mode={s.orders.mode}, {s.webhook_env(name)} {url_state})"
        )
        flag = "" if st.enabled else " [disabled]"
        lines.append(f"  {name}{flag}: type {st.strategy_type}, {' '.join(st.instruments)} -> {where}")
    lines.append(f"hub subscribes: {' '.join(s.hub_symbols())}")
    return Summary(lines)
