"""The plugin manager: builtins, ``bench.plugins`` entry points and ``--plugin`` modules."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import BenchError
from harness.installed import entry_points
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

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, Any] | None = None

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -- loading ----------------------------------------------------------------------------

    def add(self, plugin: object, name: str, version: str, source: str, module: str = "") -> None:
        if name in self.infos or self.pm.is_registered(plugin):
            return
        self.pm.register(plugin, name=name)
        self.infos[name] = PluginInfo(name, module or getattr(plugin, "__name__", name), version,
                                      source)
        self._registries = None

    def load_builtins(self) -> None:
        for name, module_path in BUILTIN_PLUGINS.items():
            self.add(_import(name, module_path), name, __version__, "builtin", module_path)

    def load_entry_points(self) -> None:
        for ep, version in entry_points(ENTRY_POINT_GROUP):
            if ep.name in self.infos:
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise BenchError(f'error importing plugin "{ep.name}": '
                                 f"{type(exc).__name__}: {exc}") from None
            self.add(plugin, ep.name, version, "entry point", ep.value)

    def load_module(self, module_path: str, source: str = "--plugin") -> None:
        if module_path in self.infos:
            return
        module = _import(module_path, module_path)
        self.add(module, module_path, getattr(module, "__version__", "unversioned"), source,
                 module_path)

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

    def model_version(self, model: str) -> str:
        info = self.models.get(model)
        if info.version:
            return info.version
        plugin = self.infos.get(info.plugin)
        return plugin.version if plugin else "unknown"

    def versions(self) -> dict[str, str]:
        return {name: info.version for name, info in sorted(self.infos.items())}


def load_plugins(extra: list[str] | tuple[str, ...] = (), objects: list[object] = ()) -> BenchPlugins:
    """Builtins, then installed entry points, then ``--plugin`` modules and plugin objects."""
    plugins = BenchPlugins()
    plugins.load_builtins()
    plugins.load_entry_points()
    for module_path in extra:
        plugins.load_module(module_path)
    for obj in objects:
        name = getattr(obj, "__name__", type(obj).__name__)
        plugins.add(obj, name, getattr(obj, "__version__", "unversioned"), "object")
    return plugins


def ensure_importable_cwd() -> None:
    """``--plugin mypkg.plugin`` should find modules in the working directory, as python -m does."""
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
