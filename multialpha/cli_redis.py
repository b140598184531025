"""`multialpha redis ...`: the deployment's Redis users (ACLs). Its own module, registered by cli.py."""

from __future__ import annotations

import os
from pathlib import Path

import click

from multialpha.cli_common import _ctx, config_error, config_option


@click.group("redis")
def redis_group() -> None:
    """The deployment's Redis: ACL users per role."""


@redis_group.command("acl")
@config_option
@click.option("--write", "write_to", type=click.Path(dir_okay=False), default=None,
              help="Write the ACL file here (mode 0600) instead of printing it.")
@click.pass_context
def acl(ctx: click.Context, config_path: str | None, write_to: str | None) -> None:
    """One ACL user per role (hub, worker.<strategy>, status, supervisor) for redis-server's
    ``aclfile`` (then ``ACL LOAD``). Passwords come from MULTIALPHA_REDIS_PASSWORD_<ROLE> and are
    written as SHA-256 only. A missing variable: exit 2 naming it."""
    from multialpha import redis_acl

    settings = _ctx(ctx, config_path).settings()
    try:
        text = redis_acl.acl_file(settings)
    except redis_acl.AclError as e:
        config_error(str(e))
    if write_to is None:
        click.echo(text, nl=False)
        return
    path = Path(write_to)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    users = ", ".join(redis_acl.username(settings, r) for r in redis_acl.roles(settings))
    click.echo(f"wrote {path} (users: {users}); load it with `aclfile {path.resolve()}` + ACL LOAD")
