"""redis_conn.connect against a real redis-server, and against a loopback socket that counts connections."""

from __future__ import annotations

import socket
import threading
from typing import Any, Iterator

import pytest
import redis

from multialpha import logs
from multialpha.redis_conn import close_quietly, connect


@pytest.fixture
def slammer() -> Iterator[tuple[int, list[int]]]:
    """A loopback port that accepts each connection and closes it at once: every attempt is counted."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    srv.close()
    t.join(2)


def test_the_configured_server_with_the_callers_options(settings_for: Any, redis_client: Any) -> None:
    settings = settings_for()
    c = connect(settings, timeout=2.0, connect_timeout=1.0, retries=0, decode_responses=True)
    redis_client.set("probe", "x")
    assert c.get("probe") == "x"  # same host, port and db as the settings say
    kw = c.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"]) == (settings.redis.host, settings.redis.port, settings.redis.db)
    assert kw["socket_timeout"] == 2.0 and kw["socket_connect_timeout"] == 1.0
    default = connect(settings).connection_pool.connection_kwargs  # None keeps redis-py's defaults
    plain = redis.Redis().connection_pool.connection_kwargs
    assert default["socket_timeout"] == plain["socket_timeout"] != 2.0
    assert default["retry"].get_retries() == plain["retry"].get_retries() > 0
    c.close()


@pytest.mark.parametrize("retries", [0, 2])
def test_retries_are_what_the_caller_asked(settings_for: Any, slammer: tuple[int, list[int]], retries: int) -> None:
    port, accepted = slammer
    c = connect(settings_for(MULTIALPHA__REDIS__PORT=str(port)), timeout=2.0, connect_timeout=1.0, retries=retries)
    with pytest.raises(redis.ConnectionError):
        c.ping()
    assert len(accepted) == 1 + retries  # one try, then exactly the retries asked for
    c.close()


def test_the_password_is_redacted_from_then_on(settings_for: Any) -> None:
    secret = "pw-for-redaction-test-7c1f"
    assert secret in logs.redact(f"auth {secret}")
    connect(settings_for(MULTIALPHA__REDIS__PASSWORD=secret)).close()
    assert logs.redact(f"auth {secret}") == "auth ***"


def test_close_quietly_closes_each_even_after_a_failure() -> None:
    closed: list[str] = []

    def broken() -> None:
        closed.append("broken")
        raise redis.ConnectionError("already dead")

    close_quietly(broken, None, lambda: closed.append("client"))
    assert closed == ["broken", "client"]


def _sentinel_settings(settings: Any, group: Any, **redis_fields: Any) -> Any:
    from multialpha.settings_redis import SentinelSettings

    sentinel = SentinelSettings(hosts=group.hosts, service=group.service)
    r = settings.redis.model_copy(update={"sentinel": sentinel, "password": group.password, "port": 1, **redis_fields})
    return settings.model_copy(update={"redis": r})


def test_sentinel_clients_follow_a_failover_scripts_and_subscriptions_included(settings_for: Any) -> None:
    """kill -9 of the primary: the same client object writes to the promoted replica, a registered
    Lua script runs there (NOSCRIPT -> SCRIPT LOAD), and a subscription is re-established on it."""
    from multialpha.managed_sentinel import ManagedSentinelGroup
    from multialpha.redis_conn import primary_address

    with ManagedSentinelGroup(password="pw-sentinel-test") as group:
        settings = _sentinel_settings(settings_for(), group)
        c = connect(settings, timeout=1.0, connect_timeout=0.5, retries=0, decode_responses=True)
        assert primary_address(settings) == ("127.0.0.1", group.primary.port)
        script = c.register_script("return redis.call('INCR', KEYS[1])")
        assert script(keys=["n"]) == 1
        ps = c.pubsub(ignore_subscribe_messages=True)
        ps.subscribe("chan")
        assert ps.get_message(timeout=1.0) is None  # the confirmation, swallowed
        old = group.primary.port
        assert group.primary.proc is not None
        group.primary.proc.kill()
        group.primary.proc.wait()

        def retry(call: Any, what: str) -> Any:
            # The callers' own retry loops, condensed: the failover takes the sentinels a few seconds.
            last: Exception | None = None
            for _ in range(400):
                try:
                    return call()
                except redis.ConnectionError as e:  # includes MasterNotFoundError
                    last = e
                    threading.Event().wait(0.05)
            raise AssertionError(f"{what}: no failover ({last!r})")

        retry(lambda: c.set("after", "1"), "write")
        assert primary_address(settings) == ("127.0.0.1", group.replica.port) != ("127.0.0.1", old)
        assert c.info("replication")["role"] == "master"
        # The promoted replica has the data but not the script cache: Script reloads it.
        assert c.script_exists(script.sha) == [False]
        assert script(keys=["n"]) == 2
        got: list[Any] = []

        def listen() -> bool:
            msg = ps.get_message(timeout=0.2)  # reconnects and re-subscribes on the new primary
            c.publish("chan", "hello")
            msg = msg or ps.get_message(timeout=0.5)
            if msg and msg["type"] == "message":
                got.append(msg["data"])
            return bool(got)

        for _ in range(100):
            try:
                if listen():
                    break
            except redis.ConnectionError:
                pass
        assert got == ["hello"]
        ps.close()
        c.close()


def _pki(d: Any) -> dict[str, Any]:
    """A throw-away CA that signs a loopback server certificate and a client certificate."""
    import ipaddress
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test redis CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
          .not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256()))
    out = {"ca": d / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(ca_key, hashes.SHA256()))
        out[name] = d / f"{name}.pem"
        out[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{name}_key"] = d / f"{name}.key"
        out[f"{name}_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return out


def test_tls_with_a_ca_bundle_and_a_client_certificate(settings_for: Any, tmp_path: Any) -> None:
    """rediss:// on loopback: a redis-server that speaks only TLS and requires a client certificate."""
    from multialpha.managed_redis import ManagedRedis, free_port

    pki = _pki(tmp_path)
    port = free_port()
    server = ManagedRedis(port=free_port(), extra_args=(
        "--tls-port", str(port), "--tls-cert-file", str(pki["server"]), "--tls-key-file", str(pki["server_key"]),
        "--tls-ca-cert-file", str(pki["ca"]), "--tls-auth-clients", "yes"))
    with server:  # its plain port stays for the start-up probe; the clients below use the TLS port
        env = {"MULTIALPHA__REDIS__PORT": str(port), "MULTIALPHA__REDIS__TLS": "true",
               "MULTIALPHA__REDIS__TLS_CA": str(pki["ca"])}
        ok = settings_for(**env, MULTIALPHA__REDIS__TLS_CERT=str(pki["client"]),
                          MULTIALPHA__REDIS__TLS_KEY=str(pki["client_key"]))
        c = connect(ok, timeout=2.0, retries=0, decode_responses=True)
        assert c.set("over", "tls") and c.get("over") == "tls"
        assert c.connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"
        c.close()
        no_cert = connect(settings_for(**env), timeout=2.0, retries=0)
        with pytest.raises(redis.ConnectionError):
            no_cert.ping()  # the server requires a client certificate
        no_cert.close()
        system_cas = connect(settings_for(**{**env, "MULTIALPHA__REDIS__TLS_CA": ""},
                                          MULTIALPHA__REDIS__TLS_CERT=str(pki["client"]),
                                          MULTIALPHA__REDIS__TLS_KEY=str(pki["client_key"])), timeout=2.0, retries=0)
        with pytest.raises(redis.ConnectionError, match="(?i)certificate"):
            system_cas.ping()  # our CA is not a system CA: verification is never skipped
        system_cas.close()


def test_tls_settings_are_checked(settings_for: Any) -> None:
    from multialpha import config as cfg

    with pytest.raises(cfg.ConfigError) as e:
        settings_for(MULTIALPHA__REDIS__TLS="true", MULTIALPHA__REDIS__TLS_CERT="client.pem")
    assert e.value.key == "redis.tls_key"
    with pytest.raises(cfg.ConfigError) as e:
        settings_for(MULTIALPHA__REDIS__TLS_CA="ca.pem")
    assert e.value.key == "redis.tls"
