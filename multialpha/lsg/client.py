"""``Live``: the part of ``databento.Live``'s interface the hub uses, over a plain socket.

Why our own client: ``import databento`` imports pandas, pyarrow, aiohttp and requests
(~127 MB of RSS) for a process that only needs the Live protocol and ``databento_dbn``'s
decoder. This client follows the official one's protocol step for step (handshake in
:mod:`multialpha.lsg.handshake`, lines in :mod:`multialpha.lsg.control`) and decodes the
stream with the same ``DBNDecoder`` and upgrade policy, so callbacks get the same record
objects, in the same order, one at a time on one reader thread.

Life of a client, as with the official one: ``add_callback`` -> ``subscribe`` (connects and
authenticates on the first call, raises :class:`LiveError` on failure) -> ``start`` (sends
``start_session``, starts the reader) -> records -> closed by the gateway or ``terminate``.
A client is used for one connection; the hub builds a new one per attempt.

Not provided (the hub does not use them): iteration, streams to files, the client's own
reconnect policy and hang detection (the hub session measures silence itself), compression
(``none`` only: loopback or a datacentre link, and zstd would cost CPU per record).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Callable, Iterable

from databento_dbn import DBNDecoder, ErrorMsg, Metadata, VersionUpgradePolicy

from multialpha.lsg import control
from multialpha.lsg.handshake import LiveError, open_session

log = logging.getLogger(__name__)

DEFAULT_PORT = 13000
RECV_BYTES = 64 * 1024  # as the official client's receive buffer

RecordCallback = Callable[[object], None]
ExceptionCallback = Callable[[Exception], None]

__all__ = ["Live", "LiveError", "default_gateway"]


def default_gateway(dataset: str) -> str:
    """The host the official client picks for a dataset (``live/session.py``)."""
    return f"{dataset.lower().replace('.', '-')}.lsg.databento.com"


class Live:
    def __init__(self, key: str, gateway: str | None = None, port: int = DEFAULT_PORT, *, ts_out: bool = False,
                 heartbeat_interval_s: int | None = None) -> None:
        self._key = key
        self.gateway = gateway
        self.port = int(port)
        self.ts_out = ts_out
        self.heartbeat_interval_s = heartbeat_interval_s
        self.dataset = ""
        self.session_id: str | None = None
        self._callbacks: list[tuple[RecordCallback, ExceptionCallback | None]] = []
        self._sock: socket.socket | None = None
        self._leftover = b""
        self._subscriptions = 0
        self._metadata: Metadata | None = None
        self._errors: list[str] = []  # ErrorMsg texts: the close that follows is an error
        self._failure: Exception | None = None  # the reader's own error (socket, DBN)
        self._terminated = False
        self._closed = threading.Event()
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"Live(gateway={self.gateway!r}, port={self.port}, dataset={self.dataset!r})"

    # -- the official client's interface ------------------------------------------------
    @property
    def metadata(self) -> Metadata | None:
        """The session's DBN metadata header, once the gateway has sent it."""
        return self._metadata

    def add_callback(self, record_callback: RecordCallback, exception_callback: ExceptionCallback | None = None) -> None:
        """``exception_callback`` gets what ``record_callback`` raises (else it is logged)."""
        if not callable(record_callback):
            raise ValueError(f"{record_callback!r} is not callable")
        if exception_callback is not None and not callable(exception_callback):
            raise ValueError(f"{exception_callback!r} is not callable")
        self._callbacks.append((record_callback, exception_callback))

    def subscribe(self, dataset: str, schema: str, symbols: Iterable[str] | str, stype_in: str = "raw_symbol",
                  start: int | None = None, snapshot: bool = False) -> int:
        """Send one subscription (connecting and authenticating first, on the first call).

        Raises :class:`LiveError` when the gateway cannot be reached or refuses the key."""
        if snapshot:
            raise ValueError("snapshot subscriptions are not supported by this client")
        if start is not None and not isinstance(start, int):
            raise TypeError(f"start must be UNIX nanoseconds (int) or None, not {type(start).__name__}")
        schema, stype_in = str(getattr(schema, "value", schema)), str(getattr(stype_in, "value", stype_in))
        if self.dataset and dataset != self.dataset:
            raise ValueError(f"Cannot subscribe to dataset `{dataset}` because subscriptions to "
                             f"`{self.dataset}` have already been made.")
        syms = _symbols(symbols, stype_in)
        with self._lock:
            if self._closed.is_set() or self._terminated:
                raise ValueError("cannot subscribe on a closed client")
            if self._sock is None:
                opened = open_session(self.gateway or default_gateway(dataset), self.port, self._key, dataset,
                                      ts_out=self.ts_out, heartbeat_interval_s=self.heartbeat_interval_s)
                self._sock, self._leftover, self.session_id = opened.sock, opened.leftover, opened.session_id
                self.dataset = dataset
            sub_id = self._subscriptions
            self._sock.sendall(b"".join(control.subscription_requests(schema, stype_in, syms, start, sub_id)))
            self._subscriptions += 1
        return sub_id

    def start(self) -> None:
        """Ask the gateway to start streaming and start the reader thread."""
        with self._lock:
            if self._sock is None or self._closed.is_set():
                raise ValueError("must call subscribe() before starting live client" if self._sock is None
                                 else "cannot start a live client after it is closed")
            if self._reader is not None:
                raise ValueError("client is already started")
            self._sock.sendall(control.session_start())
            self._reader = threading.Thread(target=self._read, name="lsg-reader", daemon=True)
            self._reader.start()

    def is_connected(self) -> bool:
        return self._sock is not None and not self._closed.is_set() and not self._terminated

    def block_for_close(self, timeout: float | None = None) -> None:
        """Wait for the connection to close; on timeout terminate it (as the official client does).

        Raises :class:`LiveError` when it closed on an error: the gateway's ``ErrorMsg`` texts,
        or the connection's own failure."""
        if self._sock is None and not self._closed.is_set():
            raise ValueError("the client has never connected")
        if not self._closed.wait(timeout):
            log.info("closing session: no close within %ss", timeout)
            self.terminate()
            return
        if self._errors:
            raise LiveError(", ".join(self._errors))
        if self._failure is not None and not self._terminated:
            raise LiveError(f"connection lost: {self._failure}")

    def terminate(self) -> None:
        """Drop the connection now; the reader ends without dispatching more records."""
        with self._lock:
            self._terminated = True
            sock, started = self._sock, self._reader is not None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
        except OSError:
            pass  # already closed by the peer
        if not started:
            sock.close()
            self._closed.set()

    # -- the reader thread -------------------------------------------------------------
    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        decoder = DBNDecoder(upgrade_policy=VersionUpgradePolicy.UPGRADE_TO_V3)
        try:
            data = self._leftover
            self._leftover = b""
            while True:
                if data:
                    self._dispatch(decoder.write_and_decode(data))
                if self._terminated:
                    break
                try:
                    data = sock.recv(RECV_BYTES)
                except TimeoutError:  # the socket's send timeout (handshake.IO_TIMEOUT_S): no data yet
                    data = b""
                    continue
                if not data:
                    break  # the gateway closed the connection
        except Exception as e:  # a reset, or bytes that are not DBN: the connection is over
            if not self._terminated:
                log.error("live connection to %s:%d lost: %s", self.gateway, self.port, e)
                self._failure = e
        finally:
            sock.close()
            self._closed.set()

    def _dispatch(self, records: list) -> None:
        callbacks = self._callbacks
        for rec in records:
            t = type(rec)
            if t is Metadata:
                self._metadata = rec
                continue
            if t is ErrorMsg:
                log.error("gateway error: %s", rec.err)
                self._errors.append(rec.err)
            for fn, on_error in callbacks:
                try:
                    fn(rec)
                except Exception as e:  # a callback's bug must not kill the connection
                    if on_error is None:
                        log.exception("record callback %r failed", fn)
                    else:
                        on_error(e)


def _symbols(symbols: Iterable[str] | str, stype_in: str) -> list[str]:
    """Comma lists and iterables, stripped; raw symbols upper-cased (as the official client)."""
    items = symbols.split(",") if isinstance(symbols, str) else [str(s) for s in symbols]
    out = [s.strip() for s in items if s.strip()]
    return [s.upper() for s in out] if stype_in == "raw_symbol" else out
