"""Which plugin version each running worker runs, beside the one installed now.

A worker loads its strategy's plugin once, at start, and reports it in its heartbeat
(``plugin``: name, distribution, version). After ``pip install -U <plugin>`` the disk
holds a newer version than the running workers: `multialpha plugins` and `status` say
so, and `multialpha restart <strategy>` runs the new one.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from multialpha import plugins


def row(component: str, beat: Mapping[str, Any],
        installed: Callable[[str], str | None] = plugins.installed_version) -> dict[str, Any] | None:
    """One worker's plugin facts, or None when its heartbeat names no plugin (an older worker)."""
    p = beat.get("plugin")
    if not isinstance(p, dict) or not p.get("name"):
        return None
    running = str(p.get("version") or "?")
    now = installed(str(p.get("dist") or ""))
    return {"worker": component, "plugin": str(p["name"]), "running": running, "installed": now,
            "mismatch": now is not None and now != running}


def running_rows(beats: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for comp in sorted(beats):
        if comp.startswith("worker."):
            r = row(comp, beats[comp])
            if r is not None:
                out.append(r)
    return out


def show(config_path: str | None, console: Any) -> None:
    """The `multialpha plugins` table of running workers (skipped, in one line, without Redis)."""
    import redis
    from rich.table import Table

    from multialpha import config as cfg
    from multialpha import heartbeat as hb
    from multialpha.keys import Keys
    from multialpha.supervisor.redis_setup import connect

    try:
        settings = cfg.load(config_path)
        beats = hb.read_all(connect(settings, timeout=2), Keys(settings.redis.namespace))
    except (cfg.ConfigError, redis.RedisError) as e:
        console.print(f"running workers: not shown ({str(e).splitlines()[0]})")
        return
    rows = running_rows(beats)
    if not rows:
        console.print("running workers: none reports a plugin version")
        return
    table = Table(title="running workers")
    for col in ("worker", "plugin", "running", "installed", ""):
        table.add_column(col)
    for r in rows:
        table.add_row(r["worker"], r["plugin"], r["running"], r["installed"] or "-",
                      f"[red]MISMATCH: multialpha restart {r['worker'].removeprefix('worker.')}[/]" if r["mismatch"]
                      else "ok")
    console.print(table)
