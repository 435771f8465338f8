"""What the TF 1 adapter's graph pass checks in an ``NpuOptimizer`` session config, at run time.

Real: Ascend/tensorflow tf_adapter/util/npu_attrs.cc ``NpuAttrs::SetNpuOptimizerAttr`` and
``GetPassOptions``, tf_adapter/optimizers/om_partition_subgraphs_pass.cc (master 085a7b2e).
They run when a session first executes a graph, so a bad config fails the first
``sess.run``, not ``tf.Session(config=...)``:

* ``enable_dump`` or ``enable_dump_debug`` without ``dump_path``: InternalError
  "if use dump function, dump_path must be set." (every release since r1.1.1); a dump_path that
  is not a directory, or not readable and writable: InternalError.
* ``dump_step`` malformed: InternalError (the adapter's messages); ``dump_mode`` or
  ``dump_debug_mode`` outside their lists: the adapter aborts the process (LOG(FATAL)).
* ``precision_mode`` outside the adapter's list: InvalidArgumentError "'x' is invalid, it should
  be one of the list:[...]" (checked by the adapter since 2023-02, ad039265; before, the mode
  went to the graph engine unchecked here).
* ``enable_exception_dump`` outside 0..2: InternalError; ``graph_run_mode`` > 1,
  ``iterations_per_loop`` < 1, a OneShotIterator with iterations_per_loop != 1, and (since
  r1.12) ``mix_compile_mode`` without ``variable_placement``: process aborts.

Process aborts are raised here as InternalError whose message starts "[LOG(FATAL)]", so a test
sees them without losing its process. A config without NpuOptimizer runs on the host (no NPU):
recorded as ("session", None).

Loop sinking: with ``iterations_per_loop`` = N > 1 in the config, running the IterationOp that
``util.set_iteration_per_loop(sess, train_op, N)`` returned makes the device run the step N
times per ``sess.run``; the fake runs it N times. Assumed (not found in the source): the fake
refuses an IterationOp built for another N than the config's.

Fake-only: in multi-process runs (FAKE_HCCL_DIR set, RANK_SIZE > 1) sessions get a wide
inter-op thread pool, so file-based collectives waiting for their peers cannot starve it.
"""

from __future__ import annotations

import os
import weakref

PRECISION_MODES = ["force_fp32", "allow_fp32_to_fp16", "force_fp16", "must_keep_origin_dtype",
                   "allow_mix_precision", "cube_fp16in_fp32out", "allow_mix_precision_fp16",
                   "allow_mix_precision_bf16", "allow_fp32_to_bf16"]
DUMP_MODES = ("input", "output", "all")
DUMP_DEBUG_MODES = ("aicore_overflow", "atomic_overflow", "all")
INTER_OP_THREADS = 256


def _value(attr):
    kind = attr.WhichOneof("value")
    value = getattr(attr, kind) if kind else None
    return value.decode() if isinstance(value, bytes) else value


def npu_optimizer_params(config) -> tuple:
    """(number of NpuOptimizer entries, the last one's parameter_map as a dict)."""
    entries = [c for c in config.graph_options.rewrite_options.custom_optimizers
               if c.name == "NpuOptimizer"] if config is not None else []
    if not entries:
        return 0, None
    params = {}
    for entry in entries:  # the adapter reads every entry; a later one overrides
        params.update({key: _value(entry.parameter_map[key]) for key in entry.parameter_map})
    return len(entries), params


def _fatal(tf, message):
    return tf.errors.InternalError(None, None, f"[LOG(FATAL)] {message} (the real adapter "
                                               f"aborts the process here)")


def _check_path(tf, path):
    if not os.path.isdir(path):
        return tf.errors.InternalError(None, None, f"the path {path} is not directory.")
    if not os.access(path, os.R_OK | os.W_OK):
        return tf.errors.InternalError(None, None,
                                       f"the path {path} does't have read, write permissions.")
    return None


def _check_dump_step(tf, step):
    sets = step.split("|")
    if len(sets) > 100:
        return tf.errors.InternalError(None, None, "dump_step only support dump <= 100 sets of data")
    for item in sets:
        bounds = item.split("-")
        if len(bounds) > 2 or not all(b.isdigit() for b in bounds):
            return tf.errors.InternalError(
                None, None, "dump_step string style is error, correct example:'0|5|10|50-100'")
        if len(bounds) == 2 and int(bounds[0]) >= int(bounds[1]):
            return tf.errors.InternalError(None, None, "in range steps, the first step is >= "
                                                       "second step, correct example:'0|5|10-20'")
    return None


def check(tf, config):
    """The parameter_map as a dict (None without NpuOptimizer), or the error the adapter gives."""
    count, p = npu_optimizer_params(config)
    if p is None:
        return None
    dump, debug = bool(p.get("enable_dump")), bool(p.get("enable_dump_debug"))
    if dump or debug:
        if "dump_path" not in p:
            return tf.errors.InternalError(None, None, "if use dump function, dump_path must be set.")
        error = _check_path(tf, p["dump_path"])
        if error:
            return error
    if dump and "dump_step" in p:
        error = _check_dump_step(tf, p["dump_step"])
        if error:
            return error
    if dump and p.get("dump_mode", "output") not in DUMP_MODES:
        return _fatal(tf, "dump mode should be one of the list:[input, output, all]")
    if debug and p.get("dump_debug_mode", "all") not in DUMP_DEBUG_MODES:
        return _fatal(tf, "dump debug mode should be one of the list:[aicore_overflow, "
                          "atomic_overflow, all]")
    if p.get("graph_run_mode", 1) > 1:
        return _fatal(tf, "graph_run_mode value must be 0 or 1")
    if "precision_mode" in p and p["precision_mode"] not in PRECISION_MODES:
        allowed = ", ".join(f"'{m}'" for m in PRECISION_MODES)
        return tf.errors.InvalidArgumentError(
            None, None, f"'{p['precision_mode']}' is invalid, it should be one of the list:[{allowed}]")
    if not 0 <= p.get("enable_exception_dump", 2) <= 2:
        return tf.errors.InternalError(None, None,
                                       "enable_exception_dump should be one of 0, 1 and 2.")
    if p.get("iterations_per_loop", 1) < 1:
        return _fatal(tf, "iterator_per_loop should be int and must >= 1")
    if "mix_compile_mode" in p and "variable_placement" not in p:
        return _fatal(tf, "parameter_map has mix_compile_mode but no variable_placement "
                          "(std::out_of_range in GetPassOptions)")
    p["_entries"] = count
    return p


def _fetched_ops(graph, fetches):
    if fetches is None:
        return
    if isinstance(fetches, (list, tuple)):
        for item in fetches:
            yield from _fetched_ops(graph, item)
    elif isinstance(fetches, dict):
        for item in fetches.values():
            yield from _fetched_ops(graph, item)
    elif isinstance(fetches, str):
        try:
            element = graph.as_graph_element(fetches)
        except (KeyError, ValueError, TypeError):
            return
        yield getattr(element, "op", element)
    else:
        op = getattr(fetches, "op", fetches)
        if getattr(op, "graph", None) is graph:
            yield op


def register_iteration_op(graph, name: str, iterations_per_loop: int) -> None:
    """Called by util.set_iteration_per_loop for the IterationOp it builds."""
    ops = _state()["iteration_ops"]
    ops.setdefault(graph, {})[name] = iterations_per_loop


def _loops(tf, state, session, params, fetches) -> int:
    if not params:
        return 1
    loops = params.get("iterations_per_loop", 1)
    graph = session.graph
    built = state["iteration_ops"].get(graph, {})
    wanted = [built[op.name] for op in _fetched_ops(graph, fetches) if op.name in built]
    if not wanted:
        return 1
    if loops > 1 and any(n != loops for n in wanted):
        raise tf.errors.InvalidArgumentError(
            None, None, f"fake npu_bridge: set_iteration_per_loop(..., {wanted[0]}) but the "
                        f"session config has iterations_per_loop {loops} (assumed refusal)")
    if loops > 1 and any(op.type == "OneShotIterator" for op in graph.get_operations()):
        raise _fatal(tf, "iterator_per_loop only support 1 when using OneShotIterator")
    return loops


def _state() -> dict:
    """The one patch of Session.run in this process, shared by every copy of this module
    (npu_bridge and npu_device.compat.v1 load the same file under two names)."""
    import tensorflow as tf
    from tensorflow.python.client import session as session_lib

    base = session_lib.BaseSession
    state = base.__dict__.get("_fake_npu_state")
    if state is None:
        state = {"sinks": [], "run": base.run, "init": base.__init__,
                 "iteration_ops": weakref.WeakKeyDictionary()}

        def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
            return _run(tf, state, self, fetches, feed_dict, options, run_metadata)

        def init(self, target="", graph=None, config=None):
            state["init"](self, target, graph, _wide_pool(tf, config))

        base.run = run
        base.__init__ = init
        base._fake_npu_state = state
    return state


def _wide_pool(tf, config):
    """Fake-only: with ranks exchanging through files, give sessions INTER_OP_THREADS inter-op
    threads (a waiting fake collective holds one; see fake_hccl.py). The first session of a
    process sizes TF's global pool."""
    size = os.environ.get("RANK_SIZE", "1")
    if not os.environ.get("FAKE_HCCL_DIR") or not size.isdigit() or int(size) <= 1:
        return config
    wide = tf.compat.v1.ConfigProto()
    if config is not None:
        wide.CopyFrom(config)
    wide.inter_op_parallelism_threads = max(wide.inter_op_parallelism_threads, INTER_OP_THREADS)
    return wide


def install(calls: list) -> None:
    """Put the checks in front of every Session.run in this process, recording into
    ``calls`` (each installing package's CALLS gets the records)."""
    state = _state()
    if not any(sink is calls for sink in state["sinks"]):
        state["sinks"].append(calls)


def _run(tf, state, session, fetches, feed_dict, options, run_metadata):
    info = session.__dict__.get("_fake_npu_info", False)
    if info is False:
        info = check(tf, getattr(session, "_config", None))
        session._fake_npu_info = info
        if not isinstance(info, Exception):
            for sink in state["sinks"]:
                sink.append(("session", None if info is None else dict(info)))
    if isinstance(info, Exception):
        raise info
    loops = _loops(tf, state, session, info, fetches)
    original = state["run"]
    for _ in range(loops - 1):
        original(session, fetches, feed_dict, options, run_metadata)
    if loops > 1:
        for sink in state["sinks"]:
            sink.append(("loop", loops))
    return original(session, fetches, feed_dict, options, run_metadata)


def uninstall() -> None:
    """Fake-only: give Session.run / __init__ back (the real pass stays for the process; tests
    that forget the fake can call this so later tests see plain TensorFlow)."""
    from tensorflow.python.client import session as session_lib

    base = session_lib.BaseSession
    state = base.__dict__.get("_fake_npu_state")
    if state is not None:
        base.run = state["run"]
        base.__init__ = state["init"]
        del base._fake_npu_state
