"""Loading and validating `config.multi_alpha.yml` — the one place that does it.

Order of precedence, highest first:

1. ``MULTIALPHA__SECTION__KEY=value`` environment overrides (scalars only;
   keys match case-insensitively, so ``...__INSTRUMENTS__6A__SIZE`` works);
2. the YAML file, after ``${VAR}`` / ``${VAR:-default}`` expansion from the
   environment;
3. the defaults declared on the models in :mod:`multialpha.settings_model`.

The file is ``--config PATH``, else ``$MULTIALPHA_CONFIG``, else
``./config.multi_alpha.yml``. A ``.env`` beside the config file (and one in
the working directory) is loaded first; it never overrides a variable that is
already set.

Every problem raises :class:`ConfigError` carrying the file and the dotted key
path; the CLI turns that into exit code 2. Unknown keys are errors.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

# The section models, the environment checks and the `config check` summary live in their
# own modules; re-exported here because the rest of the code (and plugins) import them
# from multialpha.config.
from multialpha.config_env import live_webhook_problem, shared_ticker_conflict
from multialpha.config_summary import Summary, summarize
from multialpha.settings_base import _KeyedError
from multialpha.settings_model import (
    AlertsSettings,
    BacktestSettings,
    DatabentoSettings,
    HubSettings,
    MlVetoSettings,
    OrdersSettings,
    PortfolioSettings,
    ReportSettings,
    RiskSettings,
    SandboxSettings,
    Settings,
    SupervisorSettings,
    VerifySettings,
    WorkerSettings,
)
from multialpha.settings_redis import RedisSettings
from multialpha.settings_strategies import (
    InstrumentSpec,
    ReferenceFeed,
    RollSettings,
    StrategyInstrument,
    StrategySettings,
)

DEFAULT_CONFIG = "config.multi_alpha.yml"
ENV_CONFIG = "MULTIALPHA_CONFIG"
ENV_OVERRIDE_PREFIX = "MULTIALPHA__"

__all__ = [
    "DEFAULT_CONFIG", "ENV_CONFIG", "ENV_OVERRIDE_PREFIX", "ConfigError", "check_environment", "resolve_path",
    "load_dotenv_for", "load", "validate",
    # re-exported
    "AlertsSettings", "BacktestSettings", "DatabentoSettings", "HubSettings", "InstrumentSpec", "MlVetoSettings",
    "OrdersSettings", "PortfolioSettings", "RedisSettings", "ReferenceFeed", "ReportSettings", "RiskSettings",
    "RollSettings", "SandboxSettings", "Settings", "StrategyInstrument", "StrategySettings", "SupervisorSettings",
    "VerifySettings", "WorkerSettings", "live_webhook_problem", "shared_ticker_conflict", "Summary", "summarize",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class ConfigError(Exception):
    """A config problem, located by file and dotted key path."""

    def __init__(self, path: str | os.PathLike[str], key: str, message: str) -> None:
        self.path = str(path)
        self.key = key
        self.message = message
        super().__init__(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")


def check_environment(s: Settings, environ: Mapping[str, str], path: str | os.PathLike[str] = "<config>") -> None:
    """The checks that need the environment: webhooks shared by URL, live mode without a URL."""
    conflict = shared_ticker_conflict(s, environ)
    if conflict:
        raise ConfigError(path, *conflict)
    problem = live_webhook_problem(s, environ)
    if problem:
        raise ConfigError(path, "orders.mode", problem)


# -- loading ---------------------------------------------------------------------


def resolve_path(cli_path: str | os.PathLike[str] | None = None) -> Path:
    """--config, then $MULTIALPHA_CONFIG, then ./config.multi_alpha.yml."""
    if cli_path:
        return Path(cli_path)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return Path(DEFAULT_CONFIG)


def load_dotenv_for(path: Path) -> None:
    """Load .env beside the config and in the cwd; never override real env."""
    from dotenv import load_dotenv

    for candidate in (path.parent / ".env", Path.cwd() / ".env"):
        if candidate.is_file():
            load_dotenv(candidate, override=False)


def load(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, expand, override and validate a config file, then check it against ``environ``.

    ``environ`` (default: ``os.environ`` after the ``.env`` files) also decides the checks
    that need the environment: ``orders.mode: live`` needs every enabled strategy's webhook
    URL, and two variables holding one URL are one destination (see
    :func:`shared_ticker_conflict`).
    """
    p = resolve_path(path)
    if environ is None:
        load_dotenv_for(p)
        environ = dict(os.environ)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(p, "", f"cannot read config file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(p, "", f"config file is not UTF-8 text: byte {e.start}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(p, "", f"malformed YAML: {where}{problem}") from None
    except Exception as e:  # noqa: BLE001 - yaml's tag constructors raise anything (`!!int x`, `!!int ""`)
        raise ConfigError(p, "", f"malformed YAML: {type(e).__name__}: {e}"[:300]) from None
    if not isinstance(raw, dict):
        raise ConfigError(p, "", "top level must be a mapping")
    raw = _expand(raw, environ, p, "")
    _apply_overrides(raw, environ, p)
    settings = validate(raw, p)
    check_environment(settings, environ, p)
    return settings


def validate(raw: dict[str, Any], path: str | os.PathLike[str] = "<config>") -> Settings:
    try:
        return Settings.model_validate({**raw, "source_path": str(Path(path).resolve())})
    except ValidationError as e:
        err = e.errors()[0]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _KeyedError):
            raise ConfigError(path, ctx_err.key, ctx_err.message) from None
        key = ".".join(str(x) for x in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(err["loc"])
        elif "input" in err and err["type"] != "missing":
            msg = f"{msg} (got {err['input']!r})"
        raise ConfigError(path, key, msg) from None


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    import difflib

    known = _section_keys(loc)
    if not known:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    return f"; known keys: {', '.join(sorted(known))}"


def _section_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section holding ``loc[-1]`` accepts: walk the models along ``loc``; a dict
    section (strategies, instruments) consumes one more part for its key."""
    import typing

    model: Any = Settings
    parts = list(loc[:-1])
    i = 0
    while i < len(parts):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        fields = {(f.alias or n): f for n, f in model.model_fields.items()}
        f = fields.get(str(parts[i]))
        if f is None:
            return []
        ann = f.annotation
        if typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
            i += 1  # the dict key
        model = ann
        i += 1
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or n for n, f in model.model_fields.items() if n != "source_path"]


def _expand(node: Any, environ: Mapping[str, str], path: Path, key: str) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, environ, path, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, environ, path, f"{key}.{i}") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(path, key, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")

    expanded = _VAR.sub(sub, node)
    # A whole-value substitution is re-typed as YAML so "6390" becomes an int.
    if _VAR.fullmatch(node.strip()):
        return _scalar(expanded)
    return expanded


_BOOLS = {"true": True, "false": False}


def _scalar(text: str) -> Any:
    """Type an environment string: numbers and true/false; everything else stays text.

    Not plain YAML: YAML 1.1 would turn `off`, `no`, `on`, `yes` into booleans.
    """
    if text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def _apply_overrides(raw: dict[str, Any], environ: Mapping[str, str], path: Path) -> None:
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_OVERRIDE_PREFIX):
            continue
        parts = name[len(ENV_OVERRIDE_PREFIX):].split("__")
        node: Any = raw
        keys: list[str] = []
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                raise ConfigError(path, ".".join(keys), f"{name}: not a section, cannot override inside it")
            match = next((k for k in node if str(k).lower() == part.lower()), part.lower())
            keys.append(str(match))
            if i == len(parts) - 1:
                if isinstance(node.get(match), (dict, list)):
                    raise ConfigError(path, ".".join(keys), f"{name}: only scalar settings can be overridden")
                node[match] = _scalar(value)
            else:
                node = node.setdefault(match, {})
