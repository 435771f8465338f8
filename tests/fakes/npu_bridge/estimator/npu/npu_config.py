"""``NPURunConfig``, ``DumpConfig``, ``ProfilingConfig``: the keyword arguments and their checks.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/estimator/npu/npu_config.py (master
085a7b2e). NPURunConfig subclasses tf.estimator.RunConfig (here: the real one when the installed
TF has tf.compat.v1.estimator, else a stand-in that keeps the RunConfig arguments). It checks:
``iterations_per_loop`` a positive int (TypeError / ValueError); ``mix_compile_mode`` a bool
(TypeError; ValueError up to r1.12) and, when True, ``iterations_per_loop`` 1 (ValueError);
``jit_compile`` a str (TypeError); a TF_CONFIG cluster only with a ParameterServerStrategy
(ValueError); ``dump_config`` a DumpConfig, ``experimental_config`` an ExperimentalConfig,
``dynamic_input_config`` a DynamicInputConfig (ValueError); ``horovod_mode`` a bool
(ValueError); ``graph_run_mode`` a non-negative int (TypeError / ValueError) <= 1 (ValueError);
``enable_exception_dump`` a non-negative int. It does not check ``precision_mode`` (the graph
pass does, at run time) and builds no session config: NPUEstimator adds the NpuOptimizer entry
(npu_estimator.py in this fake shows what it writes).

Defaults that changed: ``hcom_parallel`` True since r1.10 (False before); ProfilingConfig was
(enable_profiling, enable_options, fp_point, bp_point) in r1.1.1, then (enable_profiling,
profiling_options); ``modify_mixlist`` exists since r1.5.
"""

from __future__ import annotations

import json
import os

from .util import check_nonnegative_integer, check_positive_integer

_DEFAULTS = dict(
    iterations_per_loop=1, profiling_config=None, model_dir=None, tf_random_seed=None,
    save_summary_steps=0, save_checkpoints_steps=None, save_checkpoints_secs=None,
    session_config=None, keep_checkpoint_max=5, keep_checkpoint_every_n_hours=10000,
    log_step_count_steps=100, distribute=None, enable_data_pre_proc=True, precision_mode=None,
    enable_reduce_precision=False, variable_format_optimize=None, mix_compile_mode=False,
    hcom_parallel=True, graph_memory_max_size=None, variable_memory_max_size=None,
    dump_config=None, stream_max_parallel_num=None, is_tailing_optimization=False,
    horovod_mode=False, graph_run_mode=1, op_debug_level=None, enable_scope_fusion_passes=None,
    enable_exception_dump=2, op_select_implmode=None, optypelist_for_implmode=None,
    dynamic_input_config=None, aoe_mode=None, work_path=None, buffer_optimize="l2_optimize",
    enable_small_channel=0, fusion_switch_file=None, enable_compress_weight=False,
    compress_weight_conf=None, op_compiler_cache_mode=None, op_compiler_cache_dir=None,
    debug_dir=None, hcom_multi_mode=False, dynamic_input=None,
    dynamic_graph_execute_mode="dynamic_execute", dynamic_inputs_shape_range=None,
    train_distribute=None, eval_distribute=None, local_rank_id=None, local_device_list=None,
    session_device_id=None, distribute_config=None, modify_mixlist=None, op_precision_mode=None,
    device_type="default_device_type", soc_config=None, hccl_timeout=None, op_wait_timeout=None,
    op_execute_timeout=None, HCCL_algorithm=None, customize_dtypes=None, op_debug_config=None,
    memory_config=None, experimental_config=None, topo_sorting_mode=None, aoe_config_file=None,
    insert_op_file=None, stream_sync_timeout=-1, event_sync_timeout=-1, external_weight=False,
    es_cluster_config=None, deterministic=0, frozen_variable=False, variable_placement="Device",
    jit_compile="auto", precision_mode_v2=None, ac_parallel_enable=None)
# Stored under their own name; every other NPU argument as "_" + name (as the real class).
_PUBLIC = ("iterations_per_loop", "mix_compile_mode", "enable_data_pre_proc",
           "is_tailing_optimization", "variable_format_optimize", "horovod_mode", "graph_run_mode",
           "op_debug_level", "enable_scope_fusion_passes", "enable_exception_dump",
           "topo_sorting_mode", "aoe_config_file", "insert_op_file", "stream_sync_timeout",
           "event_sync_timeout", "es_cluster_config")
_RUN_CONFIG_ARGS = ("model_dir", "tf_random_seed", "save_summary_steps", "save_checkpoints_steps",
                    "save_checkpoints_secs", "session_config", "keep_checkpoint_max",
                    "keep_checkpoint_every_n_hours", "log_step_count_steps", "train_distribute",
                    "eval_distribute")


class _RunConfigStandIn:
    """tf.estimator.RunConfig's arguments, for TF builds without tf.estimator (TF >= 2.16)."""

    def __init__(self, **kwargs):
        self.__dict__["_args"] = dict(kwargs)

    def __getattr__(self, name):
        args = self.__dict__["_args"]
        if name in args:
            return args[name]
        raise AttributeError(name)

    def replace(self, **kwargs):
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__["_args"] = {**self.__dict__["_args"], **kwargs}
        return clone


def _run_config_base():
    import tensorflow as tf

    try:
        return tf.compat.v1.estimator.RunConfig
    except (AttributeError, ImportError):
        return _RunConfigStandIn


class NPURunConfig(_run_config_base()):
    def __init__(self, *args, **kwargs):
        if len(args) > len(_DEFAULTS):
            raise TypeError(f"__init__() takes at most {len(_DEFAULTS) + 1} positional arguments")
        for name, value in zip(_DEFAULTS, args):  # the real signature's order
            if name in kwargs:
                raise TypeError(f"__init__() got multiple values for argument '{name}'")
            kwargs[name] = value
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise TypeError(f"__init__() got an unexpected keyword argument '{unknown[0]}'")
        a = {**_DEFAULTS, **kwargs}
        check_positive_integer(a["iterations_per_loop"], "iterations_per_loop")
        if not isinstance(a["mix_compile_mode"], bool):
            raise TypeError('"mix_compile_mode" type must be bool')
        if a["mix_compile_mode"] is True and a["iterations_per_loop"] != 1:
            raise ValueError('"iterations_per_loop" must be 1 with "mix_compile_mode" is True')
        if not isinstance(a["jit_compile"], str):
            raise TypeError("Expected str, got " + type(a["jit_compile"]).__name__)
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        if cluster and not _is_ps_strategy(a["distribute"]):
            raise ValueError('"cluster" and "distribute" must all be set in ps mode')
        if not cluster and _is_ps_strategy(a["distribute"]):
            raise ValueError('"cluster" and "distribute" must all be set in ps mode')
        if cluster and a["mix_compile_mode"] is False:
            raise ValueError('"mix_compile_mode" can only be True with "cluster" is set')
        if a["dump_config"] is not None and not isinstance(a["dump_config"], DumpConfig):
            raise ValueError("`dump_config` must be provided with type `DumpConfig`")
        if a["experimental_config"] is not None and \
                not isinstance(a["experimental_config"], ExperimentalConfig):
            raise ValueError("`experimental_config` must be provided with type `ExperimentalConfig`")
        if not isinstance(a["horovod_mode"], bool):
            raise ValueError('"horovod_mode" type must be bool')
        check_nonnegative_integer(a["graph_run_mode"], "graph_run_mode")
        if a["graph_run_mode"] > 1:
            raise ValueError('"graph_run_mode" value must be 0 or 1')
        check_nonnegative_integer(a["enable_exception_dump"], "enable_exception_dump")
        if a["dynamic_input_config"] is not None and \
                not isinstance(a["dynamic_input_config"], DynamicInputConfig):
            raise ValueError("dynamic_input_config must be provided with type DynamicInputConfig")
        for name, value in a.items():
            if name in _RUN_CONFIG_ARGS or name == "distribute":
                continue
            object.__setattr__(self, name if name in _PUBLIC else "_" + name, value)
        from ... import CALLS

        CALLS.append(("NPURunConfig", {k: v for k, v in kwargs.items() if k != "session_config"}))
        base = {k: a[k] for k in _RUN_CONFIG_ARGS}
        if base["save_checkpoints_secs"] is None and base["save_checkpoints_steps"] is None:
            base["save_checkpoints_steps"] = 100
        super().__init__(**base)


def _is_ps_strategy(distribute) -> bool:
    return distribute is not None and "ParameterServerStrategy" in type(distribute).__name__


class ProfilingConfig:
    def __init__(self, enable_profiling=False, profiling_options=None):
        self._enable_profiling = enable_profiling
        self._profiling_options = profiling_options


class DumpConfig:
    def __init__(self, enable_dump=False, dump_path=None, dump_step=None, dump_mode="output",
                 enable_dump_debug=False, dump_debug_mode="all", dump_data="tensor",
                 dump_layer=None):
        self._enable_dump = enable_dump
        self._dump_path = dump_path
        self._dump_step = dump_step
        self._dump_mode = dump_mode
        self._enable_dump_debug = enable_dump_debug
        self._dump_debug_mode = dump_debug_mode
        self.dump_data = dump_data
        self.dump_layer = dump_layer


class MemoryConfig:
    def __init__(self, atomic_clean_policy=0, static_memory_policy=0,
                 memory_optimization_policy=None):
        self._atomic_clean_policy = atomic_clean_policy
        self._static_memory_policy = static_memory_policy
        self._memory_optimization_policy = memory_optimization_policy


class ExperimentalConfig:
    """Accepted and kept; NPUEstimator's experimental keys are not modelled by this fake."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs


class DynamicInputConfig:
    def __init__(self, input_shape, dynamic_dims, dynamic_node_type):
        self._input_shape = input_shape
        self._dynamic_dims = dynamic_dims
        self._dynamic_node_type = dynamic_node_type
