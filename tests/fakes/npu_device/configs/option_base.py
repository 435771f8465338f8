"""Option values with fixed names and checked choices, like the adapter's option classes.

Real: Ascend/tensorflow ``tf_adapter_2.x/python/npu_device/configs/option_base.py`` (master
085a7b2e). Setting an attribute of a config stores into its ``OptionValue``; a value outside a
choice list raises ``TypeError("Expected bool, got str")`` when the default is not None and the
value is of another type (added 2023-06, feb07af3; older adapters raise ValueError only), else
``ValueError("'x' not in optional list [...]")``. Unknown names raise ValueError
``"NpuConfig has no option x, all options [...]"``. Reading an attribute gives the OptionValue
(``.value`` is the string the graph engine gets: True -> "1", False -> "0").
"""

from __future__ import annotations


class OptionValue:
    def __init__(self, default, optional):
        self._default = default
        self._optional = optional
        self._value = default

    @property
    def default(self):
        return self._default

    @property
    def optional(self):
        return self._optional

    @property
    def value(self):
        if self._value is None:
            return None
        text = str(self._value)
        return {"True": "1", "False": "0"}.get(text, text)

    @value.setter
    def value(self, v):
        choices = self._optional
        if isinstance(choices, (tuple, list)) and v not in choices:
            if self._default is not None and not isinstance(v, type(self._default)):
                raise TypeError(f"Expected {type(self._default).__name__}, got {type(v).__name__}")
            raise ValueError(f"'{v}' not in optional list {choices}")
        self._value = v


class DeprecatedValue(OptionValue):
    def __init__(self, optional, *, replacement):
        super().__init__(None, optional)
        self.replacement = replacement


class NpuBaseConfig:
    """Subclasses declare their options in __init__, then call this __init__ to fix the names."""

    def __init__(self):
        self._fixed_attrs = [k for k, v in self.__dict__.items()
                             if isinstance(v, (OptionValue, NpuBaseConfig))]

    def __setattr__(self, key, value):
        if "_fixed_attrs" not in self.__dict__:
            object.__setattr__(self, key, value)
            return
        if key not in self._fixed_attrs:
            raise ValueError(f"{type(self).__name__} has no option {key}, all options "
                             f"{self._fixed_attrs}")
        current = getattr(self, key)
        if isinstance(current, OptionValue):
            current.value = value
            _record(self, key, value)
        else:
            object.__setattr__(self, key, value)

    def as_dict(self):
        """The flat name -> string map ``open()`` hands to the graph engine."""
        options = {}
        for key in self._fixed_attrs:
            item = self.__dict__[key]
            if isinstance(item, NpuBaseConfig):
                options.update(item.as_dict())
            elif item.value is not None:
                options[key] = item.value
        return options


def _record(config, key, value) -> None:
    import npu_device

    prefix = config.__dict__.get("_prefix", "")
    npu_device.CALLS.append(("set", prefix + key, value))
