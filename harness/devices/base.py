"""What a device backend does for the runner: process setup, strategy, precision, peak FLOP/s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import BenchError

if TYPE_CHECKING:
    from harness.case import Case


class DeviceBackend:
    """Base class of the cpu / gpu / npu backends; a third-party backend subclasses it.

    The runner calls, in order: ``available()`` (may the case use it),
    ``default_steps_per_loop(case)`` while planning, ``prepare(case, max_devices, options)``
    once per process before TensorFlow builds anything, then per device count
    ``precision_policy`` / ``strategy`` / ``input_pipeline`` / ``wrap_optimizer``,
    ``broadcast`` of the built model's weights, ``set_loop_size`` before launches,
    ``all_reduce`` inside the compiled train step, ``memory_monitor`` around the measured
    window and ``peak_flops`` for MFU. ``options`` are
    the case's ``npu:`` section plus ``precision`` after every ``configure_npu`` hook, already
    checked by :func:`harness.devices.options.check_options`.
    """

    name = "base"
    description = ""
    # False where every tf.function goes to a device adapter: host-only loops (the input
    # probe) then run eagerly.
    compiled_host_loops = True
    # False where the TF profiler cannot trace the device: ``profile:`` then records the
    # backend's own profiling options instead of a trace window.
    trace_profiler = True

    @classmethod
    def available(cls) -> bool:
        return False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why ``available()`` is false, in a few words for the error message (None: no reason
        known or it is available)."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """``{"type", "name", "count"}`` of what is present (for ``bench list`` and reports)."""
        return {"type": cls.name, "name": "", "count": 0}

    @classmethod
    def reserve(cls, max_devices: int) -> None:
        """Called once per ``bench run`` before TensorFlow starts, with the most devices any of
        its cases runs in this process (``prepare`` then comes per case)."""

    @classmethod
    def default_steps_per_loop(cls, case: Case) -> int:
        """Training steps per compiled call when the case sets no ``train.steps_per_loop``."""
        return 1

    @classmethod
    def fixed_loop(cls) -> str | None:
        """Why every launch must be exactly ``train.steps_per_loop`` steps (a device loop whose
        length is fixed once), or None: a shorter last loop is fine."""
        return None

    def prepare(self, case: Case, max_devices: int, options: dict[str, Any]) -> None:
        """Process-wide setup before TensorFlow initialises (logical devices, options)."""

    def set_loop_size(self, steps: int) -> None:
        """Called before a launch of ``steps`` training steps whenever that number differs
        from the previous launch's (so before the first one too): a device that runs a
        compiled loop on its own learns the loop's length here."""

    def broadcast(self, variables: list) -> Any:
        """Make every process's ``variables`` rank 0's, once after the model is built (a
        one-process-per-device launch); ``tf.distribute`` strategies do this themselves.
        In a graph the variables have no values yet: return the op that does it, which the
        graph engine runs once after initializing them (None: nothing to run)."""
        return None

    def strategy(self, count: int, workers: int = 1) -> Any:
        """The ``tf.distribute.Strategy`` over ``count`` local devices in each of ``workers``
        processes (the process launcher sets the cluster up: TF_CONFIG or the HCCL env)."""
        from harness.tfcompat import tf

        if count != 1:
            raise BenchError(f"device {self.name!r} runs one device per process; "
                             f"use launcher: process for {count}")
        return tf.distribute.get_strategy()

    def input_pipeline(self, count: int) -> tuple[int, int]:
        """(number of input pipelines, this process's index) for ``count`` devices: a backend
        that runs one process per device reads its share of the data by rank."""
        return 1, 0

    def all_reduce(self, values: list) -> list:
        """Sum ``values`` (the gradients, then the loss) over the processes of a one-process-
        per-device launch; called inside the compiled step on every replica. The identity
        when a ``tf.distribute`` strategy already reduces across the devices."""
        return values

    def precision_policy(self, case: Case, options: dict[str, Any]) -> str:
        return "float32"

    def wrap_optimizer(self, optimizer: Any, options: dict[str, Any]) -> Any:
        return optimizer

    def peak_flops(self, count: int, dtype: str) -> float | None:
        """Peak FLOP/s of ``count`` devices at ``dtype``, or None when unknown."""
        return None

    def memory_monitor(self, count: int) -> Any | None:
        """What measures the device memory of ``count`` local devices over the measured
        window, or None when the backend cannot (the report then says null, never a guess).

        The object has ``start()`` (window start), ``sample()`` (called from a thread every
        ``sample_interval`` seconds when that attribute is > 0) and ``stop()`` returning
        ``{"device_peak_bytes", "device_total_bytes", "device_source"}``: the largest peak of
        any one local device, that device's capacity, and how they were measured.
        """
        return None

    def environment(self) -> dict[str, Any]:
        return {}

    # -- the graph engine (TF 1.x sessions, engine: graph; harness/run/graph_engine.py) --------

    @classmethod
    def graph_only(cls) -> str | None:
        """Why this backend trains only through the graph engine (e.g. its adapter runs
        sessions only), or None."""
        return None

    def graph_session_config(self, steps_per_loop: int) -> Any:
        """The graph engine's ``tf.compat.v1.ConfigProto`` for loops of ``steps_per_loop``
        steps (None: TensorFlow's default)."""
        return None

    def graph_optimizer(self, optimizer: Any) -> tuple[Any, int]:
        """Wrap the graph engine's ``tf.compat.v1.train.Optimizer`` (loss scaling, gradient
        averaging over ranks); returns it and how many ranks it averages the gradients over."""
        return optimizer, 1

    def loops_on_device(self) -> bool:
        """Whether the device repeats the train op itself (:meth:`device_loop`); else the
        graph engine loops with ``tf.while_loop``."""
        return False

    def device_loop(self, session: Any, train_op: Any, steps: int) -> Any:
        """The op whose ``session.run`` makes the device run ``train_op`` ``steps`` times."""
        return train_op
