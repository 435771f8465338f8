"""Cases: strict validation of raw case mappings into frozen dataclasses, and --set overrides."""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from harness.errors import BenchError, at
from harness.registry import unknown
from harness.userfiles import CASE_FILE_LIMIT, parse_yaml, read_user_text

if TYPE_CHECKING:
    from harness.registry import CaseFormatRegistry, DeviceRegistry, ModelRegistry

DEVICE_AUTO = "auto"
PRECISIONS = ("fp32", "mixed")
LAUNCHERS = ("inline", "process", "auto")
ENGINES = ("auto", "eager", "graph")
# Ranges of what a run hands to TensorFlow and NumPy: steps and counts are int64 there, the
# seed goes to np.random.seed (< 2**32), batch dimensions to int32 shapes on several kernels.
INT64_MAX = 2**63 - 1
SEED_MAX = 2**32 - 1
BATCH_MAX = 2**31 - 1
MAX_DEVICES = 4096
TIMEOUT_MAX_S = 30 * 86400.0
MAX_CASES = 1000  # cases in one file
DEFAULT_PROBE_STEPS = 20
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


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
    def __init__(self, *, nullable: bool = False) -> None:
        self.nullable = nullable

    def check(self, value: Any, fail) -> Any:
        if value is None and self.nullable:
            return None
        return self._check(value, fail)

    def _check(self, value: Any, fail) -> Any:  # pragma: no cover - overridden
        return value


class _Int(_Field):
    def __init__(self, *, minimum: int | None = None, maximum: int = INT64_MAX,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.minimum = minimum
        self.maximum = maximum

    def _check(self, value: Any, fail) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                fail(f"expected an integer, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            fail(f"must be >= {self.minimum}, got {value}")
        if value > self.maximum:
            fail(f"must be <= {self.maximum}, got {value}")
        return value


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


class _Float(_Field):
    def __init__(self, *, positive: bool = False, maximum: float | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.positive = positive
        self.maximum = maximum

    def _check(self, value: Any, fail) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"expected a number, got {value!r}")
        if not _finite_number(value):
            fail(f"expected a finite number, got {value!r}")
        if self.positive and not value > 0:
            fail(f"must be > 0, got {value}")
        if self.maximum is not None and value > self.maximum:
            fail(f"must be <= {self.maximum:g}, got {value:g}")
        return float(value)


class _Bool(_Field):
    def _check(self, value: Any, fail) -> bool:
        if not isinstance(value, bool):
            fail(f"expected true or false, got {value!r}")
        return value


class _Str(_Field):
    def __init__(self, *, choices: tuple[str, ...] = (), empty: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
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
            if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= MAX_DEVICES:
                fail(f"expected a device count >= 1 (at most {MAX_DEVICES}) or a list of "
                     f"them, got {value!r}")
            counts.append(item)
        if not counts:
            fail("expected at least one device count")
        if len(set(counts)) != len(counts):
            fail(f"device counts repeat: {value!r}")
        return tuple(counts)


class _ModuleList(_Field):
    """``plugins:``: dotted module names (checked before any is imported)."""

    def _check(self, value: Any, fail) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            fail(f"expected a list of module names, got {value!r}")
        for name in value:
            if not MODULE_NAME.match(name):
                fail(f"{name!r} is not a dotted module name (e.g. mypkg.bench_plugin)")
        return tuple(value)


class _Mapping(_Field):
    """A free mapping (params, npu): keys must be strings; the plugin checks the values."""

    def __init__(self, *, numbers: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.numbers = numbers

    def _check(self, value: Any, fail) -> dict:
        if not isinstance(value, dict):
            fail(f"expected a mapping, got {_type_name(value)}")
        for key, item in value.items():
            if not isinstance(key, str):
                fail(f"keys must be strings, got {key!r}")
            if self.numbers and not _finite_number(item):
                kind = "a finite number" if isinstance(item, float) else "a number"
                fail(f"{key}: expected {kind}, got {item!r}")
        return dict(value)


TARGET_BOUNDS = ("at_least", "at_most")


class _Targets(_Field):
    """``eval.target``: metric -> a number (at least it) or ``{at_least: x}`` / ``{at_most:
    x}``; normalised to ``{metric: {"at_least" | "at_most": x}}``."""

    def _check(self, value: Any, fail) -> dict:
        if not isinstance(value, dict):
            fail(f"expected a mapping of metric -> target, got {_type_name(value)}")
        out = {}
        for metric, bound in value.items():
            if not isinstance(metric, str) or not metric:
                fail(f"metric names must be strings, got {metric!r}")
            if isinstance(bound, dict):
                if len(bound) != 1 or next(iter(bound)) not in TARGET_BOUNDS:
                    fail(f"{metric}: expected a number or one of {{at_least: x}}, "
                         f"{{at_most: x}}, got {bound!r}")
                (kind, number), = bound.items()
            else:
                kind, number = "at_least", bound
            if not _finite_number(number):
                kind_of = "a finite number" if isinstance(number, float) else "a number"
                fail(f"{metric}: expected {kind_of}, got {number!r}")
            out[metric] = MappingProxyType({kind: float(number)})
        return out


def target_met(target: Mapping[str, Mapping[str, float]], metrics: Mapping[str, float]) -> bool:
    """Whether every metric of a (validated) ``eval.target`` holds in ``metrics``."""
    for metric, bound in target.items():
        value = metrics.get(metric)
        if value is None or value != value:
            return False
        if "at_most" in bound and not value <= bound["at_most"]:
            return False
        if "at_least" in bound and not value >= bound["at_least"]:
            return False
    return True


def _key(default: Any, check: _Field, factory: Any = None) -> Any:
    """A case key: its default and its check, in one place (the validator walks these)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"check": check})
    return field(default=default, metadata={"check": check})


def _section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"section": cls})


@dataclass(frozen=True)
class DataSpec:
    source: str = _key("synthetic", _Str())
    path: str | None = _key(None, _Str(nullable=True))
    eval_path: str | None = _key(None, _Str(nullable=True))
    probe_steps: int | None = _key(None, _Int(minimum=0, nullable=True))

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    @property
    def probe_batches(self) -> int:
        """Batches of the input-only pass before training: ``probe_steps``, else 20 for file
        sources and none for synthetic data (0 turns it off)."""
        if self.probe_steps is not None:
            return self.probe_steps
        return 0 if self.synthetic else DEFAULT_PROBE_STEPS


@dataclass(frozen=True)
class TrainSpec:
    steps: int | None = _key(100, _Int(minimum=1, nullable=True))
    epochs: float | None = _key(None, _Float(positive=True, nullable=True))
    warmup_steps: int = _key(10, _Int(minimum=0))
    log_every: int = _key(10, _Int(minimum=1))
    checkpoint_every: int | None = _key(None, _Int(minimum=1, nullable=True))
    checkpoint_data: bool = _key(True, _Bool())
    # steps per compiled call; None: the device's default (npu: log_every, else 1)
    steps_per_loop: int | None = _key(None, _Int(minimum=1, nullable=True))


@dataclass(frozen=True)
class EvalSpec:
    at_end: bool = _key(True, _Bool())
    every_steps: int | None = _key(None, _Int(minimum=1, nullable=True))
    steps: int | None = _key(None, _Int(minimum=1, nullable=True))
    target: Mapping[str, Mapping[str, float]] = _key(None, _Targets(), factory=dict)


@dataclass(frozen=True)
class ProfileSpec:
    start_step: int | None = _key(None, _Int(minimum=1, nullable=True))
    steps: int = _key(5, _Int(minimum=1))

    @property
    def enabled(self) -> bool:
        return self.start_step is not None

    @property
    def end_step(self) -> int:
        return (self.start_step or 0) + self.steps - 1


@dataclass(frozen=True)
class Case:
    """A validated case; every field but ``source`` is a case-file key with its default."""

    name: str = _key(None, _Str())  # default: the file's stem
    model: str = _key(None, _Str())  # required
    device: str = _key("cpu", _Str())
    devices: tuple[int, ...] = _key((1,), _DeviceCounts())
    precision: str = _key("fp32", _Str(choices=PRECISIONS))
    batch_size: int = _key(32, _Int(minimum=1, maximum=BATCH_MAX))
    data: DataSpec = _section(DataSpec)
    train: TrainSpec = _section(TrainSpec)
    eval: EvalSpec = _section(EvalSpec)
    params: Mapping[str, Any] = _key(None, _Mapping(), factory=dict)
    npu: Mapping[str, Any] = _key(None, _Mapping(), factory=dict)
    launcher: str = _key("auto", _Str(choices=LAUNCHERS))
    repeat: int = _key(1, _Int(minimum=1))
    profile: ProfileSpec = _section(ProfileSpec)
    # auto: eager on TF 2, graph (tf.compat.v1.Session) on TF 1.x and for graph-only adapters
    engine: str = _key("auto", _Str(choices=ENGINES))
    plugins: tuple[str, ...] = _key((), _ModuleList())
    seed: int = _key(0, _Int(minimum=0, maximum=SEED_MAX))
    timeout: float | None = _key(None, _Float(positive=True, maximum=TIMEOUT_MAX_S,
                                              nullable=True))
    description: str = _key("", _Str(empty=True))
    source: str = ""  # the file (and item) this case came from; not a key

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (the resolved case embedded in report.json)."""
        return _plain(self)


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

    def plugin_modules(self) -> list[str]:
        """The modules named in the case's ``plugins:`` key, once :func:`check_keys` has
        passed (a case file is code: its modules are imported only after its keys check)."""
        return list(check_keys(self)["plugins"])

    def add_plugin_modules(self, modules: list[str] | tuple[str, ...]) -> None:
        """Record the ``--plugin`` modules in the case's ``plugins`` (the report says which
        plugins a run loaded; worker processes load them from the resolved case)."""
        if not modules or not isinstance(self.data, dict):
            return
        names = self.data.get("plugins", [])
        if isinstance(names, str):
            names = [names]
        if isinstance(names, list):
            self.data["plugins"] = list(dict.fromkeys([*names, *modules]))


def parse_override(text: str) -> tuple[str, Any]:
    """``train.steps=10`` -> ("train.steps", 10); the value is read as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise BenchError(f"--set: expected KEY=VALUE with a dotted key, got {text!r}")
    parsed = parse_yaml(value, f"--set {key}") if value.strip() else None
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


def _checked(raw: RawCase, data: Any, cls: type, path: str) -> dict[str, Any]:
    """The values of section ``cls`` (a case dataclass) from ``data``, checked key by key;
    absent keys take the field's default. Unknown keys are errors."""
    if not isinstance(data, dict):
        raise raw.fail(path, f"expected a mapping, got {_type_name(data)}")
    keys = {f.name: f for f in fields(cls) if f.metadata}
    for key in data:
        if key not in keys:
            where = f"{path}.{key}" if path else str(key)
            raise raw.fail(where, f"unknown key; expected one of {', '.join(keys)}")
    out: dict[str, Any] = {}
    for key, spec in keys.items():
        dotted = f"{path}.{key}" if path else key

        def fail(message: str, dotted: str = dotted) -> None:
            raise raw.fail(dotted, message)

        if "section" in spec.metadata:
            out[key] = _checked(raw, data.get(key, {}), spec.metadata["section"], dotted)
        elif key in data:
            out[key] = spec.metadata["check"].check(data[key], fail)
        elif spec.default_factory is not MISSING:
            out[key] = spec.default_factory()
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
        _check_number(raw, dotted, merged[key])
    return merged


def _check_number(raw: RawCase, dotted: str, value: Any) -> None:
    """A parameter number TensorFlow can take: a finite float, an int within int64."""
    numbers = value if isinstance(value, list) else [value]
    for number in numbers:
        if isinstance(number, bool):
            continue
        if isinstance(number, int) and not -INT64_MAX - 1 <= number <= INT64_MAX:
            raise raw.fail(dotted, f"{number} does not fit in a 64-bit integer")
        if isinstance(number, float) and not math.isfinite(number):
            raise raw.fail(dotted, f"expected a finite number, got {number!r}")


def check_keys(raw: RawCase) -> dict[str, Any]:
    """Every key of ``raw`` checked against its type and range, without the registries: what
    needs no plugin (so a case's ``plugins:`` are imported only when the rest is sound).
    Returns the checked values (sections as dicts, defaults filled in)."""
    if not isinstance(raw.data, dict):
        raise raw.fail("", f"a case must be a mapping, got {_type_name(raw.data)}")
    values = _checked(raw, raw.data, Case, "")
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
    profile = values["profile"]
    if profile["start_step"] is not None and profile["start_step"] <= train["warmup_steps"]:
        raise raw.fail("profile.start_step",
                       f"must be after the warmup (train.warmup_steps: "
                       f"{train['warmup_steps']}); got {profile['start_step']}")
    if values["repeat"] > 1 and train["checkpoint_every"] is not None:
        raise raw.fail("repeat", "checkpoints (train.checkpoint_every) belong to one "
                                 "measurement; use repeat: 1 when saving them")
    if train["steps_per_loop"] is not None:
        problem = loop_problem(train["steps_per_loop"], train["log_every"], train["warmup_steps"],
                               values["eval"]["every_steps"], train["checkpoint_every"],
                               profile["start_step"], profile["steps"])
        if problem:
            raise raw.fail(*problem)
    biggest = values["batch_size"] * max(values["devices"])
    if biggest > BATCH_MAX:
        key = "batch_size" if "batch_size" in raw.data else "devices"
        raise raw.fail(key, f"the global batch {values['batch_size']} x {max(values['devices'])}"
                            f" devices = {biggest} is above {BATCH_MAX}")
    return values


def validate(raw: RawCase, models: ModelRegistry, devices: DeviceRegistry) -> Case:
    """Check every key of ``raw`` and resolve it against the registered models and devices."""
    values = check_keys(raw)
    if values["model"] is None:
        raise raw.fail("model", "missing; every case names a registered model")
    if values["model"] not in models:
        raise raw.fail("model", unknown("model", values["model"], models.names()))
    device = values["device"]
    if device != DEVICE_AUTO and device not in devices:
        raise raw.fail("device", unknown("device", device, devices.names() + [DEVICE_AUTO]))
    info = models.get(values["model"])
    given = raw.data.get("data")
    if not (isinstance(given, dict) and "source" in given):
        values["data"]["source"] = info.sources[0]  # the model's first declared source
    source = values["data"]["source"]
    if source not in info.sources:
        raise raw.fail("data.source", f"model {info.name!r} reads {', '.join(info.sources)}; "
                                      f"got {source!r}")
    if info.needs_path(source) and not values["data"]["path"]:
        raise raw.fail("data.path", f"data.source {source!r} needs a path")
    values.update(
        name=values["name"] or _default_name(raw),
        profile=ProfileSpec(**values["profile"]),
        device=device,
        data=DataSpec(**values["data"]),
        train=TrainSpec(**values["train"]),
        eval=EvalSpec(**{**values["eval"], "target": MappingProxyType(values["eval"]["target"])}),
        params=MappingProxyType(_check_params(raw, values["params"], info.params, info.name)),
        npu=MappingProxyType(values["npu"]),
    )
    return Case(**values, source=f"{raw.file}:{raw.prefix}" if raw.prefix else raw.file)


def loop_problem(steps_per_loop: int, log_every: int, warmup_steps: int,
                 eval_every: int | None, checkpoint_every: int | None = None,
                 profile_start: int | None = None, profile_steps: int | None = None,
                 origin: str = "") -> tuple[str, str] | None:
    """``(dotted key, message)`` when intervals, the warmup, evaluations, checkpoints or the
    profile window would end inside a loop of ``steps_per_loop`` steps (the host sees the
    steps only at the end of a loop, and an NPU's loop size must match every launch)."""
    profile_edge = None if profile_start is None else profile_start - 1
    for key, value in (("train.log_every", log_every), ("train.warmup_steps", warmup_steps),
                       ("eval.every_steps", eval_every)):
        if value and value % steps_per_loop:
            return key, (f"must be a multiple of train.steps_per_loop ({steps_per_loop}{origin}): "
                         f"intervals, warmup and evaluations end at whole loops; got {value}")
    if checkpoint_every and checkpoint_every % steps_per_loop:
        return "train.checkpoint_every", (
            f"must be a multiple of train.steps_per_loop ({steps_per_loop}{origin}): "
            f"checkpoints are saved at whole loops; got {checkpoint_every}")
    if profile_edge is not None:
        if profile_edge % steps_per_loop:
            return "profile.start_step", (
                f"must be one past a multiple of train.steps_per_loop ({steps_per_loop}{origin}): "
                f"the profile window starts and ends at whole loops; got {profile_start}")
        if profile_steps and profile_steps % steps_per_loop:
            return "profile.steps", (
                f"must be a multiple of train.steps_per_loop ({steps_per_loop}{origin}): the "
                f"profile window starts and ends at whole loops; got {profile_steps}")
    return None


def _default_name(raw: RawCase) -> str:
    stem = os.path.splitext(os.path.basename(raw.file))[0]
    if not raw.prefix:
        return stem
    index = "".join(ch for ch in raw.prefix if ch.isdigit())
    return f"{stem}-{index}"


def read_raw_cases(path: str, formats: CaseFormatRegistry) -> list[RawCase]:
    """Read one case file (a regular file of at most 1 MiB, UTF-8, a leading BOM dropped)
    with the first registered format that claims it; at most MAX_CASES cases."""
    if os.path.isdir(path):
        raise BenchError(f"{path}: is a directory, expected a case file (.yaml or .csv)")
    text = read_user_text(path, "case file", CASE_FILE_LIMIT)
    if not text.strip():
        raise BenchError(f"{path}: empty case file")
    for _name, reader in formats.items():
        if reader.claims(path, text):
            items = reader.read(path, text)
            if len(items) > MAX_CASES:
                raise BenchError(f"{path}: {len(items)} cases; a case file may hold at most "
                                 f"{MAX_CASES}")
            return [RawCase(path, prefix, data) for prefix, data in items]
    raise BenchError(f"{path}: unknown case file format; registered: "
                     f"{', '.join(formats.names())}")


def check_unique(cases: list[Case]) -> None:
    """Case names must differ within one run (they name the report folders)."""
    seen: dict[str, str] = {}
    for case in cases:
        if case.name in seen:
            raise BenchError(f"{case.source}: name: {case.name!r} is used twice "
                             f"(also {seen[case.name]})")
        seen[case.name] = case.source
