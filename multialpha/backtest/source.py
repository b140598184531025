"""Where a backtest's (or `models train`'s) Historical bars come from, and which dates it may ask for.

Order of preference, as the live worker's endpoints resolution:

1. ``DATABENTO_API_KEY`` set: Databento Historical; "now" is the wall clock.
2. No key, a sandbox running (``multialpha sandbox`` / ``multialpha up`` wrote
   its state file): that sandbox's historical gateway; "now" is its clock.
3. No key, none running: an **embedded** sandbox — the same
   :class:`~multialpha.sandbox.server.Sandbox` that ``multialpha sandbox``
   runs, started in this process for the length of the command and stopped
   at the end. Its clock is pinned (speed 0): at the close of ``--to`` when
   one is given (the synthetic market is deterministic, so any day it can
   generate may be asked for), else at the session open of
   ``sandbox.from_date``. Its state file is private (a temporary directory),
   so no hub or worker mistakes it for a long-lived sandbox.

Date checks live here too, so both commands say the same thing about a bad
range (exit 2, ``error: …``).
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from multialpha import cme_time
from multialpha.config import Settings


class DateError(ValueError):
    """A bad --from/--to (reversed, weekend, outside the data): printed as ``error: …``, exit 2."""


@dataclass(frozen=True)
class Source:
    """Where Historical bars come from and where the data ends ("now")."""

    fetch: Any
    dataset: str
    now: datetime
    sandbox: bool
    first_day: date | None = None  # first trading day with data (known on the sandbox)
    embedded: bool = False  # an in-process sandbox started for this command

    @property
    def label(self) -> str:
        if not self.sandbox:
            return "Databento"
        return "embedded sandbox" if self.embedded else "sandbox"


def _source(ep: Any, *, first_day: date | None, embedded: bool) -> Source:
    from multialpha import endpoints
    from multialpha.worker import warmup

    fetch = warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset)
    return Source(fetch, ep.dataset, endpoints.now(ep), ep.is_sandbox, first_day, embedded)


def sandbox_first_day(state: Any) -> date | None:
    """First trading day the sandbox generates: ``days`` business days before its ``from_date``."""
    if not getattr(state, "from_date", "") or not getattr(state, "days", 0):
        return None
    return cme_time.add_business_days(date.fromisoformat(state.from_date), -int(state.days))


@contextlib.contextmanager
def open_source(settings: Settings, say: Callable[[str], None] = lambda _msg: None,
                until: date | None = None) -> Iterator[Source]:
    """The Source for this command; an embedded sandbox lives exactly as long as the ``with`` block.

    ``until`` (the command's ``--to``): an embedded sandbox's clock is pinned after that day's close.

    Raises :class:`~multialpha.endpoints.EndpointError` / OSError when nothing can serve bars
    (e.g. the embedded sandbox cannot bind a port).
    """
    from multialpha import endpoints

    if settings.databento.api_key:
        yield _source(endpoints.resolve(settings), first_day=None, embedded=False)
        return
    try:
        ep = endpoints.resolve(settings)
    except endpoints.EndpointError:
        ep = None
    if ep is not None:  # a sandbox is running: use it (its clock, its history)
        yield _source(ep, first_day=sandbox_first_day(ep.sandbox), embedded=False)
        return
    from multialpha.sandbox.server import Sandbox

    with tempfile.TemporaryDirectory(prefix="multialpha-sandbox-") as tmp:
        start_at = None
        if until is not None and until.weekday() < 5:
            start_at = cme_time.session_bounds(until)[1] + timedelta(minutes=1)
            start_at = max(start_at, cme_time.session_bounds(date.fromisoformat(settings.sandbox.from_date))[0])
        sb = Sandbox(settings, speed=0, state_file=Path(tmp) / "sandbox.json", start_at=start_at)
        with sb:
            say(f"no DATABENTO_API_KEY and no sandbox running: started an embedded sandbox "
                f"(historical gateway {sb.state.historical_url}, history {sb.market.first_day} .. "
                f"{cme_time.iso_z(sb.state.now())}); it stops when this command ends")
            yield _source(endpoints.from_state(sb.state, sb.state_file), first_day=sb.market.first_day,
                          embedded=True)


def parse_day(text: str | None, what: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DateError(f"{what}: expected a date YYYY-MM-DD, got {text!r}") from None


def check_days(from_day: date | None, to_day: date | None, days: int) -> None:
    """What can be said without knowing where the data ends (before any sandbox starts)."""
    if days < 1:
        raise DateError(f"--days must be >= 1, got {days}")
    for d, what in ((from_day, "--from"), (to_day, "--to")):
        if d is not None and d.weekday() >= 5:
            raise DateError(f"{what} {d} is a {d.strftime('%A')} (weekend): no CME trading day")
    if from_day is not None and to_day is not None and from_day > to_day:
        raise DateError(f"--from {from_day} is after --to {to_day}")


def date_range(src: Source, from_day: date | None, to_day: date | None, days: int) -> tuple[date, date]:
    """Trading days [first, last] to run; :class:`DateError` with a plain sentence when they cannot be."""
    check_days(from_day, to_day, days)
    from multialpha.backtest.data import default_days

    if from_day is None and to_day is None:
        first, last = default_days(src.now, days)
    else:
        last = to_day if to_day is not None else default_days(src.now, 1)[1]
        first = from_day if from_day is not None else cme_time.add_business_days(last, -(days - 1))
    if first > last:  # only --from given, after the last complete day
        raise DateError(f"--from {first} is after the last complete trading day {last} of the {src.label} data "
                        f"(its clock: {cme_time.iso_z(src.now)})")
    today = cme_time.trading_day(src.now)
    for d, what in ((first, "--from"), (last, "--to")):
        if d > today:
            raise DateError(f"{what} {d} is in the future: the {src.label} data ends at "
                            f"{cme_time.iso_z(src.now)} (trading day {today})")
    if src.first_day is not None and first < src.first_day:
        raise DateError(f"--from {first} is before the {src.label}'s first trading day {src.first_day}")
    return first, last
