"""A primary, its replicas (one by default) and three ``redis-sentinel`` processes on loopback: a Sentinel
deployment in miniature, for tests and benchmarks (``bench/redis_failover.py``).

Every node is a :class:`ManagedRedis` (loopback only, free ports); the sentinels are
``redis-sentinel`` (Debian's ``redis-sentinel`` package; ``redis-server --sentinel`` is the
same binary) with a config file of their own, because a sentinel rewrites its config as it
learns the topology. ``down_after_ms`` is short so a kill -9 of the primary fails over in a
few seconds instead of the production default's 30 s + election.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from multialpha.managed_redis import ManagedRedis, free_port


class ManagedSentinelGroup:
    def __init__(self, service: str = "multialpha", password: str = "", sentinels: int = 3,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000, replicas: int = 1) -> None:
        self.service = service
        self.password = password
        self.host = "127.0.0.1"
        self.workdir = Path(tempfile.mkdtemp(prefix="multialpha-sentinel-"))
        self.primary = ManagedRedis(self.host, password=password, workdir=self._dir("primary"),
                                    extra_args=self._auth_args())
        # With redis.wait_replicas: 1, one replica left after a failover is what keeps orders flowing.
        self.replicas = [ManagedRedis(self.host, password=password, workdir=self._dir(f"replica-{i}"),
                                      extra_args=(*self._auth_args(), "--replicaof", self.host, str(self.primary.port)))
                         for i in range(replicas)]
        self.replica = self.replicas[0]
        self.sentinel_ports = [free_port(self.host) for _ in range(sentinels)]
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinels: list[subprocess.Popen[bytes]] = []

    def _dir(self, name: str) -> Path:
        d = self.workdir / name
        d.mkdir()
        return d

    def _auth_args(self) -> tuple[str, ...]:
        # A replica promoted to primary must still let the old one (back as a replica) sync.
        return ("--masterauth", self.password) if self.password else ()

    @property
    def hosts(self) -> list[str]:
        return [f"{self.host}:{p}" for p in self.sentinel_ports]

    def start(self, timeout: float = 20.0) -> "ManagedSentinelGroup":
        binary = shutil.which("redis-sentinel")
        if not binary:
            raise RuntimeError("redis-sentinel not found on PATH (apt-get install redis-sentinel)")
        self.primary.start()
        for r in self.replicas:
            r.start()
        for port in self.sentinel_ports:
            conf = self._dir(f"sentinel-{port}") / "sentinel.conf"
            lines = [f"port {port}", f"bind {self.host}", f"dir {conf.parent}",
                     f"sentinel monitor {self.service} {self.host} {self.primary.port} 2",
                     f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                     f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
                     f"sentinel parallel-syncs {self.service} 1"]
            if self.password:
                lines.append(f"sentinel auth-pass {self.service} {self.password}")
            conf.touch(mode=0o600)  # it holds the data nodes' password
            conf.write_text("\n".join(lines) + "\n")
            self.sentinels.append(subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL))
        self.wait_ready(timeout)
        return self

    def sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(self.host, port, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)

    def wait_ready(self, timeout: float) -> None:
        """Every sentinel knows the primary, the replica and the other sentinels; the replica is in sync."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self._sees_all(p) for p in self.sentinel_ports) and self.replica_in_sync():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("sentinel group not ready")
            time.sleep(0.05)

    def _sees_all(self, port: int) -> bool:
        c = self.sentinel_client(port)
        try:
            m = c.sentinel_master(self.service)
            return int(m["num-slaves"]) >= len(self.replicas) and \
                int(m["num-other-sentinels"]) >= len(self.sentinel_ports) - 1
        finally:
            c.close()

    def replica_in_sync(self) -> bool:
        for r in self.replicas:
            c = r.client(decode_responses=True, socket_timeout=1)
            try:
                if c.info("replication").get("master_link_status") != "up":
                    return False
            finally:
                c.close()
        # and the primary's side of each link: its INFO says `state=online` only once the replica
        # has loaded the snapshot and acknowledged (the replica reports its link up a little sooner)
        c = self.primary.client(decode_responses=True, socket_timeout=1)
        try:
            info = c.info("replication")
        finally:
            c.close()
        states = [v.get("state") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return len(states) >= len(self.replicas) and all(st == "online" for st in states)

    def primary_port(self) -> int:
        """The primary's port according to the first sentinel that answers."""
        for p in self.sentinel_ports:
            try:
                c = self.sentinel_client(p)
                try:
                    return int(c.sentinel_get_master_addr_by_name(self.service)[1])
                finally:
                    c.close()
            except redis.RedisError:
                continue
        raise redis.ConnectionError("no sentinel answers")

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.sentinels:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for r in self.replicas:
            r.stop()
        self.primary.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ManagedSentinelGroup":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
