"""Device options -> the Ascend adapters' settings: npu_device.global_options() (TF 2), and the
session ConfigProto / NPURunConfig of npu_bridge (TF 1.15) for users who keep TF 1.15 scripts;
the ``bench npu-config`` command that prints them.

Key names are the adapters' own (tf_adapter_2.x npu_device/configs/*.py; tf_adapter
npu_bridge/estimator/npu/npu_estimator.py, which fills the NpuOptimizer parameter_map).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import click

from harness.devices.options import precision_mode, profiling_json

DEFAULT_PROFILING_DIR = "profiling"


class Call:
    """A constructor call rendered as Python source: ``DumpConfig(enable_dump=True, ...)``."""

    def __init__(self, name: str, kwargs: dict[str, Any]) -> None:
        self.name, self.kwargs = name, kwargs

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Call) and (self.name, self.kwargs) == (other.name, other.kwargs)


def _dump(options: Mapping[str, Any]) -> dict[str, Any]:
    if not (options.get("enable_dump") or options.get("enable_dump_debug")):
        return {}
    out: dict[str, Any] = {"enable_dump": bool(options.get("enable_dump")),
                           "enable_dump_debug": bool(options.get("enable_dump_debug"))}
    if options.get("dump_path"):
        out["dump_path"] = os.path.abspath(options["dump_path"])
    for key in ("dump_step", "dump_mode", "dump_debug_mode"):
        if options.get(key):
            out[key] = options[key]
    return out


def _profiling(options: Mapping[str, Any]) -> str | None:
    if not options.get("profiling"):
        return None
    return profiling_json(options.get("profiling_options"), DEFAULT_PROFILING_DIR)


def global_option_values(options: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted ``npu_device.global_options()`` attribute -> value, in the order to set them.

    iterations_per_loop and enable_data_pre_proc have no TF 2 global option: the TF 2 loop
    size is ``train.steps_per_loop`` (the backend's ``set_npu_loop_size``), and data
    preprocessing offload is TF 1 only.
    """
    values: dict[str, Any] = {"precision_mode": precision_mode(options)}
    if "hcom_parallel" in options:
        values["hcom_parallel"] = bool(options["hcom_parallel"])
    if options.get("modify_mixlist"):
        values["modify_mixlist"] = os.path.abspath(options["modify_mixlist"])
    for key, value in _dump(options).items():
        values[f"dump_config.{key}"] = value
    profiling = _profiling(options)
    if profiling:
        values["profiling_config.enable_profiling"] = True
        values["profiling_config.profiling_options"] = profiling
    return values


def run_config_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of npu_bridge's ``NPURunConfig`` (model_dir and session_config are
    the script's own); dump/profiling settings are ``DumpConfig``/``ProfilingConfig`` calls."""
    kwargs: dict[str, Any] = {
        "precision_mode": precision_mode(options),
        "iterations_per_loop": int(options.get("iterations_per_loop", 1)),
        # NPURunConfig's default was False in older releases; the ModelZoo passes True.
        "hcom_parallel": bool(options.get("hcom_parallel", True)),
        "enable_data_pre_proc": bool(options.get("enable_data_pre_proc", True)),
    }
    if options.get("modify_mixlist"):
        kwargs["modify_mixlist"] = os.path.abspath(options["modify_mixlist"])
    dump = _dump(options)
    if dump:
        kwargs["dump_config"] = Call("DumpConfig", dump)
    profiling = _profiling(options)
    if profiling:
        kwargs["profiling_config"] = Call("ProfilingConfig", {"enable_profiling": True,
                                                              "profiling_options": profiling})
    return kwargs


def parameter_map(options: Mapping[str, Any]) -> dict[str, Any]:
    """The NpuOptimizer ``parameter_map`` entries, as NPUEstimator fills them."""
    kwargs = run_config_kwargs(options)
    params: dict[str, Any] = {
        "use_off_line": True,
        "precision_mode": kwargs["precision_mode"],
        "iterations_per_loop": kwargs["iterations_per_loop"],
        "hcom_parallel": kwargs["hcom_parallel"],
        "enable_data_pre_proc": kwargs["enable_data_pre_proc"],
    }
    if "modify_mixlist" in kwargs:
        params["modify_mixlist"] = kwargs["modify_mixlist"]
    if "dump_config" in kwargs:
        params.update(kwargs["dump_config"].kwargs)
    if "profiling_config" in kwargs:
        params["profiling_mode"] = True
        params["profiling_options"] = kwargs["profiling_config"].kwargs["profiling_options"]
    return params


def session_config(options: Mapping[str, Any]) -> Any:
    """A ``tf.compat.v1.ConfigProto`` with the ``NpuOptimizer`` custom optimizer, remapping and
    memory_optimization off (what Ascend's migration guide requires for sess.run scripts)."""
    from harness.tfcompat import tf

    config = tf.compat.v1.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    custom_op = rewrite.custom_optimizers.add()
    custom_op.name = "NpuOptimizer"
    for key, value in parameter_map(options).items():
        attr = custom_op.parameter_map[key]
        if isinstance(value, bool):
            attr.b = value
        elif isinstance(value, int):
            attr.i = value
        else:
            attr.s = tf.compat.as_bytes(str(value))
    rewrite.remapping = rewrite.OFF
    # RewriterConfig.OFF (2), as the guide writes it, though this field's enum is MemOptType.
    rewrite.memory_optimization = rewrite.OFF
    return config


def session_config_source(config: Any) -> str:
    """Python (TF 1.15 + npu_bridge) that builds ``config``, read back from the proto itself."""
    lines = [
        "import tensorflow as tf",
        "from npu_bridge.npu_init import *  # registers NpuOptimizer, imports RewriterConfig",
        "",
        "config = tf.ConfigProto()",
    ]
    rewrite = config.graph_options.rewrite_options
    for custom_op in rewrite.custom_optimizers:
        lines += ["custom_op = config.graph_options.rewrite_options.custom_optimizers.add()",
                  f"custom_op.name = {custom_op.name!r}"]
        for key in sorted(custom_op.parameter_map):
            attr = custom_op.parameter_map[key]
            kind = attr.WhichOneof("value")
            value = getattr(attr, kind)
            if kind == "s":
                rendered = f"tf.compat.as_bytes({value.decode()!r})"
            else:
                rendered = repr(value)
            lines.append(f'custom_op.parameter_map["{key}"].{kind} = {rendered}')
    for field in ("remapping", "memory_optimization"):
        value = getattr(rewrite, field)
        if value:
            lines.append(f"config.graph_options.rewrite_options.{field} = "
                         f"RewriterConfig.{type(rewrite).Toggle.Name(value)}")
    loops = [c.parameter_map["iterations_per_loop"].i for c in rewrite.custom_optimizers
             if "iterations_per_loop" in c.parameter_map]
    if loops and loops[0] > 1:
        # npu_bridge/estimator/npu/util.py: the device loops only the op it returns, and only
        # as many times as the session config says: the two numbers must agree.
        lines += ["", f"# iterations_per_loop = {loops[0]}: build the train op, then, before the "
                  f"graph is finalized,",
                  "# from npu_bridge.estimator.npu import util",
                  f"# train_op = util.set_iteration_per_loop(sess, train_op, {loops[0]})",
                  f"# and sess.run(train_op): each run is {loops[0]} steps on the device."]
    return "\n".join(lines)


def run_config_source(kwargs: Mapping[str, Any]) -> str:
    """Python that builds the ``NPURunConfig`` of ``kwargs``. Its session config holds no
    NpuOptimizer: NPUEstimator adds an entry of its own to whatever it is given (npu_bridge
    npu_estimator.py), so the sess.run config would be registered twice."""
    imports = ["import tensorflow as tf",
               "from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig",
               "from npu_bridge.estimator.npu.npu_config import NPURunConfig"]
    if "dump_config" in kwargs:
        imports.append("from npu_bridge.estimator.npu.npu_config import DumpConfig")
    if "profiling_config" in kwargs:
        imports.append("from npu_bridge.estimator.npu.npu_config import ProfilingConfig")
    args = ",\n".join(f"    {key}={value!r}" for key, value in kwargs.items())
    return "\n".join(imports + [
        "",
        "# NPUEstimator adds its own NpuOptimizer: not the sess.run config (it would hold two)",
        "session_config = tf.ConfigProto(allow_soft_placement=True)",
        "session_config.graph_options.rewrite_options.remapping = RewriterConfig.OFF",
        "run_config = NPURunConfig(",
        args + ",",
        "    model_dir=MODEL_DIR,",
        "    session_config=session_config,",
        ")"])


def global_options_source(values: Mapping[str, Any], loop_size: int = 1) -> str:
    """Python (TF 2.6.5 + npu_device) that sets the same options before ``npu_device.open``
    and, for ``loop_size`` > 1, the loop size of the training loop (``train.steps_per_loop``)."""
    lines = ["import npu_device", "", "options = npu_device.global_options()"]
    lines += [f"options.{key} = {value!r}" for key, value in values.items()]
    lines.append("npu_device.open().as_default()")
    if loop_size > 1:
        lines += [f"npu_device.set_npu_loop_size({loop_size})  # before the first call of a "
                  f"tf.function",
                  f"# whose body is `for _ in tf.range(steps): step(next(iterator))`, called "
                  f"with steps = {loop_size} as a tensor"]
    return "\n".join(lines)


@click.command(name="npu-config")
@click.argument("cases", nargs=-1, required=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any case key (dotted), as bench run does. Repeatable.")
@click.option("--plugin", "plugin_modules", multiple=True, metavar="MODULE",
              help="Load a plugin module (its configure_npu amends the options). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def npu_config_command(cases: tuple[str, ...], overrides: tuple[str, ...],
               plugin_modules: tuple[str, ...], as_json: bool) -> None:
    """Print the Ascend settings of CASES: npu_device options (TF 2), the session ConfigProto
    and NPURunConfig of npu_bridge (TF 1.15 scripts)."""
    from harness.run.plan import device_options, load

    plugins, resolved = load(list(cases), list(overrides), list(plugin_modules))
    documents = []
    for case in resolved:
        options = device_options(case, plugins)
        loop_size = case.train.steps_per_loop or case.train.log_every  # the npu default
        # the TF 1.15 loop is train.steps_per_loop too, as bench run's (npu.iterations_per_loop:
        # kept for scripts of one's own)
        options.setdefault("iterations_per_loop", loop_size)
        values = global_option_values(options)
        config = session_config(options)
        kwargs = run_config_kwargs(options)
        if as_json:
            documents.append({
                "case": case.name, "source": case.source, "options": options,
                "global_options": values,
                "session_config": {"parameter_map": parameter_map(options),
                                   "remapping": "OFF", "memory_optimization": "OFF"},
                "npu_run_config": {k: ({v.name: v.kwargs} if isinstance(v, Call) else v)
                                   for k, v in kwargs.items()},
            })
            continue
        click.echo(f"# {case.source}: {case.name}\n")
        click.echo("## TF 2.6.5 + npu_device (what bench run sets)\n")
        click.echo(global_options_source(values, loop_size) + "\n")
        click.echo("## TF 1.15 + npu_bridge: session config (sess.run scripts)\n")
        click.echo(session_config_source(config) + "\n")
        click.echo("## TF 1.15 + npu_bridge: NPURunConfig (Estimator scripts)\n")
        click.echo(run_config_source(kwargs) + "\n")
    if as_json:
        click.echo(json.dumps(documents if len(documents) > 1 else documents[0], indent=2,
                              default=str))
