"""The Live gateway's control lines: parsing, the CRAM answer, the requests the client sends.

Each line is ``key=value`` pairs joined by ``|`` and ended by ``\\n``, exactly as
databento-python builds them (``databento/live/gateway.py``: a dataclass's fields in
declaration order, ``None`` fields left out) and answers the challenge
(``databento/common/cram.py``). Field order matters only for byte-for-byte equality with
the official client; a gateway reads the pairs by name.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Iterable

from multialpha import __version__

BUCKET_ID_LENGTH = 5  # the key's last characters name its bucket (cram.BUCKET_ID_LENGTH)
SYMBOL_BATCH = 500  # symbols per subscription line (protocol.SYMBOL_LIST_BATCH_SIZE)
CLIENT = f"multialpha-lsg/{__version__} Python/{sys.version_info.major}.{sys.version_info.minor}"


class ControlError(ValueError):
    """A line from the gateway that is not a control message."""


def parse(line: bytes) -> dict[str, str]:
    """``a=1|b=2\\n`` -> ``{"a": "1", "b": "2"}``."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ControlError(f"gateway sent a non-UTF-8 control line ({len(line)} bytes)") from None
    if not text.endswith("\n"):
        raise ControlError(f"control line {text[:80]!r} does not end with a newline")
    out: dict[str, str] = {}
    for token in text.strip().split("|"):
        key, eq, value = token.partition("=")
        if not eq:
            raise ControlError(f"control line {text.strip()[:80]!r} is not key=value pairs")
        out[key] = value
    return out


def line(**fields: object) -> bytes:
    """``line(a=1, b=None, c="x")`` -> ``b"a=1|c=x\\n"`` (None left out, as the official client does)."""
    return ("|".join(f"{k}={v}" for k, v in fields.items() if v is not None) + "\n").encode()


def cram_response(challenge: str, key: str) -> str:
    """``sha256("{challenge}|{key}")`` in hex, a dash, then the key's bucket id."""
    return f"{hashlib.sha256(f'{challenge}|{key}'.encode()).hexdigest()}-{key[-BUCKET_ID_LENGTH:]}"


def auth_request(challenge: str, key: str, dataset: str, *, ts_out: bool = False,
                 heartbeat_interval_s: int | None = None) -> bytes:
    """The answer to ``cram=``: authentication plus the session's options (DBN, uncompressed)."""
    return line(auth=cram_response(challenge, key), dataset=dataset, encoding="dbn", ts_out=int(ts_out),
                compression="none", heartbeat_interval_s=heartbeat_interval_s, client=CLIENT)


def subscription_requests(schema: str, stype_in: str, symbols: Iterable[str], start: int | None,
                          sub_id: int) -> list[bytes]:
    """One subscription as lines of at most :data:`SYMBOL_BATCH` symbols; the last says ``is_last=1``."""
    syms = list(symbols)
    if not syms:
        raise ValueError("a subscription needs at least one symbol")
    chunks = [syms[i:i + SYMBOL_BATCH] for i in range(0, len(syms), SYMBOL_BATCH)]
    return [
        line(schema=schema, stype_in=stype_in, symbols=",".join(chunk), start=start, snapshot=0, id=sub_id,
             is_last=int(i == len(chunks) - 1))
        for i, chunk in enumerate(chunks)
    ]


def session_start() -> bytes:
    return line(start_session=0)
