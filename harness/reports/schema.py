"""The shape of report.json (schema zoobench.report/1) that every reader relies on, checked
once where reports are loaded: a malformed body is one line naming the file and key, never a
KeyError deep in compare or a renderer. Keys beyond these are allowed (newer writers)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.errors import BenchError

STATUSES = ("ok", "failed", "timeout", "interrupted", "diverged", "running")


@dataclass
class Spec:
    """What one value must be: ``kind`` (str, int, number, bool, map, list, any), whether
    null is allowed, and for maps their keys (``keys``, ``required``) or their values
    (``values``), for lists their items."""

    kind: str
    null: bool = False
    keys: dict[str, Spec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    values: Spec | None = None
    items: Spec | None = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None


def _num(null: bool = True, minimum: float | None = None) -> Spec:
    return Spec("number", null=null, minimum=minimum)


def _text(null: bool = True) -> Spec:
    return Spec("str", null=null)


INTERVAL = Spec("map", keys={"step": Spec("int"), "steps": Spec("int", minimum=0),
                             "samples": _num(False, 0), "seconds": _num(False, 0),
                             "samples_per_sec": _num(False, 0)},
                required=("step", "steps", "samples", "seconds", "samples_per_sec"))
METRICS = Spec("map", null=True, values=_num())
RESULT = Spec("map", keys={
    "devices": Spec("int", minimum=1),
    "global_batch_size": Spec("int", minimum=1),
    "data_source": _text(),
    "status": Spec("str", choices=STATUSES),
    "error": _text(),
    "measured_steps": Spec("int", null=True, minimum=0),
    "throughput": Spec("map", keys={
        "samples_per_sec": _num(minimum=0), "per_device": _num(minimum=0), "median": _num(),
        "p5": _num(), "p95": _num(), "intervals": Spec("list", null=True, items=INTERVAL)}),
    "step_time_ms": Spec("map", null=True, values=_num()),
    "mfu": _num(), "peak_flops": _num(), "scaling_efficiency": _num(),
    "time_to_accuracy_s": _num(), "wall_time_s": _num(),
    "loss": Spec("map", null=True, keys={
        "first": _num(), "last": _num(),
        "curve": Spec("list", null=True, items=Spec("list", items=_num()))}),
    "accuracy": METRICS,
    "evals": Spec("list", null=True, items=Spec("map", values=Spec("any"))),
}, required=("devices", "global_batch_size", "status", "throughput"))
CASE = Spec("map", keys={
    "name": _text(False), "model": _text(False), "device": _text(False),
    "precision": _text(False), "batch_size": Spec("int", minimum=1),
    "data": Spec("map", keys={"source": _text(False)}, required=("source",)),
}, required=("name", "model", "device", "precision", "batch_size", "data"))
REPORT = Spec("map", keys={
    "schema": _text(False),
    "run_id": _text(), "status": Spec("str", choices=STATUSES),
    "started_at": _text(), "finished_at": _text(), "command": _text(), "error": _text(),
    "case": CASE,
    "environment": Spec("map", keys={"device": Spec("map", null=True),
                                     "git": Spec("map", null=True)}),
    "device_options": Spec("map", null=True),
    "results": Spec("list", items=RESULT),
}, required=("schema", "run_id", "status", "started_at", "finished_at", "case", "environment",
             "results"))

_NAMES = {"str": "a string", "int": "an integer", "number": "a number", "bool": "true or false",
          "map": "a mapping", "list": "a list"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def _problem(value: Any, spec: Spec) -> str | None:
    """Why ``value`` is not a ``spec`` at its own level (None: it is)."""
    if value is None:
        return None if spec.null or spec.kind == "any" else f"expected {_NAMES[spec.kind]}, got null"
    kind = spec.kind
    if kind == "any":
        return None
    ok = {"str": isinstance(value, str),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "map": isinstance(value, dict),
          "list": isinstance(value, list)}[kind]
    if not ok:
        return f"expected {_NAMES[kind]}, got {_type_name(value)}"
    if kind == "number" and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if spec.minimum is not None and kind in ("int", "number") and value < spec.minimum:
        return f"must be >= {spec.minimum:g}, got {value!r}"
    if spec.choices and value not in spec.choices:
        return f"expected one of {', '.join(spec.choices)}, got {value!r}"
    return None


def check(value: Any, spec: Spec, where: str) -> None:
    """Raise a BenchError ``where: key.path: problem`` for the first value that is not as
    ``spec`` says (walked without recursion: reports can hold long lists)."""
    stack: list[tuple[Any, Spec, str]] = [(value, spec, "")]
    while stack:
        node, node_spec, key = stack.pop()
        problem = _problem(node, node_spec)
        if problem:
            raise BenchError(f"{where}: {key or 'the top'}: {problem}")
        if node is None:
            continue
        if node_spec.kind == "map":
            for name in node_spec.required:
                if name not in node:
                    raise BenchError(f"{where}: {_join(key, name)}: missing")
            for name, child in node.items():
                sub = node_spec.keys.get(name, node_spec.values)
                if sub is not None:
                    stack.append((child, sub, _join(key, str(name))))
        elif node_spec.kind == "list" and node_spec.items is not None:
            stack.extend((child, node_spec.items, f"{key}[{i}]")
                         for i, child in reversed(list(enumerate(node))))


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def check_report(report: Any, where: str) -> dict[str, Any]:
    """``report`` if it has the shape every command reads, else a one-line BenchError."""
    check(report, REPORT, where)
    return report
