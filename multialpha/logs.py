"""Logging for every process, set up in one place.

Human-readable lines by default, one JSON object per line with
``--log-json``. Each line names its process (``hub``, ``worker.ibs_a``, …).
A filter redacts secrets — Databento keys, webhook URLs, passwords — from
every message and argument before any handler sees it.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
import time

_PATTERNS = [
    # Databento API keys: db- followed by 29 alphanumerics.
    re.compile(r"db-[A-Za-z0-9]{29}"),
    # Any webhook URL path after /webhook/ (TradersPost puts uuid/password there).
    re.compile(r"(?<=/webhook/)[^\s\"'<>]+"),
    # user:password@ in URLs (redis://:pw@host, https://u:pw@host).
    re.compile(r"(?<=://)[^/\s:@]*:[^/\s@]+(?=@)"),
]

_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this exact value everywhere from now on (e.g. a Redis password)."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def redact(text: str) -> str:
    for secret in _extra_secrets:
        text = text.replace(secret, "***")
    for pattern in _PATTERNS:
        text = pattern.sub("***", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = redact(message)
        record.msg, record.args = clean, ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "process": _process_name,
            "pid": record.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc)


_process_name = "multialpha"


def setup(process: str, json_lines: bool = False, level: str | int | None = None) -> None:
    """Configure the root logger for this process. Idempotent."""
    global _process_name
    _process_name = process
    level = level or os.environ.get("MULTIALPHA_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        fmt = f"%(asctime)s.%(msecs)03dZ %(levelname)-7s {process}[%(process)d] %(name)s: %(message)s"
        formatter = logging.Formatter(fmt, "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty libraries stay quiet unless asked.
    for name in ("databento", "urllib3", "asyncio", "apprise"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


# -- log files that cannot be written (disk full, read-only, gone) ----------------------------------
#
# logging's default Handler.handleError prints a traceback to stderr for EVERY record that fails:
# with a full disk that is a traceback per log line, forever (on the stderr the supervisor's
# console and `up --detach`'s console log share). A trading process must keep trading and say so
# once: the first failure of a file prints one line, later ones are only counted, and the first
# success after an outage says how many lines were lost. ``write_failures()`` feeds the
# supervisor's heartbeat and events (what `multialpha status` shows).

_write_lock = threading.Lock()
_write_state: dict[str, dict[str, object]] = {}


def _stderr_line(text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        sys.stderr.write(f"{stamp} WARNING {_process_name}[{os.getpid()}] multialpha.logs: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr is gone or full too: the counter in write_failures() still tells


def write_failures() -> dict[str, dict[str, object]]:
    """Per log file path: ``{"failing": bool, "lost": int, "error": str, "since": iso}`` (copies)."""
    with _write_lock:
        return {path: dict(doc) for path, doc in _write_state.items()}


class ReportingRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler that survives an unwritable file: one stderr line, then counts."""

    _failed_now = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)  # on failure it calls handleError below (and never raises)
        if not self._failed_now:
            self._recovered()

    def _recovered(self) -> None:
        with _write_lock:
            doc = _write_state.get(self.baseFilename)
            if not doc or not doc["failing"]:
                return
            doc["failing"] = False
            lost = doc["lost"]
        _stderr_line(f"log file {self.baseFilename} is writable again; {lost} line(s) were lost")

    def handleError(self, record: logging.LogRecord) -> None:
        err = sys.exc_info()[1]
        self._failed_now = True
        # Drop the stream: bytes stuck in its buffer would be retried (and fail) on every write.
        stream, self.stream = self.stream, None  # type: ignore[assignment]
        if stream is not None:
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        with _write_lock:
            doc = _write_state.setdefault(self.baseFilename, {"failing": False, "lost": 0, "error": "", "since": ""})
            doc["lost"] = int(doc["lost"]) + 1  # type: ignore[call-overload]
            first = not doc["failing"]
            if first:
                doc["failing"] = True
                doc["error"] = redact(f"{type(err).__name__}: {err}") if err else "unknown error"
                doc["since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if first:
            _stderr_line(f"cannot write log file {self.baseFilename} ({doc['error']}); this process keeps "
                         "running, further lines to that file are dropped and counted")
