"""Cases: strict validation of raw case mappings into frozen dataclasses, and --set overrides."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

from harness.errors import BenchError, at
from harness.registry import unknown

if TYPE_CHECKING:
    from harness.plugins import BenchPlugins

DEVICE_AUTO = "auto"
PRECISIONS = ("fp32", "mixed")
LAUNCHERS = ("inline", "process", "auto")


@dataclass(frozen=True)
class DataSpec:
    source: str = "synthetic"
    path: str | None = None
    eval_path: str | None = None

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"


@dataclass(frozen=True)
class TrainSpec:
    steps: int | None = 100
    epochs: float | None = None
    warmup_steps: int = 10
    log_every: int = 10


@dataclass(frozen=True)
class EvalSpec:
    at_end: bool = True
    every_steps: int | None = None
    steps: int | None = None
    target: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    device: str = "cpu"
    devices: tuple[int, ...] = (1,)
    precision: str = "fp32"
    batch_size: int = 32
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    params: Mapping[str, Any] = field(default_factory=dict)
    npu: Mapping[str, Any] = field(default_factory=dict)
    launcher: str = "auto"
    plugins: tuple[str, ...] = ()
    seed: int = 0
    timeout: float | None = None
    description: str = ""
    source: str = ""  # the file (and item) this case came from

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (the resolved case embedded in report.json)."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- field checkers --------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Field:
    def __init__(self, default: Any = None, *, nullable: bool = False) -> None:
        self.default = default
        self.nullable = nullable

    def check(self, value: Any, fail) -> Any:
        if value is None and self.nullable:
            return None
        return self._check(value, fail)

    def _check(self, value: Any, fail) -> Any:  # pragma: no cover - overridden
        return value


class _Int(_Field):
    def __init__(self, default: Any = None, *, minimum: int | None = None, **kw: Any) -> None:
        super().__init__(default, **kw)
        self.minimum = minimum

    def _check(self, value: Any, fail) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                fail(f"expected an integer, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            fail(f"must be >= {self.minimum}, got {value}")
        return value


class _Float(_Field):
    def __init__(self, default: Any = None, *, positive: bool = False, **kw: Any) -> None:
        super().__init__(default, **kw)
        self.positive = positive

    def _check(self, value: Any, fail) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"expected a number, got {value!r}")
        if self.positive and not value > 0:
            fail(f"must be > 0, got {value}")
        return float(value)


class _Bool(_Field):
    def _check(self, value: Any, fail) -> bool:
        if not isinstance(value, bool):
            fail(f"expected true or false, got {value!r}")
        return value


class _Str(_Field):
    def __init__(self, default: Any = None, *, choices: tuple[str, ...] = (),
                 empty: bool = False, **kw: Any) -> None:
        super().__init__(default, **kw)
        self.choices = choices
        self.empty = empty

    def _check(self, value: Any, fail) -> str:
        if not isinstance(value, str) or not (value or self.empty):
            fail(f"expected a non-empty string, got {value!r}")
        if self.choices and value not in self.choices:
            fail(f"expected one of {', '.join(self.choices)}, got {value!r}")
        return value


class _DeviceCounts(_Field):
    def _check(self, value: Any, fail) -> tuple[int, ...]:
        items = value if isinstance(value, list) else [value]
        counts = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                fail(f"expected a device count >= 1 or a list of them, got {value!r}")
            counts.append(item)
        if not counts:
            fail("expected at least one device count")
        if len(set(counts)) != len(counts):
            fail(f"device counts repeat: {value!r}")
        return tuple(counts)


class _StrList(_Field):
    def _check(self, value: Any, fail) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            fail(f"expected a list of strings, got {value!r}")
        return tuple(value)


class _Mapping(_Field):
    """A free mapping (params, npu): keys must be strings; the plugin checks the values."""

    def __init__(self, default: Any = None, *, numbers: bool = False, **kw: Any) -> None:
        super().__init__(default, **kw)
        self.numbers = numbers

    def _check(self, value: Any, fail) -> dict:
        if not isinstance(value, dict):
            fail(f"expected a mapping, got {_type_name(value)}")
        for key, item in value.items():
            if not isinstance(key, str):
                fail(f"keys must be strings, got {key!r}")
            if self.numbers and (isinstance(item, bool) or not isinstance(item, (int, float))):
                fail(f"{key}: expected a number, got {item!r}")
        return dict(value)


class _Section(_Field):
    def __init__(self, fields: dict[str, _Field]) -> None:
        super().__init__(None)
        self.fields = fields


SCHEMA: dict[str, _Field] = {
    "name": _Str(None),
    "description": _Str("", empty=True),
    "model": _Str(None),
    "device": _Str("cpu"),
    "devices": _DeviceCounts((1,)),
    "precision": _Str("fp32", choices=PRECISIONS),
    "batch_size": _Int(32, minimum=1),
    "data": _Section({
        "source": _Str("synthetic"),
        "path": _Str(None, nullable=True),
        "eval_path": _Str(None, nullable=True),
    }),
    "train": _Section({
        "steps": _Int(100, minimum=1, nullable=True),
        "epochs": _Float(None, positive=True, nullable=True),
        "warmup_steps": _Int(10, minimum=0),
        "log_every": _Int(10, minimum=1),
    }),
    "eval": _Section({
        "at_end": _Bool(True),
        "every_steps": _Int(None, minimum=1, nullable=True),
        "steps": _Int(None, minimum=1, nullable=True),
        "target": _Mapping({}, numbers=True),
    }),
    "params": _Mapping({}),
    "npu": _Mapping({}),
    "launcher": _Str("auto", choices=LAUNCHERS),
    "plugins": _StrList(()),
    "seed": _Int(0, minimum=0),
    "timeout": _Float(None, positive=True, nullable=True),
}


# --- raw cases and overrides -----------------------------------------------------------------


@dataclass
class RawCase:
    """One case mapping as read from a file, before validation."""

    file: str
    prefix: str  # "" or "cases[1]" or "row 3"
    data: dict
    overridden: set = field(default_factory=set)

    def key(self, dotted: str) -> str:
        return f"{self.prefix}.{dotted}" if self.prefix and dotted else (self.prefix or dotted)

    def fail(self, dotted: str, message: str) -> BenchError:
        suffix = " (from --set)" if dotted in self.overridden else ""
        return at(self.file, self.key(dotted), message + suffix)


def parse_override(text: str) -> tuple[str, Any]:
    """``train.steps=10`` -> ("train.steps", 10); the value is read as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise BenchError(f"--set: expected KEY=VALUE with a dotted key, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise BenchError(f"--set {key}: value is not valid YAML: "
                         f"{str(exc).splitlines()[0]}") from None
    return key, parsed


def apply_overrides(raw: RawCase, overrides: list[tuple[str, Any]]) -> None:
    for dotted, value in overrides:
        node = raw.data
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise BenchError(f"--set {dotted}: {'.'.join(parts[:i + 1])} is not a mapping")
            node = child
        node[parts[-1]] = copy.deepcopy(value)
        raw.overridden.add(dotted)


def deep_merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- validation ------------------------------------------------------------------------------


def _check_section(raw: RawCase, data: Any, fields: dict[str, _Field], path: str) -> dict:
    if not isinstance(data, dict):
        raise raw.fail(path, f"expected a mapping, got {_type_name(data)}")
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise raw.fail(where, f"unknown key; expected one of {', '.join(fields)}")
    out = {}
    for key, spec in fields.items():
        dotted = f"{path}.{key}" if path else key

        def fail(message: str, dotted: str = dotted) -> None:
            raise raw.fail(dotted, message)

        if isinstance(spec, _Section):
            out[key] = _check_section(raw, data.get(key, {}), spec.fields, dotted)
        elif key in data:
            out[key] = spec.check(data[key], fail)
        else:
            out[key] = spec.default
    return out


def _check_params(raw: RawCase, params: dict, defaults: dict, model: str) -> dict:
    merged = dict(defaults)
    for key, value in params.items():
        dotted = f"params.{key}"
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "(none)"
            raise raw.fail(dotted, f"unknown parameter of model {model!r}; known: {known}")
        default = defaults[key]
        if default is None or value is None:
            merged[key] = value
        elif isinstance(default, bool) or isinstance(value, bool):
            if not (isinstance(default, bool) and isinstance(value, bool)):
                raise raw.fail(dotted, f"expected {_type_name(default)}, got {value!r}")
            merged[key] = value
        elif isinstance(default, float) and isinstance(value, int):
            merged[key] = float(value)
        elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
            merged[key] = list(value)
        elif not isinstance(value, type(default)):
            raise raw.fail(dotted, f"expected {_type_name(default)}, got {value!r}")
        else:
            merged[key] = value
    return merged


def validate(raw: RawCase, plugins: BenchPlugins) -> Case:
    """Check every key of ``raw`` and resolve it against the registered models and devices."""
    if not isinstance(raw.data, dict):
        raise raw.fail("", f"a case must be a mapping, got {_type_name(raw.data)}")
    values = _check_section(raw, raw.data, SCHEMA, "")
    if values["model"] is None:
        raise raw.fail("model", "missing; every case names a registered model")
    if values["model"] not in plugins.models:
        raise raw.fail("model", unknown("model", values["model"], plugins.models.names()))
    device = values["device"]
    if device != DEVICE_AUTO and device not in plugins.devices:
        raise raw.fail("device", unknown("device", device, plugins.devices.names() + ["auto"]))
    info = plugins.models.get(values["model"])
    source = values["data"]["source"]
    if source not in info.sources:
        raise raw.fail("data.source", f"model {info.name!r} reads {', '.join(info.sources)}; "
                                      f"got {source!r}")
    if source != "synthetic" and not values["data"]["path"]:
        raise raw.fail("data.path", f"data.source {source!r} needs a path")
    train = values["train"]
    if (train["steps"] is None) == (train["epochs"] is None):
        if train["steps"] is None:
            raise raw.fail("train", "set one of steps or epochs")
        if "steps" in raw.data.get("train", {}):
            raise raw.fail("train", "set steps or epochs, not both")
        train["steps"] = None  # epochs given: the default step count steps aside
    if train["steps"] is not None and train["warmup_steps"] >= train["steps"]:
        raise raw.fail("train.warmup_steps",
                       f"must be below train.steps ({train['steps']}): the measured window "
                       f"would be empty; got {train['warmup_steps']}")
    params = _check_params(raw, values["params"], info.params, info.name)
    name = values["name"] or _default_name(raw)
    return Case(
        name=name,
        model=values["model"],
        device=device,
        devices=values["devices"],
        precision=values["precision"],
        batch_size=values["batch_size"],
        data=DataSpec(**values["data"]),
        train=TrainSpec(**train),
        eval=EvalSpec(**{**values["eval"], "target": MappingProxyType(values["eval"]["target"])}),
        params=MappingProxyType(params),
        npu=MappingProxyType(values["npu"]),
        launcher=values["launcher"],
        plugins=values["plugins"],
        seed=values["seed"],
        timeout=values["timeout"],
        description=values["description"],
        source=f"{raw.file}:{raw.prefix}" if raw.prefix else raw.file,
    )


def _default_name(raw: RawCase) -> str:
    stem = os.path.splitext(os.path.basename(raw.file))[0]
    if not raw.prefix:
        return stem
    index = "".join(ch for ch in raw.prefix if ch.isdigit())
    return f"{stem}-{index}"


def read_raw_cases(path: str, plugins: BenchPlugins) -> list[RawCase]:
    """Read one case file with the first registered format that claims it."""
    if not os.path.exists(path):
        raise BenchError(f"{path}: no such file")
    if os.path.isdir(path):
        raise BenchError(f"{path}: is a directory, expected a case file (.yaml or .csv)")
    try:
        with open(path, "rb") as fh:
            blob = fh.read()
    except OSError as exc:
        raise BenchError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise BenchError(f"{path}: empty case file")
    for _name, reader in plugins.case_formats.items():
        if reader.claims(path, text):
            return [RawCase(path, prefix, data) for prefix, data in reader.read(path, text)]
    raise BenchError(f"{path}: unknown case file format; registered: "
                     f"{', '.join(plugins.case_formats.names())}")


def load_cases(paths: list[str], overrides: list[str], plugins: BenchPlugins) -> list[Case]:
    """Read, override and validate every case of ``paths``; plugins named in a case's
    ``plugins:`` list are loaded before validation so their models are known."""
    parsed = [parse_override(text) for text in overrides]
    raws = [raw for path in paths for raw in read_raw_cases(path, plugins)]
    for raw in raws:
        apply_overrides(raw, parsed)
        names = raw.data.get("plugins", []) if isinstance(raw.data, dict) else []
        for module_path in [names] if isinstance(names, str) else names:
            if isinstance(module_path, str):
                plugins.load_module(module_path, source="case file")
    cases = [validate(raw, plugins) for raw in raws]
    seen: dict[str, str] = {}
    for case in cases:
        if case.name in seen:
            raise BenchError(f"{case.source}: name: {case.name!r} is used twice "
                             f"(also {seen[case.name]})")
        seen[case.name] = case.source
    return cases
