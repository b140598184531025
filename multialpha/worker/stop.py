"""Phase 5 of a worker, stop: SIGTERM / ``stop_event`` -> finish the bar in hand, flush, last beat.

``_stop_watch`` (its own thread) stops the subscriber and the bus so Cerebro
returns after the step in hand (within SIGTERM's 5 s budget); ``_shutdown``
(always, whatever phase the worker reached) flushes the cursor, stops the
heartbeat with a final beat and closes the router.

A mixin of :class:`multialpha.worker.runtime.Worker` (its state lives there).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Stopping:
    def _stop_watch(self) -> None:
        self.stop_event.wait()
        log.info("stopping: finishing the bar in hand")
        self.state = "stopping"
        if self.subscriber is not None:
            self.subscriber.stop()
        if self.bus is not None:
            self.bus.stop(drop_backlog=True)  # finish the bar in hand only: exit within 5 s

    def _shutdown(self) -> None:
        if self._health is not None:
            self._health.close()
        if self.cursor_writer is not None:
            if not self.cursor_writer.flush():
                log.warning("the last cursor did not reach Redis: a restart replays those bars again")
            self.cursor_writer.close()
        self._hb_stop.set()
        self._hb_wake.set()
        if self._hb_thread is not None:
            self._hb_thread.join(2.0)
        if self.subscriber is not None:
            self.subscriber.close()
        if self.state not in ("error",):
            self.state = "stopped"
        try:
            self._beat()
        except Exception:
            log.warning("final heartbeat failed", exc_info=True)
        if self.router is not None and hasattr(self.router, "close"):
            try:
                self.router.close()
            except Exception:
                log.warning("router close failed", exc_info=True)
