"""Python side of the portfolio gate (gate.lua): one atomic script per decision.

Every entry from every worker goes through the same script, which claims the
order id, checks kill switch / daily stop / max positions, reserves the
position and journals the intent in ONE atomic step. Exits always pass.
The caller supplies "now" (from its clock, for the journal) and the instant
whose CME trading day the operation belongs to (``day_at``: the bar that
triggered it; default now), so tests control time, every process agrees on
the day boundary (17:00 CT), and a bar's mark or order lands in the bar's own
trading day however late it is processed — the session's last minute is
processed after 16:00 CT, which is already the next trading day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Mapping

import redis

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.keys import Keys

LUA = (Path(__file__).with_name("gate.lua")).read_text()
JOURNAL_MAXLEN = 1_000_000
CLAIM_TTL_S = 40 * 86_400  # longer than any bar replay window


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True)
class GateResult:
    status: str  # accepted | denied | duplicate
    reason: str
    realized: float | None  # realised $ of an exit delivered with its intent (paper)
    stream_id: str
    # Replicas that acknowledged the claim (WAIT) and how many redis.wait_replicas asked for;
    # None / 0: not asked (one Redis).
    replicas: int | None = None
    wanted: int = 0

    @property
    def unreplicated(self) -> bool:
        """Accepted, but fewer replicas than asked acknowledged the claim in time: a failover now
        could lose it, so the order must not be sent (router.py)."""
        return self.replicas is not None and self.status == "accepted" and self.replicas < self.wanted


@dataclass(frozen=True)
class DayPnl:
    trading_day: date
    pnl: float
    stopped: bool
    ignored: bool = False  # a mark of a contract other than the one held
    flatten: str = ""  # why this strategy's positions must be exited now ('' = no)
    absent: bool = False  # no position of this strategy in that symbol


def limits_doc(settings: Settings) -> dict[str, str]:
    """The portfolio limits as the gate script reads them from :meth:`Gate.limits_key`."""
    p = settings.portfolio
    return {"max_positions": str(p.max_positions), "daily_stop_loss": repr(float(p.daily_stop_loss)),
            "on_daily_stop": p.on_daily_stop, "allow_shared_tickers": "1" if p.allow_shared_tickers else "0"}


class Gate:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.client = client
        self.keys = Keys(settings.redis.namespace)
        self._script = client.register_script(LUA)

    # -- key layout ------------------------------------------------------------
    def position_key(self, strategy: str, symbol: str) -> str:
        return self.keys.portfolio("pos", strategy, symbol)

    def open_set(self) -> str:
        return self.keys.portfolio("open")

    def halt_key(self) -> str:
        return self.keys.portfolio("halt")

    def day_key(self, day: date) -> str:
        return self.keys.portfolio("day", day.isoformat())

    def reduce_only_key(self) -> str:
        """Hash scope ('*' or a strategy) -> why it may only reduce risk (flatten, an operator)."""
        return self.keys.portfolio("reduce_only")

    def flatten_key(self) -> str:
        """Hash scope ('*' or a strategy) -> why its positions are being flattened."""
        return self.keys.portfolio("flatten")

    def limits_key(self) -> str:
        """Hash of the deployment's portfolio limits; the gate script prefers them to its caller's."""
        return self.keys.portfolio("limits")

    def unmanaged_key(self) -> str:
        """Hash strategy -> why its positions have no running worker (`stop --leave-positions`)."""
        return self.keys.portfolio("unmanaged")

    def write_limits(self, settings: Settings) -> dict[str, str]:
        """Replace the limits the gate applies, in one MULTI: never half an old, half a new set."""
        doc = limits_doc(settings)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.limits_key())
        pipe.hset(self.limits_key(), mapping=doc)
        pipe.execute()
        return doc

    def exit_failed_key(self) -> str:
        """Set of strategy:symbol whose exit failed: the broker may still hold them."""
        return self.keys.portfolio("exit_failed")

    def _keys(self, order_id: str, strategy: str, symbol: str, day: date) -> list[str]:
        return [
            self.keys.order_state(order_id or "-"),
            self.keys.orders_pending(),
            self.keys.orders(),
            self.open_set(),
            self.halt_key(),
            self.day_key(day),
            self.position_key(strategy, symbol),
            self.reduce_only_key(),
            self.flatten_key(),
            self.exit_failed_key(),
            self.limits_key(),
        ]

    def _args(self, op: str, now: datetime, day_at: datetime | None = None, **kw: Any) -> list[Any]:
        p, risk = self.settings.portfolio, self.settings.risk
        return [
            op,
            cme_time.trading_day(day_at or now).isoformat(),
            cme_time.iso_z(now),
            p.max_positions,
            repr(float(p.daily_stop_loss)),
            self.keys.portfolio("pos") + ":",
            kw.get("order_id", ""),
            kw.get("kind", ""),
            kw.get("strategy", ""),
            kw.get("symbol", ""),
            kw.get("direction", 0),
            kw.get("quantity", 0),
            repr(float(kw.get("price", 0.0))),
            kw.get("contract", ""),
            repr(float(kw.get("multiplier", 0.0))),
            repr(float(kw.get("commission", 0.0))),
            JOURNAL_MAXLEN,
            CLAIM_TTL_S,
            kw.get("entry_time", ""),
            p.on_daily_stop,
            "" if risk.max_quantity is None else str(risk.max_quantity),
            "" if risk.max_notional is None else repr(float(risk.max_notional)),
            "" if risk.price_band_pct is None else repr(float(risk.price_band_pct)),
            kw.get("destination", ""),
            "1" if p.allow_shared_tickers else "0",
            "1" if kw.get("deliver_now") else "0",
            self.keys.control(),
            self.keys.bar_log(kw.get("symbol") or "-"),  # read only: see gate.lua's ARGV 28
        ]

    # -- operations ------------------------------------------------------------
    def submit(
        self,
        *,
        now: datetime,
        order_id: str,
        kind: str,
        strategy: str,
        symbol: str,
        direction: int,
        quantity: int,
        price: float,
        contract: str,
        entry_time: datetime,
        journal: Mapping[str, str],
        day_at: datetime | None = None,
        destination: str = "",
        deliver_now: bool = False,
    ) -> GateResult:
        """Claim + check + reserve (entries) / start closing (exits) + journal the intent, atomically.

        ``deliver_now``: the exit is delivered with its intent (paper): the position closes
        at once. Otherwise it stays ``closing`` until :meth:`exit_done` or :meth:`exit_failed`.
        ``destination``: ``Settings.destination_key`` (strategies sharing a webhook)."""
        spec = self.settings.instruments[symbol]
        args = self._args(
            "submit",
            now,
            day_at,
            order_id=order_id,
            kind=kind,
            strategy=strategy,
            symbol=symbol,
            direction=direction,
            quantity=quantity,
            price=price,
            contract=contract,
            multiplier=spec.multiplier,
            commission=self.settings.commission(strategy, symbol),
            entry_time=cme_time.iso_z(entry_time),
            destination=destination,
            deliver_now=deliver_now,
        )
        for k, v in journal.items():
            args += [k, v]
        day = cme_time.trading_day(day_at or now)
        keys = self._keys(order_id, strategy, symbol, day)
        want = self.settings.redis.wait_replicas
        if not want:
            status, reason, realized, sid = (_s(x) for x in self._script(keys=keys, args=args))
            return GateResult(status, reason, float(realized) if realized else None, sid)
        # WAIT covers the writes of its own connection only: the claim and WAIT share one pipeline
        # (one connection). Redis replicates asynchronously; WAIT is the only way to know that the
        # claim (and its journaled intent) would survive a failover before anything is sent.
        pipe = self.client.pipeline(transaction=False)
        self._script(keys=keys, args=args, client=pipe)
        pipe.execute_command("WAIT", want, self.settings.redis.wait_timeout_ms)
        reply, acked = pipe.execute()
        status, reason, realized, sid = (_s(x) for x in reply)
        return GateResult(status, reason, float(realized) if realized else None, sid, int(acked), want)

    def mark(self, strategy: str, symbol: str, price: float, now: datetime, contract: str = "",
             day_at: datetime | None = None) -> DayPnl:
        """Mark a position (ignored if ``contract`` is given and is not the one held).

        The answer also says whether this strategy's positions must be flattened
        (``DayPnl.flatten``: a flatten request, or the daily stop with on_daily_stop=flatten)."""
        day = cme_time.trading_day(day_at or now)
        status, pnl, flatten = (_s(x) for x in self._script(
            keys=self._keys("", strategy, symbol, day),
            args=self._args("mark", now, day_at, strategy=strategy, symbol=symbol, price=price, contract=contract),
        ))
        return DayPnl(day, float(pnl), status == "stopped", status == "wrong_contract", flatten,
                      status == "absent")

    def release(self, strategy: str, symbol: str, order_id: str, now: datetime) -> bool:
        """Free the slot of an entry that holds no position (rejected, expired, never sent)."""
        return self._position_op("release", strategy, symbol, order_id, now)[0] == "released"

    def exit_done(self, strategy: str, symbol: str, order_id: str, now: datetime,
                  price: float | None = None, day_at: datetime | None = None) -> float | None:
        """The exit ``order_id`` was delivered: book its realised P&L (at ``price``, default the
        exit's signal price) and take the position off the book. None if it is not closing."""
        status, realized = self._position_op("exit_done", strategy, symbol, order_id, now, price or 0.0, day_at)
        return float(realized) if status == "closed" else None

    def exit_failed(self, strategy: str, symbol: str, order_id: str, now: datetime) -> bool:
        """The exit may not have reached the broker: keep the position, the strategy goes reduce-only."""
        return self._position_op("exit_failed", strategy, symbol, order_id, now)[0] == "exit_failed"

    def exit_retry(self, strategy: str, symbol: str, order_id: str, now: datetime) -> bool:
        """An operator resends the failed exit: ``closing`` again."""
        return self._position_op("exit_retry", strategy, symbol, order_id, now)[0] == "closing"

    def queue_settle(self, pipe: Any, op: str, strategy: str, symbol: str, order_id: str, now: datetime,
                     day_at: datetime | None = None) -> None:
        """Queue ``release``, ``exit_done`` or ``exit_failed`` of ``order_id`` on ``pipe``, a MULTI
        its caller executes together with the order's journal outcome (orders/settlement.py): the
        book and the journal then never disagree after a kill, whichever instant it lands."""
        if op not in ("release", "exit_done", "exit_failed"):
            raise ValueError(f"not a settle operation: {op!r}")
        keys = self._keys("", strategy, symbol, cme_time.trading_day(day_at or now))
        args = self._args(op, now, day_at, order_id=order_id, strategy=strategy, symbol=symbol, price=0.0)
        # EVAL with the script's text, not EVALSHA: redis-py checks a pipeline's scripts before its
        # MULTI, and a reconnect to a server that lost them (a restart, a failover) would then run
        # the journal's writes of the transaction and fail this one alone (NOSCRIPT), the split the
        # transaction exists to close. ~12 KB per settled order.
        pipe.eval(LUA, len(keys), *keys, *args)

    def _position_op(self, op: str, strategy: str, symbol: str, order_id: str, now: datetime,
                     price: float = 0.0, day_at: datetime | None = None) -> tuple[str, str]:
        day = cme_time.trading_day(day_at or now)
        status, value = (_s(x) for x in self._script(
            keys=self._keys("", strategy, symbol, day),
            args=self._args(op, now, day_at, order_id=order_id, strategy=strategy, symbol=symbol, price=price),
        ))
        return status, value

    def day_pnl(self, now: datetime) -> DayPnl:
        day = cme_time.trading_day(now)
        status, pnl = (_s(x) for x in self._script(keys=self._keys("", "-", "-", day), args=self._args("pnl", now)))
        return DayPnl(day, float(pnl), status == "stopped")

    # -- reads -------------------------------------------------------------------
    def positions(self, strategy: str | None = None) -> list[dict[str, str]]:
        """Open positions (all strategies, or one), as stored."""
        members = sorted(_s(m) for m in self.client.smembers(self.open_set()))
        if strategy is not None:
            members = [m for m in members if m.split(":", 1)[0] == strategy]
        pipe = self.client.pipeline(transaction=False)
        for m in members:
            strat, sym = m.split(":", 1)
            pipe.hgetall(self.position_key(strat, sym))
        out = []
        for raw in pipe.execute():
            if raw:
                out.append({_s(k): _s(v) for k, v in raw.items()})
        return out

    def position(self, strategy: str, symbol: str) -> dict[str, str] | None:
        raw = self.client.hgetall(self.position_key(strategy, symbol))
        return {_s(k): _s(v) for k, v in raw.items()} if raw else None

    def reduce_only(self) -> dict[str, str]:
        """Scopes ('*' or strategy) that may only reduce risk, with why (flatten, operator, failed exits)."""
        out = {_s(k): _s(v) for k, v in self.client.hgetall(self.reduce_only_key()).items()}
        for pid in sorted(_s(m) for m in self.client.smembers(self.exit_failed_key())):
            out.setdefault(pid.split(":", 1)[0], f"exit failed for {pid}")
        return out

    def halted(self) -> str | None:
        v = self.client.get(self.halt_key())
        return _s(v) if v is not None else None
