"""Payloads validate against TradersPost's published request schema; tickers across a roll."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timezone

import jsonschema
import pytest

from multialpha.contracts import ContractMap
from multialpha.orders import payload
from tests.conftest import REPO, SHARED
from tests.orders.support import intent

SPEC = json.loads((SHARED / "traderspost-webhook-spec.json").read_text())
POST = SPEC["paths"]["/trading/webhook/{uuid}/{password}"]["post"]
BODY = POST["requestBody"]["content"]["application/json"]["schema"]


def _validator(strict: bool) -> jsonschema.Validator:
    schema = copy.deepcopy(BODY)
    if strict:  # the spec allows extra keys; we send none it does not define
        schema["additionalProperties"] = False
    schema["components"] = SPEC["components"]
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=FORMATS)


# jsonschema checks "date-time" only with an optional extra installed; RFC 3339 here.
FORMATS = jsonschema.FormatChecker()
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


CMAP = ContractMap.load(REPO / "Data" / "Databento_contract_map.yml")
NOW = datetime(2025, 12, 10, 15, 30, 0, 250000, tzinfo=timezone.utc)


@pytest.mark.parametrize("side,kind,action,sentiment", [
    ("long", "entry", "buy", "bullish"),
    ("short", "entry", "sell", "bearish"),
    ("long", "exit", "exit", "flat"),
    ("short", "exit", "exit", "flat"),
])
def test_payload_validates_against_spec(side, kind, action, sentiment):
    i = intent(side=side, kind=kind, reason="channel breakout")
    body = payload.build(i, payload.ticker_for(CMAP, "ES", i.contract, i.bar_start), i.order_id, NOW)
    for strict in (False, True):
        _validator(strict).validate(body)
    assert body["action"] == action and body["sentiment"] == sentiment
    assert body["ticker"] == "ESZ2025" and body["quantity"] == 1
    assert body["price"] == body["signalPrice"] == 6000.25
    assert body["time"] == "2025-12-10T15:30:00.250000Z"
    assert body["extras"]["orderId"] == i.order_id and body["extras"]["strategy"] == "breakout"
    json.dumps(body)  # plain JSON types only


def test_validator_catches_bad_payloads():
    i = intent()
    good = payload.build(i, "ESZ2025", i.order_id, NOW)
    for field, value in [("action", "long"), ("sentiment", "long"), ("time", "yesterday"), ("quantity", "1")]:
        bad = {**good, field: value}
        with pytest.raises(jsonschema.ValidationError):
            _validator(False).validate(bad)
    with pytest.raises(jsonschema.ValidationError):
        _validator(True).validate({**good, "contract": "ESZ5"})


@pytest.mark.parametrize("root,day,raw,ticker", [
    ("ES", datetime(2025, 12, 10, 15, tzinfo=timezone.utc), "ESZ5", "ESZ2025"),
    ("ES", datetime(2025, 12, 11, 15, tzinfo=timezone.utc), "ESH6", "ESH2026"),
    ("NQ", datetime(2025, 8, 1, 15, tzinfo=timezone.utc), "NQU5", "NQU2025"),
    ("6A", datetime(2025, 12, 30, 15, tzinfo=timezone.utc), "6AH6", "6AH2026"),
    ("CL", datetime(2029, 12, 20, 15, tzinfo=timezone.utc), "CLG0", "CLG2030"),
])
def test_ticker_mapping(root, day, raw, ticker):
    assert payload.ticker_for(CMAP, root, raw, day) == ticker


def test_front_contract_across_the_es_roll():
    before = CMAP.front("ES", datetime(2025, 12, 10, 20, tzinfo=timezone.utc))
    after = CMAP.front("ES", datetime(2025, 12, 11, 15, tzinfo=timezone.utc))
    assert (before.raw_symbol, after.raw_symbol) == ("ESZ5", "ESH6")
    assert (before.traderspost_symbol, after.traderspost_symbol) == ("ESZ2025", "ESH2026")


@pytest.mark.parametrize("raw", ["ESZ5-ESH6", "ES", "ESZ", "XXZ5", "NQZ5", ""])
def test_ticker_refuses_spreads_unknown_and_foreign(raw):
    with pytest.raises(payload.PayloadError):
        payload.ticker_for(CMAP, "ES", raw, NOW)
