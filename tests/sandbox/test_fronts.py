"""Liquid fronts: the sandbox's ROOT.v.0 / ROOT.n.0 follow its own market, and the hub's
``front: volume`` choice (Historical ohlcv-1h of the previous session, official client)
equals the sandbox's ``.v.0`` across rolls."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

from multialpha import cme_time, endpoints
from multialpha.contracts import ContractMap
from multialpha.hub.resolver import Resolver
from multialpha.hub.volumes import HistoricalVolumes
from multialpha.sandbox import fronts, symbology
from multialpha.sandbox.server import Sandbox

from .conftest import REPO

UTC = timezone.utc


def _session(day: date) -> tuple[int, int]:
    o, c = cme_time.session_bounds(day)
    return cme_time.to_ns(o), cme_time.to_ns(c)


def _cont(sb: Sandbox, symbol: str, day: date) -> list[str]:
    root = symbol.split(".")[0]
    return [i.raw_symbol for i in symbology.select(sb.market, symbology.Resolved(symbol, root), "continuous", day)]


def test_v0_is_the_previous_days_busiest_outright(sb: Sandbox) -> None:
    m = sb.market
    for day in cme_time.trading_days(date(2025, 12, 8), date(2025, 12, 16)):
        prev = cme_time.previous_trading_day(day)
        names = m.raw_symbols("ES", prev)
        t = m.trades("ES", *_session(prev))
        vol: Counter[str] = Counter()
        for iid, size in zip(t["instrument_id"].tolist(), t["size"].tolist()):
            if "-" not in names[iid]:
                vol[names[iid]] += size
        ranked = [raw for raw, _ in vol.most_common()]
        listed = {i.raw_symbol for i in m.instruments("ES", day) if not i.is_spread}
        assert _cont(sb, "ES.v.0", day) == [ranked[0]], day
        assert _cont(sb, "ES.v.1", day) == [[r for r in ranked if r in listed][1]], day
    # the calendar front rolls on 12-11, the volume front a trading day later
    assert (_cont(sb, "ES.v.0", date(2025, 12, 11)), _cont(sb, "ES.v.0", date(2025, 12, 12))) == (["ESZ5"], ["ESH6"])


def test_n0_follows_open_interest_and_lags_volume(sb: Sandbox) -> None:
    m = sb.market
    seen = []
    for day in cme_time.trading_days(date(2025, 12, 8), date(2025, 12, 19)):
        oi = fronts.open_interest(m, "ES", cme_time.previous_trading_day(day))
        top = max(oi, key=lambda c: (oi[c], -c.month - 12 * c.year))
        assert _cont(sb, "ES.n.0", day) == [top.raw_symbol], day
        seen.append(top.raw_symbol)
    # open interest stays with ESZ5 for days after volume has moved, then follows
    assert seen[:6] == ["ESZ5"] * 6 and seen[-1] == "ESH6"
    z5 = ContractMap.load(REPO / "Data" / "Databento_contract_map.yml").parse("ESZ5", near=date(2025, 12, 1))
    ois = [fronts.open_interest(m, "ES", d)[z5] for d in cme_time.trading_days(date(2025, 12, 11), date(2025, 12, 18))]
    assert all(a > b for a, b in zip(ois, ois[1:]))  # positions leave the old front after the roll


def _volume_map(tmp_path: Path) -> ContractMap:
    data = yaml.safe_load((REPO / "Data" / "Databento_contract_map.yml").read_text())
    for root in ("ES", "GC"):
        data["roots"][root]["front"] = "volume"
    (tmp_path / "map.yml").write_text(yaml.safe_dump(data))
    return ContractMap.load(tmp_path / "map.yml")


@pytest.mark.parametrize(
    "root,first,last,calendar_roll",
    [
        ("ES", date(2025, 12, 8), date(2025, 12, 16), date(2025, 12, 11)),
        ("GC", date(2025, 7, 23), date(2025, 8, 1), date(2025, 7, 28)),  # GCQ5 -> GCZ5 (GCV5 skipped)
        ("GC", date(2025, 11, 20), date(2025, 12, 1), date(2025, 11, 25)),  # GCZ5 -> GCG6
    ],
)
def test_hub_volume_front_equals_the_sandbox_v0(
    sb: Sandbox, ep: endpoints.Endpoints, tmp_path: Path, root: str, first: date, last: date, calendar_roll: date
) -> None:
    sb.set_clock(datetime(2025, 12, 17, 12, tzinfo=UTC))
    hist = endpoints.historical_client(ep)
    cmap = _volume_map(tmp_path)
    resolver = Resolver(cmap, [root], volumes=HistoricalVolumes(endpoints.bars_client(ep), ep.dataset))
    days = cme_time.trading_days(first, last)
    # Databento's answer: ROOT.v.0 per UTC date; UTC date D names trading day D's instrument.
    out = hist.symbology.resolve(ep.dataset, symbols=[f"{root}.v.0"], stype_in="continuous",
                                 stype_out="instrument_id", start_date=first.isoformat(),
                                 end_date=cme_time.next_trading_day(last).isoformat())  # fmt: skip
    by_date = {}
    for iv in out["result"][f"{root}.v.0"]:
        d = date.fromisoformat(iv["d0"])
        while d < date.fromisoformat(iv["d1"]):
            by_date[d] = int(iv["s"])
            d = date.fromordinal(d.toordinal() + 1)
    hub, sandbox = [], []
    for day in days:
        resolver.refresh(cme_time.to_ns(datetime(day.year, day.month, day.day, 15, tzinfo=UTC)))
        hub.append(resolver.front[root])
        sandbox.append(sb.market.raw_symbols(root, day)[by_date[day]])
    assert hub == sandbox
    # the range holds a roll, and the volume front follows the calendar one a trading day later
    k = days.index(calendar_roll)
    assert hub[k - 1] == hub[k] != hub[k + 1] == cmap.front(root, calendar_roll).raw_symbol
    assert all(cmap.rules[root].months.find(s[len(root)]) >= 0 for s in hub)
