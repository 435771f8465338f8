"""``npu_bridge.estimator`` (a namespace package in the real tree)."""
