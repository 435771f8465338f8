"""The options object of ``npu_device.global_options()``: fixed names, checked values."""

from __future__ import annotations

# Real: npu_device/configs/npu_config.py. Tests shrink this to play an older adapter.
PRECISION_MODES = ["force_fp32", "allow_fp32_to_fp16", "force_fp16", "must_keep_origin_dtype",
                   "allow_mix_precision", "cube_fp16in_fp32out", "allow_mix_precision_fp16",
                   "allow_mix_precision_bf16", "allow_fp32_to_bf16"]


class _Options:
    """Attributes are declared in ``_fields`` as name -> (default, choices or None)."""

    _fields: dict = {}

    def __init__(self, calls: list, prefix: str = "") -> None:
        object.__setattr__(self, "_calls", calls)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_values", {k: d for k, (d, _c) in self._fields.items()})

    def __getattr__(self, name: str):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        if name not in self._fields:
            raise ValueError(f"{type(self).__name__} has no option {name}, all options "
                             f"{list(self._fields)}")
        choices = self._fields[name][1]
        if choices is not None and value not in choices:
            raise ValueError(f"'{value}' not in optional list {choices}")
        self._calls.append(("set", self._prefix + name, value))
        self._values[name] = value

    def as_dict(self) -> dict:
        out = {}
        for name, value in self._values.items():
            if isinstance(value, _Options):
                out.update(value.as_dict())
            elif value is not None:
                out[name] = value
        return out


class NpuDumpConfig(_Options):
    _fields = {"enable_dump": (False, [True, False]), "dump_path": (None, None),
               "dump_step": (None, None), "dump_mode": ("output", ["input", "output", "all"]),
               "enable_dump_debug": (False, [True, False]), "dump_debug_mode": (None, None)}


class NpuProfilingConfig(_Options):
    _fields = {"enable_profiling": (False, [True, False]), "profiling_options": (None, None)}


class NpuConfig(_Options):
    _fields = {"graph_run_mode": (1, [0, 1]), "precision_mode": (None, PRECISION_MODES),
               "hcom_parallel": (True, [True, False]), "modify_mixlist": (None, None),
               "op_debug_level": (0, None), "dump_config": (None, None),
               "profiling_config": (None, None)}

    def __init__(self, calls: list) -> None:
        super().__init__(calls)
        self._values["dump_config"] = NpuDumpConfig(calls, "dump_config.")
        self._values["profiling_config"] = NpuProfilingConfig(calls, "profiling_config.")
