"""The one place that imports TensorFlow and Keras; everything else gets them from here.

Keras 2 API only: ``tf.keras`` on TF <= 2.15 (and the Ascend TF 2.6.5 stack), the ``tf_keras``
package with ``TF_USE_LEGACY_KERAS=1`` on TF >= 2.16, where ``tf.keras`` became Keras 3.
Imports are lazy (``from harness.tfcompat import tf, keras`` inside functions), so importing
harness modules never loads TensorFlow. TF 1.15 (Python 3.7, Ascend's npu_bridge stack) runs
graph mode only; the helpers below bridge the TF 2 names it lacks (each says which).
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


def tf_version_string() -> str:
    import tensorflow as tf

    return tf.__version__


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
        if tf_version() < (2, 0):
            _enable_v2_dtypes()
        _cache.update(tf=tf, keras=keras)
        _reserve_logical_cpus(tf)
    return _cache


def _enable_v2_dtypes() -> None:
    """TF 1.15's Keras: layers compute in float32 (or the global policy's dtype) instead of
    their first input's dtype (a BERT embedding would take int32 ids' dtype), and policies
    other than ``infer`` become settable. TF 2's default; in 1.15 only a private switch."""
    from tensorflow.python.keras.engine import base_layer_utils

    base_layer_utils.enable_v2_dtype_behavior()


def _reserve_logical_cpus(tf: Any) -> None:
    """Honour BENCH_CPU_LOGICAL_DEVICES as soon as TensorFlow loads: the count can only be set
    before the runtime starts, and any backend (or a plugin) may start it first."""
    wanted = int(os.environ.get(LOGICAL_DEVICES_ENV, "0") or 0)
    if wanted > 1:
        try:
            set_logical_devices(physical_devices("CPU")[0], wanted, tf)
        except RuntimeError:
            pass  # the runtime is already up: the cpu backend says so if it matters


def physical_devices(kind: str) -> list:
    """``tf.config.list_physical_devices`` (TF >= 2.1; ``experimental`` on TF 1.15)."""
    config = _load()["tf"].config
    lister = getattr(config, "list_physical_devices", None) or \
        config.experimental.list_physical_devices
    return lister(kind)


def logical_devices(kind: str) -> list:
    """``tf.config.list_logical_devices`` (``experimental`` on TF 1.15)."""
    config = _load()["tf"].config
    lister = getattr(config, "list_logical_devices", None) or config.experimental.list_logical_devices
    return lister(kind)


def set_logical_devices(device: Any, count: int, tf: Any = None) -> None:
    """Split ``device`` into ``count`` logical devices (``set_logical_device_configuration``;
    TF 1.15: ``experimental.set_virtual_device_configuration``). RuntimeError once the runtime
    is up."""
    config = (tf or _load()["tf"]).config
    if hasattr(config, "set_logical_device_configuration"):
        config.set_logical_device_configuration(
            device, [config.LogicalDeviceConfiguration()] * count)
    else:
        config.experimental.set_virtual_device_configuration(
            device, [config.experimental.VirtualDeviceConfiguration()] * count)


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
    """Set the global Keras mixed-precision policy (``float32``, ``mixed_float16``, ...);
    ``experimental.set_policy`` on TF 1.15."""
    mp = _load()["keras"].mixed_precision
    if hasattr(mp, "set_global_policy"):
        mp.set_global_policy(name)
    else:
        mp.experimental.set_policy(name)


def loss_scale_optimizer(optimizer: Any, dynamic: bool = True, initial_scale: float | None = None) -> Any:
    """Wrap ``optimizer`` for loss scaling (static when ``dynamic`` is false)."""
    mp = _load()["keras"].mixed_precision
    if not hasattr(mp, "LossScaleOptimizer"):  # TF 1.15: the experimental class, loss_scale=
        scale = "dynamic" if dynamic and initial_scale is None else (initial_scale or 1024.0)
        if dynamic and initial_scale is not None:
            scale = _load()["tf"].mixed_precision.experimental.DynamicLossScale(initial_scale)
        return mp.experimental.LossScaleOptimizer(optimizer, loss_scale=scale)
    if dynamic:
        kwargs = {} if initial_scale is None else {"initial_scale": initial_scale}
        return mp.LossScaleOptimizer(optimizer, **kwargs)
    return mp.LossScaleOptimizer(optimizer, dynamic=False, initial_scale=initial_scale or 1024.0)


def is_loss_scale_optimizer(optimizer: Any) -> bool:
    """Keras' LossScaleOptimizer, or one that works like it (the Ascend adapter's
    NpuLossScaleOptimizer subclasses the tf.keras one, which need not be ours)."""
    mp = _load()["keras"].mixed_precision
    keras_class = getattr(mp, "LossScaleOptimizer", None) or mp.experimental.LossScaleOptimizer
    if isinstance(optimizer, keras_class):
        return True
    return all(callable(getattr(optimizer, name, None))
               for name in ("get_scaled_loss", "get_unscaled_gradients", "apply_gradients"))


def executes_eagerly() -> bool:
    """Whether TensorFlow runs eagerly here: TF 2 unless v2 behaviour was disabled (TF 1.x, or
    ``npu_device.compat.enable_v1()``); false inside a graph's ``as_default()``."""
    return bool(_load()["tf"].executing_eagerly())


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow: ``keras.utils.set_random_seed`` (Keras >= 2.7); on
    older Keras (Ascend's 2.6, TF 1.15) the three seeds it sets (``tf.compat.v1.set_random_seed``:
    the default graph's seed in graph mode, the global seed eagerly)."""
    setter = getattr(_load()["keras"].utils, "set_random_seed", None)
    if setter is not None:
        setter(seed)
        return
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    _load()["tf"].compat.v1.set_random_seed(seed)


def relaxed_function(fn: Any) -> Any:
    """``tf.function`` that traces once for inputs of varying shape (eval batches):
    ``reduce_retracing`` on TF >= 2.9, ``experimental_relax_shapes`` before (TF 2.6.5)."""
    tf = _load()["tf"]
    if tf_version() >= (2, 9):
        return tf.function(fn, reduce_retracing=True)
    return tf.function(fn, experimental_relax_shapes=True)


def dataset_cardinality(dataset: Any) -> int:
    """The number of elements of ``dataset`` (-1 infinite, -2 unknown). In graph mode the
    cardinality op runs in a throwaway session on the dataset's graph."""
    tf = _load()["tf"]
    value = tf.data.experimental.cardinality(dataset)
    if hasattr(value, "numpy"):
        return int(value.numpy())
    with tf.compat.v1.Session(graph=value.graph) as session:
        return int(session.run(value))


def with_cardinality(dataset: Any, count: int) -> Any:
    """``dataset`` (exactly ``count`` elements) with that cardinality known:
    ``assert_cardinality`` (TF >= 2.2), else ``repeat().take(count)``, the same elements."""
    tf = _load()["tf"]
    assert_cardinality = getattr(tf.data.experimental, "assert_cardinality", None)
    if assert_cardinality is not None:
        return dataset.apply(assert_cardinality(count))
    return dataset.repeat().take(count)


def autotune() -> int:
    """``tf.data.AUTOTUNE`` (``tf.data.experimental.AUTOTUNE`` on TF 1.15)."""
    data = _load()["tf"].data
    return getattr(data, "AUTOTUNE", None) or data.experimental.AUTOTUNE


def unordered() -> dict[str, Any]:
    """``{"deterministic": False}`` for ``Dataset.map`` / ``interleave`` where they take it
    (TF >= 2.2); nothing on TF 1.15, whose parallel map and interleave keep their order."""
    return {"deterministic": False} if tf_version() >= (2, 2) else {}


def initialize_keras_variables(session: Any) -> None:
    """Initialize, in ``session``, the variables Keras created in its graph outside the graph
    collections (metrics' state: ``collections=[]``), which Keras would initialize in a session
    of its own: the backend's ``_initialize_variables`` (TF 1.15 and tf_keras alike)."""
    import importlib

    backend = importlib.import_module(_load()["keras"].backend.clear_session.__module__)
    backend._initialize_variables(session)
