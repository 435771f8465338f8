"""The Slurm launcher: under ``srun`` this process *is* one worker (rank SLURM_PROCID)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import time
from typing import TYPE_CHECKING, Any

from harness.errors import BenchError
from harness.reports.store import folder_name, to_json, write_atomic
from harness.run.events import JsonlEventSink, RunEvents, read_event_lines
from harness.run.launch import DEFAULT_TIMEOUT_S, _read_json
from harness.run.plan import device_options, slurm_tasks
from harness.run.result import LaunchOutcome, RankOutcome, Result, Status, merge_ranks
from harness.run.runner import WorkerInfo, new_result
from harness.run.worker import measure_count

if TYPE_CHECKING:
    from harness.run.runner import Job


class SlurmLauncher:
    """Each task of a multi-task ``srun`` step measures as one rank.

    The cluster comes from ``tf.distribute.cluster_resolver.SlurmClusterResolver``; the ranks
    leave their results in a folder under ``--out`` that all nodes share (the usual Slurm
    setup), where rank 0 collects them and merges them as the process launcher does.
    """

    def __init__(self, job: Job, device: str, out_root: str, port_base: int = 29500) -> None:
        self.job = job
        self.device = device
        # one safe path component: a case name "../x" must not leave --out
        name = folder_name(f"slurm-{os.environ.get('SLURM_JOB_ID')}-{job.case.name}")
        self.exchange = os.path.join(os.path.abspath(out_root), name)
        self.port_base = port_base

    def _join_cluster(self, count: int) -> int:
        """Set TF_CONFIG from Slurm's view of the step; returns this task's rank."""
        from harness.tfcompat import tf

        resolver_kwargs: dict[str, Any] = {"port_base": self.port_base}
        if self.device != "gpu":  # no GPUs to hand out: one task per "device" on each node
            per_node = int(os.environ.get("SLURM_NTASKS_PER_NODE", "0") or 0) or count
            resolver_kwargs.update(gpus_per_node=per_node, gpus_per_task=1, auto_set_gpu=False)
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(**resolver_kwargs)
        cluster = resolver.cluster_spec().as_dict()
        task_type, rank = resolver.get_task_info()
        os.environ["TF_CONFIG"] = json.dumps({"cluster": cluster,
                                              "task": {"type": task_type, "index": rank}})
        os.environ["BENCH_RANK"] = str(rank)
        return rank

    def measure(self, count: int) -> Result:
        case = self.job.case
        tasks = slurm_tasks()
        if count != tasks:
            raise BenchError(f"{case.source}: devices: {count} devices, but srun started "
                             f"{tasks} tasks; run one srun step per device count")
        rank = self._join_cluster(count)
        _exchange_folder(self.exchange)
        results = {r: os.path.join(self.exchange, f"rank{r}.result.json") for r in range(count)}
        streams = {r: os.path.join(self.exchange, f"rank{r}.events.jsonl") for r in range(count)}
        backend = self.job.plugins.devices.get(self.device)()
        options = device_options(case, self.job.plugins, self.job.model_hooks)
        backend.prepare(case, 1, options)
        # the run folder's own sinks, plus a stream the merge can fall back on
        events = RunEvents([*self.job.events.sinks, JsonlEventSink(streams[rank])],
                           self.job.log)
        task_job = dataclasses.replace(self.job, backend=backend, options=options, events=events,
                                       worker=WorkerInfo(rank=rank, world_size=count))
        own = measure_count(task_job, count)
        own.rank = rank
        write_atomic(results[rank], to_json(own.to_dict(), indent=None))
        outcome = LaunchOutcome()
        ranks = list(range(count)) if rank == 0 else [rank]
        if rank == 0:
            deadline = self.job.started + (case.timeout or DEFAULT_TIMEOUT_S)
            while not all(os.path.exists(results[r]) for r in ranks):
                if time.monotonic() > deadline:
                    outcome.status = Status.TIMEOUT
                    outcome.error = "ranks without a result: " + ", ".join(
                        str(r) for r in ranks if not os.path.exists(results[r]))
                    break
                time.sleep(0.5)
        template = new_result(case, count)
        template.launcher = "slurm"
        outcomes = [RankOutcome(rank=r, result=_read_json(results[r]),
                                intervals=[e for e in read_event_lines(streams[r])
                                           if e.get("kind") == "interval"])
                    for r in ranks]
        return merge_ranks(template, outcomes, outcome)


def _exchange_folder(path: str) -> None:
    """Create (or join) the ranks' shared folder; every rank is the same user, so a folder
    or symlink planted there by someone else under a shared ``--out`` is refused."""
    try:
        os.makedirs(path, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise BenchError(f"--out {os.path.dirname(path)}: cannot create {path}: "
                         f"{exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise BenchError(f"{path}: not a folder of this user (planted?); remove it or use "
                         f"another --out")
