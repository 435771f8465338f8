"""Registries handed to the ``register_*`` hooks; unknown names list what is registered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from harness.errors import BenchError


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

    def add(
        self,
        name: str,
        *,
        description: str = "",
        params: dict | None = None,
        sources: tuple[str, ...] | list[str] = ("synthetic",),
        version: str | None = None,
    ) -> None:
        self._put(
            name,
            ModelInfo(name, description, dict(params or {}), tuple(sources), version,
                      self.current_plugin),
        )


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
