"""The plugin manager: builtins, ``bench.plugins`` entry points and ``--plugin`` modules."""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import BenchError
from harness.installed import entry_points, metadata
from harness.markers import PROJECT, hookimpl
from harness.registry import (
    CaseFormatRegistry,
    DeviceRegistry,
    LogParserRegistry,
    ModelRegistry,
    ReportWriterRegistry,
)
from harness.version import __version__

__all__ = ["BUILTIN_PLUGINS", "BenchPlugins", "PluginInfo", "hookimpl", "load_plugins"]

ENTRY_POINT_GROUP = "bench.plugins"
DISABLE_ENV = "BENCH_DISABLE_PLUGINS"  # comma-separated plugin names, as ``-p no:NAME``
DISTRIBUTION = "zoobench"  # the distribution the builtins come with

# Our own features, loaded through the same path as a third party's plugin (STYLE 2).
BUILTIN_PLUGINS = {
    "cpu": "harness.devices.cpu",
    "gpu": "harness.devices.gpu",
    "npu": "harness.devices.npu",
    "case-formats": "harness.case_formats",
    "report-writers": "harness.reports.markdown",
    "html-report": "harness.reports.html",
    "mllog": "harness.reports.mllog",
    "tensorboard": "harness.reports.tensorboard",
    "defaults": "harness.fallbacks",
}


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    version: str
    source: str  # builtin | entry point | --plugin | case file | object
    distribution: str | None = None  # the installed package it came with, where known


def disabled_from_env() -> tuple[str, ...]:
    """The plugin names ``BENCH_DISABLE_PLUGINS`` disables."""
    return tuple(n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip())


@functools.lru_cache(maxsize=1)
def _package_distributions() -> dict[str, list[str]]:
    """Top-level package -> distributions (Python >= 3.10; reading it takes about 0.5 s, so
    once per process and only when a report names a plugin's distribution)."""
    finder = getattr(metadata, "packages_distributions", None)
    try:
        return dict(finder()) if finder is not None else {}
    except Exception:  # noqa: BLE001 - odd metadata on the path: names stay unknown
        return {}


def _distribution_of(module_path: str) -> str | None:
    """The installed distribution that ships ``module_path``'s top package, or None."""
    names = _package_distributions().get(module_path.split(".")[0]) or []
    return names[0] if names else None


def _required_args(function: Any) -> list[str]:
    """The argument names pluggy passes to a hook implementation (those without defaults)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty and p.name != "self"
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _import(name: str, module_path: str) -> ModuleType:
    try:
        return importlib.import_module(module_path)
    except BaseException as exc:  # noqa: BLE001 - any import failure is the plugin's fault
        if isinstance(exc, KeyboardInterrupt):
            raise
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise BenchError(f'error importing plugin "{name}": {cause}') from None


class BenchPlugins:
    """A pluggy manager plus the registries the ``register_*`` hooks filled."""

    def __init__(self, disabled: tuple[str, ...] | list[str] = ()) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.disabled: tuple[str, ...] = tuple(dict.fromkeys(disabled))
        self._registries: dict[str, Any] | None = None

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -- loading ----------------------------------------------------------------------------

    def add(self, plugin: object, name: str, version: str, source: str, module: str = "",
            distribution: str | None = None) -> None:
        if name in self.infos or name in self.disabled or self.pm.is_registered(plugin):
            return
        hint = f" (bench -p no:{name} ... disables it)" if source == "entry point" else ""
        try:
            self.check_hooks(plugin, name)
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:  # what check_hooks does not cover
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise BenchError(f'plugin "{name}": {" ".join(str(exc).split())}{hint}') from None
        except BenchError as exc:
            raise BenchError(f"{exc}{hint}") from None
        self.infos[name] = PluginInfo(name, module or getattr(plugin, "__name__", name), version,
                                      source, distribution)
        self._registries = None

    def check_hooks(self, plugin: object, name: str) -> None:
        """Refuse, in one line naming the plugin and the hook, a hook implementation whose
        name is no hook (``build_modle``: pluggy's ``check_pending``) or whose arguments are
        not the spec's (``build_model(case, context)``), and a wrapper on a model hook."""
        from harness.model_hooks import MODEL_HOOKS

        specs = {n: getattr(self.pm.hook, n) for n in dir(self.pm.hook) if not n.startswith("_")}
        specs = {n: c for n, c in specs.items() if getattr(c, "has_spec", lambda: False)()}
        for attr in dir(plugin):
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            if opts is None:
                continue
            hook = opts.get("specname") or attr
            if hook not in specs:
                if opts.get("optionalhook"):
                    continue
                close = difflib.get_close_matches(hook, list(specs), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise BenchError(f'plugin "{name}": unknown hook {hook!r}{hint}; the hooks are '
                                 f"documented in harness/hookspecs.py")
            allowed = specs[hook].spec.argnames
            args = _required_args(getattr(plugin, attr))
            extra = [a for a in args if a not in allowed]
            if extra:
                close = difflib.get_close_matches(extra[0], list(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise BenchError(f'plugin "{name}": hook {hook}({", ".join(args)}): unknown '
                                 f"argument {extra[0]!r}{hint}; the spec is "
                                 f"{hook}({', '.join(allowed)})")
            if hook in MODEL_HOOKS and (opts.get("wrapper") or opts.get("hookwrapper")):
                raise BenchError(f'plugin "{name}": hook {hook}: a model hook cannot be a '
                                 f"wrapper")

    def load_builtins(self) -> None:
        for name, module_path in BUILTIN_PLUGINS.items():
            if name not in self.disabled:
                self.add(_import(name, module_path), name, __version__, "builtin", module_path,
                         DISTRIBUTION)

    def load_entry_points(self) -> None:
        for ep, version, distribution in entry_points(ENTRY_POINT_GROUP):
            if ep.name in self.infos or ep.name in self.disabled:
                continue  # a disabled plugin is not even imported
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise BenchError(f'error importing plugin "{ep.name}": '
                                 f"{type(exc).__name__}: {exc} (bench -p no:{ep.name} ... "
                                 f"disables it)") from None
            self.add(plugin, ep.name, version, "entry point", ep.value, distribution)

    def load_module(self, module_path: str, source: str = "--plugin") -> None:
        if module_path in self.infos or module_path in self.disabled:
            return
        module = _import(module_path, module_path)
        self.add(module, module_path, getattr(module, "__version__", "unversioned"), source,
                 module_path)

    def add_object(self, obj: object) -> None:
        """A plugin object (a module or any object with hook functions), e.g. a test's."""
        self.add(obj, getattr(obj, "__name__", type(obj).__name__),
                 getattr(obj, "__version__", "unversioned"), "object")

    # -- registries -------------------------------------------------------------------------

    def _collect(self) -> dict[str, Any]:
        if self._registries is None:
            regs = {
                "models": ModelRegistry(),
                "devices": DeviceRegistry(),
                "case_formats": CaseFormatRegistry(),
                "report_writers": ReportWriterRegistry(),
                "log_parsers": LogParserRegistry(),
            }
            hooks = {
                "models": "register_models",
                "devices": "register_devices",
                "case_formats": "register_case_formats",
                "report_writers": "register_report_writers",
                "log_parsers": "register_log_parsers",
            }
            for key, hook_name in hooks.items():
                registry = regs[key]
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    registry.current_plugin = impl.plugin_name
                    impl.function(*[registry for _ in impl.argnames])
            self._registries = regs
        return self._registries

    @property
    def models(self) -> ModelRegistry:
        return self._collect()["models"]

    @property
    def devices(self) -> DeviceRegistry:
        return self._collect()["devices"]

    @property
    def case_formats(self) -> CaseFormatRegistry:
        return self._collect()["case_formats"]

    @property
    def report_writers(self) -> ReportWriterRegistry:
        return self._collect()["report_writers"]

    @property
    def log_parsers(self) -> LogParserRegistry:
        return self._collect()["log_parsers"]

    def model_hooks(self, case: Any) -> Any:
        """The model hooks of one run of ``case`` (its task, else its plugin's plain hooks)."""
        from harness.model_hooks import ModelHooks

        return ModelHooks(self, case)

    def served_by(self, served: dict[str, Any]) -> dict[str, Any]:
        """``ModelHooks.served`` with each plugin's distribution and version (the report's
        ``model_hooks``)."""

        def describe(name: str) -> dict[str, Any]:
            info = self.infos.get(name)
            if info is None:
                return {"plugin": name, "distribution": None, "version": None}
            dist = info.distribution
            if dist is None and info.source != "object":
                dist = _distribution_of(info.module)  # a --plugin module of an installed package
            return {"plugin": name, "distribution": dist, "version": info.version}

        return {hook: [describe(n) for n in value] if isinstance(value, list) else describe(value)
                for hook, value in served.items()}

    def model_version(self, model: str) -> str:
        info = self.models.get(model)
        if info.version:
            return info.version
        plugin = self.infos.get(info.plugin)
        return plugin.version if plugin else "unknown"

    def versions(self) -> dict[str, str]:
        return {name: info.version for name, info in sorted(self.infos.items())}


def load_plugins(extra: list[str] | tuple[str, ...] = (), objects: list[object] = (),
                 disabled: list[str] | tuple[str, ...] | None = None) -> BenchPlugins:
    """Builtins, then installed entry points, then ``--plugin`` modules and plugin objects;
    none of the ``disabled`` names (default: ``BENCH_DISABLE_PLUGINS``)."""
    plugins = BenchPlugins(disabled_from_env() if disabled is None else disabled)
    plugins.load_builtins()
    plugins.load_entry_points()
    for module_path in extra:
        plugins.load_module(module_path)
    for obj in objects:
        plugins.add_object(obj)
    return plugins


def ensure_importable_cwd() -> None:
    """``--plugin mypkg.plugin`` should find modules in the working directory, as python -m does."""
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
