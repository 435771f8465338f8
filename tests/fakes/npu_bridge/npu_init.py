"""``from npu_bridge.npu_init import *``: what the real module re-exports, as far as faked.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/npu_init.py (master 085a7b2e). It imports
NPURunConfig, ProfilingConfig, DumpConfig, MemoryConfig, DynamicInputConfig, NPUEstimator(Spec),
the hooks, NPUDistributedOptimizer, KerasDistributeOptimizer, npu_distributed_optimizer_wrapper,
NPUOptimizer, npu_allreduce, NPULossScaleOptimizer, FixedLossScaleManager,
ExponentialUpdateLossScaleManager, npu_ops, util, hccl_ops, config_pb2, rewriter_config_pb2,
RewriterConfig, the hccl.manage.api rank functions and ``tensorflow as tf``, and defines
npu_config_proto, npu_hooks_append, init_resource, npu_tf_optimizer, ... Since r1.10 (2022-10)
it also patches ``Session.__init__``/``InteractiveSession.__init__`` to add an NpuOptimizer
entry (remapping OFF, and memory_optimization OFF when it adds one) to every session; older
releases do not, and neither does this fake: a script must build its session config.

Not faked: NPUEstimator, NPUEstimatorSpec, KerasDistributeOptimizer, NPUOptimizer, npu_ops,
init_resource, the hccl.manage.api functions. In ``npu_device.compat.v1.npu_init`` the
loss-scale names are absent (the TF 2 build drops them).
"""

from __future__ import annotations

import os

import tensorflow as tf  # noqa: F401 - re-exported, as the real module does
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2  # noqa: F401
from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

from .estimator.npu import util  # noqa: F401
from .estimator.npu.npu_config import (  # noqa: F401
    DumpConfig,
    DynamicInputConfig,
    MemoryConfig,
    NPURunConfig,
    ProfilingConfig,
)
from .estimator.npu.npu_hook import NPUBroadcastGlobalVariablesHook
from .estimator.npu.npu_optimizer import (  # noqa: F401
    NPUDistributedOptimizer,
    npu_allreduce,
    npu_distributed_optimizer_wrapper,
)
from .hccl import hccl_ops  # noqa: F401

if not __name__.startswith("npu_device."):
    from .estimator.npu.npu_loss_scale_manager import (  # noqa: F401
        ExponentialUpdateLossScaleManager,
        FixedLossScaleManager,
    )
    from .estimator.npu.npu_loss_scale_optimizer import NPULossScaleOptimizer  # noqa: F401


def npu_config_proto(config_proto=None):
    """The given ConfigProto (or a new one) with an NpuOptimizer entry, soft placement on,
    remapping OFF, XLA off; memory_optimization OFF only when the entry was added here."""
    if not isinstance(config_proto, config_pb2.ConfigProto):
        config_proto = config_pb2.ConfigProto()
    rewrite = config_proto.graph_options.rewrite_options
    if not any(c.name == "NpuOptimizer" for c in rewrite.custom_optimizers):
        rewrite.custom_optimizers.add().name = "NpuOptimizer"
        rewrite.memory_optimization = RewriterConfig.OFF
    config_proto.allow_soft_placement = True
    config_proto.log_device_placement = False
    rewrite.remapping = RewriterConfig.OFF
    config_proto.graph_options.optimizer_options.global_jit_level = config_pb2.OptimizerOptions.OFF
    return config_proto


def npu_hooks_append(hooks_list=()):
    if not isinstance(hooks_list, list):
        hooks_list = []
    hooks_list.append(NPUBroadcastGlobalVariablesHook(0, int(os.getenv("RANK_ID", "0"))))
    return hooks_list


def npu_tf_optimizer(opt):
    return NPUDistributedOptimizer(opt)


def get_npu_rank_id():
    return util.get_value("npu_rank_id", 0)


def get_npu_rank_size():
    return util.get_value("npu_rank_size", 1)
