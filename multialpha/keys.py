"""Every Redis key and channel name, built here and nowhere else.

Market channels keep the seed's bare spelling (``market:ES:1min``) under the
default namespace, so existing consumers keep working; any other namespace
prefixes them too (``paper:market:ES:1min``). Everything a deployment owns
(heartbeats, portfolio, journal, control) always carries the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "multialpha"


@dataclass(frozen=True)
class Keys:
    namespace: str = DEFAULT_NAMESPACE

    def _market_prefix(self) -> str:
        return "" if self.namespace == DEFAULT_NAMESPACE else f"{self.namespace}:"

    def _own(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    # -- market data (hub -> workers) -----------------------------------------
    def bars(self, symbol: str) -> str:
        """Pub/sub channel of finished 1-minute bars."""
        return f"{self._market_prefix()}market:{symbol}:1min"

    def bar_log(self, symbol: str) -> str:
        """Stream of the same bars, id = bar start in ms, for catch-up."""
        return f"{self.bars(symbol)}:log"

    def prev_bars(self, symbol: str) -> str:
        """Pub/sub channel of the *previous* front's 1-minute bars for ``hub.roll_overlap_days``
        after a roll: positions still in the old contract are marked and exited at its prices.
        (``...:1min:prev``, not ``...:prev:1min``: ``bars_pattern`` must not match it.)"""
        return f"{self.bars(symbol)}:prev"

    def prev_bar_log(self, symbol: str) -> str:
        """Stream of the same previous-front bars (id = bar start in ms)."""
        return f"{self.prev_bars(symbol)}:log"

    def minute_closed(self) -> str:
        """Pub/sub channel of the hub's minute-close notices (see bar.minute_closed_json)."""
        return f"{self._market_prefix()}market:1min:closed"

    def bars_pattern(self) -> str:
        return f"{self._market_prefix()}market:*:1min"

    def market_pattern(self) -> str:
        """Every market name: bar channels and logs, previous-front bars, minute notices (ACLs)."""
        return f"{self._market_prefix()}market:*"

    # -- control ----------------------------------------------------------------
    def hub_control(self) -> str:
        return f"{self._market_prefix()}datahub:control"

    def hub_control_reply(self, request_id: str) -> str:
        return f"{self.hub_control()}:reply:{request_id}"

    def control(self) -> str:
        """Deployment-wide control channel (halt/resume, restart requests)."""
        return self._own("control")

    def control_reply(self, request_id: str) -> str:
        """Where the supervisor answers one `reload`/`stop`/`start` request."""
        return self._own("control", "reply", request_id)

    # -- liveness ---------------------------------------------------------------
    def heartbeat(self, component: str) -> str:
        return self._own("hb", component)

    def heartbeat_pattern(self) -> str:
        return self._own("hb", "*")

    def events(self) -> str:
        """Stream of notable events (rolls, errors, alerts) for status."""
        return self._own("events")

    # -- worker progress --------------------------------------------------------
    def worker_cursor(self, strategy: str) -> str:
        """Hash symbol -> last bar-log id the strategy processed."""
        return self._own("worker", strategy, "cursor")

    def worker_turns(self) -> str:
        """Hash strategy -> last minute start (ms) it finished: the gate's turn order."""
        return self._own("worker", "turns")

    def veto_log(self) -> str:
        return self._own("veto")

    def verify_results(self) -> str:
        """Hash trading day (YYYY-MM-DD) -> JSON summary of `multialpha verify` for that day."""
        return self._own("verify")

    # -- portfolio (owned by the Lua gate) -------------------------------------
    def portfolio(self, *parts: str) -> str:
        return self._own("portfolio", *parts)

    # -- orders -----------------------------------------------------------------
    def orders(self) -> str:
        """The order journal stream: intent before sending, outcome after."""
        return self._own("orders")

    def order_state(self, order_id: str) -> str:
        return self._own("orders", "id", order_id)

    def orders_pending(self) -> str:
        """Set of order ids journaled as intent with no final outcome yet."""
        return self._own("orders", "pending")

    def rate_limit(self, window: str) -> str:
        return self._own("orders", "rate", window)
