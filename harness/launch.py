"""The process launcher: one worker process per device, over loopback or several hosts.

CPU/GPU workers form a ``MultiWorkerMirroredStrategy`` cluster from a generated ``TF_CONFIG``;
NPU workers get the Ascend environment (RANK_TABLE_FILE, RANK_SIZE, RANK_ID, DEVICE_ID,
ASCEND_DEVICE_ID, JOB_ID) and a generated HCCL rank table. The parent watches the workers: the
first one to exit non-zero stops the rest (status failed), a run past ``timeout`` is killed
(status timeout), Ctrl-C / SIGTERM kill them too (status interrupted); a report is written in
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import yaml

from harness.errors import BenchError
from harness.throughput import Interval, summarize

if TYPE_CHECKING:
    from harness.case import Case
    from harness.plugins import BenchPlugins

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


@dataclass(frozen=True)
class Hosts:
    """``--hosts h1,h2 --rank R``: this host is ``names[rank]``; ports are base + global rank."""

    names: tuple[str, ...]
    rank: int
    port_base: int = 29500

    def local_ranks(self, world: int) -> list[int]:
        if world % len(self.names):
            raise BenchError(f"devices: {world} devices do not split evenly over "
                             f"{len(self.names)} hosts")
        per_host = world // len(self.names)
        return list(range(self.rank * per_host, (self.rank + 1) * per_host))

    def addresses(self, world: int) -> list[str]:
        per_host = world // len(self.names)
        return [f"{self.names[r // per_host]}:{self.port_base + r}" for r in range(world)]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the worker gets SIGKILL if the parent dies, so none is ever orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip().endswith("}")]
    except OSError:
        return []


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def uses_processes(case: Case, device: str, count: int, hosts: Hosts | None = None) -> bool:
    """``launcher: process`` always; ``auto`` for multi-device NPU runs (the Ascend convention:
    one process per device), whenever hosts are given and inside a multi-task Slurm step;
    ``inline`` never; nor when this process already is one NPU rank of a user's launch."""
    if case.launcher == "inline":
        return False
    if device == "npu" and int(os.environ.get("RANK_SIZE", "0") or 0) > 1:
        return False  # already one rank of an Ascend launch script (RANK_SIZE/RANK_ID set)
    if case.launcher == "process" or hosts is not None or slurm_tasks() > 1:
        return True
    return device == "npu" and count > 1


class ProcessLauncher:
    """Runs one device count of a case as worker processes and merges their results."""

    def __init__(self, case: Case, plugins: BenchPlugins, device: str, folder: str,
                 progress: Any, log: Callable[[str], None], hosts: Hosts | None = None,
                 rank_table_file: str | None = None, hccn_conf: str | None = None) -> None:
        self.case = case
        self.plugins = plugins
        self.device = device
        self.folder = folder
        self.progress = progress
        self.log = log
        self.hosts = hosts
        self.rank_table_file = rank_table_file
        self.hccn_conf = hccn_conf
        self.case_file = os.path.join(folder, "case.resolved.yaml")

    def wants(self, count: int) -> bool:
        return uses_processes(self.case, self.device, count, self.hosts)

    # -- worker processes -------------------------------------------------------------------

    def _plugin_modules(self) -> list[str]:
        """Modules the workers must load besides builtins and entry points."""
        return [info.module for info in self.plugins.infos.values()
                if info.source in ("--plugin", "case file", "object") and info.module
                and info.module in sys.modules and info.module != "__main__"]

    def _environments(self, count: int, ranks: list[int], folder: str) -> dict[int, dict]:
        base = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
                "BENCH_WORLD_SIZE": str(count), "PYTHONUNBUFFERED": "1"}
        base.pop("TF_CONFIG", None)
        envs = {}
        if self.device == "npu":
            from harness.ranktable import rank_devices, rank_table, write_rank_table

            if self.rank_table_file:
                table_path = os.path.abspath(self.rank_table_file)
                from harness.ranktable import load_rank_table

                devices = {rank: dev for _srv, dev, rank in rank_devices(
                    load_rank_table(table_path))}
            else:
                ids = list(self.case.npu.get("device_ids", range(count)))[:count]
                if len(ids) < count:
                    raise BenchError(f"{self.case.source}: npu.device_ids: {len(ids)} ids for "
                                     f"{count} devices")
                table = rank_table([int(i) for i in ids],
                                   **({"hccn_conf": self.hccn_conf} if self.hccn_conf else {}))
                table_path = write_rank_table(os.path.join(folder, "rank_table.json"), table)
                devices = dict(enumerate(int(i) for i in ids))
            job_id = str(self.case.npu.get("job_id", "10087"))
            for rank in ranks:
                envs[rank] = {**base, "RANK_TABLE_FILE": table_path, "RANK_SIZE": str(count),
                              "RANK_ID": str(rank), "DEVICE_ID": str(devices[rank]),
                              "ASCEND_DEVICE_ID": str(devices[rank]), "JOB_ID": job_id,
                              "BENCH_RANK": str(rank),
                              "HCCL_CONNECT_TIMEOUT": os.environ.get("HCCL_CONNECT_TIMEOUT", "600")}
            return envs
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

    def measure(self, count: int) -> dict[str, Any]:
        ranks = self.hosts.local_ranks(count) if self.hosts else list(range(count))
        folder = os.path.join(self.folder, f"workers-{count}")
        os.makedirs(folder, exist_ok=True)
        if not os.path.exists(self.case_file):
            data = self.case.to_dict()
            data.pop("source", None)
            with open(self.case_file, "w", encoding="utf-8") as fh:
                yaml.safe_dump(data, fh, sort_keys=False)
        envs = self._environments(count, ranks, folder)
        paths = {r: {"spec": os.path.join(folder, f"rank{r}.spec.json"),
                     "log": os.path.join(folder, f"rank{r}.log"),
                     "events": os.path.join(folder, f"rank{r}.events.jsonl"),
                     "result": os.path.join(folder, f"rank{r}.result.json")} for r in ranks}
        procs: dict[int, subprocess.Popen] = {}
        timeout = self.case.timeout or DEFAULT_TIMEOUT_S
        started = time.monotonic()
        outcome: dict[str, Any] = {"status": "ok", "error": None}
        self.log(f"launching {len(ranks)} worker process(es) of {count} ({self.device}); "
                 f"logs in {folder}")
        try:
            for rank in ranks:
                spec = {"case_file": self.case_file, "plugin_modules": self._plugin_modules(),
                        "device": self.device, "rank": rank, "world_size": count,
                        "result": paths[rank]["result"], "events": paths[rank]["events"]}
                with open(paths[rank]["spec"], "w", encoding="utf-8") as fh:
                    json.dump(spec, fh)
                with open(paths[rank]["log"], "w", encoding="utf-8") as log_file:
                    procs[rank] = subprocess.Popen(
                        [sys.executable, "-m", "harness.worker", paths[rank]["spec"]],
                        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env=envs[rank], start_new_session=True, preexec_fn=_die_with_parent)
            self._watch(procs, paths, started, timeout, outcome)
        except KeyboardInterrupt:
            outcome.update(status="interrupted", error="interrupted by signal")
        finally:
            stop_all(procs)
        return self._merge(count, ranks, paths, outcome, procs)

    def _watch(self, procs: dict[int, subprocess.Popen], paths: dict, started: float,
               timeout: float, outcome: dict[str, Any]) -> None:
        first = min(procs)
        shown = 0
        while True:
            shown = self._echo(paths[first]["log"], shown)
            codes = {rank: proc.poll() for rank, proc in procs.items()}
            bad = [(rank, code) for rank, code in codes.items() if code not in (None, 0)]
            if bad:
                rank, code = bad[0]
                outcome.update(status="failed", failed_rank=rank, exit_code=code,
                               error=f"rank {rank} exited with code {code}",
                               log_tail=log_tail(paths[rank]["log"]))
                return
            if all(code == 0 for code in codes.values()):
                self._echo(paths[first]["log"], shown)
                return
            if time.monotonic() - started > timeout:
                outcome.update(status="timeout",
                               error=f"workers still running after the {timeout:g} s timeout")
                return
            time.sleep(0.1)

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
                self.progress.print(f"[rank] {line}")
        return max(shown, len(complete))

    # -- merging ----------------------------------------------------------------------------

    def _merge(self, count: int, ranks: list[int], paths: dict, outcome: dict[str, Any],
               procs: dict[int, subprocess.Popen]) -> dict[str, Any]:
        per_rank = {}
        for rank in ranks:
            result = _read_json(paths[rank]["result"])
            events = _read_jsonl(paths[rank]["events"])
            per_rank[rank] = (result, events)
        first = per_rank[ranks[0]][0] or {}
        interval_lists = []
        for rank in ranks:
            result, events = per_rank[rank]
            if result is not None:
                items = result["throughput"]["intervals"]
            else:
                items = [e for e in events if e.get("kind") == "interval"]
            interval_lists.append(items)
        depth = min((len(items) for items in interval_lists), default=0)
        merged = []
        for i in range(depth):
            row = [items[i] for items in interval_lists]
            merged.append(Interval(row[0]["step"], row[0]["steps"], row[0]["samples"],
                                   max(item["seconds"] for item in row)))
        summary = summarize(merged, count)
        statuses = [(per_rank[r][0] or {}).get("status") for r in ranks]
        status = outcome["status"]
        error = outcome.get("error")
        if status == "ok":
            worst = next((s for s in statuses if s and s != "ok"), None)
            if worst or None in statuses:
                status = worst or "failed"
                error = next(((per_rank[r][0] or {}).get("error") for r in ranks
                              if (per_rank[r][0] or {}).get("error")), "a worker wrote no result")
        elif status == "failed" and outcome.get("failed_rank") is not None:
            own = per_rank[outcome["failed_rank"]][0]
            if own and own.get("status") not in (None, "ok"):
                status = own["status"] if own["status"] != "ok" else status
                error = f"rank {outcome['failed_rank']}: {own.get('error')}"
        curve_source = first or {}
        events0 = per_rank[ranks[0]][1]
        loss = curve_source.get("loss") or {
            "first": events0[0]["loss"] if events0 else None,
            "last": events0[-1]["loss"] if events0 else None,
            "curve": [[e["step"], e["mean_loss"]] for e in events0 if e.get("kind") == "interval"]}
        result = {
            "devices": count,
            "global_batch_size": self.case.batch_size * count,
            "data_source": self.case.data.source,
            "warmup_steps": self.case.train.warmup_steps,
            "launcher": "process",
            "workers": len(ranks),
            "hosts": list(self.hosts.names) if self.hosts else None,
            **{k: summary[k] for k in ("measured_steps", "throughput", "step_time_ms")},
            "mfu": None,
            "peak_flops": first.get("peak_flops"),
            "scaling_efficiency": None,
            "loss": loss,
            "accuracy": first.get("accuracy", {}),
            "evals": first.get("evals", []),
            "time_to_accuracy_s": first.get("time_to_accuracy_s"),
            "target_met": first.get("target_met"),
            "weights_digests": [d for r in ranks for d in
                                ((per_rank[r][0] or {}).get("weights_digests") or [])],
            "ranks": [{"rank": r, "status": (per_rank[r][0] or {}).get("status"),
                       "exit_code": procs[r].returncode if r in procs else None,
                       "pid": procs[r].pid if r in procs else None,
                       "log": os.path.relpath(paths[r]["log"], self.folder)} for r in ranks],
            "status": status,
            "error": error,
        }
        for key in ("failed_rank", "log_tail"):
            if key in outcome:
                result[key] = outcome[key]
        flops = first.get("mfu") and first.get("peak_flops")
        if status == "ok" and flops and first["throughput"]["samples_per_sec"]:
            # the worker's MFU used its own figure; rescale to the merged global throughput
            result["mfu"] = first["mfu"] * summary["throughput"]["samples_per_sec"] / \
                first["throughput"]["samples_per_sec"]
        return result


def slurm_tasks() -> int:
    """Tasks of the Slurm job step this process runs in (0 outside Slurm)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return 0
    value = os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or "0"
    return int(value) if value.isdigit() else 0


class SlurmLauncher(ProcessLauncher):
    """Under ``srun``: this process *is* one worker (rank SLURM_PROCID of the step's tasks).

    The cluster comes from ``tf.distribute.cluster_resolver.SlurmClusterResolver``; the ranks
    leave their results in a folder under ``--out`` that all nodes share (the usual Slurm
    setup), where rank 0 collects them and writes the report.
    """

    def __init__(self, *args: Any, out_root: str, port_base: int = 29500, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exchange = os.path.join(os.path.abspath(out_root),
                                     f"slurm-{os.environ.get('SLURM_JOB_ID')}-{self.case.name}")
        self.port_base = port_base

    def wants(self, count: int) -> bool:
        return True

    def measure(self, count: int) -> dict[str, Any]:
        from harness.runner import Runner, WorkerInfo, device_options
        from harness.tfcompat import tf
        from harness.worker import EventsProgress

        tasks = slurm_tasks()
        if count != tasks:
            raise BenchError(f"{self.case.source}: devices: {count} devices, but srun started "
                             f"{tasks} tasks; run one srun step per device count")
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
        os.makedirs(self.exchange, exist_ok=True)
        paths = {r: {"log": os.path.join(self.exchange, f"rank{r}.events.jsonl"),
                     "events": os.path.join(self.exchange, f"rank{r}.events.jsonl"),
                     "result": os.path.join(self.exchange, f"rank{r}.result.json")}
                 for r in range(count)}
        backend = self.plugins.devices.get(self.device)()
        options = device_options(self.case, self.plugins)
        backend.prepare(self.case, 1, options)
        progress = EventsProgress(paths[rank]["events"])
        runner = Runner(self.case, self.plugins, backend, options, progress, self.log,
                        worker=WorkerInfo(rank=rank, world_size=count))
        own = runner.measure(count)
        from harness.report import write_atomic

        write_atomic(paths[rank]["result"], json.dumps({**own, "rank": rank}, default=str))
        outcome: dict[str, Any] = {"status": "ok", "error": None}
        ranks = list(range(count)) if rank == 0 else [rank]
        if rank == 0:
            deadline = time.monotonic() + (self.case.timeout or DEFAULT_TIMEOUT_S)
            while not all(os.path.exists(paths[r]["result"]) for r in ranks):
                if time.monotonic() > deadline:
                    outcome.update(status="timeout", error="ranks without a result: " + ", ".join(
                        str(r) for r in ranks if not os.path.exists(paths[r]["result"])))
                    break
                time.sleep(0.5)
        result = self._merge(count, ranks, paths, outcome, {})
        result["launcher"] = "slurm"
        return result


def stop_all(procs: dict[int, subprocess.Popen]) -> None:
    """SIGTERM every worker's process group, SIGKILL what is left after GRACE_S."""
    for proc in procs.values():
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
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
