"""The measured loop of one device count in this process: build through the hooks, warm up,
time the window, evaluate, set the status. Launchers decide where this runs; nothing here
starts processes or loops over device counts."""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from harness.case import target_met
from harness.context import RunContext
from harness.errors import BenchError, PluginError
from harness.model_hooks import ModelHooks
from harness.run.checks import check_train_batches, checked_loss, missing_target_metric
from harness.run.engine import GRAPH, EngineScope, engine_kind
from harness.run.events import RunEvents
from harness.run.result import Result, Status
from harness.run.throughput import Interval

if TYPE_CHECKING:
    from harness.case import Case
    from harness.devices.base import DeviceBackend
    from harness.plugins import BenchPlugins
    from harness.run.progress import PlainProgress


class Stop(Exception):
    """Ends the training loop early with a status (diverged, timeout)."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class WorkerInfo:
    """This process's place in a multi-process run (one device per process)."""

    rank: int
    world_size: int


@dataclass
class Job:
    """Everything measuring a device count needs, built once per case run (or per worker).

    ``options`` are the checked device options (the case's ``npu:`` section plus
    ``precision`` after every ``configure_npu``); ``backend`` is already prepared for this
    process; ``worker`` is set when this process is one rank of a multi-process run.
    ``started`` is when the case run began (``time.monotonic``): ``timeout`` counts from it.
    ``model_hooks`` answer the case's model hooks (its task); one per case run and process.
    """

    case: Case
    plugins: BenchPlugins
    backend: DeviceBackend
    options: dict[str, Any]
    progress: PlainProgress
    log: Callable[[str], None]
    events: RunEvents = field(default_factory=RunEvents)
    worker: WorkerInfo | None = None
    started: float = field(default_factory=time.monotonic)
    model_hooks: ModelHooks | None = None

    def __post_init__(self) -> None:
        if self.model_hooks is None:
            self.model_hooks = ModelHooks(self.plugins, self.case)


def new_result(case: Case, count: int) -> Result:
    """The empty result of ``count`` devices of ``case`` (every builder starts here)."""
    return Result(devices=count, global_batch_size=case.batch_size * count,
                  data_source=case.data.source, warmup_steps=case.train.warmup_steps)


class Runner:
    """Measures one device count of ``job`` in this process: :meth:`measure`."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.phase = "build"  # where a failure happened: build | train | eval

    def measure(self, count: int) -> Result:
        """Train and evaluate on ``count`` devices; never raises for a failed run: the
        result says ``failed`` (with the traceback for train.log), ``diverged``,
        ``timeout`` or ``interrupted``."""
        result = new_result(self.job.case, count)
        intervals: list[Interval] = []
        start = time.perf_counter()
        try:
            with EngineScope(engine_kind(self.job.case, self.job.backend)) as scope:
                self._train(count, result, intervals, start, scope)
            result.status = Status.OK
        except Stop as stop:
            result.status, result.error = stop.status, str(stop)
        except KeyboardInterrupt:
            result.status, result.error = Status.INTERRUPTED, "interrupted by signal"
        except BenchError as exc:
            result.status, result.error = Status.FAILED, str(exc)
            if isinstance(exc, PluginError):
                result.faulty_plugin = exc.plugin
        except Exception as exc:  # noqa: BLE001 - a failed run still gets its report
            result.status = Status.FAILED
            result.error = f"{type(exc).__name__}: {exc}".strip()
            result.traceback = traceback.format_exc()
        finally:
            from harness import tfcompat

            if tfcompat.is_loaded():
                tfcompat.set_precision_policy("float32")
        if result.status is Status.FAILED:
            result.failed_in = self.phase
        result.served_by = dict(self.job.model_hooks.served)
        result.set_intervals(intervals)
        result.wall_time_s = time.perf_counter() - start
        result.set_mfu()
        return result

    # -- the loop ---------------------------------------------------------------------------

    def _context(self, count: int, strategy: Any, policy: str) -> RunContext:
        job, case = self.job, self.job.case
        compute = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(policy, "float32")
        if job.worker is not None:  # started by our process launcher
            pipelines, pipeline_id = job.worker.world_size, job.worker.rank
        else:  # e.g. RANK_SIZE / RANK_ID from the user's own Ascend launch script
            pipelines, pipeline_id = job.backend.input_pipeline(count)
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
            device_type=job.backend.name,
            options=dict(job.options),
        )

    def _train(self, count: int, result: Result, intervals: list[Interval], start: float,
               scope: EngineScope) -> None:
        from harness import tfcompat
        from harness.run.plan import resolve_steps_per_loop
        from harness.tfcompat import keras

        job = self.job
        case, backend, model = job.case, job.backend, job.model_hooks
        case = resolve_steps_per_loop(case, backend)
        self.phase = "build"
        workers = job.worker.world_size if job.worker else 1
        # A multi-worker strategy must exist before other TF work in the process.
        strategy = backend.strategy(count // workers, workers=workers)
        if scope.kind != GRAPH:  # a graph count has a fresh graph (no reset inside one on TF 1)
            keras.backend.clear_session()
        tfcompat.set_random_seed(case.seed)
        policy = backend.precision_policy(case, job.options)
        tfcompat.set_precision_policy(policy)
        ctx = self._context(count, strategy, policy)

        dataset = model.build_dataset("train", ctx)
        if dataset is None:
            raise BenchError(f"no plugin built a train dataset for model {case.model!r}")
        check_train_batches(dataset, ctx, model.who("build_dataset"))
        cardinality = tfcompat.dataset_cardinality(dataset)
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
        per_loop = case.train.steps_per_loop
        # The first loop (tracing, compilation) never enters the measured window.
        warmup = max(case.train.warmup_steps, min(per_loop, total))
        if warmup >= total:
            raise BenchError(f"{case.source}: train.warmup_steps: {warmup} warmup steps (the "
                             f"first loop at least) leave none of the {total} steps to measure")
        result.warmup_steps = warmup
        ctx.train_steps = total

        with strategy.scope():
            spec = model.build_model(ctx)
            if spec is None:
                raise BenchError(f"no plugin built model {case.model!r}")
            spec.loss = checked_loss(spec.loss, model.who("build_model"))
            spec.optimizer = backend.wrap_optimizer(spec.optimizer, job.options)
        broadcast = backend.broadcast(spec.model.trainable_variables)
        ctx.model_spec = spec
        result.flops_per_sample = spec.flops_per_sample
        log_every = case.train.log_every
        if per_loop > 1 and not _static_shapes(dataset):
            job.log(f"train.steps_per_loop: {per_loop}: the train batches have unknown "
                    f"dimensions ({dataset.element_spec}); loops compile best with static "
                    f"shapes (drop_remainder=True), and the NPU adapter runs such a loop "
                    f"from the host")
        engine = scope.build(strategy, spec, dataset, ctx.global_batch_size, backend,
                             replicas=count, all_reduce=backend.all_reduce,
                             steps_per_loop=per_loop, capacity=max(log_every, per_loop))
        result.engine = scope.kind
        if getattr(engine, "fixed_loop", False) and total % per_loop:
            from harness.devices.options import case_key

            raise BenchError(f"{case_key(case, 'train.epochs')}: {total} steps: the device "
                             f"loop runs exactly train.steps_per_loop ({per_loop}) steps per "
                             f"session run (the session config's iterations_per_loop); set "
                             f"train.steps to a multiple of it")
        ctx.graph_session = getattr(engine, "session", None)  # the plugins' eval runs there
        ctx.loss_scale = getattr(engine, "loss_scale", None)
        if broadcast is not None:  # a graph's broadcast op: rank 0's initialized weights
            engine.run_once(broadcast)
        if ctx.deferred_assignments:  # checkpoint values, once the graph's variables exist
            engine.load(ctx.deferred_assignments)
            ctx.deferred_assignments.clear()
        launcher = _Launcher(engine, backend)

        timeout = case.timeout
        every = case.eval.every_steps
        global_batch = ctx.global_batch_size
        job.progress.start(case, count, total)
        times = result.time
        job.events.emit("run_start", case=case, ctx=ctx, total_steps=total,
                        init_seconds=time.perf_counter() - start)
        began = time.perf_counter()
        times["init_s"] = began - start  # the sinks' run_start (writers opening) included
        self.phase = "train"
        step = min(per_loop, total)
        first = _finite_all(engine.wait([launcher.launch(step)]), step)
        times["first_loop_s"] = time.perf_counter() - began
        first_loss = first[0]
        pending: list = []
        while step < warmup:  # whole loops; synced every log_every steps (unmeasured)
            steps = min(per_loop, warmup - step)
            pending.append(launcher.launch(steps))
            step += steps
            if step % log_every == 0 or step >= warmup:
                _finite_all(engine.wait(pending), step)
                pending.clear()
        tick = time.perf_counter()  # the window starts after the warmup's host sync
        times["warmup_s"] = tick - began - times["first_loop_s"]
        result.window = {"start_unix": time.time(), "end_unix": None}
        curve = result.loss["curve"]
        while step < total:
            steps = min(per_loop, total - step)
            pending.append(launcher.launch(steps))
            step += steps
            eval_now = bool(every and step % every == 0 and step != total)
            if step % log_every and step != total and not eval_now:
                continue
            losses = engine.wait(pending)  # host sync at the interval's end
            now = done = time.perf_counter()
            interval = Interval(step, len(losses), len(losses) * global_batch, now - tick)
            intervals.append(interval)
            times["measured_s"] += interval.seconds
            pending.clear()
            mean_loss = sum(losses) / len(losses)
            curve.append([step, mean_loss])
            result.loss.update(first=first_loss, last=losses[-1])
            _finite_all(losses, step)
            epoch = step / ctx.steps_per_epoch if ctx.steps_per_epoch else None
            result.window["end_unix"] = time.time()
            record = {"step": step, "total_steps": total, "epoch": epoch,
                      "steps": interval.steps, "samples": interval.samples,
                      "seconds": interval.seconds,
                      "samples_per_sec": interval.samples_per_sec, "loss": losses[-1],
                      "mean_loss": mean_loss, "lr": engine.learning_rate(step),
                      "devices": count}
            job.progress.update(record)
            job.events.emit("interval", record=record, interval=interval.to_dict())
            line = model.log_line(record, ctx)
            if line:
                job.log(line)
            if timeout is not None and time.monotonic() - job.started > timeout:
                raise Stop(Status.TIMEOUT, f"run exceeded timeout of {timeout:g} s at step {step}")
            if eval_now:
                times["other_s"] += time.perf_counter() - done
                self._evaluate(ctx, spec, step, result, start)
                done = time.perf_counter()
            tick = time.perf_counter()  # eval time is outside the measured window
            times["other_s"] += tick - done
        done = time.perf_counter()
        job.progress.stop()
        result.weights_digests = engine.weights_digests()
        result.peak_flops = self._peak_flops(count, ctx.compute_dtype)  # a CPU probe: after
        times["other_s"] += time.perf_counter() - done
        if case.eval.at_end:
            self._evaluate(ctx, spec, step, result, start)
        done = time.perf_counter()
        # Tearing the input pipeline down (tf.data stops its threads) takes a while: count it.
        del launcher, engine, dataset
        times["other_s"] += time.perf_counter() - done

    def _peak_flops(self, count: int, dtype: str) -> float | None:
        """The devices' peak for MFU; a peak that cannot be had leaves MFU empty, it does not
        fail a finished measurement."""
        try:
            return self.job.backend.peak_flops(count, dtype)
        except Exception as exc:  # noqa: BLE001 - e.g. a dtype the CPU probe has no kernel for
            self.job.log(f"peak FLOP/s unavailable ({type(exc).__name__}: {exc}); MFU left empty")
            return None

    def _evaluate(self, ctx: RunContext, spec: Any, step: int, result: Result,
                  start: float) -> None:
        """Evaluate now (the clock of the window is paused); its whole time is eval_s."""
        began = time.perf_counter()
        try:
            self._evaluate_now(ctx, spec, step, result, start, began)
        finally:
            result.time["eval_s"] += time.perf_counter() - began

    def _evaluate_now(self, ctx: RunContext, spec: Any, step: int, result: Result,
                      start: float, began: float) -> None:
        """Evaluate the whole eval split in this process, whatever the launcher: the eval
        context has one input pipeline (``ctx.shard`` is a no-op), the same batch size."""
        job = self.job
        case, model = job.case, job.model_hooks
        self.phase = "eval"
        ctx = dataclasses.replace(ctx, num_input_pipelines=1, input_pipeline_id=0,
                                  global_batch_size=ctx.pipeline_batch_size)
        dataset = model.build_dataset("eval", ctx)
        if dataset is None:
            if case.eval.target:
                raise Stop(Status.FAILED, f"{case.source}: eval.target: the model's plugin "
                                          f'"{model.owner}" builds no eval dataset')
            self.phase = "train"
            return
        if case.eval.steps:
            dataset = dataset.take(case.eval.steps)
        metrics = model.evaluate(spec.model, dataset, ctx)
        if not metrics:
            if case.eval.target and not result.evals:
                raise Stop(Status.FAILED, f"{case.source}: eval.target: the evaluation of "
                                          f'plugin "{model.who("evaluate")}" returned no metrics')
            self.phase = "train"
            return
        metrics = {str(k): float(v) for k, v in metrics.items()}
        if not result.evals:
            missing = missing_target_metric(case, metrics, model.who("evaluate"))
            if missing:
                raise Stop(Status.FAILED, missing)
        elapsed = time.perf_counter() - start
        result.evals.append({"step": step, "elapsed_s": elapsed, **metrics})
        result.accuracy = metrics
        job.events.emit("evaluate", step=step, metrics=metrics,
                        seconds=time.perf_counter() - began)
        job.log(f"eval at step {step}: " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if case.eval.target:
            met = target_met(case.eval.target, metrics)
            if met and result.time_to_accuracy_s is None:
                result.time_to_accuracy_s = elapsed
            result.target_met = bool(met or result.time_to_accuracy_s is not None)
        self.phase = "train"


class _Launcher:
    """Launches through the engine, telling the backend the loop's length whenever it
    changes (before the first launch, and before a shorter last loop)."""

    def __init__(self, engine: Any, backend: DeviceBackend) -> None:
        self.engine, self.backend = engine, backend
        self.size = 0

    def launch(self, steps: int) -> Any:
        if steps != self.size:
            self.backend.set_loop_size(steps)
            self.size = steps
        return self.engine.launch(steps)


def _static_shapes(dataset: Any) -> bool:
    from harness.tfcompat import tf

    return all(spec.shape.is_fully_defined() for spec in tf.nest.flatten(dataset.element_spec)
               if hasattr(spec, "shape"))


def _finite_all(values: list[float], step: int) -> list[float]:
    """``values`` (the losses of the steps up to ``step``); a NaN or infinite one stops the
    run as diverged."""
    for value in values:
        if not math.isfinite(value):
            raise Stop(Status.DIVERGED, f"loss is {value} at step {step}")
    return values
