"""Config loading: every error class exits 2 and names the file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from multialpha import config as cfg
from multialpha.cli import main

from tests.conftest import SHIPPED_CONFIG

SHIPPED = SHIPPED_CONFIG.read_text()


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    assert old in SHIPPED, f"fixture drift: {old!r} not in the shipped config"
    p = tmp_path / "config.yml"
    p.write_text(SHIPPED.replace(old, new, 1))
    return p


def test_shipped_config_is_valid_and_complete() -> None:
    s = cfg.load(SHIPPED_CONFIG, environ={})
    assert len(s.instruments) == 19
    assert set(s.strategies) == {"ibs_a", "ibs_b", "breakout"}
    assert list(s.strategies["ibs_a"].instruments) == ["6A", "6C", "6M", "CL", "GC", "HG"]
    assert list(s.strategies["ibs_b"].instruments) == ["6B", "6N", "6S", "SI", "YM"]
    assert list(s.strategies["breakout"].instruments) == ["ES", "NQ", "RTY", "YM"]
    assert s.instruments["ES"].tick_size == 0.25 and s.instruments["ES"].multiplier == 50
    assert s.instruments["6J"].tick_size == 0.0000005
    assert s.portfolio.max_positions == 2 and s.portfolio.daily_stop_loss == 2500
    # breakout shares YM with ibs_b, so it has its own webhook (TradersPost nets per ticker and account)
    assert s.webhook_env("breakout") == "TRADERSPOST_WEBHOOK_URL_BREAKOUT"
    assert s.webhook_env("ibs_a") == s.webhook_env("ibs_b") == "TRADERSPOST_WEBHOOK_URL"
    assert s.databento.uses_sandbox  # no key in this environ
    # hub-fed reference feeds are subscribed, feeds with no source are not
    assert {"PL", "6E", "6J", "ZB"} <= set(s.hub_symbols())
    assert "VIX" not in s.hub_symbols() and "TLT" not in s.hub_symbols()


BROKEN = [
    # (description, old, new, expected key path, message fragment)
    ("wrong type", "max_positions: 2", "max_positions: many", "portfolio.max_positions", "integer"),
    ("negative size", "6A: {size: 1,", "6A: {size: -1,", "strategies.ibs_a.instruments.6A.size", "greater than"),
    ("unknown key", "  max_positions: 2\n", "  max_positions: 2\n  max_postions: 3\n", "portfolio.max_postions", "unknown key"),
    ("unknown instrument", "      SI: {size: 1,", "      XX: {size: 1,", "strategies.ibs_b.instruments.XX", "unknown instrument"),
    ("bad enum", "mode: paper", "mode: papr", "orders.mode", "paper"),
    ("bad roll adjustment", "adjust: difference}", "adjust: diff}", "strategies.breakout.roll.adjust", "ratio"),
    ("bad product id", "product_id: ES.FUT,  multiplier", "product_id: ES,  multiplier", "instruments.ES.product_id", "pattern"),
    ("unknown reference feed", "reference_feeds: [VIX, TLT_day]", "reference_feeds: [VIX, TLT_week]",
     "strategies.breakout.reference_feeds.1", "unknown reference feed"),
    ("bar log shorter than two trading days", "bar_log_maxlen: 10080", "bar_log_maxlen: 1440",
     "hub.bar_log_maxlen", "greater than or equal to 2760"),
    ("sentinel not host:port", "  namespace: multialpha\n",
     "  namespace: multialpha\n  sentinel: {hosts: [10.0.0.5]}\n",
     "redis.sentinel.hosts", "not host:port"),
    ("missing env var", "api_key: ${DATABENTO_API_KEY:-}", "api_key: ${SURELY_UNSET_VAR_X}", "databento.api_key",
     "SURELY_UNSET_VAR_X is not set"),
]


@pytest.mark.parametrize("desc,old,new,key,fragment", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_exits_2_naming_the_key(tmp_path: Path, desc: str, old: str, new: str, key: str, fragment: str) -> None:
    path = _variant(tmp_path, old, new)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(path, environ={})
    assert err.value.key == key
    assert fragment in err.value.message
    result = CliRunner().invoke(main, ["config", "check", str(path)], env={"SURELY_UNSET_VAR_X": None})
    assert result.exit_code == 2
    assert str(path) in result.output and key in result.output


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yml"
    p.write_text("redis:\n  host: 127.0.0.1\n  port: [1,\n  db: 0\n")
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(p, environ={})
    assert re.search(r"line \d+, column \d+", err.value.message)
    assert CliRunner().invoke(main, ["config", "check", str(p)]).exit_code == 2


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["config", "check", str(tmp_path / "nope.yml")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_env_expansion_and_default(tmp_path: Path) -> None:
    s = cfg.load(SHIPPED_CONFIG, environ={"REDIS_PORT": "6390", "DATABENTO_API_KEY": "db-" + "a" * 29})
    assert s.redis.port == 6390 and isinstance(s.redis.port, int)
    assert not s.databento.uses_sandbox
    assert cfg.load(SHIPPED_CONFIG, environ={}).redis.port == 6379


def test_env_override_beats_file_and_matches_keys_case_insensitively() -> None:
    s = cfg.load(
        SHIPPED_CONFIG,
        environ={"MULTIALPHA__REDIS__PORT": "6391", "MULTIALPHA__STRATEGIES__IBS_A__INSTRUMENTS__6a__SIZE": "3"},
    )
    assert s.redis.port == 6391
    assert s.strategies["ibs_a"].instruments["6A"].size == 3


def test_env_override_is_validated() -> None:
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA__PORTFOLIO__MAX_POSITIONS": "0"})
    assert err.value.key == "portfolio.max_positions"


def test_env_override_of_a_section_is_refused() -> None:
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA__REDIS": "x"})
    assert "only scalar" in err.value.message


def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cfg.ENV_CONFIG, raising=False)
    assert cfg.resolve_path(None) == Path(cfg.DEFAULT_CONFIG)
    monkeypatch.setenv(cfg.ENV_CONFIG, str(tmp_path / "env.yml"))
    assert cfg.resolve_path(None) == tmp_path / "env.yml"
    assert cfg.resolve_path(tmp_path / "cli.yml") == tmp_path / "cli.yml"


def test_dotenv_beside_config_is_loaded_without_overriding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yml"
    path.write_text(SHIPPED)
    (tmp_path / ".env").write_text("REDIS_PORT=6392\nREDIS_HOST=127.0.0.2\n")
    monkeypatch.delenv("REDIS_PORT", raising=False)
    monkeypatch.setenv("REDIS_HOST", "127.0.0.9")
    s = cfg.load(path)
    assert s.redis.port == 6392
    assert s.redis.host == "127.0.0.9"  # the real environment wins


def test_relative_paths_resolve_against_the_config_folder() -> None:
    s = cfg.load(SHIPPED_CONFIG, environ={})
    assert s.path(s.contract_map_path) == SHIPPED_CONFIG.parent / "Data" / "Databento_contract_map.yml"
    assert s.path(s.contract_map_path).is_file()


def test_config_check_summary_never_shows_secrets(tmp_path: Path) -> None:
    key = "db-" + "S3cr3tK3y" * 3 + "ab"
    url = "https://webhooks.traderspost.io/trading/webhook/1b2c/hunter2pass"
    result = CliRunner().invoke(
        main,
        ["config", "check", str(SHIPPED_CONFIG)],
        env={"DATABENTO_API_KEY": key, "TRADERSPOST_WEBHOOK_URL": url, "REDIS_PASSWORD": "redispw123"},
    )
    assert result.exit_code == 0, result.output
    assert "19" in result.output and "ibs_a" in result.output and "breakout" in result.output
    assert "DATABENTO_API_KEY set" in result.output
    for secret in (key, "hunter2pass", "redispw123"):
        assert secret not in result.output
    assert "paper journal" in result.output  # URL alone never makes it live


def test_live_needs_mode_and_url() -> None:
    # Loading a live config needs every enabled strategy's URL (tests/test_config_orders.py);
    # order_destination still decides per call from the environ it is given.
    urls = {"TRADERSPOST_WEBHOOK_URL": "https://x/y", "TRADERSPOST_WEBHOOK_URL_BREAKOUT": "https://x/z"}
    live = cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA__ORDERS__MODE": "live", **urls})
    assert live.order_destination("ibs_a", {}) == "paper"
    assert live.order_destination("ibs_a", {"TRADERSPOST_WEBHOOK_URL": "https://x/y"}) == "live"
    assert live.order_destination("breakout", {"TRADERSPOST_WEBHOOK_URL": "https://x/y"}) == "paper"  # its own variable
    assert live.order_destination("breakout", urls) == "live"
    paper = cfg.load(SHIPPED_CONFIG, environ={})
    assert paper.order_destination("ibs_a", {"TRADERSPOST_WEBHOOK_URL": "https://x/y"}) == "paper"


def test_yaml_11_booleans_do_not_eat_words(tmp_path: Path) -> None:
    # `off` is an ml_veto mode, not a boolean, whether from the environment or written bare in the file.
    assert cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA__ML_VETO__MODE": "off"}).ml_veto.mode == "off"
    assert cfg.load(_variant(tmp_path, "mode: enforce", "mode: off"), environ={}).ml_veto.mode == "off"
    s = cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA__WORKER__TRADE_REPLAYED_BARS": "true",
                                          "MULTIALPHA__SANDBOX__SPEED": "120", "MULTIALPHA__REDIS__HOST": "no"})
    assert s.worker.trade_replayed_bars is True and s.sandbox.speed == 120 and s.redis.host == "no"


def test_unknown_keys_suggest_the_known_key(tmp_path) -> None:
    import yaml

    from tests.conftest import SHIPPED_CONFIG

    raw = yaml.safe_load(SHIPPED_CONFIG.read_text())
    raw["portfolio"]["max_position"] = 3
    p = tmp_path / "c.yml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(cfg.ConfigError) as e:
        cfg.load(p, environ={})
    assert e.value.key == "portfolio.max_position"
    assert e.value.message == "unknown key; did you mean `max_positions`?"
    raw["portfolio"].pop("max_position")
    raw["strategies"]["ibs_a"]["instruments"]["6A"]["sise"] = 1  # inside a dict section
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(cfg.ConfigError, match=r"instruments\.6A\.sise: unknown key; did you mean `size`\?"):
        cfg.load(p, environ={})
    raw["strategies"]["ibs_a"]["instruments"]["6A"].pop("sise")
    raw["zzz_nothing_like_it"] = 1
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(cfg.ConfigError, match="unknown key; known keys: alerts, "):
        cfg.load(p, environ={})


def test_redis_managed_and_alert_urls_settings() -> None:
    from tests.conftest import SHIPPED_CONFIG

    s = cfg.load(SHIPPED_CONFIG, environ={})
    assert s.redis.managed == "auto" and not s.redis.allow_unauthenticated
    assert s.alerts.urls == [""]  # ${MULTIALPHA_ALERT_URL:-} unset: blank, ignored by the alerter
    s = cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA_ALERT_URL": "tgram://123:abc/456",
                                          "MULTIALPHA__REDIS__MANAGED": "never"})
    assert s.alerts.urls == ["tgram://123:abc/456"] and s.redis.managed == "never"
    with pytest.raises(cfg.ConfigError, match="redis.managed"):
        cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA__REDIS__MANAGED": "sometimes"})
    assert not s.strategies["ibs_a"].instruments["6C"].ml_enabled  # no usable model (config comment)
