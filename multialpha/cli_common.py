"""What every `multialpha` subcommand module shares: the context object, ``--config`` and
the one-line ways out (config error: exit 2; Redis unreachable: exit 1).

Its own module so command modules (:mod:`multialpha.cli_orders`) can use it without
importing :mod:`multialpha.cli`, which registers them.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Iterator, NoReturn

import click

from multialpha import config as cfg

EXIT_CONFIG = 2


@dataclass
class Ctx:
    config_path: str | None
    log_json: bool

    def settings(self) -> cfg.Settings:
        """Load the config or exit 2 naming the file and key."""
        try:
            return cfg.load(self.config_path)
        except cfg.ConfigError as e:
            config_error(e)


def require_redis(settings: cfg.Settings, prefix: str, role: str | None = None) -> None:
    """Fail fast, in one line, when the configured Redis does not answer (no retries at start-up).
    ``role``: the ACL role this process connects as from now on (redis.acl); its password
    variable missing is a config error (exit 2)."""
    from multialpha import redis_acl
    from multialpha.supervisor.redis_setup import require

    if role is not None:
        redis_acl.set_role(role)
        try:
            redis_acl.credentials(settings)
        except redis_acl.AclError as e:
            config_error(f"redis.acl: {e}")
    problem = require(settings)
    if problem:
        click.echo(f"{prefix}: {problem} (is `multialpha up` running? `multialpha config check` shows the "
                   "address; MULTIALPHA__REDIS__HOST/PORT override it)", err=True)
        sys.exit(1)


def redis_failed(settings: cfg.Settings, prefix: str, e: BaseException) -> NoReturn:
    from multialpha.supervisor.redis_setup import unreachable_line

    click.echo(f"{prefix}: {unreachable_line(settings, e)}", err=True)
    sys.exit(1)


def config_error(e: cfg.ConfigError | str) -> NoReturn:
    """The one way out for a config problem, whichever command finds it: one line, exit 2."""
    click.echo(f"config error: {e}", err=True)
    sys.exit(EXIT_CONFIG)


@contextlib.contextmanager
def config_errors() -> Iterator[None]:
    """Around a command's work (worker, backtest, models train): a ConfigError raised anywhere in it
    (the strategy's params, a --resolution, ...) leaves through :func:`config_error`."""
    try:
        yield
    except cfg.ConfigError as e:
        config_error(e)


config_option = click.option(
    "--config",
    "config_path",
    envvar=cfg.ENV_CONFIG,
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Config file (default: ${cfg.ENV_CONFIG} or ./{cfg.DEFAULT_CONFIG}).",
)


def _ctx(ctx: click.Context, config_path: str | None) -> Ctx:
    """Subcommands accept --config too; theirs wins over the group's."""
    obj: Ctx = ctx.obj
    if config_path:
        obj.config_path = config_path
    return obj
