"""``global_options().dump_config``. Real: tf_adapter_2.x/python/npu_device/configs/dump_config.py.

The adapter checks only the choice lists here; nothing in npu_device requires ``dump_path``
with ``enable_dump``/``enable_dump_debug`` (that rule is the TF 1 adapter's, see npu_bridge).
"""

from __future__ import annotations

from npu_device.configs.option_base import NpuBaseConfig, OptionValue


class NpuDumpConfig(NpuBaseConfig):
    def __init__(self):
        self._prefix = "dump_config."
        self.enable_dump = OptionValue(False, [True, False])
        self.dump_path = OptionValue(None, None)
        self.dump_step = OptionValue(None, None)
        self.dump_mode = OptionValue("output", ["input", "output", "all"])
        self.enable_dump_debug = OptionValue(False, [True, False])
        self.dump_debug_mode = OptionValue("all", ["aicore_overflow", "atomic_overflow", "all"])
        self.dump_data = OptionValue("tensor", ["tensor", "stats"])
        self.dump_layer = OptionValue(None, None)
        super().__init__()
