"""How fast the sandbox live gateway streams trades to one databento.Live client.

Unlimited speed (speed 0: as fast as the client reads), parent ES.FUT + NQ.FUT.
Baseline measured in the same run: the client's own DBN decoder
(databento_dbn.DBNDecoder, as databento.live uses it) decoding the very bytes
the session received, from memory — the ceiling any gateway could reach.

    .venv/bin/python bench/sandbox_replay.py [--trades 400000]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import databento_dbn as dbn

from multialpha import endpoints
from multialpha.sandbox.state import SandboxState

REPO = Path(__file__).resolve().parents[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, default=400_000)
    ap.add_argument("--symbols", default="ES.FUT,NQ.FUT")
    args = ap.parse_args()

    run = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
    state_file = run / "sandbox.json"
    # The gateway runs in its own process (as under `multialpha up`), so it
    # does not share this process's GIL with the client.
    proc = subprocess.Popen(
        [sys.executable, "-m", "multialpha", "--config", str(REPO / "config.multi_alpha.yml"), "sandbox",
         "--speed", "0", "--days", "5", "--state-file", str(state_file)],
        env={**os.environ, "MULTIALPHA_RUNTIME_DIR": str(run)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (st := SandboxState.read(state_file)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert st is not None, "sandbox did not start"
        ep = endpoints.from_state(st)

        buf = io.BytesIO()
        done = threading.Event()
        count = [0]

        def on_record(rec: object) -> None:
            if isinstance(rec, dbn.TradeMsg):
                count[0] += 1
                if count[0] >= args.trades:
                    done.set()

        client = endpoints.live_client(ep)
        client.add_stream(buf)
        client.add_callback(on_record)
        client.subscribe(ep.dataset, "trades", symbols=args.symbols.split(","), stype_in="parent")
        t0 = time.perf_counter()
        client.start()
        done.wait(300)
        live_s = time.perf_counter() - t0
        client.terminate()
        live_n = count[0]
        gw_cpu = _cpu_seconds(proc.pid)
        client_cpu = time.process_time()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    data = buf.getvalue()
    t0 = time.perf_counter()
    dec = dbn.DBNDecoder()
    dec.write(data)
    recs = dec.decode()
    decode_s = time.perf_counter() - t0
    decoded_trades = sum(1 for r in recs if isinstance(r, dbn.TradeMsg))
    # the same decode plus the per-record Python work the client does for a callback
    count[0], done_cb = 0, time.perf_counter()
    dec = dbn.DBNDecoder()
    dec.write(data)
    for r in dec.decode():
        bytes(r)  # the client serialises every record for its streams
        on_record(r)
    callback_s = time.perf_counter() - done_cb

    live_rate = live_n / live_s
    dec_rate = decoded_trades / decode_s
    print(f"{'measure':<48} {'trades':>10} {'seconds':>9} {'trades/s':>12}")
    print(f"{'sandbox live -> databento.Live (callback count)':<48} {live_n:>10,} {live_s:>9.3f} {live_rate:>12,.0f}")
    print(f"{'client decoder, same bytes from memory':<48} {decoded_trades:>10,} {decode_s:>9.3f} {dec_rate:>12,.0f}")
    cb_rate = decoded_trades / callback_s
    print(f"{'client decoder + bytes() + callback, from memory':<48} {decoded_trades:>10,} {callback_s:>9.3f} {cb_rate:>12,.0f}")
    print(f"cpu seconds during the run: gateway process {gw_cpu:.2f} (incl. start-up and day generation), "
          f"client process {client_cpu:.2f} (incl. imports)")
    print(f"ratio live/decode: {live_rate / dec_rate:.3f}   live/(decode+callback): {live_rate / cb_rate:.3f}   "
          f"({len(data) / 1e6:.1f} MB of DBN)")


if __name__ == "__main__":
    main()
