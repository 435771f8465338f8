"""events.mllog: MLPerf-style ``:::MLLOG`` lines of every run, written with ``mlperf-logging``."""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import time
from typing import TYPE_CHECKING, Any

from harness.markers import hookimpl

if TYPE_CHECKING:
    from harness.case import Case
    from harness.context import RunContext

FILENAME = "events.mllog"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # metadata.file is relative
_loggers = itertools.count()


def _now_ms() -> int:
    return int(time.time() * 1000)


class MllogSink:
    """One ``events.mllog`` per report folder; one run_start..run_stop per device count.

    Blocks are the measured intervals (``train.log_every`` steps, host-synchronised at both
    ends). Epoch boundaries are only observed at those interval ends, so epoch_start/stop
    times are accurate to one interval; with an endless (synthetic) dataset there are no
    epochs and no epoch events.
    """

    def __init__(self, case: Case, folder: str) -> None:
        self.case = case
        self.path = os.path.join(folder, FILENAME)
        self.mllogger: Any = None
        self.handler: logging.Handler | None = None
        self.open_run: dict[str, Any] | None = None
        self.epoch: int | None = None

    # -- the file ---------------------------------------------------------------------------

    def _logger(self) -> Any:
        if self.mllogger is None:
            from mlperf_logging.mllog import mllog

            # a private logger per file: the package's default one prints to stdout
            logger = logging.getLogger(f"zoobench.mllog.{next(_loggers)}")
            logger.propagate = False
            logger.setLevel(logging.INFO)
            self.handler = logging.FileHandler(self.path, encoding="utf-8")
            logger.addHandler(self.handler)
            self.mllogger = mllog.MLLogger(logger=logger, root_dir=re.escape(_ROOT))
        return self.mllogger

    def _log(self, kind: str, key: str, value: Any = None, time_ms: int | None = None,
             **metadata: Any) -> None:
        meta = {"devices": self.open_run["devices"]} if self.open_run else {}
        meta.update({k: v for k, v in metadata.items() if v is not None})
        log = getattr(self._logger(), kind)
        log(key=key, value=value, metadata=meta, time_ms=time_ms, stack_offset=2)

    # -- events -----------------------------------------------------------------------------

    def run_start(self, case: Case, ctx: RunContext, total_steps: int, init_seconds: float) -> None:
        from mlperf_logging.mllog import constants as c

        now = _now_ms()
        self.open_run = {"devices": ctx.devices, "steps_per_epoch": ctx.steps_per_epoch}
        self._log("start", c.INIT_START, time_ms=now - int(init_seconds * 1000))
        self._submission(ctx)
        self._log("event", c.SEED, case.seed)
        self._log("event", c.GLOBAL_BATCH_SIZE, ctx.global_batch_size)
        self._log("event", c.GRADIENT_ACCUMULATION_STEPS, 1)
        self._log("event", c.MAX_STEPS, total_steps)
        if ctx.steps_per_epoch:
            self._log("event", c.TRAIN_SAMPLES, ctx.steps_per_epoch * ctx.global_batch_size)
        self._log("event", "excluded_warmup_steps", case.train.warmup_steps)
        self._log("end", c.INIT_STOP, time_ms=now)
        self._log("start", c.RUN_START, time_ms=now)
        if ctx.steps_per_epoch:
            self.epoch = 0
            self._log("start", c.EPOCH_START, time_ms=now, epoch_num=0)

    def _submission(self, ctx: RunContext) -> None:
        from mlperf_logging.mllog import constants as c

        # not an MLPerf submission: open division, research status, the harness as org
        self._log("event", c.SUBMISSION_BENCHMARK, self.case.model)
        self._log("event", c.SUBMISSION_DIVISION, c.OPEN)
        self._log("event", c.SUBMISSION_ORG, "zoobench")
        self._log("event", c.SUBMISSION_PLATFORM, f"{ctx.devices}x{ctx.device_type}")
        self._log("event", c.SUBMISSION_STATUS, c.RESEARCH)

    def interval(self, record: dict[str, Any], interval: dict[str, Any]) -> None:
        from mlperf_logging.mllog import constants as c

        now = _now_ms()
        step, steps = interval["step"], interval["steps"]
        began = now - int(interval["seconds"] * 1000)
        first = step - steps + 1  # the block is steps first..step (1-based)
        spe = self.open_run["steps_per_epoch"] if self.open_run else None
        epochs = {"first_epoch_num": (step - steps) / spe, "epoch_count": steps / spe} if spe else {}
        self._log("start", c.BLOCK_START, time_ms=began, first_step=first, step_count=steps,
                  **epochs)
        self._log("end", c.BLOCK_STOP, time_ms=now, first_step=first, step_count=steps,
                  **epochs)
        self._log("event", "tracked_stats",
                  {"throughput": interval["samples_per_sec"], "loss": record.get("mean_loss"),
                   "lr": record.get("lr")}, time_ms=now, step=step)
        if spe and self.epoch is not None:
            done = math.floor(step / spe)
            while self.epoch is not None and self.epoch < done:
                self._log("end", c.EPOCH_STOP, time_ms=now, epoch_num=self.epoch)
                self.epoch += 1
                if step < record.get("total_steps", step + 1):
                    self._log("start", c.EPOCH_START, time_ms=now, epoch_num=self.epoch)
                else:
                    self.epoch = None

    def evaluate(self, step: int, metrics: dict[str, float], seconds: float) -> None:
        from mlperf_logging.mllog import constants as c

        now = _now_ms()
        spe = self.open_run["steps_per_epoch"] if self.open_run else None
        epoch = step / spe if spe else None
        self._log("start", c.EVAL_START, time_ms=now - int(seconds * 1000), step=step,
                  epoch_num=epoch)
        for name, value in metrics.items():
            self._log("event", c.EVAL_ACCURACY, value, time_ms=now, step=step, epoch_num=epoch,
                      metric=name)
        self._log("end", c.EVAL_STOP, time_ms=now, step=step, epoch_num=epoch)

    def run_stop(self, result: dict[str, Any]) -> None:
        from mlperf_logging.mllog import constants as c

        if self.open_run is None:
            # failed while building: the run never started, but its log still says so
            self.open_run = {"devices": result["devices"], "steps_per_epoch": None}
            began = _now_ms() - int((result.get("wall_time_s") or 0) * 1000)
            self._log("start", c.INIT_START, time_ms=began)
        if self.epoch is not None:
            self._log("end", c.EPOCH_STOP, epoch_num=self.epoch)
            self.epoch = None
        ok = result["status"] == "ok" and result.get("target_met") is not False
        self._log("end", c.RUN_STOP, status=c.SUCCESS if ok else c.ABORTED,
                  zoobench_status=result["status"], error=result.get("error"),
                  samples_per_sec=result["throughput"]["samples_per_sec"])
        self.open_run = None

    def close(self, status: str) -> None:
        from mlperf_logging.mllog import constants as c

        if self.open_run is not None:  # the session failed between run_start and run_stop
            self._log("end", c.RUN_STOP, status=c.ABORTED, zoobench_status=status)
            self.open_run = None
        if self.handler is not None:
            self.handler.close()
            self.mllogger.logger.removeHandler(self.handler)
            self.handler = None


@hookimpl
def run_event_sink(case: Case, folder: str) -> MllogSink:
    return MllogSink(case, folder)
