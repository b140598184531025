"""The hub's Live client decode path: multialpha.lsg.Live vs bare DBNDecoder vs databento.Live.

The same DBN bytes (sandbox trades of every hub root for ``--days`` trading days, as
bench/hub_throughput.py builds them) go three ways, each record handed to the same
callback (a deque append, what the hub session's callback does):

- floor:  ``DBNDecoder.write_and_decode`` over 64 KiB chunks of the bytes, in process;
- lsg:    a loopback gateway (greeting, CRAM, auth reply, then the bytes and a close)
          -> ``multialpha.lsg.Live`` (socket, decoder, dispatch on its reader thread);
- official: the same gateway -> ``databento.Live`` (asyncio protocol, the same decoder).

Prints records/s and process CPU per record of each, and each client's ratio to the floor.
Best of ``--repeat`` runs each, interleaved.

    .venv/bin/python bench/lsg_decode.py [--days 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections import deque
from datetime import date
from pathlib import Path
from typing import Any, Callable

from databento_dbn import DBNDecoder, Metadata, VersionUpgradePolicy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hub_throughput import build_dbn  # noqa: E402  (bench/ is sys.path[0])

from multialpha import config as cfg  # noqa: E402
from multialpha.lsg import Live  # noqa: E402

KEY = "db-" + "b" * 24 + "bench"
CHUNK = 64 * 1024


def serve_once(data: bytes) -> tuple[int, threading.Thread]:
    """A loopback Live gateway for one connection: handshake, then ``data``, then close."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def run() -> None:
        conn, _ = srv.accept()
        srv.close()
        with conn:
            conn.sendall(b"lsg_version=bench\ncram=challenge\n")
            f = conn.makefile("rb")
            f.readline()  # auth=...
            conn.sendall(b"success=1|session_id=1\n")
            while not f.readline().startswith(b"start_session"):
                pass
            conn.sendall(data)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t


def floor(data: bytes, sink: Callable[[Any], None]) -> None:
    dec = DBNDecoder(upgrade_policy=VersionUpgradePolicy.UPGRADE_TO_V3)
    for i in range(0, len(data), CHUNK):
        for rec in dec.write_and_decode(data[i:i + CHUNK]):
            if type(rec) is not Metadata:  # the header is no record (the clients keep it aside too)
                sink(rec)


def through(client_factory: Callable[[int], Any], data: bytes, sink: Callable[[Any], None]) -> None:
    port, server = serve_once(data)
    client = client_factory(port)
    client.add_callback(sink)
    client.subscribe("GLBX.MDP3", "trades", ["ES.FUT"], "parent")
    client.start()
    try:
        client.block_for_close(timeout=600)
    except Exception:  # noqa: BLE001 - a clean close is all we wait for
        pass
    server.join(5)


def official(port: int) -> Any:
    import databento

    return databento.Live(key=KEY, gateway="127.0.0.1", port=port)


def timed(fn: Callable[[Callable[[Any], None]], Any]) -> tuple[int, float, float]:
    got: deque[Any] = deque()
    w, c = time.perf_counter(), time.process_time()
    fn(got.append)
    return len(got), time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    settings = cfg.load(REPO / "config.multi_alpha.yml", environ={})
    data, n = build_dbn(settings, settings.hub_symbols(), date(2025, 12, 1), a.days)
    ways: dict[str, Callable[[Callable[[Any], None]], Any]] = {
        "floor: DBNDecoder over the same bytes": lambda sink: floor(data, sink),
        "multialpha.lsg.Live (loopback gateway)": lambda sink: through(
            lambda p: Live(KEY, gateway="127.0.0.1", port=p), data, sink),
        "databento.Live (loopback gateway)": lambda sink: through(official, data, sink),
    }
    best: dict[str, tuple[int, float, float]] = {}
    for _ in range(a.repeat):
        for name, fn in ways.items():
            got = timed(fn)
            if name not in best or got[1] < best[name][1]:
                best[name] = got
    print(f"{n:,} trades + mappings, {len(data) / 1e6:.1f} MB of DBN; best of {a.repeat}")
    base = best["floor: DBNDecoder over the same bytes"]
    print(f"{'path':<42} {'records':>10} {'rec/s':>12} {'CPU us/rec':>11} {'x floor':>8}")
    for name, (count, wall, cpu) in best.items():
        print(f"{name:<42} {count:>10,} {count / wall:>12,.0f} {cpu / max(count, 1) * 1e6:>11.3f} "
              f"{(count / wall) / (base[0] / base[1]):>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
