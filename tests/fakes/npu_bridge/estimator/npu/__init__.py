"""``npu_bridge.estimator.npu`` (a namespace package in the real tree)."""
