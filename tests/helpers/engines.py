"""Skips for tests that need what only TF 2's eager engine has (TF 1.x runs the graph engine)."""

from __future__ import annotations

import pytest

from harness import tfcompat

GRAPH_ONLY = not tfcompat.executes_eagerly()

# The graph engine runs one device per process; N devices in one process (MirroredStrategy over
# logical CPU devices) and cpu/gpu worker clusters (MultiWorkerMirroredStrategy) are TF 2's.
multi_device = pytest.mark.skipif(GRAPH_ONLY, reason="TF 1.x graph engine: one device per "
                                  "process; several devices in one process need TF 2")
# npu_device is Ascend's TF 2 adapter; TF 1.15 has npu_bridge (tests/test_npu_bridge_backend.py)
tf2_adapter = pytest.mark.skipif(GRAPH_ONLY, reason="npu_device is the TF 2 adapter")
eager_api = pytest.mark.skipif(GRAPH_ONLY, reason="eager-only API (TF 2)")
# checkpoints, resume, profile windows and the input probe run on the eager engine only (the
# graph engine refuses them: tests/test_graph_engine.py)
eager_engine = pytest.mark.skipif(GRAPH_ONLY, reason="TF 1.x graph engine: checkpoints, "
                                  "resume, profiles and the input probe are the eager engine's")
