"""What ``NPUEstimator(config=NPURunConfig(...))`` writes into the session config.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/estimator/npu/npu_estimator.py (master
085a7b2e), ``NPUEstimator.__load_graph_optimizers`` and its ``__load_*`` helpers. NPUEstimator
itself (model_fn wrapping, hooks, JOB_ID job info) is not modelled; ``load_graph_optimizers``
(a fake-only public name for that private method) is, so tests can compare a hand-built
session config with the Estimator's:

* ``session_config`` None: a new ConfigProto; else that object, changed in place: it gets
  ``rewrite_options.optimizers`` += pruning ... GradFusionOptimizer and a NEW custom
  optimizer entry "NpuOptimizer" even when one is already there (two entries then).
* It does not set ``remapping`` or ``memory_optimization`` (the sess.run recipe and, since
  r1.10, npu_init's Session patch do; the graph pass turns remapping off only for sessions
  without NpuOptimizer).
"""

from __future__ import annotations

import json
import os

# parameter_map key -> (NPURunConfig attribute, proto field), written when the value is not None
_IF_SET = [
    ("graph_memory_max_size", "_graph_memory_max_size", "str"),
    ("variable_memory_max_size", "_variable_memory_max_size", "str"),
    ("op_debug_level", "op_debug_level", "i"),
    ("enable_scope_fusion_passes", "enable_scope_fusion_passes", "s"),
    ("buffer_optimize", "_buffer_optimize", "s"),
    ("fusion_switch_file", "_fusion_switch_file", "s"),
    ("compress_weight_conf", "_compress_weight_conf", "s"),
    ("op_compiler_cache_mode", "_op_compiler_cache_mode", "s"),
    ("op_compiler_cache_dir", "_op_compiler_cache_dir", "s"),
    ("debug_dir", "_debug_dir", "s"),
    ("dynamic_input", "_dynamic_input", "b"),
    ("dynamic_graph_execute_mode", "_dynamic_graph_execute_mode", "s"),
    ("dynamic_inputs_shape_range", "_dynamic_inputs_shape_range", "s"),
    ("local_rank_id", "_local_rank_id", "i"),
    ("local_device_list", "_local_device_list", "s"),
    ("soc_config", "_soc_config", "s"),
    ("hccl_timeout", "_hccl_timeout", "i"),
    ("op_wait_timeout", "_op_wait_timeout", "i"),
    ("op_execute_timeout", "_op_execute_timeout", "i"),
    ("HCCL_algorithm", "_HCCL_algorithm", "s"),
    ("customize_dtypes", "_customize_dtypes", "s"),
    ("op_debug_config", "_op_debug_config", "s"),
    ("topo_sorting_mode", "topo_sorting_mode", "i"),
    ("insert_op_file", "insert_op_file", "s"),
    ("es_cluster_config", "es_cluster_config", "s"),
    ("session_device_id", "_session_device_id", "i"),
    ("modify_mixlist", "_modify_mixlist", "s"),
    ("op_precision_mode", "_op_precision_mode", "s"),
    ("precision_mode", "_precision_mode", "s"),
    ("precision_mode_v2", "_precision_mode_v2", "s"),
    ("variable_format_optimize", "variable_format_optimize", "b"),
    ("stream_max_parallel_num", "_stream_max_parallel_num", "s"),
    ("ac_parallel_enable", "_ac_parallel_enable", "s"),
    ("op_select_implmode", "_op_select_implmode", "s"),
    ("optypelist_for_implmode", "_optypelist_for_implmode", "s"),
]
# Always written.
_ALWAYS = [
    ("enable_data_pre_proc", "enable_data_pre_proc", "b"),
    ("mix_compile_mode", "mix_compile_mode", "b"),
    ("iterations_per_loop", "iterations_per_loop", "i"),
    ("is_tailing_optimization", "is_tailing_optimization", "b"),
    ("hcom_parallel", "_hcom_parallel", "b"),
    ("graph_run_mode", "graph_run_mode", "i"),
    ("enable_exception_dump", "enable_exception_dump", "i"),
    ("enable_small_channel", "_enable_small_channel", "i"),
    ("deterministic", "_deterministic", "i"),
    ("enable_compress_weight", "_enable_compress_weight", "b"),
    ("hcom_multi_mode", "_hcom_multi_mode", "b"),
    ("device_type", "_device_type", "s"),
    ("jit_compile", "_jit_compile", "s"),
    ("stream_sync_timeout", "stream_sync_timeout", "i"),
    ("event_sync_timeout", "event_sync_timeout", "i"),
    ("external_weight", "_external_weight", "b"),
    ("frozen_variable", "_frozen_variable", "b"),
    ("variable_placement", "_variable_placement", "s"),
    ("enable_reduce_precision", "_enable_reduce_precision", "b"),
]
_OPTIMIZERS = ["pruning", "function", "constfold", "shape", "arithmetic", "loop", "dependency",
               "layout", "GradFusionOptimizer"]


def _put(tf, param_map, key, kind, value):
    if kind == "b":
        param_map[key].b = bool(value)
    elif kind == "i":
        param_map[key].i = int(value)
    else:
        param_map[key].s = tf.compat.as_bytes(str(value) if kind == "str" else value)


def load_graph_optimizers(config):
    """The NPURunConfig with its session config extended as NPUEstimator does it."""
    import tensorflow as tf

    if config.session_config is None:
        config = config.replace(session_config=tf.compat.v1.ConfigProto())
    rewrite = config.session_config.graph_options.rewrite_options
    rewrite.optimizers.extend(_OPTIMIZERS)
    custom_op = rewrite.custom_optimizers.add()
    custom_op.name = "NpuOptimizer"
    pm = custom_op.parameter_map
    pm["use_off_line"].b = True
    pm["min_group_size"].b = True  # sic: the Estimator writes .b = 1
    for key, attr, kind in _ALWAYS:
        _put(tf, pm, key, kind, getattr(config, attr))
    for key, attr, kind in _IF_SET:
        value = getattr(config, attr, None)
        if value is not None:
            _put(tf, pm, key, kind, value)
    profiling = config._profiling_config
    if profiling is not None:
        pm["profiling_mode"].b = profiling._enable_profiling
        if profiling._enable_profiling:
            _put(tf, pm, "profiling_options", "s", profiling._profiling_options or "")
    memory = config._memory_config
    if memory is not None:
        pm["atomic_clean_policy"].i = memory._atomic_clean_policy
        if memory._static_memory_policy is not None:
            pm["static_memory_policy"].i = memory._static_memory_policy
        if memory._memory_optimization_policy is not None:
            _put(tf, pm, "memory_optimization_policy", "s", memory._memory_optimization_policy)
    _dump(tf, pm, config._dump_config)
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = cluster.get("task", {}) if cluster.get("cluster") else {}
    _put(tf, pm, "job", "s", task.get("type", "localhost"))
    pm["task_index"].i = int(task.get("index", 0))
    dynamic = config._dynamic_input_config
    if dynamic is not None:
        _put(tf, pm, "input_shape", "s", dynamic._input_shape)
        _put(tf, pm, "dynamic_dims", "s", dynamic._dynamic_dims)
        pm["dynamic_node_type"].i = dynamic._dynamic_node_type
    if config._aoe_mode is not None:
        _put(tf, pm, "aoe_mode", "s", config._aoe_mode)
        _put(tf, pm, "work_path", "s", config._work_path if config._work_path is not None else "./")
        if config._distribute_config is not None:
            _put(tf, pm, "distribute_config", "s", config._distribute_config)
    if config.aoe_config_file is not None:
        _put(tf, pm, "aoe_config_file", "s", config.aoe_config_file)
    if config._experimental_config is None:
        _put(tf, pm, "experimental_logical_device_cluster_deploy_mode", "s", "LB")
    return config


def _dump(tf, pm, dump):
    if dump is None:
        pm["enable_dump"].b = False
        pm["enable_dump_debug"].b = False
        return
    pm["enable_dump"].b = dump._enable_dump
    pm["enable_dump_debug"].b = dump._enable_dump_debug
    for key, value in (("dump_path", dump._dump_path), ("dump_step", dump._dump_step),
                       ("dump_mode", dump._dump_mode)):
        if value is not None:
            _put(tf, pm, key, "s", value)
    if dump._dump_mode is not None:  # sic: the Estimator tests dump_mode before dump_debug_mode
        _put(tf, pm, "dump_debug_mode", "s", dump._dump_debug_mode)
    if dump.dump_data is not None:
        _put(tf, pm, "dump_data", "s", dump.dump_data)
    if dump.dump_layer is not None:
        _put(tf, pm, "dump_layer", "s", dump.dump_layer)
