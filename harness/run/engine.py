"""Training engines: how the runner's training steps execute.

The contract (what the runner uses; :class:`harness.run.graph_engine.GraphEngine`, the
session engine of TF 1.x and ``engine: graph``, implements the same):

* ``steps_per_loop``: the most steps one launch may run (``train.steps_per_loop``).
* ``launch(steps) -> handle``: start ``steps`` (1 .. steps_per_loop) training steps as ONE
  call (one compiled loop when ``steps_per_loop`` > 1), without a host sync.
* ``wait(handles) -> list[float]``: the host sync; the per-step global mean losses of those
  launches, in step order. At most ``capacity`` steps may be launched between two waits.
* ``weights_digests() -> list[str]``: one SHA-256 of the weights per local replica.
* ``learning_rate(step)`` for the log lines; ``close()`` when the device count is done.

Launches return without a host sync, so the steps between two waits run as a bare
``tf.function`` loop would; ``wait`` is the sync that ends an interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from harness.errors import BenchError
from harness.run.train_step import (
    check_launch,
    current_lr,
    distribute,
    make_train_loop,
    make_train_step,
    weights_digests,
)

if TYPE_CHECKING:
    from harness.case import Case
    from harness.devices.base import DeviceBackend

EAGER, GRAPH = "eager", "graph"


class EagerEngine:
    """Training steps as compiled ``tf.function`` calls over a distributed iterator (TF 2):
    one call per step for ``steps_per_loop`` 1, else one ``tf.range`` loop per launch whose
    losses come back through a variable (:func:`harness.run.train_step.make_train_loop`)."""

    def __init__(self, strategy: Any, spec: Any, dataset: Any, global_batch_size: int,
                 replicas: int = 1, all_reduce: Callable[[list], list] | None = None,
                 steps_per_loop: int = 1, capacity: int | None = None) -> None:
        from harness.tfcompat import tf

        self.strategy = strategy
        self.spec = spec
        self.steps_per_loop = steps_per_loop
        self.capacity = max(capacity or steps_per_loop, steps_per_loop)
        self._iterator = iter(distribute(strategy, dataset))
        self._pending = 0  # steps launched since the last wait (their slots in the buffer)
        if steps_per_loop == 1:
            self._step = make_train_step(strategy, spec, global_batch_size, replicas, all_reduce,
                                         iterator=self._iterator)
        else:
            self._loop, self._losses = make_train_loop(strategy, spec, global_batch_size,
                                                       replicas, all_reduce, self.capacity,
                                                       self._iterator)
            tensors: dict[int, Any] = {}  # the few step counts and offsets, made once
            self._tensor = lambda value: tensors.get(value) if value in tensors else \
                tensors.setdefault(value, tf.constant(value, tf.int32))

    @property
    def iterator(self) -> Any:
        """The input iterator the steps read (a checkpoint may save its position)."""
        return self._iterator

    def launch(self, steps: int) -> Any:
        """Start ``steps`` training steps; a handle for :meth:`wait` (nothing is synced)."""
        check_launch(steps, self.steps_per_loop, self._pending, self.capacity)
        if self.steps_per_loop == 1:
            self._pending += 1
            return [self._step()]
        offset = self._pending
        self._pending += steps
        self._loop(self._tensor(steps), self._tensor(offset))
        return (offset, steps)

    def wait(self, handles: list[Any]) -> list[float]:
        """Host sync: the per-step global mean losses of the launches ``handles``."""
        self._pending = 0
        if self.steps_per_loop == 1:
            return [float(loss) for handle in handles for loss in handle]
        values = self._losses.numpy()  # reading the variable waits for the launched loops
        return [float(v) for offset, steps in handles for v in values[offset:offset + steps]]

    def weights_digests(self) -> list[str]:
        return weights_digests(self.strategy, self.spec.model)

    def learning_rate(self, step: int) -> float | None:
        """The learning rate in effect at ``step``."""
        return current_lr(self.spec.optimizer, step)

    def close(self) -> None:
        pass


def engine_kind(case: Case, backend: type[DeviceBackend] | DeviceBackend) -> str:
    """The one place that picks the engine: graph where eager execution is unavailable (TF 1.x,
    or TF 2 after ``disable_v2_behavior``, e.g. ``npu_device.compat.enable_v1()``), where the
    backend's adapter runs graph sessions only (npu_bridge), or for ``engine: graph``; else
    eager. ``engine: eager`` where it cannot run is bad input."""
    from harness import tfcompat

    why = backend.graph_only()
    if why is None and not tfcompat.executes_eagerly():
        why = (f"TensorFlow {tfcompat.tf_version_string()} runs graph mode only here "
               f"(no eager execution)")
    if why and case.engine == EAGER:
        from harness.devices.options import case_key

        raise BenchError(f"{case_key(case, 'engine')}: eager cannot run: {why}; use graph or auto")
    return GRAPH if why or case.engine == GRAPH else EAGER


def check_graph_engine(case: Case, backend: type[DeviceBackend] | DeviceBackend,
                       resume: str | None, input_only: bool) -> None:
    """What the graph engine (TF 1.x, ``engine: graph``) does not run yet, as bad input (exit
    2, before anything is written): checkpoints, resume, profile windows, the input probe
    and input-only runs are built on eager TF 2 (tf.train.Checkpoint of the iterator,
    tf.profiler, eager iteration). The default input probe of file data is skipped there;
    one asked for is refused."""
    from harness.devices.options import case_key

    if engine_kind(case, backend) != GRAPH:
        return
    unsupported = [("train.checkpoint_every", case.train.checkpoint_every),
                   ("data.probe_steps", case.data.probe_steps),
                   ("profile.steps", case.profile.enabled)]
    for key, value in unsupported:
        if value:
            raise BenchError(f"{case_key(case, key)}: not available on the graph engine "
                             f"(TF 1.x or engine: graph) yet; it needs TF 2's eager engine")
    for flag, value in (("--resume", resume), ("--input-only", input_only)):
        if value:
            raise BenchError(f"{flag}: not available on the graph engine (TF 1.x or engine: "
                             f"graph) yet; it needs TF 2's eager engine")


class EngineScope:
    """Where one device count trains: for the graph engine a fresh ``tf.Graph`` (entered, so
    the plugins' dataset and model are built in it); :meth:`build` makes the engine, and
    leaving the scope closes it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.graph: Any = None
        self._entered: Any = None
        self._engines: list = []

    def __enter__(self) -> EngineScope:
        if self.kind == GRAPH:
            from harness.tfcompat import tf

            self.graph = tf.Graph()
            self._entered = self.graph.as_default()
            self._entered.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for engine in self._engines:
            engine.close()
        if self._entered is not None:
            self._entered.__exit__(*exc)

    def build(self, strategy: Any, spec: Any, dataset: Any, global_batch_size: int,
              backend: DeviceBackend, **kwargs: Any) -> Any:
        """The engine of this scope's kind (kwargs: each engine's own)."""
        if self.kind == GRAPH:
            from harness.run.graph_engine import GraphEngine

            engine = GraphEngine(strategy, spec, dataset, global_batch_size, backend, **kwargs)
        else:
            engine = EagerEngine(strategy, spec, dataset, global_batch_size, **kwargs)
        self._engines.append(engine)
        return engine
