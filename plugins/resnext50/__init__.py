"""ResNeXt-50 (32x4d) model plugin: the Ascend ModelZoo ResNeXt50_for_TensorFlow recipe.

The task and the hooks only; the layers live in ``model``, the recipe (schedule, optimizer,
loss scale, finetune) in ``recipe``, the input pipelines in ``data``. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from harness import BenchError, ModelSpec, Task, hookimpl

if TYPE_CHECKING:
    from harness import Case, RunContext

__version__ = "1.0.0"
MODEL = "resnext50"
log = logging.getLogger("zoobench.resnext50")

# Defaults = the seed's (ModelZoo README, res50_32bs_8p_host config) unless noted.
PARAMS: dict[str, Any] = {
    "num_classes": 1001,           # ImageNet labels 1..1000, 0 = background (the seed's)
    "image_size": 224,
    "groups": 32,                  # 32x4d: 32 groups x 4 channels = 128 at the first stage
    "width_per_group": 4,
    "base_width": 64,              # stem channels; stage outputs 4x this ... 32x this
    "blocks": [3, 4, 6, 3],        # ResNeXt-50
    "grouped_conv": "auto",        # auto | native | split: how grouped 3x3 convs run (README)
    "learning_rate": 0.1,          # learning_rate_maximum
    "learning_rate_end": 1.0e-6,   # learning_rate_end
    "warmup_epochs": 5.0,          # warmup_epochs
    "lr_warmup_steps": None,       # int: warmup in steps instead of warmup_epochs
    "momentum": 0.9,
    "weight_decay": 1.0e-4,        # L2 in the loss on conv/dense kernels (see README)
    "label_smoothing": 0.0,
    "train_examples": 0,           # 0: count the TFRecords (synthetic: ImageNet's 1281167)
    "shuffle_buffer": 10000,
    "crop_area_min": 0.64,         # train crop covers 64-100 % of the area (sides ~80-100 %)
    "eval_central_fraction": 0.8,  # the seed's "80% center crop"
    "restore_path": None,          # name-based checkpoint to finetune from
    "restore_exclude": [],         # variable-name prefixes not restored, e.g. [dense]
}

def check_params(case: Case) -> None:
    """Value checks beyond the registry's type checks, and that the TFRecord files exist;
    errors name the file and key."""
    p = case.params

    def fail(key: str, message: str) -> BenchError:
        return BenchError(f"{case.source}: params.{key}: {message}")

    for key in ("num_classes", "image_size", "groups", "width_per_group", "base_width",
                "shuffle_buffer"):
        if p[key] < 1:
            raise fail(key, f"must be >= 1, got {p[key]}")
    blocks = p["blocks"]
    if not blocks or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1
                             for b in blocks):
        raise fail("blocks", f"expected a list of block counts >= 1, got {blocks!r}")
    if p["image_size"] < 2 ** (len(blocks) + 1):
        raise fail("image_size", f"{p['image_size']} px is too small for {len(blocks)} stages")
    steps = p["lr_warmup_steps"]
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise fail("lr_warmup_steps", f"expected an integer >= 0 or null, got {steps!r}")
    for key in ("learning_rate", "learning_rate_end", "warmup_epochs", "momentum",
                "weight_decay", "label_smoothing", "train_examples"):
        if p[key] < 0:
            raise fail(key, f"must be >= 0, got {p[key]}")
    from plugins.resnext50.model import GROUPED_CONV

    if p["grouped_conv"] not in GROUPED_CONV:
        raise fail("grouped_conv", f"expected one of {', '.join(GROUPED_CONV)}, "
                                   f"got {p['grouped_conv']!r}")
    if not 0.0 < p["crop_area_min"] <= 1.0:
        raise fail("crop_area_min", f"expected a fraction in (0, 1], got {p['crop_area_min']}")
    if not 0.0 < p["eval_central_fraction"] <= 1.0:
        raise fail("eval_central_fraction",
                   f"expected a fraction in (0, 1], got {p['eval_central_fraction']}")
    if p["restore_path"] is not None and not isinstance(p["restore_path"], str):
        raise fail("restore_path", f"expected a checkpoint path, got {p['restore_path']!r}")
    exclude = p["restore_exclude"]
    if not isinstance(exclude, (list, tuple)) or not all(isinstance(e, str) for e in exclude):
        raise fail("restore_exclude", f"expected a list of name prefixes, got {exclude!r}")
    if not case.data.synthetic:
        from plugins.resnext50.data import split_files

        split_files(case, "train")
        if case.eval.at_end or case.eval.every_steps:
            split_files(case, "eval")


class ResNeXt50Task(Task):
    """One run of a resnext50 case: the train-set size (counted once per run) and what the
    log line reads off the last build (the last step's cross-entropy and the LR schedule:
    the line shows the rate of the interval's last step, as the seed's does)."""

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        self._examples: int | None = None
        self._cross_entropy: Any = None
        self._schedule: Any = None

    def validate(self) -> None:
        check_params(self.case)
        self.check_global_batch(max(self.case.devices) * self.case.batch_size)

    def configure_npu(self, options: dict[str, Any]) -> None:
        """The seed's NPURunConfig: allow_mix_precision with a static loss scale of 1024
        (``npu: {loss_scale: dynamic}`` selects dynamic scaling), hcom_parallel, and
        iterations_per_loop = train.steps_per_loop (npu default: the log interval, one host
        round trip per log line)."""
        case = self.case
        if case.precision == "mixed":
            options.setdefault("precision_mode", "allow_mix_precision")
            options.setdefault("loss_scale", 1024)
        options.setdefault("hcom_parallel", True)
        options.setdefault("iterations_per_loop",
                           case.train.steps_per_loop or case.train.log_every)

    def train_examples(self) -> int:
        """Train examples per epoch (counting the TFRecords takes minutes on ImageNet: once)."""
        if self._examples is None:
            from plugins.resnext50 import data

            self._examples = data.train_examples(self.case)
            if not self._examples:
                raise BenchError(f"{self.case.source}: data.path: the train files hold no "
                                 f"records")
        return self._examples

    def check_global_batch(self, global_batch: int) -> None:
        """A global batch larger than the train split is bad input, found before the run."""
        examples = self.train_examples()
        if examples < global_batch:
            raise BenchError(f"{self.case.source}: batch_size: the global batch "
                             f"{global_batch} is larger than the {examples} train examples")

    def build_dataset(self, split: str, ctx: RunContext) -> Any:
        from plugins.resnext50 import data

        case = self.case
        examples = self.train_examples() if split == "train" else None
        if examples is not None:
            self.check_global_batch(ctx.global_batch_size)
        build = data.synthetic_dataset if case.data.synthetic else data.tfrecord_dataset
        return build(case, split, ctx, examples)

    def build_model(self, ctx: RunContext) -> ModelSpec:
        from plugins.resnext50 import model as layers
        from plugins.resnext50 import recipe

        case = self.case
        arch = layers.Architecture.from_params(case.params)
        impl = layers.resolve_grouped_conv(arch.grouped_conv, ctx.device_type)
        if arch.groups > 1 and impl != arch.grouped_conv:
            log.info("resnext50: grouped_conv auto -> %s on %s", impl, ctx.device_type)
        arch = dataclasses.replace(arch, grouped_conv=impl)
        net = layers.build_resnext(arch)
        if case.params["restore_path"]:
            recipe.restore_checkpoint(net, case.params["restore_path"],
                                      list(case.params["restore_exclude"]), case.source,
                                      ctx.assign)
        schedule = recipe.case_schedule(case, ctx)
        loss, last_cross_entropy = recipe.make_loss(arch.num_classes,
                                                    float(case.params["label_smoothing"]))
        self._cross_entropy, self._schedule = last_cross_entropy, schedule
        return ModelSpec(
            model=net,
            loss=loss,
            optimizer=recipe.make_optimizer(case, schedule),
            flops_per_sample=layers.forward_flops(net),
            extra={"architecture": arch, "last_cross_entropy": last_cross_entropy},
        )

    def evaluate(self, model: Any, dataset: Any, ctx: RunContext) -> dict:
        from plugins.resnext50.evaluation import top_k_accuracy

        return top_k_accuracy(model, dataset, ctx)

    def log_line(self, record: dict[str, Any], ctx: RunContext) -> str:
        from plugins.resnext50.evaluation import modelzoo_line

        total = float(record["loss"])
        cross_entropy, schedule = self._cross_entropy, self._schedule
        loss = float(ctx.numpy(cross_entropy)) if cross_entropy is not None else total
        # Step N ran with schedule(N - 1): the optimizer had taken N - 1 steps then.
        lr = float(ctx.numpy(schedule(record["step"] - 1))) if schedule is not None \
            else record.get("lr")
        return modelzoo_line(record["step"], record.get("epoch"), record["samples_per_sec"],
                             loss, total, lr)


@hookimpl
def register_models(registry: Any) -> None:
    registry.add(MODEL, task=ResNeXt50Task,
                 description="ResNeXt-50 32x4d, Ascend ModelZoo recipe (ImageNet)",
                 params=PARAMS, sources=("synthetic", "tfrecord"), version=__version__)


@hookimpl
def register_commands(cli: Any) -> None:
    from plugins.resnext50.commands import register

    register(cli)


@hookimpl
def register_log_parsers(registry: Any) -> None:
    registry.add(MODEL, _parse_log)


def _parse_log(paths: list[str]) -> Any:
    """``bench import-log --model {MODEL}`` (imported only when used)."""
    from plugins.resnext50.logs import parse_resnext50

    return parse_resnext50(paths)
