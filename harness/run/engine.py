"""Training engines: how the runner's training steps execute.

The runner only launches steps and waits for their losses; an engine decides what a launch
is. :class:`EagerEngine` (TF 2) calls a compiled ``tf.function`` over a distributed iterator.
Launches return handles without a host sync, so the steps between two waits run as a bare
``tf.function`` loop would; ``wait`` is the host sync that ends an interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from harness.errors import BenchError
from harness.run.train_step import current_lr, distribute, make_train_step, weights_digests

if TYPE_CHECKING:
    from harness.case import Case
    from harness.devices.base import DeviceBackend

EAGER, GRAPH = "eager", "graph"


class EagerEngine:
    """Training steps as compiled ``tf.function`` calls over a distributed iterator."""

    def __init__(self, strategy: Any, spec: Any, dataset: Any, global_batch_size: int,
                 all_reduce: Callable[[list], list] | None = None) -> None:
        self.strategy = strategy
        self.spec = spec
        self._step = make_train_step(strategy, spec, global_batch_size, all_reduce)
        self._iterator = iter(distribute(strategy, dataset))

    def launch(self, steps: int) -> list[Any]:
        """Start ``steps`` training steps; returns their (device) losses, unsynced."""
        return [self._step(self._iterator) for _ in range(steps)]

    def wait(self, handles: list[list[Any]]) -> list[float]:
        """Host sync: the per-step global mean losses of the launches ``handles``."""
        return [float(loss) for handle in handles for loss in handle]

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
        else:  # launches of single steps: no loss buffer to size
            kwargs.pop("capacity", None)
            engine = EagerEngine(strategy, spec, dataset, global_batch_size, **kwargs)
        self._engines.append(engine)
        return engine
