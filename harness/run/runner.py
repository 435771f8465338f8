"""The measured loop of one device count in this process: build through the hooks, warm up,
time the window, evaluate, set the status. Launchers decide where this runs; nothing here
starts processes or loops over device counts. Memory, the input probe, checkpoints and the
profile window are their own modules; the loop calls them at interval ends."""

from __future__ import annotations

import dataclasses
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from harness.case import target_met
from harness.context import RunContext
from harness.errors import BenchError, PluginError
from harness.model_hooks import ModelHooks
from harness.run import checkpoints
from harness.run.checks import check_train_batches, checked_loss, missing_target_metric
from harness.run.engine import GRAPH, EngineScope, engine_kind
from harness.run.events import RunEvents
from harness.run.input_probe import input_bound, input_only_intervals, time_pipeline
from harness.run.memory import MemorySampler
from harness.run.profile import ProfileWindow, adapter_profile
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
    ``folder`` is the run folder (checkpoints and profiles go below it); ``resume`` a run
    folder whose last checkpoints to continue from; ``input_only`` times the train input
    pipeline instead of training (``bench run --input-only``).
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
    folder: str = ""
    resume: str | None = None
    input_only: bool = False
    model_hooks: ModelHooks | None = None

    def __post_init__(self) -> None:
        if self.model_hooks is None:
            self.model_hooks = ModelHooks(self.plugins, self.case)


def new_result(case: Case, count: int) -> Result:
    """The empty result of ``count`` devices of ``case`` (every builder starts here)."""
    return Result(devices=count, global_batch_size=case.batch_size * count,
                  data_source=case.data.source, warmup_steps=case.train.warmup_steps)


class Runner:
    """Measures one device count of ``job`` in this process: :meth:`measure`. ``repeat`` is
    the index of this measurement among the count's repeats (checkpoints, resume and the
    profile window belong to the first)."""

    def __init__(self, job: Job, repeat: int = 0) -> None:
        self.job = job
        self.repeat = repeat
        self._memory: MemorySampler | None = None
        self._profile: ProfileWindow | None = None
        self._elapsed_offset = 0.0  # a resumed run's time before its checkpoint
        self.phase = "build"  # where a failure happened: build | train | eval

    def measure(self, count: int) -> Result:
        """Train and evaluate on ``count`` devices; never raises for a failed run: the
        result says ``failed`` (with the traceback for train.log), ``diverged``,
        ``timeout`` or ``interrupted``."""
        result = new_result(self.job.case, count)
        result.input_only = True if self.job.input_only else None
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

            self._finish_window(result)
            if tfcompat.is_loaded():
                tfcompat.set_precision_policy("float32")
        if result.status is Status.FAILED:
            result.failed_in = self.phase
        result.served_by = dict(self.job.model_hooks.served)
        result.set_intervals(intervals)
        result.wall_time_s = time.perf_counter() - start
        result.set_mfu()
        if result.input_pipeline:
            rate = result.throughput["samples_per_sec"] if result.status is Status.OK else None
            result.input_pipeline["bound"] = input_bound(rate,
                                                         result.input_pipeline["samples_per_sec"])
        return result

    def _finish_window(self, result: Result) -> None:
        """Memory and profile of the window, also when the run stopped inside it."""
        if self._profile is not None:
            self._profile.stop()
            result.profile = self._profile.to_dict()
            self._profile = None
        if self._memory is not None:
            result.memory = self._memory.stop()
            for error in self._memory.errors:
                self.job.log(error)
            self._memory = None

    def _start_window(self, count: int) -> None:
        workers = self.job.worker.world_size if self.job.worker else 1
        self._memory = MemorySampler(self.job.backend.memory_monitor(max(1, count // workers)))
        self._memory.start()

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

    def prepare(self, count: int, graph: bool = False) -> RunContext:
        """A fresh Keras session (``graph``: the engine scope's fresh graph, no reset inside
        one on TF 1) with the case's seed and precision, the strategy of ``count`` devices
        and the context the hooks get."""
        from harness import tfcompat
        from harness.tfcompat import keras

        job = self.job
        case, backend = job.case, job.backend
        workers = job.worker.world_size if job.worker else 1
        # A multi-worker strategy must exist before other TF work in the process.
        strategy = backend.strategy(count // workers, workers=workers)
        if not graph:
            keras.backend.clear_session()
        tfcompat.set_random_seed(case.seed)
        policy = backend.precision_policy(case, job.options)
        tfcompat.set_precision_policy(policy)
        return self._context(count, strategy, policy)

    def _train(self, count: int, result: Result, intervals: list[Interval], start: float,
               scope: EngineScope) -> None:
        from harness import tfcompat
        from harness.run.plan import resolve_steps_per_loop

        job = self.job
        case, backend, model = job.case, job.backend, job.model_hooks
        case = resolve_steps_per_loop(case, backend)
        self.phase = "build"
        ctx = self.prepare(count, graph=scope.kind == GRAPH)
        strategy = ctx.strategy
        times = result.time

        if case.data.probe_batches and scope.kind != GRAPH and not job.input_only:
            # (graph: only when asked, and refused.) The probe reads a pipeline of its own,
            # built before the run's, and the seeds are set again after it: the run then
            # trains on the same data order from the same initial weights as without it.
            began = time.perf_counter()
            probed = model.build_dataset("train", ctx)
            if probed is not None:
                if tfcompat.dataset_cardinality(probed) > 0:
                    probed = probed.repeat()
                self._probe(ctx, probed, result)
                del probed
                tfcompat.set_random_seed(case.seed)
            times["probe_s"] += time.perf_counter() - began
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
        if job.input_only:
            result.warmup_steps = case.train.warmup_steps
            self._input_only(count, ctx, dataset, total, result, intervals, start)
            return
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
        saver, step = self._checkpoints(count, spec, engine, result, total)
        first_step = step  # 0, or the step of the checkpoint resumed from
        # A resumed step that is not a whole number of loops gets a shorter first loop, so
        # that every later loop, interval and evaluation ends where it would have.
        warmup_end = min(total, _whole_loops(first_step + warmup, per_loop))
        if warmup_end >= total:
            raise BenchError(f"{case.source}: train.warmup_steps: {warmup} warmup steps after "
                             f"step {first_step} leave nothing to measure of {total} steps")
        result.warmup_steps = warmup_end - first_step
        saves = [saver] if saver is not None else []

        timeout = case.timeout
        every = case.eval.every_steps
        global_batch = ctx.global_batch_size
        job.progress.start(case, count, total)
        job.events.emit("run_start", case=case, ctx=ctx, total_steps=total,
                        init_seconds=time.perf_counter() - start)
        began = time.perf_counter()
        self.phase = "train"
        # the sinks' run_start (writers opening) included; the input probe is apart
        times["init_s"] = began - start - times["probe_s"]
        step = _loop_end(step, per_loop, warmup_end, saves)
        first = _finite_all(engine.wait([launcher.launch(step - first_step)]), step)
        times["first_loop_s"] = time.perf_counter() - began
        first_loss = first[0]
        saved = self._save_due(step, saver, ctx, first[-1], start, total, result)
        pending: list = []
        while step < warmup_end:  # whole loops; synced every log_every steps (unmeasured)
            end = _loop_end(step, per_loop, warmup_end, saves)
            pending.append(launcher.launch(end - step))
            step = end
            due = saver is not None and saver.boundary(step)
            if step % log_every == 0 or step >= warmup_end or due:
                losses = _finite_all(engine.wait(pending), step)
                pending.clear()
                saved += self._save_due(step, saver, ctx, losses[-1], start, total, result)
        tick = time.perf_counter()  # the window starts after the warmup's host sync
        times["warmup_s"] = tick - began - times["first_loop_s"] - saved
        self._profile = self._profile_window(count, step, total, result)
        boundaries = saves + ([self._profile] if self._profile is not None else [])
        self._start_window(count)
        times["other_s"] += time.perf_counter() - tick
        self._profile_at(step, times)
        tick = time.perf_counter()
        result.window = {"start_unix": time.time(), "end_unix": None}
        curve = result.loss["curve"]
        while step < total:
            end = _loop_end(step, per_loop, total, boundaries)
            pending.append(launcher.launch(end - step))
            step = end
            eval_now = bool(every and step % every == 0 and step != total)
            sync_now = eval_now or any(b.boundary(step) for b in boundaries)
            if step % log_every and step != total and not sync_now:
                continue
            losses = engine.wait(pending)  # host sync at the interval's end
            now = done = time.perf_counter()
            interval = Interval(step, len(losses), len(losses) * global_batch, now - tick)
            if self._profile is not None and self._profile.covers(step):
                times["profile_s"] += interval.seconds  # profiled: outside the window
            else:
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
            times["other_s"] += time.perf_counter() - done
            self._save_due(step, saver, ctx, losses[-1], start, total, result)
            self._profile_at(step, times)
            # eval, checkpoint and profiler time is outside the measured window
            tick = done = time.perf_counter()
        self._finish_window(result)
        times["other_s"] += time.perf_counter() - done
        done = time.perf_counter()
        job.progress.stop()
        result.weights_digests = engine.weights_digests()
        result.peak_flops = self._peak_flops(count, ctx.compute_dtype)  # a CPU probe: after
        times["other_s"] += time.perf_counter() - done
        if case.eval.at_end:
            self._evaluate(ctx, spec, step, result, start)
        done = time.perf_counter()
        # Tearing the input pipeline down (tf.data stops its threads) takes a while: count it.
        del launcher, engine, dataset, saver, saves, boundaries
        times["other_s"] += time.perf_counter() - done

    def _probe(self, ctx: RunContext, dataset: Any, result: Result) -> None:
        """``data.probe_steps`` batches of the train pipeline alone, before the model exists."""
        job, case = self.job, self.job.case
        probe = time_pipeline(dataset, case.data.probe_batches, ctx.pipeline_batch_size,
                              compiled=getattr(job.backend, "compiled_host_loops", True))
        pipelines = ctx.num_input_pipelines
        result.input_pipeline = {
            **probe, "per_pipeline_samples_per_sec": probe["samples_per_sec"],
            "pipelines": pipelines,
            "samples_per_sec": (probe["samples_per_sec"] or 0.0) * pipelines or None,
            "bound": None}
        job.log(f"input pipeline alone: {result.input_pipeline['samples_per_sec'] or 0:.1f} "
                f"samples/s over {probe['steps']} batches")

    def _save_due(self, step: int, saver: Any, ctx: RunContext, loss: float, start: float,
                  total: int, result: Result) -> float:
        """After the host sync at ``step``: the checkpoint due there (every ``checkpoint_every``
        steps and at the last step), timed into ``checkpoint_s``; returns its seconds."""
        if saver is None or not (saver.boundary(step) or step == total):
            return 0.0
        began = time.perf_counter()
        epoch = step / ctx.steps_per_epoch if ctx.steps_per_epoch else None
        entry = saver.save(step, epoch, self._elapsed_offset + began - start, loss, total)
        if entry is not None:
            self.job.log(f"checkpoint at step {step}: {entry['path']} "
                         f"({entry['save_seconds']:.2f} s)")
        seconds = time.perf_counter() - began
        result.time["checkpoint_s"] += seconds
        return seconds

    def _profile_at(self, step: int, times: dict[str, Any]) -> None:
        """Start or stop the profiler at ``step`` (a host sync); its own time in profile_s."""
        if self._profile is not None:
            began = time.perf_counter()
            self._profile.at(step)
            times["profile_s"] += time.perf_counter() - began

    def _input_only(self, count: int, ctx: RunContext, dataset: Any, total: int, result: Result,
                    intervals: list[Interval], start: float) -> None:
        """``--input-only``: the train pipeline's batches pulled and timed as training's
        steps would be (warmup excluded, intervals at ``log_every``), no model."""
        job, case = self.job, self.job.case
        job.progress.start(case, count, total)
        job.events.emit("run_start", case=case, ctx=ctx, total_steps=total,
                        init_seconds=time.perf_counter() - start)
        times = result.time  # no compiled training call: first_loop_s stays None
        began = time.perf_counter()
        times["init_s"] = began - start
        result.window = {"start_unix": None, "end_unix": None}

        def on_interval(interval: Interval) -> None:
            intervals.append(interval)
            times["measured_s"] += interval.seconds
            result.window["end_unix"] = time.time()
            record = {"step": interval.end_step, "total_steps": total,
                      "epoch": interval.end_step / ctx.steps_per_epoch if ctx.steps_per_epoch
                      else None, "steps": interval.steps, "samples": interval.samples,
                      "seconds": interval.seconds, "samples_per_sec": interval.samples_per_sec,
                      "loss": None, "mean_loss": None, "lr": None, "devices": count}
            job.progress.update(record)
            job.events.emit("interval", record=record, interval=interval.to_dict())
            job.log(f"input step {interval.end_step:>6}/{total}  samples/s "
                    f"{interval.samples_per_sec:9.1f}")
            if case.timeout is not None and time.monotonic() - job.started > case.timeout:
                raise Stop(Status.TIMEOUT, f"run exceeded timeout of {case.timeout:g} s at "
                                           f"step {interval.end_step}")

        def window_start() -> None:
            times["warmup_s"] = time.perf_counter() - began
            self._start_window(count)
            result.window["start_unix"] = time.time()

        input_only_intervals(dataset, case.train.warmup_steps, total, case.train.log_every,
                             ctx.global_batch_size, on_interval, on_start=window_start,
                             compiled=getattr(job.backend, "compiled_host_loops", True))
        job.progress.stop()
        self._finish_window(result)
        times["other_s"] = (time.perf_counter() - began - times["warmup_s"]
                            - times["measured_s"])

    def _checkpoints(self, count: int, spec: Any, engine: Any, result: Result,
                     total: int) -> tuple[checkpoints.CheckpointSaver | None, int]:
        """The saver of this count (when the case saves or resumes) and the step to start
        from: the resumed checkpoint's, else 0."""
        job, case = self.job, self.job.case
        if self.repeat or not (case.train.checkpoint_every or job.resume):
            return None, 0
        rank = job.worker.rank if job.worker else 0
        one_pipeline = (job.worker is None or job.worker.world_size == 1) and \
            self._context_pipelines() == 1
        iterator = getattr(engine, "iterator", None) if case.train.checkpoint_data and \
            one_pipeline else None
        saver = checkpoints.CheckpointSaver(
            checkpoints.count_folder(job.folder or ".", count), spec.model, spec.optimizer,
            iterator=iterator, writer=rank == 0, log=job.log, every=case.train.checkpoint_every)
        if not job.resume:
            return saver, 0
        point = checkpoints.resume_point(job.resume, count, total)
        step = saver.restore(point)
        result.resumed_from = {"run_folder": job.resume, "checkpoint": point["prefix"],
                               "step": step, "data_position": bool(point.get("data_position"))
                               and saver.data, "elapsed_s": point.get("elapsed_s")}
        self._elapsed_offset = float(point.get("elapsed_s") or 0.0)
        job.log(f"resumed from {point['prefix']} at step {step}")
        return (saver if case.train.checkpoint_every else None), step

    def _context_pipelines(self) -> int:
        if self.job.worker is not None:
            return self.job.worker.world_size
        return self.job.backend.input_pipeline(1)[0]

    def _profile_window(self, count: int, step: int, total: int,
                        result: Result) -> ProfileWindow | None:
        """The profile window of this count, starting after ``step`` (the warmup's end)."""
        job, spec = self.job, self.job.case.profile
        if self.repeat or not spec.enabled:
            return None
        if not getattr(job.backend, "trace_profiler", True):
            result.profile = adapter_profile(job.options, spec.start_step, spec.steps)
            return None
        logdir = os.path.join(job.folder or ".", "profile", f"devices_{count}")
        if job.worker is not None and job.worker.rank:
            logdir = os.path.join(logdir, f"rank{job.worker.rank}")
        window = ProfileWindow(spec.start_step, spec.steps, total, logdir, job.folder or ".",
                               job.log)
        if spec.start_step <= step and not window.done:
            window.done = True
            window.error = (f"profile.start_step {spec.start_step} is not after step {step} "
                            f"(the warmup after a resumed checkpoint)")
            job.log(f"profile: {window.error}; no trace")
        return window

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
        metrics = self.eval_metrics(ctx, spec)
        if metrics is None:
            if case.eval.target:
                raise Stop(Status.FAILED, f"{case.source}: eval.target: the model's plugin "
                                          f'"{model.owner}" builds no eval dataset')
            self.phase = "train"
            return
        if not metrics:
            if case.eval.target and not result.evals:
                raise Stop(Status.FAILED, f"{case.source}: eval.target: the evaluation of "
                                          f'plugin "{model.who("evaluate")}" returned no metrics')
            self.phase = "train"
            return
        if not result.evals:
            missing = missing_target_metric(case, metrics, model.who("evaluate"))
            if missing:
                raise Stop(Status.FAILED, missing)
        elapsed = self._elapsed_offset + time.perf_counter() - start
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

    def eval_metrics(self, ctx: RunContext, spec: Any) -> dict[str, float] | None:
        """The whole eval split in this process, whatever the launcher (the eval context has
        one input pipeline, so ``ctx.shard`` is a no-op; the same batch size), cut to
        ``eval.steps`` batches, through the model's ``evaluate``: None without an eval
        dataset, ``{}`` without metrics."""
        model = self.job.model_hooks
        ctx = dataclasses.replace(ctx, num_input_pipelines=1, input_pipeline_id=0,
                                  global_batch_size=ctx.pipeline_batch_size)
        dataset = model.build_dataset("eval", ctx)
        if dataset is None:
            return None
        if self.job.case.eval.steps:
            dataset = dataset.take(self.job.case.eval.steps)
        metrics = model.evaluate(spec.model, dataset, ctx)
        return {str(k): float(v) for k, v in metrics.items()} if metrics else {}


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


def _whole_loops(step: int, per_loop: int) -> int:
    """``step`` rounded up to a whole number of loops."""
    return -(-step // per_loop) * per_loop


def _loop_end(step: int, per_loop: int, limit: int, boundaries: list) -> int:
    """Where the loop launched after ``step`` ends: at the next whole loop, ``limit`` or the
    next checkpoint or profile edge, whichever comes first (the case's checks make those whole
    loops; a resumed step that is not gets a shorter loop to the next one)."""
    end = min((step // per_loop + 1) * per_loop, limit)
    for boundary in boundaries:
        edge = boundary.next_boundary(step)
        if edge is not None:
            end = min(end, edge)
    return end
