"""The one plugin manager (datasette style) and the queries built on it.

Plugins are found through the ``multialpha`` entry-point group; anything
registered in-process (``get_plugin_manager().register(module)``) goes
through the same hooks. A plugin that fails to import is recorded in
:data:`load_errors` and reported by ``multialpha plugins`` — it never stops
the other plugins from loading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from multialpha import hookspecs

if TYPE_CHECKING:
    from multialpha.config import Settings

ENTRY_POINT_GROUP = hookspecs.PROJECT
log = logging.getLogger(__name__)

_pm: pluggy.PluginManager | None = None
load_errors: dict[str, str] = {}
versions: dict[str, str] = {}  # entry-point name -> distribution version (as loaded by this process)
dists: dict[str, str] = {}  # entry-point name -> distribution name (to ask what is installed *now*)


class UnknownStrategyType(LookupError):
    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        listing = ", ".join(available) if available else "none (install a strategy plugin)"
        super().__init__(f"unknown strategy_type {name!r}; available: {listing}")


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, entry points loaded on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        _load_entrypoints(pm)
        _pm = pm
    return _pm


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # a broken third-party plugin must not take the others down
            load_errors[ep.name] = f"{type(e).__name__}: {e}"
            log.error("plugin %s failed to load: %s", ep.name, load_errors[ep.name])
            continue
        dist = getattr(ep, "dist", None)
        versions[ep.name] = dist.version if dist is not None else _module_version(plugin)
        if dist is not None:
            dists[ep.name] = dist.metadata["Name"]


def reset() -> None:
    """Forget the manager (tests); the next call reloads entry points."""
    global _pm
    _pm = None
    load_errors.clear()
    versions.clear()
    dists.clear()


def strategy_types(pm: pluggy.PluginManager | None = None) -> dict[str, hookspecs.StrategyType]:
    """Every registered strategy type by name; a duplicate name is an error."""
    pm = pm or get_plugin_manager()
    out: dict[str, hookspecs.StrategyType] = {}
    for impl in pm.hook.multialpha_strategy_types.get_hookimpls():
        for st in impl.function() or []:
            if st.name in out:
                raise ValueError(f"strategy_type {st.name!r} is provided twice (again by plugin {impl.plugin_name!r})")
            out[st.name] = st
    return out


def get_strategy_type(name: str, pm: pluggy.PluginManager | None = None) -> hookspecs.StrategyType:
    types = strategy_types(pm)
    if name not in types:
        raise UnknownStrategyType(name, sorted(types))
    return types[name]


def strategy_type_of(settings: "Settings", strategy: str) -> hookspecs.StrategyType:
    """The plugin type of a configured strategy; a ConfigError naming the key when none provides it."""
    from multialpha.config import ConfigError

    try:
        return get_strategy_type(settings.strategies[strategy].strategy_type)
    except UnknownStrategyType as e:
        raise ConfigError(settings.source_path or "<config>", f"strategies.{strategy}.strategy_type", str(e)) from None


def provider_of(strategy_type: str, pm: pluggy.PluginManager | None = None) -> dict[str, str]:
    """The plugin providing ``strategy_type``: its name, distribution and the version this
    process loaded (a worker reports it in its heartbeat); {} when none does."""
    pm = pm or get_plugin_manager()
    for impl in pm.hook.multialpha_strategy_types.get_hookimpls():
        if any(st.name == strategy_type for st in impl.function() or []):
            name = impl.plugin_name
            return {"name": name, "dist": dists.get(name, ""),
                    "version": versions.get(name) or _module_version(impl.plugin)}
    return {}


def installed_version(dist: str) -> str | None:
    """The version on disk now: after `pip install -U` it differs from what running workers loaded."""
    if not dist:
        return None
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_strategy_types(settings: "Settings") -> None:
    """Config check: every strategy's ``strategy_type`` must be provided by a plugin."""
    for name in settings.strategies:
        strategy_type_of(settings, name)


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    strategy_types: tuple[str, ...]
    hooks: tuple[str, ...]
    error: str = ""


def plugin_infos(pm: pluggy.PluginManager | None = None) -> list[PluginInfo]:
    """What `multialpha plugins` shows, one row per plugin (broken ones included)."""
    pm = pm or get_plugin_manager()
    rows: list[PluginInfo] = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: np[0]):
        if plugin is None or plugin is hookspecs:
            continue
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        types: tuple[str, ...] = ()
        if "multialpha_strategy_types" in hooks:
            types = tuple(st.name for st in (getattr(plugin, "multialpha_strategy_types")() or []))
        rows.append(PluginInfo(name, versions.get(name) or _module_version(plugin), types, hooks))
    for name, err in sorted(load_errors.items()):
        rows.append(PluginInfo(name, "?", (), (), error=err))
    return rows


def _module_version(plugin: Any) -> str:
    return str(getattr(plugin, "__version__", "-"))


def scoped_hook(hook_name: str, strategy_type: str, pm: pluggy.PluginManager | None = None) -> Any:
    """A hook caller that skips plugins providing *other* strategy types.

    Feature and veto hooks are keyed by strategy name, so without this an
    unrelated plugin (say the example) would add features to, or veto the
    entries of, every strategy. Plugins that provide no strategy type at all
    (generic veto plugins, the built-in model veto) apply to every strategy.
    """
    pm = pm or get_plugin_manager()
    others = []
    for impl in pm.hook.multialpha_strategy_types.get_hookimpls():
        provided = {st.name for st in impl.function() or []}
        if strategy_type not in provided:
            others.append(impl.plugin)
    return pm.subset_hook_caller(hook_name, remove_plugins=others)
