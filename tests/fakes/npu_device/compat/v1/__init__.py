"""``npu_device.compat.v1``: the TF 1 adapter's Python API inside the TF 2 adapter.

Real: the tf_adapter_2.x build copies tf_adapter/python/npu_bridge/ into npu_device/compat/v1/,
rewriting ``npu_bridge`` to ``npu_device.compat.v1`` and deleting the loss-scale manager and
optimizer modules (tf_adapter_2.x/compat_v1/CMakeLists.txt, upgrade_tf1_compat_tf2.py); the
package itself exports ``SessionConfigBuilder`` (npu_device/compat/utils.py). The fake does the
same by mounting tests/fakes/npu_bridge on this package's path, so
``from npu_device.compat.v1.npu_init import *`` gets the npu_bridge fake's names (minus loss
scaling), recording into ``npu_device.CALLS``. ``npu_device.compat.enable_v1()`` is what puts
the graph pass's session checks in place (the real one loads _tf_adapter.so).
"""

from __future__ import annotations

import os

from npu_device.npu_device import CALLS

__path__.append(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(  # noqa: F821
    os.path.realpath(__file__))))), "npu_bridge"))


class SessionConfigBuilder:
    """A ConfigProto (the given one, else a new one with soft placement) with remapping OFF
    and a NEW NpuOptimizer entry, whose ``parameter_map`` is handed out."""

    def __init__(self, config=None):
        import tensorflow as tf
        from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

        if isinstance(config, tf.compat.v1.ConfigProto):
            self._session_config = config
        else:
            self._session_config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
        self._session_config.graph_options.rewrite_options.remapping = RewriterConfig.OFF
        self._npu_config = self._session_config.graph_options.rewrite_options.custom_optimizers.add()
        self._npu_config.name = "NpuOptimizer"

    @property
    def parameter_map(self):
        return self._npu_config.parameter_map

    @property
    def session_config(self):
        return self._session_config


def _install_session_checks() -> None:
    from ._session_checks import install

    install(CALLS)


__all__ = ["CALLS", "SessionConfigBuilder"]
