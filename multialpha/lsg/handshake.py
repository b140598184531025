"""Opening a Live session: TCP connect, greeting, CRAM challenge, authentication.

The same steps and time limits as databento-python (``live/session.py``: 10 s to connect,
30 s to authenticate), done with a blocking socket on the caller's thread — the caller of
``subscribe`` waits for them there too. Nothing here logs or raises the key: it only goes
into the sha256 of the ``auth=`` line.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from multialpha.lsg import control

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
AUTH_TIMEOUT_S = 30.0
IO_TIMEOUT_S = 10.0  # a send after authentication; also the reader's recv wake-up
MAX_LINE = 64 * 1024  # a control line longer than this is not the gateway talking


class LiveError(Exception):
    """The gateway refused the session or the connection failed (the text says which)."""


@dataclass
class Opened:
    sock: socket.socket
    session_id: str | None
    leftover: bytes  # bytes read past the auth reply (the stream's start, if any)


class _Lines:
    """Control lines off a socket, keeping whatever follows the last one read."""

    def __init__(self, sock: socket.socket, where: str) -> None:
        self.sock = sock
        self.where = where
        self.buf = b""

    def next(self) -> dict[str, str]:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise LiveError(f"{self.where}: no control line in {len(self.buf)} bytes")
            try:
                got = self.sock.recv(4096)
            except socket.timeout:
                raise LiveError(f"Authentication with {self.where} timed out after {AUTH_TIMEOUT_S:g} second(s)") from None
            if not got:
                raise LiveError(f"{self.where} closed the connection during authentication")
            self.buf += got
        text, _, self.buf = self.buf.partition(b"\n")
        try:
            return control.parse(text + b"\n")
        except control.ControlError as e:
            raise LiveError(f"{self.where}: {e}") from None


def open_session(host: str, port: int, key: str, dataset: str, *, ts_out: bool = False,
                 heartbeat_interval_s: int | None = None) -> Opened:
    """Connect and authenticate; raises :class:`LiveError` (refused, timed out, bad key)."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    except socket.timeout:
        raise LiveError(f"Connection to {where} timed out after {CONNECT_TIMEOUT_S:g} second(s)") from None
    except OSError as e:
        raise LiveError(f"Connection to {where} failed: {e}") from None
    try:
        sock.settimeout(AUTH_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = _Lines(sock, where)
        msg = lines.next()
        if "lsg_version" in msg:  # the greeting; the challenge follows
            log.debug("gateway %s version %s", where, msg["lsg_version"])
            msg = lines.next()
        if "cram" not in msg:
            raise LiveError(f"{where}: expected a CRAM challenge, got fields {sorted(msg)}")
        sock.sendall(control.auth_request(msg["cram"], key, dataset, ts_out=ts_out,
                                          heartbeat_interval_s=heartbeat_interval_s))
        reply = lines.next()
        if "success" not in reply:
            raise LiveError(f"{where}: expected an authentication reply, got fields {sorted(reply)}")
        if reply["success"] == "0":
            raise LiveError(f"Authentication with {where} failed: {reply.get('error') or 'no reason given'}")
        # Sends (subscriptions, start) must not hang on a gateway that stopped reading; the reader
        # treats a recv timeout as "no data yet" (silence is the hub session's business).
        sock.settimeout(IO_TIMEOUT_S)
        return Opened(sock, reply.get("session_id"), lines.buf)
    except BaseException:
        sock.close()
        raise
