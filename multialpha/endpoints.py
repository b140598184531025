"""How the hub and workers find Databento: the real service, or the sandbox.

``resolve(settings)`` follows ``databento.*`` in the config: with
``live_gateway: auto`` / ``historical_gateway: auto`` an API key means the
real Databento gateways, no key means the running sandbox found through its
state file (``multialpha sandbox`` or ``multialpha up`` writes it). Explicit
gateway settings always win.

The hub's Live client is :class:`multialpha.lsg.Live` (``lsg_client``: the official
client's protocol without importing ``databento``, docs/hub.md) and the lean bars client is
``worker/histclient.py`` (``bars_client``); ``live_client`` and ``historical_client`` build the
unmodified ``databento`` ones (the sandbox's own tests, benches). For the sandbox, the
official Historical client must trust the sandbox CA: ``requests`` honours
``REQUESTS_CA_BUNDLE``, so ``historical_client`` points it at a bundle of
certifi's public roots *plus* the sandbox CA — verification stays on, and
public HTTPS (e.g. TradersPost) keeps working in the same process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multialpha import cme_time, runtime
from multialpha.config import Settings
from multialpha.sandbox.state import SandboxState

if TYPE_CHECKING:  # pragma: no cover
    import databento

    from multialpha.lsg import Live
    from multialpha.worker.histclient import HistoricalClient

REAL_LIVE_PORT = 13000
CA_ENV = "REQUESTS_CA_BUNDLE"


class EndpointError(Exception):
    """Databento cannot be reached with this configuration (message says what to do)."""


@dataclass(frozen=True)
class Endpoints:
    api_key: str
    dataset: str
    live_gateway: str  # host for databento.Live(gateway=)
    live_port: int
    historical_gateway: str  # URL for databento.Historical(gateway=)
    ca_path: str | None
    sandbox: SandboxState | None
    state_file: str | None = None  # re-read by now(): the sandbox clock may be moved

    @property
    def is_sandbox(self) -> bool:
        return self.sandbox is not None

    def __repr__(self) -> str:  # never print the key
        return (
            f"Endpoints(dataset={self.dataset!r}, live={self.live_gateway}:{self.live_port}, "
            f"historical={self.historical_gateway!r}, sandbox={self.is_sandbox})"
        )


def from_state(state: SandboxState, state_file: Path | None = None) -> Endpoints:
    return Endpoints(
        api_key=state.api_key,
        dataset=state.dataset,
        live_gateway=state.host,
        live_port=state.live_port,
        historical_gateway=state.historical_url,
        ca_path=state.ca_path,
        sandbox=state,
        state_file=str(state_file) if state_file else None,
    )


def resolve(settings: Settings, state_file: Path | None = None) -> Endpoints:
    db = settings.databento
    if db.api_key:
        live_port = REAL_LIVE_PORT if db.live_port == "auto" else int(db.live_port)
        return Endpoints(
            api_key=db.api_key,
            dataset=db.dataset,
            live_gateway=default_live_gateway(db.dataset) if db.live_gateway == "auto" else db.live_gateway,
            live_port=live_port,
            historical_gateway="https://hist.databento.com" if db.historical_gateway == "auto" else db.historical_gateway,
            ca_path=None,
            sandbox=None,
        )
    path = Path(state_file) if state_file else runtime.sandbox_state_path(settings)
    state = SandboxState.read(path)
    if state is None:
        raise EndpointError(
            f"no DATABENTO_API_KEY and no sandbox running (state file {path} missing or unreadable): "
            "run `multialpha sandbox` or `multialpha up`"
        )
    if state.pid and not _alive(state.pid):
        raise EndpointError(
            f"the sandbox in {path} (pid {state.pid}) is not running any more: "
            "run `multialpha sandbox` or `multialpha up`"
        )
    ep = from_state(state)
    # explicit settings still override the sandbox's addresses
    return Endpoints(
        api_key=ep.api_key,
        dataset=ep.dataset,
        live_gateway=ep.live_gateway if db.live_gateway == "auto" else db.live_gateway,
        live_port=ep.live_port if db.live_port == "auto" else int(db.live_port),
        historical_gateway=ep.historical_gateway if db.historical_gateway == "auto" else db.historical_gateway,
        ca_path=ep.ca_path,
        sandbox=state,
        state_file=str(path),
    )


def default_live_gateway(dataset: str) -> str:
    """The host databento.Live picks itself for a dataset (databento/live/session.py)."""
    from multialpha.lsg.client import default_gateway

    return default_gateway(dataset)


def running_sandbox(path: Path) -> bool:
    """A readable sandbox state file whose process is alive (a killed sandbox leaves its file)."""
    state = SandboxState.read(path)
    return state is not None and (not state.pid or _alive(state.pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_client(ep: Endpoints, **kwargs: Any) -> "databento.Live":
    import databento

    kwargs.setdefault("gateway", ep.live_gateway)
    kwargs.setdefault("port", ep.live_port)
    return databento.Live(key=ep.api_key, **kwargs)


def lsg_client(ep: Endpoints, heartbeat_interval_s: int | None = None) -> "Live":
    """The hub's lean Live client (multialpha/lsg): same gateway, port and key as ``live_client``."""
    from multialpha.lsg import Live

    return Live(ep.api_key, gateway=ep.live_gateway, port=ep.live_port, heartbeat_interval_s=heartbeat_interval_s)


def trust_sandbox_ca(ep: Endpoints) -> str | None:
    """Point requests at certifi's roots + the sandbox CA; returns the bundle path."""
    if not ep.ca_path:
        return None
    import certifi

    ca = Path(ep.ca_path)
    bundle = ca.with_name("ca-bundle.pem")
    content = Path(certifi.where()).read_text() + "\n# multialpha sandbox CA\n" + ca.read_text()
    if not bundle.exists() or bundle.read_text() != content:
        tmp = bundle.with_name(f".{bundle.name}.{os.getpid()}")
        tmp.write_text(content)
        os.replace(tmp, bundle)
    os.environ[CA_ENV] = str(bundle)
    return str(bundle)


def historical_client(ep: Endpoints) -> "databento.Historical":
    import databento

    trust_sandbox_ca(ep)
    return databento.Historical(key=ep.api_key, gateway=ep.historical_gateway)


def bars_client(ep: Endpoints) -> "HistoricalClient":
    """The lean OHLCV client (worker/histclient.py): no pandas/pyarrow, trusts the sandbox CA directly."""
    from multialpha.worker.histclient import HistoricalClient

    return HistoricalClient(ep.api_key, ep.historical_gateway, ca_path=ep.ca_path)


def now(ep: Endpoints) -> datetime:
    """The sandbox clock on the sandbox, real UTC otherwise."""
    if ep.sandbox is not None:
        fresh = SandboxState.read(ep.state_file) if ep.state_file else None
        return (fresh or ep.sandbox).now()
    return cme_time.utcnow()
