"""The device options (a case's ``npu:`` section after every ``configure_npu``), checked up front.

One schema for every device type, since a case file is device-agnostic (``--device`` switches
it): the Ascend keys follow the adapter's own names (``npu_device.global_options()``,
``NPURunConfig``); ``loss_scale``, ``peak_tflops`` and ``jit_compile`` are read by gpu and npu.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import BenchError

if TYPE_CHECKING:
    from harness.case import Case

# What the adapter accepts (npu_device/configs/npu_config.py): the first five everywhere, the
# rest in newer releases only (an older adapter's rejection is reported with the case key).
PRECISION_MODES = ("allow_mix_precision", "allow_fp32_to_fp16", "force_fp16",
                   "must_keep_origin_dtype", "force_fp32", "allow_mix_precision_fp16",
                   "allow_mix_precision_bf16", "allow_fp32_to_bf16", "cube_fp16in_fp32out")
# Modes that lower float32 to float16 somewhere, so the gradients want loss scaling.
FP16_MODES = ("allow_mix_precision", "allow_fp32_to_fp16", "force_fp16",
              "allow_mix_precision_fp16", "cube_fp16in_fp32out")
DUMP_MODES = ("input", "output", "all")
DUMP_DEBUG_MODES = ("all", "aicore_overflow", "atomic_overflow")
# ExponentialUpdateLossScaleManager's arguments (npu_bridge; contrib's names) for a dynamic
# loss scale on TF 1.15: the Ascend ModelZoo TF 1.15 scripts' values (BERT's optimization.py:
# init 2**32, grow every 1000 finite steps, shrink x0.5 after 2 overflows; incr_ratio default).
DYNAMIC_LOSS_SCALE = {"init_loss_scale": 2.0**32, "incr_every_n_steps": 1000,
                      "decr_every_n_nan_or_inf": 2, "incr_ratio": 2.0, "decr_ratio": 0.5}
PROFILING_TRACES = ("training_trace", "task_trace", "op_trace", "aicpu", "hccl", "l2",
                    "msproftx", "runtime_api", "aic_metrics")
# aic_metrics takes an AI Core metric group, not "on" (CANN profiler aclprofAicoreMetrics;
# the adapter's default and the ModelZoo TF 2 scripts use PipeUtilization).
AIC_METRICS = ("PipeUtilization", "ArithmeticUtilization", "Memory", "MemoryL0",
               "ResourceConflictRatio", "MemoryUB", "L2Cache", "MemoryAccess")


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


def _int_at_least(minimum: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            return f"expected an integer >= {minimum}, got {value!r}"
        return None

    return check


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"expected one of {', '.join(choices)}, got {value!r}"

    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else f"expected a non-empty string, got {value!r}"


def _existing_file(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"expected a file path, got {value!r}"
    return None if os.path.isfile(value) else f"no such file: {value}"


def _positive_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return f"expected a number > 0, got {value!r}"
    return None


def _loss_scale(value: Any) -> str | None:
    if value in ("dynamic", "none") or _positive_number(value) is None:
        return None
    return f"expected 'dynamic', 'none' or a number > 0, got {value!r}"


def _loss_scale_manager(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return f"expected a mapping of {', '.join(DYNAMIC_LOSS_SCALE)}, got {value!r}"
    for key, number in value.items():
        if key not in DYNAMIC_LOSS_SCALE:
            return f"unknown argument {key!r}; expected {', '.join(DYNAMIC_LOSS_SCALE)}"
        if _positive_number(number) is not None:
            return f"{key}: expected a number > 0, got {number!r}"
    return None


def _device_ids(value: Any) -> str | None:
    if (isinstance(value, (list, tuple)) and value
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value)):
        return None
    return f"expected a list of device ids >= 0, got {value!r}"


def _profiling_options(value: Any) -> str | None:
    try:
        profiling_json(value, "profiling")
    except ValueError as exc:
        return str(exc)
    return None


OPTION_CHECKS: dict[str, Callable[[Any], str | None]] = {
    # npu_device.global_options() / NPURunConfig / the NpuOptimizer parameter_map
    "precision_mode": _choice(PRECISION_MODES),
    "iterations_per_loop": _int_at_least(1),
    "hcom_parallel": _bool,
    "enable_data_pre_proc": _bool,
    "modify_mixlist": _existing_file,
    "enable_dump": _bool,
    "dump_path": _text,
    "dump_step": _text,
    "dump_mode": _choice(DUMP_MODES),
    "enable_dump_debug": _bool,
    "dump_debug_mode": _choice(DUMP_DEBUG_MODES),
    "profiling": _bool,
    "profiling_options": _profiling_options,
    "device_ids": _device_ids,
    # gpu and npu
    "loss_scale": _loss_scale,
    "loss_scale_manager": _loss_scale_manager,  # npu_bridge's dynamic scale (TF 1.15)
    "peak_tflops": _positive_number,
    "jit_compile": _bool,
}


def case_key(case: Case, dotted: str) -> str:
    """``file: [cases[i].]dotted`` as the case loader words its errors."""
    where, sep, prefix = case.source.partition(":")
    if sep and prefix and not os.path.exists(case.source):
        return f"{where}: {prefix}.{dotted}"
    return f"{case.source}: {dotted}"


def check_options(case: Case, options: Mapping[str, Any]) -> None:
    """Raise a one-line BenchError naming the case file and ``npu.<key>`` for a bad option.

    Unknown keys are errors only in the case file's own ``npu:`` section: a plugin's
    ``configure_npu`` may add keys of its own. Known keys are checked wherever they came from.
    """
    for key in case.npu:
        if key not in OPTION_CHECKS:
            raise BenchError(f"{case_key(case, f'npu.{key}')}: unknown option; expected one "
                             f"of {', '.join(OPTION_CHECKS)}")
    for key, check in OPTION_CHECKS.items():
        if key not in options:
            continue
        problem = check(options[key])
        if problem:
            origin = "" if case.npu.get(key, object()) == options[key] else \
                " (set by a configure_npu hook)"
            raise BenchError(f"{case_key(case, f'npu.{key}')}: {problem}{origin}")
    for flag in ("enable_dump", "enable_dump_debug"):  # the TF 1 adapter's rule (npu_attrs.cc)
        if options.get(flag) and not options.get("dump_path"):
            raise BenchError(f"{case_key(case, 'npu.dump_path')}: required when {flag} is true")


def precision_mode(options: Mapping[str, Any]) -> str:
    """The adapter precision mode: the option, else what ``precision`` asks for.

    ``force_fp32`` for fp32 (float32 where an op has it, float16 where it has not: the 910A
    cube has no float32, and must_keep_origin_dtype would fail there instead).
    """
    mode = options.get("precision_mode")
    if mode:
        return str(mode)
    return "allow_mix_precision" if options.get("precision") == "mixed" else "force_fp32"


def loss_scale(options: Mapping[str, Any], wanted: bool) -> float | str | None:
    """``"dynamic"``, a static scale, or None (no loss scaling); ``wanted`` is the default."""
    value = options.get("loss_scale")
    if value is None:
        return "dynamic" if wanted else None
    if value == "none":
        return None
    return value if value == "dynamic" else float(value)


def dynamic_loss_scale(options: Mapping[str, Any]) -> dict[str, Any]:
    """ExponentialUpdateLossScaleManager's keyword arguments: the defaults, amended by the
    ``loss_scale_manager`` option (counts as ints, ratios and the scale as floats)."""
    merged = {**DYNAMIC_LOSS_SCALE, **dict(options.get("loss_scale_manager") or {})}
    counts = ("incr_every_n_steps", "decr_every_n_nan_or_inf")
    return {k: int(v) if k in counts else float(v) for k, v in merged.items()}


def profiling_json(value: Any, default_output: str) -> str:
    """The adapter's ``profiling_options`` JSON from a mapping, a JSON string, or trace names
    (``training_trace:task_trace``, the ModelZoo case CSV's form; each becomes ``"on"``, and
    ``aic_metrics`` the PipeUtilization group). Raises ValueError."""
    if value is None:
        value = "training_trace"
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg}") from None
    if isinstance(value, str):
        names = [name for name in value.replace(",", ":").replace(" ", ":").split(":") if name]
        unknown = [name for name in names if name not in PROFILING_TRACES]
        if not names or unknown:
            raise ValueError(f"expected a mapping, JSON or trace names from "
                             f"{', '.join(PROFILING_TRACES)}; got {value!r}")
        value = {name: AIC_METRICS[0] if name == "aic_metrics" else "on" for name in names}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"expected a mapping, JSON or trace names, got {value!r}")
    if "aic_metrics" in value and value["aic_metrics"] not in AIC_METRICS:
        raise ValueError(f"aic_metrics: expected an AI Core metric group, one of "
                         f"{', '.join(AIC_METRICS)}; got {value['aic_metrics']!r}")
    merged = {"output": default_output, **{k: v for k, v in value.items()}}
    merged["output"] = os.path.abspath(str(merged["output"]))
    return json.dumps(merged, sort_keys=False)
