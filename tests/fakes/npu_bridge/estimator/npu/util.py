"""``npu_bridge.estimator.npu.util``: argument checks and ``set_iteration_per_loop``.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/estimator/npu/util.py (master 085a7b2e; the
same function since r1.1.1).

``set_iteration_per_loop(sess, train_op, iterations_per_loop=1)``:
* ``train_op`` not a tf.Operation: ValueError "The incoming 'train_op' type is '<dtype>', and
  the need type is 'Operation'" (the message reads ``train_op.dtype.name``, so a value without
  a dtype fails with AttributeError instead);
* ``iterations_per_loop`` not an int: TypeError "iterations_per_loop must be int, got <type>";
  <= 0: ValueError "iterations_per_loop must be positive, got N";
* 1: returns ``train_op`` itself, adds nothing;
* else creates (or reuses) four int64 resource variables npu_runconfig/{iterations_per_loop,
  loop_cond, zero, one} (local variables, colocated with the global step when there is one),
  loads N - 1, 0, 0, 1 into them through ``sess``, and returns ``tf.group(train_op,
  name="IterationOp")``. Adding them needs a graph that is not finalized (RuntimeError from
  TF otherwise: call it before MonitoredSession/Scaffold finalize). It does not check the
  session config; the device loops ``iterations_per_loop`` of the NpuOptimizer config times.
"""

from __future__ import annotations

import os

_NPU_RUNCONFIG = "npu_runconfig"
_ITERATIONS_PER_LOOP_VAR = "iterations_per_loop"
_LOOP_COND_VAR = "loop_cond"
_CONST_ZERO = "zero"
_CONST_ONE = "one"
_global_dict: dict = {}


def _calls() -> list:
    from ... import CALLS

    return CALLS


def check_not_none(value, name):
    if value is None:
        raise ValueError(f"{name} must not be None")


def check_positive_integer(value, name):
    if not isinstance(value, int):
        raise TypeError(f"{name} must be int, got {type(value)}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def check_nonnegative_integer(value, name):
    if not isinstance(value, int):
        raise TypeError(f"{name} must be int, got {type(value)}")
    if value < 0:
        raise ValueError(f"{name} must be nonnegative, got {value}")


def check_bool_type(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value}")


def get_ranksize() -> str:
    if os.getenv("CM_WORKER_SIZE") is not None and os.getenv("RANK_SIZE") is not None:
        raise ValueError("RANK_SIZE and CM_WORK_SIZE cannot be configured at the same time")
    return os.getenv("RANK_SIZE") if os.getenv("RANK_SIZE") is not None \
        else os.getenv("CM_WORKER_SIZE", "1")


def create_or_get_var(var_name):
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = v1.get_default_graph()
    collection = f"{_NPU_RUNCONFIG}_{var_name}"
    existing = graph.get_collection(collection)
    if len(existing) == 1:
        return existing[0]
    if len(existing) > 1:
        raise RuntimeError("Multiple var in collection.")
    step = v1.train.get_global_step()
    with v1.colocate_with(step, ignore_existing=step is None) if step is not None \
            else _null():
        with v1.variable_scope(_NPU_RUNCONFIG, reuse=v1.AUTO_REUSE):
            return v1.get_variable(var_name, initializer=v1.zeros_initializer(), shape=[],
                                   dtype=tf.int64, trainable=False,
                                   collections=[collection, v1.GraphKeys.LOCAL_VARIABLES],
                                   use_resource=True)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def set_iteration_per_loop(sess, train_op, iterations_per_loop=1):
    import tensorflow as tf

    from ..._session_checks import register_iteration_op

    if not isinstance(train_op, tf.Operation):
        raise ValueError(f"The incoming 'train_op' type is '{train_op.dtype.name}', and the need "
                         f"type is 'Operation'")
    check_positive_integer(iterations_per_loop, "iterations_per_loop")
    _calls().append(("set_iteration_per_loop", iterations_per_loop, train_op.name))
    if iterations_per_loop == 1:
        return train_op
    loop_var = create_or_get_var(_ITERATIONS_PER_LOOP_VAR)
    cond_var = create_or_get_var(_LOOP_COND_VAR)
    zero = create_or_get_var(_CONST_ZERO)
    one = create_or_get_var(_CONST_ONE)
    loop_var.load(iterations_per_loop - 1, session=sess)
    cond_var.load(0, session=sess)
    zero.load(0, session=sess)
    one.load(1, session=sess)
    group = tf.group(train_op, name="IterationOp")
    register_iteration_op(group.graph, group.name, iterations_per_loop)
    return group


class IterationPerLoop:
    """``create_iteration_per_loop_var(train_op)`` then ``load_iteration_per_loop_var(sess, N)``:
    the same as set_iteration_per_loop in two steps (build before finalize, load later)."""

    def __init__(self):
        self._vars = None
        self._group = None

    def create_iteration_per_loop_var(self, train_op):
        import tensorflow as tf

        if not isinstance(train_op, tf.Operation):
            raise ValueError(f"The incoming 'train_op' type is '{train_op.dtype.name}', and the "
                             f"need type is 'Operation'")
        self._vars = [create_or_get_var(n) for n in (_ITERATIONS_PER_LOOP_VAR, _LOOP_COND_VAR,
                                                      _CONST_ZERO, _CONST_ONE)]
        self._group = tf.group(train_op, name="IterationOp")
        return self._group

    def load_iteration_per_loop_var(self, sess, iterations_per_loop=1):
        from ..._session_checks import register_iteration_op

        check_positive_integer(iterations_per_loop, "iterations_per_loop")
        _calls().append(("load_iteration_per_loop_var", iterations_per_loop))
        for var, value in zip(self._vars, (iterations_per_loop - 1, 0, 0, 1)):
            var.load(value, session=sess)
        register_iteration_op(self._group.graph, self._group.name, iterations_per_loop)


def global_dict_init():
    _global_dict.clear()


def set_value(key, value):
    _global_dict[key] = value


def get_value(key, def_value=None):
    return _global_dict.get(key, def_value)
