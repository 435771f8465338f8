"""The measured loop: build through the hooks, warm up, time the window, evaluate, set status."""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from harness.context import RunContext
from harness.errors import BenchError
from harness.events import RunEvents
from harness.throughput import Interval, add_scaling_efficiency, summarize

if TYPE_CHECKING:
    from harness.case import Case
    from harness.devices.base import DeviceBackend
    from harness.plugins import BenchPlugins


class Stop(Exception):
    """Ends the training loop early with a status (diverged, timeout)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def resolve_device(case: Case, plugins: BenchPlugins) -> str:
    """``auto`` picks the first available of npu, gpu, cpu."""
    if case.device != "auto":
        return case.device
    for name in ("npu", "gpu", "cpu"):
        if name in plugins.devices and plugins.devices.get(name).available():
            return name
    return "cpu"


def device_options(case: Case, plugins: BenchPlugins) -> dict[str, Any]:
    """The case's ``npu:`` section plus ``precision``, amended by every ``configure_npu``."""
    from harness.devices.options import check_options

    options: dict[str, Any] = {**dict(case.npu), "precision": case.precision}
    plugins.hook.configure_npu(case=case, options=options)
    check_options(case, options)  # bad input: a one-line error before any report folder
    return options


class Runner:
    """Runs one validated case at each of its device counts; returns the result dicts."""

    def __init__(self, case: Case, plugins: BenchPlugins, backend: DeviceBackend,
                 options: dict[str, Any], progress: Any, log: Callable[[str], None],
                 worker: WorkerInfo | None = None, launch: Any = None,
                 events: RunEvents | None = None) -> None:
        self.case = case
        self.worker = worker  # set in a worker process of the process launcher
        self.launch = launch  # set in the parent: runs a device count as worker processes
        self.plugins = plugins
        self.backend = backend
        self.options = options
        self.progress = progress
        self.log = log
        self.events = events or RunEvents()
        self.started = time.perf_counter()

    # -- public -----------------------------------------------------------------------------

    def run(self) -> list[dict[str, Any]]:
        results = []
        for count in self.case.devices:
            if self.launch is not None and self.launch.wants(count):
                result = self.launch.measure(count)
                # the workers' intervals are in rank 0's own events (workers-N/); here the
                # merged outcome closes this count's run
                self.events.emit("run_stop", result=result)
            else:
                result = self.measure(count)
            results.append(result)
            if result["status"] in ("interrupted", "timeout"):
                break
        add_scaling_efficiency(results)
        return results

    def measure(self, count: int) -> dict[str, Any]:
        case = self.case
        result: dict[str, Any] = {
            "devices": count,
            "global_batch_size": case.batch_size * count,
            "data_source": case.data.source,
            "warmup_steps": case.train.warmup_steps,
            "measured_steps": 0,
            "throughput": summarize([], count)["throughput"],
            "step_time_ms": summarize([], count)["step_time_ms"],
            "mfu": None,
            "scaling_efficiency": None,
            "loss": {"first": None, "last": None, "curve": []},
            "accuracy": {},
            "evals": [],
            "time_to_accuracy_s": None,
            "target_met": None,
            "status": "running",
            "error": None,
        }
        intervals: list[Interval] = []
        start = time.perf_counter()
        try:
            self._train(count, result, intervals, start)
            result["status"] = "ok"
        except Stop as stop:
            result["status"], result["error"] = stop.status, str(stop)
        except KeyboardInterrupt:
            result["status"], result["error"] = "interrupted", "interrupted by signal"
        except BenchError as exc:
            result["status"], result["error"] = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed run still gets its report
            result["status"] = "failed"
            result["error"] = f"{type(exc).__name__}: {exc}".strip()
            result["traceback"] = traceback.format_exc()
        finally:
            from harness import tfcompat

            if tfcompat.is_loaded():
                tfcompat.set_precision_policy("float32")
        result.update({k: v for k, v in summarize(intervals, count).items()
                       if k in ("measured_steps", "throughput", "step_time_ms")})
        result["wall_time_s"] = time.perf_counter() - start
        if result["status"] == "ok" and self._flops and result["throughput"]["samples_per_sec"]:
            peak = self.backend.peak_flops(count, self._dtype)
            if peak:
                result["mfu"] = (result["throughput"]["samples_per_sec"] * 3 * self._flops
                                 / peak)
                result["peak_flops"] = peak
        self.events.emit("run_stop", result=result)
        return result

    # -- the loop ---------------------------------------------------------------------------

    _flops: float | None = None
    _dtype: str = "float32"

    def _context(self, count: int, strategy: Any, policy: str) -> RunContext:
        case = self.case
        compute = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(policy, "float32")
        if self.worker is not None:  # started by our process launcher
            pipelines, pipeline_id = self.worker.world_size, self.worker.rank
        else:  # e.g. RANK_SIZE / RANK_ID from the user's own Ascend launch script
            pipelines, pipeline_id = self.backend.input_pipeline(count)
        return RunContext(
            devices=count,
            batch_size=case.batch_size,
            global_batch_size=case.batch_size * count,
            num_input_pipelines=pipelines,
            input_pipeline_id=pipeline_id,
            rank=pipeline_id,
            strategy=strategy,
            compute_dtype=compute,
            seed=case.seed,
            device_type=self.backend.name,
            options=dict(self.options),
        )

    def _train(self, count: int, result: dict, intervals: list[Interval], start: float) -> None:
        from harness import tfcompat
        from harness.tfcompat import keras

        case, hook = self.case, self.plugins.hook
        workers = self.worker.world_size if self.worker else 1
        # A multi-worker strategy must exist before other TF work in the process.
        strategy = self.backend.strategy(count // workers, workers=workers)
        keras.backend.clear_session()
        keras.utils.set_random_seed(case.seed)
        policy = self.backend.precision_policy(case, self.options)
        tfcompat.set_precision_policy(policy)
        ctx = self._context(count, strategy, policy)
        self._dtype = ctx.compute_dtype

        dataset = hook.build_dataset(case=case, split="train", ctx=ctx)
        if dataset is None:
            raise BenchError(f"no plugin built a train dataset for model {case.model!r}")
        cardinality = int(dataset.cardinality())
        if cardinality > 0:
            ctx.steps_per_epoch = cardinality
            dataset = dataset.repeat()
        elif cardinality == 0:
            raise BenchError(f"{case.source}: data: the train dataset is empty")
        if case.train.steps is not None:
            total = case.train.steps
        elif ctx.steps_per_epoch:
            total = math.ceil(case.train.epochs * ctx.steps_per_epoch)
        else:
            raise BenchError(f"{case.source}: train.epochs: the dataset has no known size "
                             f"(synthetic data?); set train.steps")
        warmup = case.train.warmup_steps
        if warmup >= total:
            raise BenchError(f"{case.source}: train.warmup_steps: {warmup} is not below the "
                             f"{total} steps of train.epochs")
        ctx.train_steps = total

        with strategy.scope():
            spec = hook.build_model(case=case, ctx=ctx)
            if spec is None:
                raise BenchError(f"no plugin built model {case.model!r}")
            spec.optimizer = self.backend.wrap_optimizer(spec.optimizer, self.options)
        ctx.model_spec = spec
        self._flops = spec.flops_per_sample
        step_fn = make_train_step(strategy, spec, ctx.global_batch_size, self.backend.all_reduce)
        iterator = iter(distribute(strategy, dataset))

        timeout = case.timeout
        log_every = case.train.log_every
        every = case.eval.every_steps
        global_batch = ctx.global_batch_size
        self.progress.start(case, count, total)
        self.events.emit("run_start", case=case, ctx=ctx, total_steps=total,
                         init_seconds=time.perf_counter() - start)
        step = 0
        first_loss = None
        while step < warmup:
            loss = step_fn(iterator)
            step += 1
            if step == 1:
                first_loss = _finite(float(loss), step)
        if warmup:
            _finite(float(loss), step)  # host sync: the window starts after the warmup work
        tick = time.perf_counter()
        result["window"] = {"start_unix": time.time(), "end_unix": None}
        pending: list = []
        curve = result["loss"]["curve"]
        while step < total:
            pending.append(step_fn(iterator))
            step += 1
            eval_now = bool(every and step % every == 0 and step != total)
            if step % log_every and step != total and not eval_now:
                continue
            losses = [float(value) for value in pending]  # host sync at the interval's end
            now = time.perf_counter()
            interval = Interval(step, len(pending), len(pending) * global_batch, now - tick)
            intervals.append(interval)
            pending.clear()
            if first_loss is None:
                first_loss = losses[0]
            mean_loss = sum(losses) / len(losses)
            curve.append([step, mean_loss])
            result["loss"].update(first=first_loss, last=losses[-1])
            for value in losses:
                _finite(value, step)
            epoch = step / ctx.steps_per_epoch if ctx.steps_per_epoch else None
            result["window"]["end_unix"] = time.time()
            record = {"step": step, "total_steps": total, "epoch": epoch,
                      "steps": interval.steps, "samples": interval.samples,
                      "seconds": interval.seconds,
                      "samples_per_sec": interval.samples_per_sec, "loss": losses[-1],
                      "mean_loss": mean_loss, "lr": current_lr(spec.optimizer, step),
                      "devices": count}
            self.progress.update(record)
            self.events.emit("interval", record=record, interval=interval.to_dict())
            line = hook.log_interval(case=case, record=record)
            if line:
                self.log(line)
            if timeout is not None and time.perf_counter() - self.started > timeout:
                raise Stop("timeout", f"run exceeded timeout of {timeout:g} s at step {step}")
            if eval_now:
                self._evaluate(ctx, spec, step, result, start)
            tick = time.perf_counter()  # eval time is outside the measured window
        self.progress.stop()
        result["weights_digests"] = weights_digests(strategy, spec.model)
        if case.eval.at_end:
            self._evaluate(ctx, spec, step, result, start)

    def _evaluate(self, ctx: RunContext, spec: Any, step: int, result: dict, start: float) -> None:
        case, hook = self.case, self.plugins.hook
        began = time.perf_counter()
        dataset = hook.build_dataset(case=case, split="eval", ctx=ctx)
        if dataset is None:
            return
        if case.eval.steps:
            dataset = dataset.take(case.eval.steps)
        metrics = hook.evaluate(case=case, model=spec.model, dataset=dataset, ctx=ctx)
        if not metrics:
            return
        metrics = {str(k): float(v) for k, v in metrics.items()}
        elapsed = time.perf_counter() - start
        result["evals"].append({"step": step, "elapsed_s": elapsed, **metrics})
        result["accuracy"] = metrics
        self.events.emit("evaluate", step=step, metrics=metrics,
                         seconds=time.perf_counter() - began)
        self.log(f"eval at step {step}: " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        target = dict(case.eval.target)
        if target:
            met = all(metrics.get(k, -math.inf) >= v for k, v in target.items())
            if met and result["time_to_accuracy_s"] is None:
                result["time_to_accuracy_s"] = elapsed
            result["target_met"] = bool(met or result["time_to_accuracy_s"] is not None)


@dataclass(frozen=True)
class WorkerInfo:
    """This process's place in a multi-process run (one device per process)."""

    rank: int
    world_size: int


def distribute(strategy: Any, dataset: Any) -> Any:
    """Hand ``dataset`` to ``strategy``.

    In one process the dataset yields global batches and the strategy splits each over the
    local devices. With one device per worker process, each worker's dataset already yields
    that replica's batch (``ctx.pipeline_batch_size``): it must not be split again.
    """
    if strategy.num_replicas_in_sync == 1:
        return dataset  # the default strategy: nothing to distribute
    if len(strategy.extended.worker_devices) == 1:
        return strategy.distribute_datasets_from_function(lambda _input_context: dataset)
    return strategy.experimental_distribute_dataset(dataset)


def weights_digests(strategy: Any, model: Any) -> list[str]:
    """One SHA-256 over all trainable weights per local replica: data-parallel replicas that
    stayed in step have equal digests."""
    import hashlib

    digests = None
    for variable in model.trainable_variables:
        values = strategy.experimental_local_results(variable)
        if digests is None:
            digests = [hashlib.sha256() for _ in values]
        for digest, value in zip(digests, values):
            digest.update(value.numpy().tobytes())
    return [d.hexdigest() for d in digests or []]


def _finite(value: float, step: int) -> float:
    if not math.isfinite(value):
        raise Stop("diverged", f"loss is {value} at step {step}")
    return value


def current_lr(optimizer: Any, step: int) -> float | None:
    """The learning rate in effect at ``step``: a schedule is called with it; a plain rate
    is read (also when it is a MirroredVariable, as under MirroredStrategy)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = getattr(inner, "_learning_rate", None)  # Keras 2 keeps the schedule object here
    if lr is None or not callable(lr):
        lr = getattr(inner, "learning_rate", None)
    if lr is None:
        return None
    try:
        value = lr(step) if callable(lr) else lr
        if hasattr(value, "read_value"):
            value = value.read_value()
        return float(value.numpy() if hasattr(value, "numpy") else value)
    except (TypeError, ValueError):
        return None


def make_train_step(strategy: Any, spec: Any, global_batch_size: int,
                    all_reduce: Callable[[list], list] | None = None) -> Callable[[Any], Any]:
    """One compiled training step over a distributed iterator; returns the global mean loss.

    The per-example loss is summed and divided by the *global* batch on every replica and the
    replica losses are summed, so 1 and N devices compute the same gradient for the same data.
    ``all_reduce`` (the backend's) sums gradients and loss over one-process-per-device workers.
    """
    from harness import tfcompat
    from harness.tfcompat import tf

    model, optimizer, loss_fn = spec.model, spec.optimizer, spec.loss
    scaled = tfcompat.is_loss_scale_optimizer(optimizer)

    def replica_step(features: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            per_example = tf.cast(loss_fn(labels, outputs), tf.float32)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(
                    tf.add_n([tf.cast(v, tf.float32) for v in model.losses]))
            to_differentiate = optimizer.get_scaled_loss(loss) if scaled else loss
        variables = model.trainable_variables
        grads = tape.gradient(to_differentiate, variables)
        if scaled:
            grads = optimizer.get_unscaled_gradients(grads)
        if all_reduce is not None:
            *grads, loss = all_reduce([*grads, loss])
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    @tf.function
    def train_step(iterator: Any) -> Any:
        features, labels = next(iterator)
        per_replica = strategy.run(replica_step, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step
