"""What a config reload changes: per-strategy fingerprints and the diff of two configs.

A strategy's fingerprint covers every setting its worker reads (its own block, the
specs of its instruments, its reference feeds, where its orders go, the ML veto,
the order, risk and worker sections): two configs that give a worker the same
fingerprint give it the same behaviour, so its process keeps running. Secrets are
never part of it in clear: a webhook URL enters as its sha256.

Pure: no Redis, no processes. The supervisor applies the diff
(:mod:`multialpha.supervisor.reload`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from multialpha.config import Settings
from multialpha.portfolio.gate import limits_doc

# Sections a running deployment cannot take over without stopping everything.
FULL_RESTART_SECTIONS = ("databento", "redis", "sandbox", "supervisor", "runtime_dir", "alerts")


def _digest(doc: Any) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def strategy_parts(settings: Settings, name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Part -> digest of what worker ``name`` reads; the parts say *what* changed."""
    strat = settings.strategies[name]
    own = strat.model_dump(mode="json")
    env_name = settings.webhook_env(name)
    url = environ.get(env_name, "")
    return {
        "strategy_type": _digest(own["strategy_type"]),
        "params": _digest(own["params"]),
        "instruments": _digest({"own": own["instruments"], "roll": own["roll"],
                                "specs": {r: settings.instruments[r].model_dump(mode="json") for r in strat.instruments},
                                "models_path": settings.models_path, "contract_map": settings.contract_map_path}),
        "reference_feeds": _digest({f: settings.reference_feeds[f].model_dump(mode="json")
                                    for f in strat.reference_feeds}),
        # The URL is a secret: only its hash enters the fingerprint.
        "webhook": _digest({"env": env_name, "url_sha256": hashlib.sha256(url.encode()).hexdigest() if url else ""}),
        "ml_veto": _digest(settings.ml_veto.model_dump(mode="json")),
        "orders": _digest({"orders": settings.orders.model_dump(mode="json"),
                           "risk": settings.risk.model_dump(mode="json")}),
        # Worker i (config order, disabled ones included) serves health on base + i: deleting a
        # strategy above it moves its port, which only a restart applies.
        "worker": _digest({"worker": settings.worker.model_dump(mode="json"),
                           "health_port": None if settings.worker.health_port_base is None
                           else settings.worker.health_port_base + list(settings.strategies).index(name)}),
    }


def fingerprint(settings: Settings, name: str, environ: Mapping[str, str]) -> str:
    return _digest(strategy_parts(settings, name, environ))


def _hub_feed(s: Settings) -> dict[str, str]:
    """What the hub subscribes: root -> product (a new product for a root is a resubscription too)."""
    return {r: s.instruments[r].product_id for r in s.hub_symbols()}


@dataclass
class Diff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # strategy -> parts that changed
    unchanged: list[str] = field(default_factory=list)
    hub_symbols: tuple[list[str], list[str]] | None = None  # (old, new) when the set changed
    hub_restart: bool = False  # hub settings changed (not only its symbols)
    limits: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (old, new)
    not_applied: list[str] = field(default_factory=list)  # sections needing a full restart

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.hub_symbols or self.hub_restart
                    or self.limits)


def diff(old: Settings, new: Settings, old_env: Mapping[str, str], new_env: Mapping[str, str]) -> Diff:
    """What changes from ``old`` to ``new`` (enabled strategies only: disabling one removes it)."""
    d = Diff()
    before, after = set(old.enabled_strategies), set(new.enabled_strategies)
    d.added = [n for n in new.enabled_strategies if n not in before]
    d.removed = [n for n in old.enabled_strategies if n not in after]
    for name in new.enabled_strategies:
        if name not in before:
            continue
        a, b = strategy_parts(old, name, old_env), strategy_parts(new, name, new_env)
        parts = [k for k in b if a.get(k) != b[k]]
        if parts:
            d.changed[name] = parts
        else:
            d.unchanged.append(name)
    if _hub_feed(old) != _hub_feed(new):
        d.hub_symbols = (old.hub_symbols(), new.hub_symbols())
    d.hub_restart = old.hub.model_dump() != new.hub.model_dump()
    lo, ln = limits_doc(old), limits_doc(new)
    d.limits = {k: (lo.get(k, ""), v) for k, v in ln.items() if lo.get(k) != v}
    for section in FULL_RESTART_SECTIONS:
        if getattr(old, section) != getattr(new, section):
            d.not_applied.append(section)
    return d
