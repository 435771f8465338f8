"""Planning a run before anything is written: plugins and cases loaded, the device resolved,
its options checked, and for each device count where it runs (inline, worker processes,
Slurm tasks). Every error here is bad input (exit 2)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from harness.case import (
    apply_overrides,
    check_keys,
    check_unique,
    loop_problem,
    parse_override,
    read_raw_cases,
    validate,
)
from harness.errors import BenchError
from harness.plugins import BenchPlugins, load_plugins

if TYPE_CHECKING:
    from harness.case import Case
    from harness.model_hooks import ModelHooks

INLINE, PROCESS, SLURM = "inline", "process", "slurm"


def load(paths: list[str], overrides: list[str], plugin_modules: list[str] = (),
         plugin_objects: list[object] = (), plugins: BenchPlugins | None = None,
         ) -> tuple[BenchPlugins, list[Case]]:
    """Load plugins and validate every case of ``paths``; raises BenchError before anything
    is written."""
    if plugins is None:
        plugins = load_plugins(plugin_modules, plugin_objects)
    else:
        for module_path in plugin_modules:
            plugins.load_module(module_path)
        for obj in plugin_objects:
            plugins.add_object(obj)
    return plugins, load_cases(list(paths), list(overrides), plugins, list(plugin_modules))


def load_cases(paths: list[str], overrides: list[str], plugins: BenchPlugins,
               plugin_modules: list[str] = ()) -> list[Case]:
    """Read, override and validate every case of ``paths``. A case file is code: the modules
    it names in ``plugins:`` are imported, but only once every key of every case has passed
    its type and range checks; then the models and devices they register are resolved. The
    ``--plugin`` modules (``plugin_modules``) are recorded in each case's ``plugins``."""
    parsed = [parse_override(text) for text in overrides]
    raws = [raw for path in paths for raw in read_raw_cases(path, plugins.case_formats)]
    for raw in raws:
        apply_overrides(raw, parsed)
        check_keys(raw)
        raw.add_plugin_modules(plugin_modules)  # already imported: --plugin
    for raw in raws:
        for module_path in raw.plugin_modules():
            plugins.load_module(module_path, source="case file")
    cases = [validate(raw, plugins.models, plugins.devices) for raw in raws]
    check_unique(cases)
    return cases


def resolve_device(case: Case, plugins: BenchPlugins) -> str:
    """``auto`` picks the first available of npu, gpu, cpu."""
    if case.device != "auto":
        return case.device
    for name in ("npu", "gpu", "cpu"):
        if name in plugins.devices and plugins.devices.get(name).available():
            return name
    return "cpu"


def resolve_steps_per_loop(case: Case, backend: Any) -> Case:
    """``case`` with ``train.steps_per_loop`` set: the case's own (checked when it was
    validated), else the device backend's default (npu: ``train.log_every``), checked here
    against log_every, warmup and eval.every_steps (bad input, exit 2). Where every loop has
    the same length (npu_bridge's device loop) train.steps must be a multiple of it too."""
    from harness.devices.options import case_key

    if case.train.steps_per_loop is None:
        steps = int(backend.default_steps_per_loop(case))
        problem = loop_problem(steps, case.train.log_every, case.train.warmup_steps,
                               case.eval.every_steps, case.train.checkpoint_every,
                               case.profile.start_step, case.profile.steps,
                               origin=f", the {backend.name} default")
        if problem:
            raise BenchError(f"{case_key(case, problem[0])}: {problem[1]}; or set "
                             f"train.steps_per_loop")
        case = replace(case, train=replace(case.train, steps_per_loop=steps))
    steps = case.train.steps_per_loop
    why = backend.fixed_loop()
    if why and steps > 1 and case.train.steps is not None and case.train.steps % steps:
        raise BenchError(f"{case_key(case, 'train.steps')}: must be a multiple of "
                         f"train.steps_per_loop ({steps}) here: {why}")
    return case


def device_options(case: Case, plugins: BenchPlugins,
                   model_hooks: ModelHooks | None = None) -> dict[str, Any]:
    """The case's ``npu:`` section plus ``precision``, amended by the model's task (or its
    plugin's ``configure_npu``) and every plugin that may (``model_hooks``: the run's)."""
    from harness.devices.options import check_options

    options: dict[str, Any] = {**dict(case.npu), "precision": case.precision}
    (model_hooks or plugins.model_hooks(case)).configure_npu(options)
    check_options(case, options)  # bad input: a one-line error before any report folder
    return options


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


def slurm_tasks() -> int:
    """Tasks of the Slurm job step this process runs in (0 outside Slurm)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return 0
    value = os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or "0"
    return int(value) if value.isdigit() else 0


def reserve_devices(cases: list[Case], plugins: BenchPlugins, hosts: Hosts | None = None) -> None:
    """Tell each backend the most devices any of ``cases`` runs inline in this process, before
    TensorFlow starts: logical CPU devices can be configured once per process, so a case file
    whose later case has more devices than the first must ask for them all up front."""
    most: dict[str, int] = {}
    for case in cases:
        device = resolve_device(case, plugins)
        inline = [n for n in case.devices if launcher_for(case, device, n, hosts) == INLINE]
        if inline:
            most[device] = max(most.get(device, 0), max(inline))
    for device, count in most.items():
        plugins.devices.get(device).reserve(count)


def launcher_for(case: Case, device: str, count: int, hosts: Hosts | None = None) -> str:
    """Where ``count`` devices run. ``inline`` (in this process) for ``launcher: inline`` and
    when this process already is one NPU rank of a user's own launch script (RANK_SIZE > 1);
    else ``slurm`` inside a multi-task Slurm step (this process is one task); ``process``
    (one worker process per device) for ``launcher: process``, with ``--hosts`` and, under
    ``auto``, for every count of an NPU case that has a count above 1 (the Ascend
    convention); else ``inline``."""
    if case.launcher == INLINE:
        return INLINE
    if device == "npu" and int(os.environ.get("RANK_SIZE", "0") or 0) > 1:
        return INLINE
    if slurm_tasks() > 1:
        return SLURM
    if case.launcher == PROCESS or hosts is not None:
        return PROCESS
    # One process per NPU (the Ascend convention). With any count in worker processes, every
    # count is: the parent must not hold an NPU (count 1) while the workers open it.
    return PROCESS if device == "npu" and max(case.devices) > 1 else INLINE


def check_npu_placement(case: Case, counts: list[int], rank_table: str | None) -> None:
    """Bad device ids (too few, not visible, a 910A group across both halves) are bad input,
    found before any report folder: the ids every process-launched count would get."""
    if rank_table or not counts:
        return
    from harness.devices.ascend import chip_name
    from harness.devices.ranktable import placement

    chip = chip_name()
    for count in counts:
        placement(case, count, chip=chip)
