"""Config for order safety: risk limits, entry expiry, the daily stop, and one position per
ticker and webhook (TradersPost nets positions per ticker and broker account)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from multialpha import config as cfg
from multialpha.cli import main

from tests.conftest import SHIPPED_CONFIG

SHIPPED = SHIPPED_CONFIG.read_text()
MAIN, BREAKOUT = "TRADERSPOST_WEBHOOK_URL", "TRADERSPOST_WEBHOOK_URL_BREAKOUT"
URL_A = "https://webhooks.traderspost.io/trading/webhook/uuid-aaaa/pass-aaaa"
URL_B = "https://webhooks.traderspost.io/trading/webhook/uuid-bbbb/pass-bbbb"
LIVE = {"MULTIALPHA__ORDERS__MODE": "live"}
OWN_WEBHOOK = "    webhook_url_env: TRADERSPOST_WEBHOOK_URL_BREAKOUT\n"


def _variant(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = SHIPPED
    for old, new in edits:
        assert old in text, f"fixture drift: {old!r} not in the shipped config"
        text = text.replace(old, new, 1)
    p = tmp_path / "config.yml"
    p.write_text(text)
    return p


def _cli_check(path: Path, env: dict[str, str | None]):
    # No stray TradersPost variables from the real environment.
    return CliRunner().invoke(main, ["config", "check", str(path)], env={MAIN: None, BREAKOUT: None, **env})


def _error(path: Path, environ: dict[str, str]) -> cfg.ConfigError:
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(path, environ=environ)
    return err.value


# -- new keys: defaults and ranges ----------------------------------------------------------


def test_defaults_of_the_new_keys() -> None:
    assert cfg.OrdersSettings().max_age_s == 120.0
    assert cfg.PortfolioSettings().on_daily_stop == "flatten"
    assert cfg.PortfolioSettings().allow_shared_tickers is False
    r = cfg.RiskSettings()
    assert (r.max_quantity, r.max_notional, r.price_band_pct) == (10, 2_000_000.0, 5.0)
    # The shipped file spells out the same values.
    s = cfg.load(SHIPPED_CONFIG, environ={})
    assert s.orders.max_age_s == 120.0
    assert s.portfolio.on_daily_stop == "flatten" and s.portfolio.allow_shared_tickers is False
    assert s.risk == cfg.RiskSettings()
    # A file without the new keys gets the defaults.
    bare = cfg.validate({"strategies": {}, "instruments": {}})
    assert bare.risk == cfg.RiskSettings() and bare.orders.max_age_s == 120.0
    assert bare.portfolio.on_daily_stop == "flatten" and not bare.portfolio.allow_shared_tickers


RANGE = [
    # (old, new, key, message fragment)
    ("max_age_s: 120.0", "max_age_s: 0", "orders.max_age_s", "greater than 0"),
    ("max_age_s: 120.0", "max_age_s: -5", "orders.max_age_s", "greater than 0"),
    ("max_age_s: 120.0", "max_age_s: .inf", "orders.max_age_s", "finite"),
    ("max_age_s: 120.0", "max_age_s: soon", "orders.max_age_s", "number"),
    ("on_daily_stop: flatten", "on_daily_stop: close", "portfolio.on_daily_stop", "'flatten' or 'block'"),
    ("allow_shared_tickers: false", "allow_shared_tickers: maybe", "portfolio.allow_shared_tickers", "boolean"),
    ("max_quantity: 10", "max_quantity: 0", "risk.max_quantity", "greater than or equal to 1"),
    ("max_quantity: 10", "max_quantity: 2.5", "risk.max_quantity", "integer"),
    ("max_notional: 2000000", "max_notional: 0", "risk.max_notional", "greater than 0"),
    ("max_notional: 2000000", "max_notional: -1", "risk.max_notional", "greater than 0"),
    ("price_band_pct: 5.0", "price_band_pct: 0", "risk.price_band_pct", "greater than 0"),
    ("price_band_pct: 5.0", "price_band_pct: .nan", "risk.price_band_pct", "finite"),
    ("max_quantity: 10", "max_quantity: 10\n  max_qty: 3", "risk.max_qty", "unknown key"),
]


@pytest.mark.parametrize("old,new,key,fragment", RANGE, ids=[f"{r[2]}={r[1].split(':', 1)[1].strip()}" for r in RANGE])
def test_new_key_out_of_range_exits_2_naming_the_key(tmp_path: Path, old: str, new: str, key: str, fragment: str) -> None:
    path = _variant(tmp_path, (old, new))
    err = _error(path, {})
    assert err.key == key and err.path == str(path)
    assert fragment in err.message, err.message
    result = _cli_check(path, {})
    assert result.exit_code == 2 and key in result.output and str(path) in result.output


def test_env_overrides_reach_the_new_keys() -> None:
    s = cfg.load(SHIPPED_CONFIG, environ={
        "MULTIALPHA__ORDERS__MAX_AGE_S": "30", "MULTIALPHA__PORTFOLIO__ON_DAILY_STOP": "block",
        "MULTIALPHA__RISK__MAX_QUANTITY": "3", "MULTIALPHA__RISK__PRICE_BAND_PCT": "2.5"})
    assert s.orders.max_age_s == 30 and s.portfolio.on_daily_stop == "block"
    assert s.risk.max_quantity == 3 and s.risk.price_band_pct == 2.5
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA__RISK__MAX_NOTIONAL": "0"})
    assert err.value.key == "risk.max_notional"


def test_risk_limits_can_be_turned_off_with_null(tmp_path: Path) -> None:
    path = _variant(tmp_path, ("max_quantity: 10", "max_quantity: null"), ("max_notional: 2000000", "max_notional: null"),
                    ("price_band_pct: 5.0", "price_band_pct: null"))
    r = cfg.load(path, environ={}).risk
    assert r.max_quantity is None and r.max_notional is None and r.price_band_pct is None


# -- live mode needs every enabled strategy's webhook URL ----------------------------------


def test_live_without_any_url_names_orders_mode_and_the_variables(tmp_path: Path) -> None:
    err = _error(SHIPPED_CONFIG, LIVE)
    assert err.key == "orders.mode"
    assert f"${MAIN} (strategies ibs_a, ibs_b)" in err.message
    assert f"${BREAKOUT} (strategy breakout)" in err.message
    assert "use mode: paper" in err.message
    path = _variant(tmp_path, ("mode: paper", "mode: live"))
    result = _cli_check(path, {})
    assert result.exit_code == 2 and "orders.mode" in result.output and BREAKOUT in result.output


def test_live_missing_one_strategys_url_names_that_strategy() -> None:
    err = _error(SHIPPED_CONFIG, {**LIVE, MAIN: URL_A})
    assert err.key == "orders.mode"
    assert str(err) == (f"{SHIPPED_CONFIG}: orders.mode: live needs a TradersPost webhook URL in ${BREAKOUT} "
                        "(strategy breakout); set it or use mode: paper")
    assert URL_A not in str(err)


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_set_but_empty_variable_counts_as_missing(blank: str) -> None:
    err = _error(SHIPPED_CONFIG, {**LIVE, MAIN: URL_A, BREAKOUT: blank})
    assert err.key == "orders.mode" and f"${BREAKOUT} (strategy breakout)" in err.message


def test_live_with_every_url_loads(tmp_path: Path) -> None:
    env = {**LIVE, MAIN: URL_A, BREAKOUT: URL_B}
    s = cfg.load(SHIPPED_CONFIG, environ=env)
    assert s.orders.mode == "live"
    assert {n: s.order_destination(n, env) for n in s.strategies} == {"ibs_a": "live", "ibs_b": "live", "breakout": "live"}
    path = _variant(tmp_path, ("mode: paper", "mode: live"))
    result = _cli_check(path, {MAIN: URL_A, BREAKOUT: URL_B})
    assert result.exit_code == 0, result.output
    assert "LIVE to TradersPost" in result.output and "pass-aaaa" not in result.output and "pass-bbbb" not in result.output


def test_live_ignores_a_disabled_strategys_missing_url() -> None:
    s = cfg.load(SHIPPED_CONFIG, environ={**LIVE, MAIN: URL_A, "MULTIALPHA__STRATEGIES__BREAKOUT__ENABLED": "false"})
    assert s.orders.mode == "live" and not s.strategies["breakout"].enabled


def test_paper_needs_no_url() -> None:
    assert cfg.load(SHIPPED_CONFIG, environ={}).orders.mode == "paper"


# -- one position per ticker and destination -----------------------------------------------


def test_shared_ticker_through_one_variable_is_an_error_naming_both_keys(tmp_path: Path) -> None:
    path = _variant(tmp_path, (OWN_WEBHOOK, ""))
    err = _error(path, {})  # paper: a paper config must be ready to go live
    assert err.key == "strategies.breakout.instruments.YM"
    assert err.message.startswith(
        f"YM is also traded by strategies.ibs_b.instruments.YM through the same webhook (${MAIN}); "
        "TradersPost nets positions per ticker and account, so one strategy's exit would close the other's position.")
    assert "webhook_url_env" in err.message and "portfolio.allow_shared_tickers: true" in err.message
    result = _cli_check(path, {})
    assert result.exit_code == 2
    assert "strategies.breakout.instruments.YM" in result.output and "strategies.ibs_b.instruments.YM" in result.output
    # validate() (no environment) catches it too: the variable names alone say it is one webhook
    raw = cfg.load(SHIPPED_CONFIG, environ={}).model_dump(by_alias=True, exclude={"source_path"})
    raw["strategies"]["breakout"]["webhook_url_env"] = None
    with pytest.raises(cfg.ConfigError) as e2:
        cfg.validate(raw, path)
    assert e2.value.key == "strategies.breakout.instruments.YM"


def test_shared_ticker_through_one_url_in_two_variables_is_an_error(tmp_path: Path) -> None:
    for env in ({MAIN: URL_A, BREAKOUT: URL_A}, {**LIVE, MAIN: URL_A, BREAKOUT: URL_A}, {MAIN: URL_A, BREAKOUT: URL_A + "\n"}):
        err = _error(SHIPPED_CONFIG, env)
        assert err.key == "strategies.breakout.instruments.YM"
        assert "strategies.ibs_b.instruments.YM" in err.message
        assert f"${MAIN} and ${BREAKOUT} hold the same URL" in err.message
        assert URL_A.strip() not in str(err) and "pass-aaaa" not in str(err)
    result = _cli_check(SHIPPED_CONFIG, {MAIN: URL_A, BREAKOUT: URL_A})
    assert result.exit_code == 2 and "strategies.breakout.instruments.YM" in result.output
    assert "pass-aaaa" not in result.output


def test_different_or_unset_urls_are_different_destinations() -> None:
    cfg.load(SHIPPED_CONFIG, environ={MAIN: URL_A, BREAKOUT: URL_B})
    cfg.load(SHIPPED_CONFIG, environ={MAIN: URL_A})
    cfg.load(SHIPPED_CONFIG, environ={MAIN: "", BREAKOUT: ""})  # both blank: unset, names differ


def test_allow_shared_tickers_accepts_both_kinds_of_sharing(tmp_path: Path) -> None:
    allow = ("allow_shared_tickers: false", "allow_shared_tickers: true")
    same_var = _variant(tmp_path, (OWN_WEBHOOK, ""), allow)
    assert cfg.load(same_var, environ={}).portfolio.allow_shared_tickers
    assert _cli_check(same_var, {}).exit_code == 0
    same_url = cfg.load(SHIPPED_CONFIG, environ={MAIN: URL_A, BREAKOUT: URL_A,
                                                "MULTIALPHA__PORTFOLIO__ALLOW_SHARED_TICKERS": "true"})
    assert same_url.portfolio.allow_shared_tickers


def test_a_disabled_strategy_does_not_count(tmp_path: Path) -> None:
    path = _variant(tmp_path, (OWN_WEBHOOK, ""))
    s = cfg.load(path, environ={"MULTIALPHA__STRATEGIES__IBS_B__ENABLED": "false"})
    assert not s.strategies["ibs_b"].enabled
    s = cfg.load(path, environ={"MULTIALPHA__STRATEGIES__BREAKOUT__ENABLED": "false"})
    assert not s.strategies["breakout"].enabled
    cfg.load(SHIPPED_CONFIG, environ={MAIN: URL_A, BREAKOUT: URL_A, "MULTIALPHA__STRATEGIES__BREAKOUT__ENABLED": "false"})


# -- destination_key --------------------------------------------------------------------------


def test_destination_key_paper_names_the_variable() -> None:
    s = cfg.load(SHIPPED_CONFIG, environ={})
    env = {MAIN: URL_A, BREAKOUT: URL_B}
    assert s.destination_key("ibs_a", env) == s.destination_key("ibs_b", env) == f"env:{MAIN}"
    assert s.destination_key("breakout", env) == f"env:{BREAKOUT}"


def test_destination_key_live_hashes_the_url_and_never_contains_it() -> None:
    env = {**LIVE, MAIN: URL_A, BREAKOUT: URL_B}
    s = cfg.load(SHIPPED_CONFIG, environ=env)
    keys = {n: s.destination_key(n, env) for n in s.strategies}
    assert keys["ibs_a"] == keys["ibs_b"] == "url:" + hashlib.sha256(URL_A.encode()).hexdigest()[:16]
    assert keys["breakout"] == "url:" + hashlib.sha256(URL_B.encode()).hexdigest()[:16]
    for key in keys.values():
        assert len(key) == len("url:") + 16
        for secret in (URL_A, URL_B, "uuid-aaaa", "pass-aaaa", "uuid-bbbb", "pass-bbbb", "traderspost"):
            assert secret not in key
    assert s.destination_key("breakout", env) == keys["breakout"]  # stable
    # Two variables holding one URL are one destination (allowed here only by the flag).
    shared = {**env, BREAKOUT: URL_A, "MULTIALPHA__PORTFOLIO__ALLOW_SHARED_TICKERS": "true"}
    s2 = cfg.load(SHIPPED_CONFIG, environ=shared)
    assert s2.destination_key("breakout", shared) == s2.destination_key("ibs_b", shared) == keys["ibs_a"]
    # Live but the URL missing at run time: falls back to the variable's name.
    assert s.destination_key("breakout", {}) == f"env:{BREAKOUT}"


def test_destination_key_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAIN, URL_A)
    monkeypatch.setenv(BREAKOUT, URL_B)
    s = cfg.load(SHIPPED_CONFIG, environ={**LIVE, MAIN: URL_A, BREAKOUT: URL_B})
    assert s.destination_key("ibs_a") == "url:" + hashlib.sha256(URL_A.encode()).hexdigest()[:16]


def test_a_blank_webhook_variable_is_unset_for_every_reader() -> None:
    """Destination, destination key and `config check`'s summary read a whitespace-only variable
    alike: unset (paper, keyed by the variable's name)."""
    from multialpha.config_summary import summarize

    s = cfg.load(SHIPPED_CONFIG, environ={})
    env = {s.webhook_env("ibs_a"): "   "}
    live = s.model_copy(update={"orders": s.orders.model_copy(update={"mode": "live"})})
    assert live.order_destination("ibs_a", env) == "paper"
    assert live.destination_key("ibs_a", env) == "env:" + s.webhook_env("ibs_a")
    url = "https://webhooks.traderspost.io/trading/webhook/x/y"
    assert live.destination_key("ibs_a", {s.webhook_env("ibs_a"): f" {url} "}) == \
        "url:" + hashlib.sha256(url.encode()).hexdigest()[:16]
    assert f"{s.webhook_env('ibs_a')} unset" in "\n".join(summarize(s, env).lines)
