"""``npu_device.global_options()``: every option name of the real NpuConfig, with its choices.

Real: Ascend/tensorflow tf_adapter_2.x/python/npu_device/configs/npu_config.py (and
aoe_config.py, memory_config.py, experimental_config.py and its sub-configs), master 085a7b2e.
Older adapters (r1.8.0, 2022-04) had precision_mode default 'allow_fp32_to_fp16' and only the
first five modes, hcom_parallel default False, and no TypeError; tests shrink PRECISION_MODES
to play one.
"""

from __future__ import annotations

from npu_device.configs.dump_config import NpuDumpConfig
from npu_device.configs.option_base import DeprecatedValue, NpuBaseConfig, OptionValue
from npu_device.configs.profiling_config import NpuProfilingConfig

PRECISION_MODES = ["force_fp32", "allow_fp32_to_fp16", "force_fp16", "must_keep_origin_dtype",
                   "allow_mix_precision", "cube_fp16in_fp32out", "allow_mix_precision_fp16",
                   "allow_mix_precision_bf16", "allow_fp32_to_bf16"]


class _Sub(NpuBaseConfig):
    """A sub-config declared from a name -> (default, choices) table."""

    def __init__(self, prefix: str, fields: dict, subs: dict | None = None):
        self._prefix = prefix
        for name, (default, choices) in fields.items():
            setattr(self, name, OptionValue(default, choices))
        for name, sub in (subs or {}).items():
            setattr(self, name, sub)
        super().__init__()


def _experimental() -> _Sub:
    p = "experimental."
    return _Sub(p, {"resource_config_path": (None, None),
                    "graph_parallel_option_path": (None, None),
                    "enable_graph_parallel": (False, [True, False])},
                {"multi_branches_config": _Sub(p + "multi_branches_config.", {
                    "input_shape": (None, None), "dynamic_node_type": (None, ["0"]),
                    "dynamic_dims": (None, None)}),
                 "logical_device_deploy_config": _Sub(p + "logical_device_deploy_config.", {
                     "logical_device_cluster_deploy_mode": ("LB", ["LB", "SINGLE"]),
                     "logical_device_id": (None, None)}),
                 "model_deploy_config": _Sub(p + "model_deploy_config.", {
                     "model_deploy_mode": (None, None), "model_deploy_devicelist": (None, None)}),
                 "graph_memory_optimize_config": _Sub(p + "graph_memory_optimize_config.", {
                     "recompute": (None, ["auto", "manual"]), "graph_slice": (None, ["auto"])})})


class NpuConfig(NpuBaseConfig):
    def __init__(self):
        self._prefix = ""
        self.graph_run_mode = OptionValue(1, [0, 1])
        self.graph_memory_max_size = OptionValue(None, None)
        self.variable_memory_max_size = OptionValue(None, None)
        self.variable_format_optimize = DeprecatedValue([True, False], replacement=None)
        self.enable_scope_fusion_passes = OptionValue(None, None)
        self.fusion_switch_file = OptionValue(None, None)
        self.precision_mode = OptionValue(None, PRECISION_MODES)
        self.op_select_implmode = DeprecatedValue(["high_performance", "high_precision"],
                                                  replacement="op_precision_mode")
        self.optypelist_for_implmode = DeprecatedValue(None, replacement="op_precision_mode")
        self.op_compiler_cache_mode = OptionValue("enable", ["enable", "disable", "force"])
        self.op_compiler_cache_dir = OptionValue(None, None)
        self.stream_max_parallel_num = OptionValue(None, None)
        self.ac_parallel_enable = OptionValue(None, ["0", "1"])
        self.hcom_parallel = OptionValue(True, [True, False])
        self.hcom_multi_mode = OptionValue(None, None)
        self.is_tailing_optimization = OptionValue(False, [True, False])
        self.op_debug_level = DeprecatedValue([0, 1, 2, 3, 4], replacement="op_debug_config")
        self.op_debug_config = OptionValue(None, None)
        self.debug_dir = OptionValue(None, None)
        self.modify_mixlist = OptionValue(None, None)
        self.enable_exception_dump = OptionValue(2, [0, 1, 2])
        self.dump_config = NpuDumpConfig()
        self.aoe_config = _Sub("aoe_config.", {"aoe_mode": (None, ["1", "2", "4"]),
                                               "work_path": ("./", None),
                                               "aoe_config_file": (None, None)})
        self.profiling_config = NpuProfilingConfig()
        self.enable_small_channel = OptionValue(False, [True, False])
        self.deterministic = OptionValue(0, [0, 1])
        self.op_precision_mode = OptionValue(None, None)
        self.graph_exec_timeout = OptionValue(None, None)
        self.topo_sorting_mode = OptionValue(None, [0, 1, None])
        self.customize_dtypes = OptionValue(None, None)
        self.overflow_flag = OptionValue(1, [0, 1])
        self.stream_sync_timeout = OptionValue(-1, None)
        self.event_sync_timeout = OptionValue(-1, None)
        self.external_weight = OptionValue(False, [True, False])
        self.memory_config = _Sub("memory_config.", {"atomic_clean_policy": (0, [0, 1]),
                                                     "static_memory_policy": (0, [0, 1, 2])})
        self.jit_compile = OptionValue("auto", ["true", "false", "auto"])
        self.graph_compiler_cache_dir = OptionValue(None, None)
        self.experimental = _experimental()
        self.precision_mode_v2 = OptionValue(None, ["fp16", "origin", "cube_fp16in_fp32out",
                                                    "mixed_float16", "mixed_bfloat16"])
        super().__init__()
