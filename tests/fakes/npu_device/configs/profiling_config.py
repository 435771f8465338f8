"""``global_options().profiling_config``. Real: tf_adapter_2.x/python/npu_device/configs/profiling_config.py.

``profiling_options`` is a free string (a JSON object) the adapter passes on unchecked; its
default is the one below, where ``aic_metrics`` names an AI Core metric group.
"""

from __future__ import annotations

from npu_device.configs.option_base import NpuBaseConfig, OptionValue

DEFAULT_PROFILING_OPTIONS = ('{"output":"./","training_trace":"on","task_trace":"on",'
                             '"hccl":"on","aicpu":"on","aic_metrics":"PipeUtilization",'
                             '"msproftx":"off"}')


class NpuProfilingConfig(NpuBaseConfig):
    def __init__(self):
        self._prefix = "profiling_config."
        self.enable_profiling = OptionValue(False, [True, False])
        self.profiling_options = OptionValue(DEFAULT_PROFILING_OPTIONS, None)
        super().__init__()
