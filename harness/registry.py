"""Registries handed to the ``register_*`` hooks; unknown names list what is registered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from harness.errors import BenchError
from harness.task import check_task_class


def unknown(kind: str, name: str, known: list[str]) -> str:
    return f"unknown {kind} {name!r}; registered: {', '.join(sorted(known)) or '(none)'}"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str = ""
    params: dict = field(default_factory=dict)
    sources: tuple[str, ...] = ("synthetic",)
    version: str | None = None
    plugin: str = ""
    task: Any = None  # a harness.Task subclass, or None: the plugin answers by plain hooks
    pathless_sources: tuple[str, ...] = ()  # sources that need no data.path

    def needs_path(self, source: str) -> bool:
        return source != "synthetic" and source not in self.pathless_sources


class _Registry:
    kind = "item"

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self.current_plugin = ""

    def _put(self, name: str, item: Any) -> None:
        if name in self._items:
            raise BenchError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item

    def get(self, name: str) -> Any:
        if name not in self._items:
            raise BenchError(unknown(self.kind, name, list(self._items)))
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, Any]]:
        return list(self._items.items())  # registration order: readers are tried in it

    def __contains__(self, name: object) -> bool:
        return name in self._items


class ModelRegistry(_Registry):
    kind = "model"

    def __init__(self) -> None:
        super().__init__()
        self._extends: dict[str, list[str]] = {}

    def add(
        self,
        name: str,
        *,
        description: str = "",
        params: dict | None = None,
        sources: tuple[str, ...] | list[str] = ("synthetic",),
        version: str | None = None,
        task: Any = None,
        pathless_sources: tuple[str, ...] | list[str] = (),
    ) -> None:
        """Declare model ``name``. ``sources``: the ``data.source`` values it reads, the first
        being the default; ``pathless_sources``: those of them that need no ``data.path``
        (data shipped with the plugin; ``synthetic`` never needs one). ``task``: a
        :class:`harness.Task` subclass that answers the model hooks for this model."""
        if task is not None:
            check_task_class(task, name, self.current_plugin)
        sources = tuple(sources)
        if not sources:
            raise BenchError(f'plugin "{self.current_plugin}": model {name!r}: sources is empty')
        stray = [s for s in pathless_sources if s not in sources]
        if stray:
            raise BenchError(f'plugin "{self.current_plugin}": model {name!r}: pathless source '
                             f"{stray[0]!r} is not among its sources ({', '.join(sources)})")
        self._put(
            name,
            ModelInfo(name, description, dict(params or {}), sources, version,
                      self.current_plugin, task, tuple(pathless_sources)),
        )

    def extend(self, name: str) -> None:
        """Declare that this plugin's plain model hooks also answer for model ``name``,
        registered by another plugin (they are asked before that plugin's own)."""
        plugins = self._extends.setdefault(name, [])
        if self.current_plugin not in plugins:
            plugins.append(self.current_plugin)

    def extenders(self, name: str) -> list[str]:
        """The plugins that declared they extend model ``name``."""
        return list(self._extends.get(name, []))


class DeviceRegistry(_Registry):
    kind = "device"

    def add(self, backend_cls: type) -> None:
        self._put(backend_cls.name, backend_cls)


class CaseFormatRegistry(_Registry):
    kind = "case format"

    def add(self, name: str, reader: Any) -> None:
        self._put(name, reader)


class ReportWriterRegistry(_Registry):
    kind = "report writer"

    def add(self, filename: str, render: Callable[[dict], str]) -> None:
        self._put(filename, render)


class LogParserRegistry(_Registry):
    kind = "log format"

    def add(self, model: str, parse: Callable[[list[str]], Any]) -> None:
        """``parse(paths) -> ParsedLog``: what one ModelZoo training run of ``model`` logged."""
        self._put(model, parse)
