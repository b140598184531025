"""The config diff of a reload: which strategies start, stop or restart, and why (pure)."""

from __future__ import annotations

from typing import Any

from multialpha import config as cfg
from multialpha.config import Settings
from multialpha.supervisor.diff import diff, fingerprint, strategy_parts
from tests.conftest import SHIPPED_CONFIG

ENV: dict[str, str] = {}


def load() -> Settings:
    return cfg.load(SHIPPED_CONFIG, environ={})


def changed(s: Settings, **sections: Any) -> Settings:
    """A copy of ``s`` with ``sections`` replaced (validated like a file would be)."""
    doc = s.model_dump(mode="json")
    for key, value in sections.items():
        doc[key] = value
    return Settings.model_validate(doc)


def test_same_config_is_no_change() -> None:
    s = load()
    d = diff(s, load(), ENV, ENV)
    assert d.empty and not d.added and not d.removed and not d.changed
    assert sorted(d.unchanged) == sorted(s.enabled_strategies)


def test_added_removed_and_disabled() -> None:
    old = load()
    strategies = old.model_dump(mode="json")["strategies"]
    strategies["ibs_c"] = {**strategies["ibs_a"], "webhook_url_env": "TRADERSPOST_WEBHOOK_URL_C"}
    del strategies["ibs_b"]
    strategies["breakout"]["enabled"] = False  # disabling is removing, for the running deployment
    d = diff(old, changed(old, strategies=strategies), ENV, ENV)
    assert d.added == ["ibs_c"] and sorted(d.removed) == ["breakout", "ibs_b"]
    assert d.unchanged == ["ibs_a"] and not d.changed


def test_only_the_strategy_whose_own_settings_changed_restarts_and_the_parts_say_why() -> None:
    old = load()
    strategies = old.model_dump(mode="json")["strategies"]
    strategies["ibs_a"]["params"]["entry_ibs"] = 0.25
    strategies["breakout"]["instruments"]["ES"]["size"] = 2
    d = diff(old, changed(old, strategies=strategies), ENV, ENV)
    assert d.changed == {"ibs_a": ["params"], "breakout": ["instruments"]}
    assert d.unchanged == ["ibs_b"] and d.hub_symbols is None and not d.limits


def test_shared_sections_change_every_worker_that_reads_them() -> None:
    old = load()
    veto = {**old.ml_veto.model_dump(mode="json"), "mode": "shadow"}
    d = diff(old, changed(old, ml_veto=veto), ENV, ENV)
    assert set(d.changed) == set(old.enabled_strategies) and all(p == ["ml_veto"] for p in d.changed.values())


def test_webhook_url_enters_only_as_a_hash() -> None:
    s = load()
    secret = "https://webhooks.traderspost.io/trading/webhook/uuid-1234/pw-secret"
    parts = strategy_parts(s, "ibs_a", {"TRADERSPOST_WEBHOOK_URL": secret})
    assert secret not in repr(parts) and "pw-secret" not in repr(parts)
    other = {"TRADERSPOST_WEBHOOK_URL": secret + "x"}
    d = diff(s, s, {"TRADERSPOST_WEBHOOK_URL": secret}, other)
    # breakout has its own variable: a new URL in ibs_*'s variable restarts only those.
    assert sorted(d.changed) == ["ibs_a", "ibs_b"] and d.changed["ibs_a"] == ["webhook"]
    assert fingerprint(s, "breakout", other) == fingerprint(s, "breakout", {"TRADERSPOST_WEBHOOK_URL": secret})


def test_new_instrument_set_resubscribes_the_hub_limits_and_full_restart_sections() -> None:
    old = load()
    strategies = old.model_dump(mode="json")["strategies"]
    strategies["breakout"]["instruments"].pop("RTY")
    portfolio = {**old.portfolio.model_dump(mode="json"), "max_positions": 5}
    databento = {**old.databento.model_dump(mode="json"), "dataset": "XNAS.ITCH"}
    d = diff(old, changed(old, strategies=strategies, portfolio=portfolio, databento=databento), ENV, ENV)
    assert d.hub_symbols is not None and "RTY" in d.hub_symbols[0] and "RTY" not in d.hub_symbols[1]
    assert not d.hub_restart
    assert d.limits == {"max_positions": ("2", "5")}
    assert d.not_applied == ["databento"]


def test_a_health_port_moved_by_a_deletion_above_restarts_that_worker() -> None:
    old = changed(load(), worker={**load().worker.model_dump(mode="json"), "health_port_base": 9300})
    strategies = old.model_dump(mode="json")["strategies"]
    del strategies["ibs_a"]  # ibs_b and breakout move up one port
    d = diff(old, changed(old, strategies=strategies), ENV, ENV)
    assert d.removed == ["ibs_a"] and d.changed == {"ibs_b": ["worker"], "breakout": ["worker"]}
    strategies = old.model_dump(mode="json")["strategies"]
    strategies["ibs_a"]["enabled"] = False  # disabling keeps everyone's port
    d = diff(old, changed(old, strategies=strategies), ENV, ENV)
    assert d.removed == ["ibs_a"] and not d.changed
