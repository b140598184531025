"""The HTTPS server of the sandbox Historical gateway: routing, HTTP Basic auth, JSON errors.

Separate from historical.py so that the service answering a request (DBN bytes
from the synthetic market, unit-testable without sockets) stays apart from the
transport: the TLS ``ThreadingHTTPServer``, the per-path dispatch (including the
cross-process control endpoints ``/v0/sandbox.*``), fault injection of the
gateway, zstd compression and the ``X-Warning`` header.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from multialpha.sandbox import heap
from multialpha.sandbox.faults import Faults
from multialpha.sandbox.historical import HistoricalService
from multialpha.sandbox.historical_request import ApiError, parse_request
from multialpha.sandbox.state import SandboxState

log = logging.getLogger(__name__)


class HistoricalServer:
    def __init__(
        self,
        service: HistoricalService,
        state: Callable[[], SandboxState],
        keys: Callable[[], set[str]],
        faults: Faults,
        cert_path: Path,
        key_path: Path,
        control: Callable[[str, dict[str, str]], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        handler = type("Handler", (_Handler,), {"gw": self})
        self.service = service
        self.state = state
        self.keys = keys
        self.faults = faults
        self.control = control
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert_path), str(key_path))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self.requests = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sandbox-historical", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    gw: HistoricalServer
    protocol_version = "HTTP/1.1"
    server_version = "multialpha-sandbox-historical"

    def log_message(self, format: str, *args: Any) -> None:  # quiet; our logger instead
        log.debug("historical %s", format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self.gw.requests += 1
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            self._authenticate()
            path = urlsplit(self.path).path
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
            form.update({k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()})
            if path == "/v0/sandbox.state" and method == "GET":
                self._json(200, {**self.gw.state().to_dict(), "faults": self.gw.faults.snapshot()})
            elif path in ("/v0/sandbox.fault", "/v0/sandbox.clock") and method == "POST":
                self._json(200, self.gw.control(path.rsplit(".", 1)[1], form))
            elif path == "/v0/metadata.get_dataset_range" and method == "GET":
                self._json(200, self.gw.service.dataset_range(form.get("dataset", ""), self.gw.state().now_ns()))
            elif path == "/v0/symbology.resolve" and method == "POST":
                self._json(200, self.gw.service.resolve(form))
            elif path == "/v0/timeseries.get_range" and method == "POST":
                if self.gw.faults.hist_status:
                    raise ApiError(self.gw.faults.hist_status, "sandbox fault: historical gateway unavailable")
                self._get_range(form)
            else:
                raise ApiError(404, f"{method} {path}: not found (the sandbox serves POST /v0/timeseries.get_range)")
        except ApiError as e:
            self._json(e.status, {"detail": e.detail})
        except ValueError as e:
            self._json(422, {"detail": str(e)})
        except Exception as e:  # a sandbox bug: answer like a real server would
            log.exception("historical request failed")
            self._json(500, {"detail": f"internal error: {type(e).__name__}"})

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            raise ApiError(401, "Authentication failed: missing HTTP Basic credentials (API key as username).")
        try:
            user = base64.b64decode(header[6:]).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            raise ApiError(401, "Authentication failed: malformed credentials.") from None
        if user not in self.gw.keys():
            raise ApiError(401, "Authentication failed.")

    def _get_range(self, form: dict[str, str]) -> None:
        req = parse_request(form, self.gw.service.dataset)
        data, warnings = self.gw.service.get_range(req, self.gw.state().now_ns())
        if req.compression == "zstd" and data[:4] != b"\x28\xb5\x2f\xfd":
            import zstandard

            data = zstandard.ZstdCompressor(level=3).compress(data)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        if warnings:
            self.send_header("X-Warning", json.dumps(warnings))
        self.end_headers()
        self.wfile.write(data)
        del data
        heap.trim()  # the answer's temporaries were MBs in this thread's arena (sandbox/heap.py)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
