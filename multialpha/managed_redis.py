"""A `redis-server` child bound to loopback: used by `up`, tests and benchmarks.

It refuses non-loopback addresses: a managed Redis holds trading state and is
never exposed. Persistence is opt-in: ``persist=True`` (what ``multialpha up``
uses) keeps an append-only file in ``workdir`` (``appendfsync everysec``), so a
kill -9 of redis-server plus a restart on the same ``workdir`` keeps the bar log
and the order journal. Throw-away servers (test fixtures, a backtest's private
Redis) stay without persistence: faster, and nothing is left on disk.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ManagedRedis:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        password: str = "",
        workdir: Path | None = None,
        persist: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"refusing to run a managed redis-server on non-loopback address {host!r}")
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server not found on PATH (apt-get install redis-server)")
        self.binary = binary
        self.host = host
        self.port = port or free_port(host)
        self.password = password
        if persist and workdir is None:
            raise ValueError("persist=True needs a workdir that outlives the server")
        self.persist = persist
        self.extra_args = extra_args  # e.g. --replicaof for a replica (managed_sentinel.py)
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="multialpha-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def client(self, **kwargs: object) -> "redis.Redis":
        return redis.Redis(host=self.host, port=self.port, password=self.password or None, **kwargs)

    def start(self, timeout: float | None = None) -> "ManagedRedis":
        # Loading a big append-only file (a week of bars, the order journal) takes a while; until
        # then PING answers LOADING. A throw-away server is up in milliseconds.
        timeout = timeout if timeout is not None else (120.0 if self.persist else 10.0)
        args = [
            self.binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",  # no RDB snapshots: the AOF (when persisting) is the durable copy
            *(("--appendonly", "yes", "--appendfsync", "everysec") if self.persist else ("--appendonly", "no")),
            "--dir", str(self.workdir),
            "--protected-mode", "yes",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        args += list(self.extra_args)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        client = self.client(socket_connect_timeout=0.2)
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if self.proc.poll() is not None:
                    err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {err.strip()}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"redis-server on {self.host}:{self.port} not ready after {timeout}s") from None
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ManagedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
