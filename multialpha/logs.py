"""Logging for every process, set up in one place.

Human-readable lines by default, one JSON object per line with
``--log-json``. Each line names its process (``hub``, ``worker.ibs_a``, …).
A filter redacts secrets — Databento keys, webhook URLs, passwords — from
every message and argument before any handler sees it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
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
    for name in ("databento", "urllib3", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
