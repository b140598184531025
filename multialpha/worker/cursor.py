"""The worker's cursor writes: sent right after each step, never waited for.

The cursor (``Keys.worker_cursor``: symbol -> bar-log id of the last bar
processed) is what a restart replays from, so it should reach Redis right
after ``next()``; but a round trip per bar on the bar path, or a thread woken
per bar to make it, costs the next bar its latency. :class:`CursorWriter`
sends ``HSET`` on its own connection and reads the replies later, without
waiting (redis-py's ``send_command`` / ``can_read`` / ``read_response``). An
error reply is counted and logged. When the connection fails, the writer
keeps the whole cursor and sends all of it once it reconnects (at most every
``retry_s``): newer ids always win, and a lost write is never silent.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from multialpha import redis_conn

log = logging.getLogger(__name__)

READ_EVERY = 64  # replies left in the socket before a write reads them (a reply is 4 bytes)


class CursorWriter:
    """``client_factory`` must fail fast (no connect retries, short timeouts): it runs on the bar path."""

    def __init__(self, client_factory: Callable[[], Any], key: str, *, retry_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client_factory = client_factory
        self.key = key
        self.retry_s = retry_s
        self.monotonic = monotonic
        self.state: dict[str, str] = {}  # the whole cursor as last written by this worker
        self.unsent: dict[str, str] = {}  # fields not yet on a live connection
        self.unread = 0  # replies not read yet
        self.errors = 0
        self._client: Any = None
        self._conn: Any = None
        self._retry_at = 0.0

    def write(self, fields: dict[str, str]) -> None:
        """Send these cursor fields now; returns without waiting for Redis; never raises."""
        self.state.update(fields)
        self.unsent.update(fields)
        self._send()

    def retry(self) -> None:
        """Idle time: read the replies that arrived; send what a failed connection left unsent, if due."""
        try:
            self._read_ready()
        except Exception as e:
            self._fail(e)
        self._send()

    def flush(self, timeout: float = 2.0) -> bool:
        """Send what is unsent and wait (up to ``timeout``) for every reply: True when none is left
        unsent or unanswered (a refused write is counted in ``errors``)."""
        self._retry_at = 0.0
        self._send()
        deadline = self.monotonic() + timeout
        try:
            while self._conn is not None and self.unread:
                left = deadline - self.monotonic()
                if left <= 0 or not self._conn.can_read(timeout=left):
                    break
                self._read_one()
        except Exception as e:
            self._fail(e)
        return not self.unsent and not self.unread

    def close(self) -> None:
        self._drop_connection()

    # -- internals ---------------------------------------------------------------
    def _send(self) -> None:
        if not self.unsent:
            return
        try:
            if self._conn is None:
                if self.monotonic() < self._retry_at:
                    return
                self._connect()
            if self.unread >= READ_EVERY:  # else a poll() per write, for replies nobody waits for
                self._read_ready()
            flat = [x for kv in self.unsent.items() for x in kv]
            self._conn.send_command("HSET", self.key, *flat)
            self.unread += 1
            self.unsent = {}
        except Exception as e:
            self._fail(e)

    def _connect(self) -> None:
        self._client = self.client_factory()
        self._conn = self._client.connection_pool.get_connection()
        self.unread = 0
        self.unsent = dict(self.state)  # a new connection: all of it, in case earlier writes were lost

    def _read_ready(self) -> None:
        while self._conn is not None and self.unread and self._conn.can_read(timeout=0):
            self._read_one()

    def _read_one(self) -> None:
        import redis

        try:
            self._conn.read_response()
        except redis.ResponseError as e:  # e.g. the key holds another type: counted, never raised
            self.errors += 1
            log.warning("cursor write refused by Redis: %s", e)
        self.unread -= 1

    def _fail(self, e: BaseException) -> None:
        self.errors += 1
        log.warning("cursor write failed (%s); resending the whole cursor in %.1fs", type(e).__name__, self.retry_s)
        self._drop_connection()
        self.unsent = dict(self.state)
        self._retry_at = self.monotonic() + self.retry_s

    def _drop_connection(self) -> None:
        conn, client, self._conn, self._client = self._conn, self._client, None, None
        self.unread = 0
        redis_conn.close_quietly(conn and conn.disconnect, client and client.close)
