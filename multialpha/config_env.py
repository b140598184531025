"""The config checks that need the environment: where each strategy's orders go.

Plain functions over :class:`~multialpha.settings_model.Settings` returning a message
(or None); :func:`multialpha.config.check_environment` turns them into a
:class:`~multialpha.config.ConfigError`. ``Settings`` runs
:func:`shared_ticker_conflict` with an empty environment while validating, so this
module imports it only for type checking (no import cycle).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from multialpha.settings_model import Settings


def _webhook_url(environ: Mapping[str, str], name: str) -> str:
    """The URL in ``$name``, or "" when unset or blank (a blank variable counts as missing)."""
    return (environ.get(name) or "").strip()


def destination(environ: Mapping[str, str], name: str) -> str:
    """Where orders through ``$name`` go, as an id: ``url:`` + the first 16 hex digits of the URL's
    sha256 when the variable holds one (two variables holding one URL are one destination; the URL
    is a secret and never appears), else ``env:`` + the variable's name."""
    url = _webhook_url(environ, name)
    return "url:" + hashlib.sha256(url.encode()).hexdigest()[:16] if url else "env:" + name


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
        dest = destination(environ, var)
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
