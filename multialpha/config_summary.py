"""What ``multialpha config check`` prints about a loaded config (no secret values)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from multialpha.config_env import _webhook_url
from multialpha.settings_model import Settings


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
    at = f"{s.redis.host}:{s.redis.port}" if s.redis.sentinel is None else \
        f"Sentinel service {s.redis.sentinel.service!r} via {', '.join(s.redis.sentinel.hosts)}"
    lines.append(f"redis: {at} db {s.redis.db} ({auth}), namespace {s.redis.namespace!r}"
                 + (f", claims wait for {s.redis.wait_replicas} replica(s)" if s.redis.wait_replicas else "")
                 + (", ACL user per role" if s.redis.acl else "") + (", TLS" if s.redis.tls else ""))
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
        url_state = "set" if _webhook_url(env, s.webhook_env(name)) else "unset"  # blank = unset, as everywhere
        where = (
            "LIVE to TradersPost"
            if dest == "live"
            else f"paper journal (orders.mode={s.orders.mode}, {s.webhook_env(name)} {url_state})"
        )
        flag = "" if st.enabled else " [disabled]"
        lines.append(f"  {name}{flag}: type {st.strategy_type}, {' '.join(st.instruments)} -> {where}")
    lines.append(f"hub subscribes: {' '.join(s.hub_symbols())}")
    return Summary(lines)
