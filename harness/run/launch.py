"""Launchers: where one device count of a case runs. Each wraps the one per-count worker
function (:func:`harness.run.worker.measure_count`): :class:`InlineLauncher` calls it in this
process, :class:`ProcessLauncher` in one worker process per device (over loopback or several
hosts), :class:`harness.run.slurm.SlurmLauncher` in this Slurm task.

CPU/GPU workers form a ``MultiWorkerMirroredStrategy`` cluster from a generated ``TF_CONFIG``;
NPU workers get the Ascend environment (RANK_TABLE_FILE, RANK_SIZE, RANK_ID, DEVICE_ID,
ASCEND_DEVICE_ID, JOB_ID) and a generated HCCL rank table. The parent watches the workers: the
first one to exit non-zero stops the rest (status failed), a run past ``timeout`` is killed
(status timeout), Ctrl-C / SIGTERM kill them too (status interrupted); a result is returned in
every case and no worker outlives the parent.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import yaml

from harness.run.events import EventReplay, read_event_lines
from harness.run.plan import Hosts, slurm_tasks
from harness.run.result import LaunchOutcome, RankOutcome, Result, Status, merge_ranks
from harness.run.runner import new_result
from harness.run.worker import WorkerSpec, measure_count

if TYPE_CHECKING:
    from harness.run.runner import Job

__all__ = ["Hosts", "InlineLauncher", "ProcessLauncher", "free_ports", "slurm_tasks",
           "stop_all", "tf_config"]

DEFAULT_TIMEOUT_S = 6 * 3600.0  # a hang is caught within this when the case sets no timeout
GRACE_S = 5.0  # SIGTERM, then SIGKILL after this
LOG_TAIL_LINES = 30


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the worker gets SIGKILL if the parent dies, so none is ever orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP, a debugger): it neither runs nor exits,
    so the ranks waiting for it fail or time out and would take the blame."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


class InlineLauncher:
    """A device count in this process (MirroredStrategy over its local devices)."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def measure(self, count: int) -> Result:
        return measure_count(self.job, count)


class ProcessLauncher:
    """A device count as one worker process per device; their results merged into one.

    Rank 0's event stream is replayed into the run's own event sinks while it runs, so
    ``events.mllog`` and ``tensorboard/devices_<N>/`` are written in the run folder by this
    process, as for an inline count.
    """

    def __init__(self, job: Job, device: str, folder: str, hosts: Hosts | None = None,
                 rank_table_file: str | None = None, hccn_conf: str | None = None) -> None:
        self.job = job
        self.device = device
        self.folder = folder
        self.hosts = hosts
        self.rank_table_file = rank_table_file
        self.hccn_conf = hccn_conf
        self.case_file = os.path.join(folder, "case.resolved.yaml")

    # -- worker processes -------------------------------------------------------------------

    def _plugin_modules(self) -> list[str]:
        """Modules the workers must load besides builtins and entry points."""
        return [info.module for info in self.job.plugins.infos.values()
                if info.source in ("--plugin", "case file", "object") and info.module
                and info.module in sys.modules and info.module != "__main__"]

    def _environments(self, count: int, ranks: list[int], folder: str) -> dict[int, dict]:
        base = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
                "BENCH_WORLD_SIZE": str(count), "PYTHONUNBUFFERED": "1"}
        base.pop("TF_CONFIG", None)
        envs = {}
        if self.device == "npu":
            return self._npu_environments(count, ranks, folder, base)
        if self.hosts is not None:
            addresses = self.hosts.addresses(count)
        else:
            addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
        for local, rank in enumerate(ranks):
            env = {**base, "TF_CONFIG": tf_config(addresses, rank), "BENCH_RANK": str(rank)}
            if self.device == "gpu":
                env["CUDA_VISIBLE_DEVICES"] = str(local)
            envs[rank] = env
        return envs

    def _npu_environments(self, count: int, ranks: list[int], folder: str,
                          base: dict[str, str]) -> dict[int, dict]:
        """The Ascend launch environment: ASCEND_DEVICE_ID is the *logical* id (what
        ``npu_device.open`` reads), DEVICE_ID and the rank table's device_id the *physical*
        one (ASCEND_VISIBLE_DEVICES maps between them), as hccl_tools and the adapters do."""
        from harness.devices import ascend
        from harness.devices.ranktable import (
            load_rank_table,
            placement,
            rank_devices,
            rank_table,
            to_logical,
            write_rank_table,
        )

        table_path = None
        if self.rank_table_file:
            table_path = os.path.abspath(self.rank_table_file)
            devices = {rank: (to_logical(phys), phys)
                       for _srv, phys, rank in rank_devices(load_rank_table(table_path))}
        else:
            devices = dict(enumerate(placement(self.job.case, count, chip=ascend.chip_name())))
            if count > 1:
                table = rank_table([phys for _logical, phys in devices.values()],
                                   **({"hccn_conf": self.hccn_conf} if self.hccn_conf else {}))
                table_path = write_rank_table(os.path.join(folder, "rank_table.json"), table)
        job_id = str(self.job.case.npu.get("job_id", "10087"))
        envs = {}
        for rank in ranks:
            logical, physical = devices[rank]
            env = {**base, "RANK_SIZE": str(count), "RANK_ID": str(rank),
                   "DEVICE_ID": str(physical), "ASCEND_DEVICE_ID": str(logical),
                   "JOB_ID": job_id, "BENCH_RANK": str(rank),
                   "HCCL_CONNECT_TIMEOUT": os.environ.get("HCCL_CONNECT_TIMEOUT", "600")}
            if table_path:
                env["RANK_TABLE_FILE"] = table_path
            else:
                env.pop("RANK_TABLE_FILE", None)
            envs[rank] = env
        return envs

    def _write_case_file(self) -> None:
        if not os.path.exists(self.case_file):
            data = self.job.case.to_dict()
            data.pop("source", None)
            with open(self.case_file, "w", encoding="utf-8") as fh:
                yaml.safe_dump(data, fh, sort_keys=False)

    def measure(self, count: int) -> Result:
        case = self.job.case
        ranks = self.hosts.local_ranks(count) if self.hosts else list(range(count))
        folder = os.path.join(self.folder, f"workers-{count}")
        os.makedirs(folder, exist_ok=True)
        self._write_case_file()
        envs = self._environments(count, ranks, folder)
        specs = {r: WorkerSpec.in_folder(folder, r, count, self.case_file, self._plugin_modules(),
                                         self.device, self.job.plugins.disabled) for r in ranks}
        logs = {r: os.path.join(folder, f"rank{r}.log") for r in ranks}
        procs: dict[int, subprocess.Popen] = {}
        timeout = case.timeout or DEFAULT_TIMEOUT_S
        outcome = LaunchOutcome()
        self.job.log(f"launching {len(ranks)} worker process(es) of {count} ({self.device}); "
                     f"logs in {folder}")
        replay = EventReplay(specs[ranks[0]].events, case, self.job.events)
        try:
            for rank in ranks:
                spec_path = os.path.join(folder, f"rank{rank}.spec.json")
                specs[rank].write(spec_path)
                with open(logs[rank], "w", encoding="utf-8") as log_file:
                    procs[rank] = subprocess.Popen(
                        [sys.executable, "-m", "harness.run.worker", spec_path],
                        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env=envs[rank], start_new_session=True, preexec_fn=_die_with_parent)
            self._watch(procs, logs, replay, timeout, outcome)
        except KeyboardInterrupt:
            outcome.status, outcome.error = Status.INTERRUPTED, "interrupted by signal"
        finally:
            # the workers are stopped and merged whatever signal comes now (a second Ctrl-C,
            # the watchdog's stop at the deadline): a count never ends without its result
            merged = _despite_signals(self._stop_and_merge, count, ranks, procs, specs, logs,
                                      replay, outcome)
        return merged

    def _stop_and_merge(self, count: int, ranks: list[int], procs: dict[int, subprocess.Popen],
                        specs: dict[int, WorkerSpec], logs: dict[int, str], replay: EventReplay,
                        outcome: LaunchOutcome) -> Result:
        stop_all(procs)
        replay.poll()
        template = new_result(self.job.case, count)
        template.launcher = "process"
        template.hosts = list(self.hosts.names) if self.hosts else None
        outcomes = [RankOutcome(rank=r, result=_read_json(specs[r].result),
                                intervals=[e for e in read_event_lines(specs[r].events)
                                           if e.get("kind") == "interval"],
                                exit_code=procs[r].returncode if r in procs else None,
                                pid=procs[r].pid if r in procs else None,
                                log=os.path.relpath(logs[r], self.folder)) for r in ranks]
        return merge_ranks(template, outcomes, outcome)

    def _watch(self, procs: dict[int, subprocess.Popen], logs: dict[int, str],
               replay: EventReplay, timeout: float, outcome: LaunchOutcome) -> None:
        first = min(procs)
        shown = 0
        while True:
            shown = self._echo(logs[first], shown)
            replay.poll()
            codes = {rank: proc.poll() for rank, proc in procs.items()}
            bad = [(rank, code) for rank, code in codes.items() if code not in (None, 0)]
            if bad:
                rank, code = bad[0]
                outcome.status, outcome.failed_rank = Status.FAILED, rank
                outcome.error = f"rank {rank} exited with code {code}"
                self._blame_stopped(procs, outcome)
                outcome.log_tail = log_tail(logs[outcome.failed_rank])
                return
            if all(code == 0 for code in codes.values()):
                self._echo(logs[first], shown)
                return
            if time.monotonic() - self.job.started > timeout:
                outcome.status = Status.TIMEOUT
                outcome.error = f"workers still running after the {timeout:g} s timeout"
                if self._blame_stopped(procs, outcome):
                    outcome.log_tail = log_tail(logs[outcome.failed_rank])
                return
            time.sleep(0.1)

    @staticmethod
    def _blame_stopped(procs: dict[int, subprocess.Popen], outcome: LaunchOutcome) -> bool:
        """A stopped rank is the fault, not the peers that failed or waited because of it."""
        frozen = [rank for rank, proc in procs.items() if proc.poll() is None and stopped(proc.pid)]
        if not frozen:
            return False
        outcome.failed_rank = frozen[0]
        outcome.error = f"rank {frozen[0]} is stopped (SIGSTOP?); {outcome.error}"
        return True

    def _echo(self, log_path: str, shown: int) -> int:
        """Print the first local worker's new log lines (its training log) to the console."""
        try:
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return shown
        complete = lines[:-1] if lines else []
        for line in complete[shown:]:
            if line.startswith(("step", "eval", "==")) or line.startswith(" step"):
                self.job.progress.print(f"[rank] {line}")
        return max(shown, len(complete))


def _despite_signals(work: Any, *args: Any) -> Any:
    """``work(*args)`` run to its end: a KeyboardInterrupt meanwhile restarts it (the work
    is idempotent; the run's signal handler raises once, so this ends)."""
    for _ in range(3):
        try:
            return work(*args)
        except KeyboardInterrupt:
            continue
    return work(*args)


def stop_all(procs: dict[int, subprocess.Popen]) -> None:
    """SIGTERM every worker's process group, SIGKILL what is left after GRACE_S."""
    for proc in procs.values():
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                os.killpg(proc.pid, signal.SIGCONT)  # a stopped worker handles it too
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.monotonic() + GRACE_S
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
