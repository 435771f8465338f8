"""``NPUBroadcastGlobalVariablesHook(root_rank=None, index=None)`` and ``broadcast_global_variables``.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/estimator/npu/npu_hook.py (master 085a7b2e).
Despite the name, ``broadcast_global_variables(root_rank)`` broadcasts the *trainable*
variables (hccl_ops.broadcast([var], root_rank) then assign). The hook builds that op in
``begin()`` and runs it in ``after_create_session`` only when RANK_SIZE > 1.
"""

from __future__ import annotations

import tensorflow as _tf

from ...hccl import hccl_ops
from . import util


def broadcast_global_variables(root_rank):
    v1 = _tf.compat.v1
    op_list = []
    for var in v1.trainable_variables():
        outputs = hccl_ops.broadcast(tensor=[var], root_rank=root_rank)
        if outputs is not None:
            op_list.append(outputs[0].op)
            op_list.append(v1.assign(var, outputs[0]))
    return _tf.group(op_list)


class NPUBroadcastGlobalVariablesHook(_tf.compat.v1.train.SessionRunHook):
    def __init__(self, root_rank=None, index=None):
        self._root_rank = root_rank
        self._index = index
        self._bcast_op = None
        rank_size = util.get_ranksize()
        self._rank_size = int(rank_size) if rank_size.isdigit() else 1

    def begin(self):
        if (not self._bcast_op or self._bcast_op.graph != _tf.compat.v1.get_default_graph()) \
                and self._rank_size > 1:
            self._bcast_op = broadcast_global_variables(self._root_rank)

    def after_create_session(self, session, coord):
        if self._rank_size > 1:
            session.run(self._bcast_op)
