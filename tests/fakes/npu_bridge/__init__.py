"""Fake ``npu_bridge`` (Ascend's TF 1.15 adapter) for contract tests: records calls in CALLS.

Mirrors the Python API of Ascend/tensorflow tf_adapter/python/npu_bridge/ (master 085a7b2e,
with differences from older releases named where they matter) on real TensorFlow graph mode:
TF 1.15, or ``tf.compat.v1`` on TF 2. Importing it, like loading the real package's
_tf_adapter.so, puts the checks the adapter's graph pass makes on a session config with an
``NpuOptimizer`` custom optimizer in front of every ``Session.run`` (see _session_checks.py).

Modules use relative imports only: ``npu_device.compat.v1`` (the fake npu_device) mounts these
same files, as the real tf_adapter_2.x build copies npu_bridge's Python into compat/v1.
"""

from __future__ import annotations

CALLS: list = []
__version__ = "0.0.fake"

from ._session_checks import install as _install_session_checks  # noqa: E402

_install_session_checks(CALLS)

from . import estimator, hccl  # noqa: E402,F401
from .estimator.npu import npu_config, util  # noqa: E402,F401
from .hccl import hccl_ops  # noqa: E402,F401
