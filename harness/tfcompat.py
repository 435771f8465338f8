"""The one place that imports TensorFlow and Keras; everything else gets them from here.

Keras 2 API only: ``tf.keras`` on TF <= 2.15 (and the Ascend TF 2.6.5 stack), the ``tf_keras``
package with ``TF_USE_LEGACY_KERAS=1`` on TF >= 2.16, where ``tf.keras`` became Keras 3.
Imports are lazy (``from harness.tfcompat import tf, keras`` inside functions), so importing
harness modules never loads TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

_cache: dict[str, Any] = {}
# How many logical CPU devices to reserve when TensorFlow loads (tests, multi-device CPU runs).
LOGICAL_DEVICES_ENV = "BENCH_CPU_LOGICAL_DEVICES"


def tf_version() -> tuple[int, int]:
    import tensorflow as tf

    major, minor = tf.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _load() -> dict[str, Any]:
    if not _cache:
        # Must be set before TensorFlow is first imported, or tf.keras binds to Keras 3 on
        # TF >= 2.16. Only with tf_keras installed: TF 2.15's tf.keras fails to import when
        # the variable is set and tf_keras is absent.
        import importlib.util

        if importlib.util.find_spec("tf_keras") is not None:
            os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        if tf_version() >= (2, 16):
            try:
                import tf_keras as keras
            except ImportError as exc:
                from harness.errors import BenchError

                raise BenchError(
                    f"TensorFlow {tf.__version__} needs the tf-keras package for the Keras 2 "
                    f"API (pip install 'tf-keras~={tf.__version__.rsplit('.', 1)[0]}'): {exc}"
                ) from None
        else:
            keras = tf.keras
        _cache.update(tf=tf, keras=keras)
        _reserve_logical_cpus(tf)
    return _cache


def _reserve_logical_cpus(tf: Any) -> None:
    """Honour BENCH_CPU_LOGICAL_DEVICES as soon as TensorFlow loads: the count can only be set
    before the runtime starts, and any backend (or a plugin) may start it first."""
    wanted = int(os.environ.get(LOGICAL_DEVICES_ENV, "0") or 0)
    if wanted > 1:
        try:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * wanted)
        except RuntimeError:
            pass  # the runtime is already up: the cpu backend says so if it matters


def __getattr__(name: str) -> Any:
    if name in ("tf", "keras"):
        return _load()[name]
    raise AttributeError(name)


def is_loaded() -> bool:
    """Whether TensorFlow has been imported in this process (by us or anyone)."""
    import sys

    return "tensorflow" in sys.modules


def keras_version() -> str:
    keras = _load()["keras"]
    return getattr(keras, "__version__", None) or _load()["tf"].__version__


def set_precision_policy(name: str) -> None:
    """Set the global Keras mixed-precision policy (``float32``, ``mixed_float16``, ...)."""
    _load()["keras"].mixed_precision.set_global_policy(name)


def loss_scale_optimizer(optimizer: Any, dynamic: bool = True, initial_scale: float | None = None) -> Any:
    """Wrap ``optimizer`` for loss scaling (static when ``dynamic`` is false)."""
    mp = _load()["keras"].mixed_precision
    if dynamic:
        kwargs = {} if initial_scale is None else {"initial_scale": initial_scale}
        return mp.LossScaleOptimizer(optimizer, **kwargs)
    return mp.LossScaleOptimizer(optimizer, dynamic=False, initial_scale=initial_scale or 1024.0)


def is_loss_scale_optimizer(optimizer: Any) -> bool:
    """Keras' LossScaleOptimizer, or one that works like it (the Ascend adapter's
    NpuLossScaleOptimizer subclasses the tf.keras one, which need not be ours)."""
    if isinstance(optimizer, _load()["keras"].mixed_precision.LossScaleOptimizer):
        return True
    return all(callable(getattr(optimizer, name, None))
               for name in ("get_scaled_loss", "get_unscaled_gradients", "apply_gradients"))


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow: ``keras.utils.set_random_seed`` (Keras >= 2.7); on
    older Keras (Ascend's 2.6) the three seeds it sets."""
    setter = getattr(_load()["keras"].utils, "set_random_seed", None)
    if setter is not None:
        setter(seed)
        return
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    _load()["tf"].random.set_seed(seed)


def relaxed_function(fn: Any) -> Any:
    """``tf.function`` that traces once for inputs of varying shape (eval batches):
    ``reduce_retracing`` on TF >= 2.9, ``experimental_relax_shapes`` before (TF 2.6.5)."""
    tf = _load()["tf"]
    if tf_version() >= (2, 9):
        return tf.function(fn, reduce_retracing=True)
    return tf.function(fn, experimental_relax_shapes=True)
