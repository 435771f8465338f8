"""``npu_bridge.hccl`` (a namespace package in the real tree)."""
