"""NPU backend: Huawei Ascend, one device per process, through whichever adapter is installed.

The Ascend convention is one process per device (RANK_SIZE processes with RANK_ID,
ASCEND_DEVICE_ID / DEVICE_ID and an HCCL rank table, started by ``launcher: process``). With
``npu_device`` (the TF 2.6.5 adapter) each process opens its device with
``npu_device.open(device_id).as_default()`` after setting ``npu_device.global_options()``,
shards the input by rank and all-reduces its gradients through
``npu_device.distribute.all_reduce``. Where only ``npu_bridge`` (the TF 1.15 adapter) is
installed, the case trains through the graph engine with the adapter's session config, loss
scaling, distributed optimizer and device loop (:mod:`harness.devices.npu_bridge`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from harness.devices import ascend
from harness.devices import npu_bridge as bridge
from harness.devices.base import DeviceBackend
from harness.devices.npu_config import global_option_values
from harness.devices.options import FP16_MODES, OPTION_CHECKS, case_key, loss_scale, precision_mode
from harness.devices.peak_flops import TERA, lookup
from harness.devices.ranktable import to_logical, visible_devices
from harness.errors import BenchError
from harness.markers import hookimpl

if TYPE_CHECKING:
    from harness.case import Case

ENV_KEYS = ("cann_version", "driver_version", "tfplugin_version")


def rank_topology(environ: Any = None) -> tuple[int, int]:
    """(RANK_SIZE, RANK_ID) of this process; (1, 0) outside a multi-process launch."""
    environ = os.environ if environ is None else environ
    size, rank = environ.get("RANK_SIZE", "").strip(), environ.get("RANK_ID", "").strip()
    return (int(size) if size.isdigit() and int(size) > 0 else 1,
            int(rank) if rank.isdigit() else 0)


def device_id(options: dict[str, Any] | None = None, rank: int = 0, environ: Any = None) -> int:
    """The *logical* id to open, in the TF adapter's own order: ASCEND_DEVICE_ID (a logical
    id), else DEVICE_ID (a physical id, mapped to its logical one through
    ASCEND_VISIBLE_DEVICES), else the case's ``npu.device_ids`` (logical) at this rank, else 0."""
    environ = os.environ if environ is None else environ
    value = environ.get("ASCEND_DEVICE_ID", "").strip()
    if value.isdigit():
        return int(value)
    value = environ.get("DEVICE_ID", "").strip()
    if value.isdigit():
        try:
            return to_logical(int(value), environ)
        except ValueError as exc:  # a malformed ASCEND_VISIBLE_DEVICES
            raise BenchError(f"npu: {exc}") from None
    ids = (options or {}).get("device_ids")
    if ids:
        return int(ids[rank]) if rank < len(ids) else int(ids[0])
    return 0


def effective_dtype(mode: str) -> str:
    """The cube's dtype under ``precision_mode``: what the datasheet peak is looked up at."""
    if mode in ("force_fp32", "must_keep_origin_dtype"):
        return "float32"
    return "bfloat16" if "bf16" in mode else "float16"


class NpuMemoryMonitor:
    """Device memory from ``npu-smi info`` sampled every second (the adapter has no memory
    API): this process's row of the process table where npu-smi lists it, else the chip's
    HBM-Usage (every process on the chip). ``chip`` is npu-smi's NPU id (the physical id)."""

    sample_interval = 1.0

    def __init__(self, chip: int, read: Any = None) -> None:
        self.chip = chip
        self.read = read or ascend.npu_smi_text
        self.process_mb: int | None = None
        self.chip_mb: int | None = None
        self.total_mb: int | None = None
        self.seen = False

    def start(self) -> None:
        self.sample()

    def sample(self) -> None:
        text = self.read()
        if not text:
            return
        info = ascend.parse_npu_smi_memory(text)
        self.seen = True
        row = info["processes"].get(os.getpid())
        if row is not None:
            self.process_mb = max(self.process_mb or 0, row[1])
        if self.chip in info["chips"]:
            used, total = info["chips"][self.chip]
            self.chip_mb = max(self.chip_mb or 0, used)
            self.total_mb = total

    def stop(self) -> dict[str, Any]:
        self.sample()
        mib = 1024 * 1024
        total = self.total_mb * mib if self.total_mb else None
        if self.process_mb is not None:
            return {"device_peak_bytes": self.process_mb * mib, "device_total_bytes": total,
                    "device_source": "npu-smi process memory of this pid, sampled every 1 s"}
        if self.chip_mb is not None:
            return {"device_peak_bytes": self.chip_mb * mib, "device_total_bytes": total,
                    "device_source": f"npu-smi HBM-Usage of NPU {self.chip} (whole chip, "
                                     f"every process), sampled every 1 s"}
        return {"device_peak_bytes": None, "device_total_bytes": total, "device_source": None}


class NpuBackend(DeviceBackend):
    name = "npu"
    description = ("Ascend NPU through npu_device (TF 2.6.5) or npu_bridge (TF 1.15, graph "
                   "engine); one device per process")
    # Every tf.function goes through the adapter: host-only loops (the input probe) stay
    # eager, and the TF profiler gives way to the adapter's own profiling (npu.profiling).
    compiled_host_loops = False
    trace_profiler = False

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.handle: Any = None
        self.chip: str | None = None
        self.adapter: str | None = None

    @classmethod
    def available(cls) -> bool:
        return ascend.installed_adapter() is not None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if ascend.installed_adapter() is not None:
            return None
        return ("neither npu_device (Ascend's TF 2 adapter) nor npu_bridge (its TF 1.15 "
                "adapter), from tfplugin, is importable")

    @classmethod
    def graph_only(cls) -> str | None:
        if ascend.installed_adapter() == "npu_bridge":
            return "npu runs through npu_bridge (the TF 1.15 adapter), in graph sessions only"
        return None

    @classmethod
    def fixed_loop(cls) -> str | None:
        if ascend.installed_adapter() == "npu_bridge":
            return ("npu_bridge's device loop runs exactly iterations_per_loop steps per "
                    "session run")
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        smi = ascend.npu_smi_info()
        chips = smi["chips"] if smi else []
        chip = ascend.chip_summary(chips)
        return {"type": "npu", "name": f"Ascend {chip}" if chip else "Ascend",
                "count": len(chips) if smi else ascend.device_nodes()}

    @classmethod
    def default_steps_per_loop(cls, case: Case) -> int:
        # One device loop per log line, as the seed's iterations_per_loop (= its log interval).
        return case.train.log_every

    def set_loop_size(self, steps: int) -> None:
        """The adapter sinks a loop graph onto the device and runs its body the *loop size*
        times, whatever ``steps`` the call passes: the two must agree on every call. With
        npu_bridge the loop is fixed when the graph engine builds its session (its config's
        iterations_per_loop, ``util.set_iteration_per_loop``), and every launch runs it."""
        if self.adapter == "npu_bridge":
            return
        import npu_device

        setter = getattr(npu_device, "set_npu_loop_size", None)
        if setter is None:
            if steps == 1:
                return
            raise BenchError("train.steps_per_loop: the installed npu_device has no "
                             "set_npu_loop_size (adapters before r1.6.0); set it to 1")
        setter(int(steps))

    def broadcast(self, variables: list) -> Any:
        """Rank 0's initial weights on every rank, as every ModelZoo TF 2 script does right
        after building (the adapter skips it outside a multi-rank launch); with npu_bridge
        the op the graph engine runs after init, as NPUBroadcastGlobalVariablesHook does."""
        size, _rank = rank_topology()
        if size > 1 and self.adapter == "npu_bridge":
            return bridge.broadcast(variables)
        if size > 1:
            import npu_device

            npu_device.distribute.broadcast(list(variables), root_rank=0)

    def prepare(self, case: Case, max_devices: int, options: dict[str, Any]) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise BenchError(f"{case.source}: device: npu: {reason}")
        self.adapter = ascend.installed_adapter()
        size, rank = rank_topology()
        if max_devices > 1 and size == 1:
            raise BenchError(f"{case.source}: devices: {max_devices} NPUs run as {max_devices} "
                             f"processes (one per device); use launcher: process, which sets "
                             f"RANK_SIZE, RANK_ID and the rank table")
        if size > 1 and not (os.environ.get("RANK_TABLE_FILE") and "RANK_ID" in os.environ):
            raise BenchError(f"RANK_SIZE={size} needs RANK_TABLE_FILE and RANK_ID in the "
                             f"environment (launcher: process sets them)")
        if self.adapter == "npu_bridge":
            self._prepare_bridge(options, size, rank)
            return
        import npu_device

        if case.profile.enabled and not options.get("profiling"):
            # profile: asks for a trace; the adapter profiles the whole process, not a window
            options["profiling"] = True
        settings = npu_device.global_options()
        for dotted, value in global_option_values(options).items():
            *parents, leaf = dotted.split(".")
            target = settings
            for parent in parents:
                target = getattr(target, parent)
            try:
                setattr(target, leaf, value)
            except (ValueError, TypeError, AttributeError) as exc:  # TypeError: adapters >= 2023-06
                key = leaf if leaf in OPTION_CHECKS else "profiling"
                raise BenchError(f"{case_key(case, f'npu.{key}')}: the installed npu_device "
                                 f"rejects {dotted} = {value!r}: {exc}") from None
        dev = device_id(options, rank)
        try:
            self.handle = npu_device.open(device_id=dev).as_default()
        except RuntimeError as exc:
            raise BenchError(f"npu: npu_device.open(device_id={dev}) failed: {exc}") from None
        # What was used, for the report's device_options.
        visible = visible_devices()
        options.update(precision_mode=precision_mode(options), npu_device_id=dev,
                       physical_device_id=visible[dev] if visible and dev < len(visible) else dev,
                       rank_size=size, rank_id=rank)
        self.options = options
        smi = ascend.npu_smi_info()
        self.chip = ascend.chip_summary(smi["chips"]) if smi else None

    def _prepare_bridge(self, options: dict[str, Any], size: int, rank: int) -> None:
        """npu_bridge reads its options from the session config (built per device count by
        :meth:`graph_session_config`); nothing is opened up front."""
        bridge.check_environment(size)
        options.update(precision_mode=precision_mode(options), npu_device_id=device_id(options, rank),
                       rank_size=size, rank_id=rank, adapter="npu_bridge")
        self.options = options
        smi = ascend.npu_smi_info()
        self.chip = ascend.chip_summary(smi["chips"]) if smi else None

    def strategy(self, count: int, workers: int = 1) -> Any:
        from harness.tfcompat import tf

        size, _rank = rank_topology()
        if count * workers != size:
            raise BenchError(f"npu: {count * workers} device(s) wanted, but this process is one of "
                             f"RANK_SIZE={size}; each NPU runs in its own process")
        # npu_device places ops on the opened device itself; no tf.distribute strategy.
        return tf.distribute.get_strategy()

    def input_pipeline(self, count: int) -> tuple[int, int]:
        size, rank = rank_topology()
        return (size, rank) if size > 1 else (1, 0)

    def all_reduce(self, values: list) -> list:
        size, _rank = rank_topology()
        if size <= 1:
            return values
        if self.adapter == "npu_bridge":
            return bridge.all_reduce(values)
        import npu_device

        from harness.tfcompat import tf

        # HCCL reduces dense tensors; embedding gradients arrive as IndexedSlices.
        dense = [tf.convert_to_tensor(v) if isinstance(v, tf.IndexedSlices) else v
                 for v in values]
        # "sum", not the adapter's default "mean": every rank already divides by the global batch.
        return list(npu_device.distribute.all_reduce(dense, reduction="sum"))

    def precision_policy(self, case: Case, options: dict[str, Any]) -> str:
        # precision_mode lowers ops inside the adapter; Keras keeps float32 throughout.
        return "float32"

    def wrap_optimizer(self, optimizer: Any, options: dict[str, Any]) -> Any:
        from harness import tfcompat

        scale = loss_scale(options, wanted=precision_mode(options) in FP16_MODES)
        if self.adapter == "npu_bridge":
            return optimizer  # scaled in the graph (graph_optimizer), as TF 1.15 scripts do
        if scale is None or tfcompat.is_loss_scale_optimizer(optimizer):
            return optimizer
        import npu_device

        wrapper = npu_device.train.optimizer.NpuLossScaleOptimizer
        if scale == "dynamic":
            return wrapper(optimizer, dynamic=True)
        return wrapper(optimizer, dynamic=False, initial_scale=float(scale))

    def memory_monitor(self, count: int) -> NpuMemoryMonitor | None:
        if not ascend.npu_smi_text(timeout=5.0):
            return None
        physical = os.environ.get("DEVICE_ID", "").strip()
        chip = int(physical) if physical.isdigit() else int(self.options.get("npu_device_id", 0))
        return NpuMemoryMonitor(chip)

    def peak_flops(self, count: int, dtype: str) -> float | None:
        if self.options.get("peak_tflops"):
            return count * float(self.options["peak_tflops"]) * TERA
        if not self.chip:
            return None
        peak = lookup(self.chip, effective_dtype(precision_mode(self.options)))
        return count * peak if peak else None


    # -- the graph engine: npu_bridge (TF 1.15) -------------------------------------------

    def _bridge(self, what: str) -> None:
        if self.adapter != "npu_bridge":
            raise BenchError(f"engine: graph on npu runs through npu_bridge (TF 1.15); with "
                             f"npu_device ({what}) use the eager engine (engine: auto)")

    def graph_session_config(self, steps_per_loop: int) -> Any:
        self._bridge("session config")
        return bridge.session_config(self.options, steps_per_loop,
                                     int(self.options.get("npu_device_id", 0)))

    def graph_optimizer(self, optimizer: Any) -> tuple[Any, int]:
        self._bridge("optimizer")
        return bridge.graph_optimizer(optimizer, self.options, rank_topology()[0])

    def loops_on_device(self) -> bool:
        return self.adapter == "npu_bridge"

    def device_loop(self, session: Any, train_op: Any, steps: int) -> Any:
        return bridge.device_loop(session, train_op, steps)


@hookimpl
def register_devices(registry: Any) -> None:
    registry.add(NpuBackend)


@hookimpl
def environment(env: dict[str, Any]) -> None:
    facts = ascend.fingerprint()
    for key in ENV_KEYS:
        if facts[key] and not env.get(key):
            env[key] = facts[key]
    if any(facts[k] for k in ("toolkit_home", "driver_version", "adapter", "chip", "chip_count")):
        env["npu"] = {k: v for k, v in facts.items() if k not in ENV_KEYS}


@hookimpl
def register_commands(cli: Any) -> None:
    from harness.devices.npu_config import npu_config_command

    cli.add_command(npu_config_command)
