"""``npu_device.configs``: the option classes behind ``global_options()``."""
