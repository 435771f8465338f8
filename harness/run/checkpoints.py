"""TF checkpoints of a run: ``checkpoints/devices_<N>/ckpt-<step>`` in the run folder, an
``index.json`` beside them (step, epoch, loss, when), saving, finding and restoring them.

A checkpoint holds the model, the optimizer (its slots, its iteration count, so a
learning-rate schedule carries on) and the step; with ``train.checkpoint_data`` also the
input iterator's position where the iterator can be saved (one input pipeline on one device:
TF cannot save a distributed iterator), so a resumed run reads the batches it would have
read. Saving happens at interval ends, outside the measured window.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from typing import Any, Callable

from harness.errors import BenchError
from harness.reports.store import write_atomic

FOLDER = "checkpoints"
INDEX = "index.json"
INDEX_LIMIT = 16 << 20
SAFE_NAME = re.compile(r"^ckpt-[0-9]+$")  # what save() writes: never a path out of the folder


def count_folder(run_folder: str, count: int) -> str:
    return os.path.join(run_folder, FOLDER, f"devices_{count}")


def read_index(folder: str) -> list[dict[str, Any]]:
    """The saved checkpoints of one count folder, by step (an absent index has none). The
    index is a user file once a run folder is handed back (``--resume``, ``bench evaluate``):
    read bounded and strict, each entry a step and a checkpoint name inside the folder."""
    from harness.userfiles import parse_json, read_user_text

    path = os.path.join(folder, INDEX)
    if not os.path.lexists(path):
        return []
    entries = parse_json(read_user_text(path, "checkpoint index", INDEX_LIMIT), path)
    if not isinstance(entries, list):
        raise BenchError(f"{path}: expected a list of checkpoints")
    for i, entry in enumerate(entries):
        name = entry.get("path") if isinstance(entry, dict) else None
        step = entry.get("step") if isinstance(entry, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise BenchError(f"{path}: [{i}].step: expected a step number, got {step!r}")
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            raise BenchError(f"{path}: [{i}].path: expected a checkpoint name such as "
                             f"'ckpt-{step}', got {name!r}")
    return sorted(entries, key=lambda e: e["step"])


def saved_counts(run_folder: str) -> list[int]:
    """Device counts with at least one checkpoint in ``run_folder``."""
    root = os.path.join(run_folder, FOLDER)
    counts = []
    if os.path.isdir(root):
        for name in os.listdir(root):
            if name.startswith("devices_") and name[8:].isdigit() and \
                    read_index(os.path.join(root, name)):
                counts.append(int(name[8:]))
    return sorted(counts)


def resume_point(run_folder: str, count: int, total_steps: int | None = None) -> dict[str, Any]:
    """The last checkpoint of ``count`` devices in ``run_folder`` (bad input when none)."""
    folder = count_folder(run_folder, count)
    entries = read_index(folder)
    if not entries:
        raise BenchError(f"--resume {run_folder}: no checkpoint of {count} device(s) "
                         f"(nothing in {os.path.relpath(folder, run_folder)}; saved with "
                         f"train.checkpoint_every)")
    last = entries[-1]
    if total_steps is not None and last["step"] >= total_steps:
        raise BenchError(f"--resume {run_folder}: the last checkpoint of {count} device(s) is "
                         f"at step {last['step']}, not before train.steps ({total_steps})")
    return {**last, "folder": folder, "prefix": os.path.join(folder, last["path"])}


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class CheckpointSaver:
    """Saves and restores the training state of one device count.

    ``writer`` is False on every rank but 0 of a multi-process launch: those ranks write to a
    scratch folder that is removed (a multi-worker strategy wants every worker to save).
    ``iterator`` is saved with the state when given and saveable.
    """

    def __init__(self, folder: str, model: Any, optimizer: Any, iterator: Any = None,
                 writer: bool = True, log: Callable[[str], None] = print,
                 every: int | None = None) -> None:
        from harness.tfcompat import tf

        self.every = every
        self.folder = folder
        self.writer = writer
        self.log = log
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="bench_step")
        self._parts = {"model": model, "optimizer": optimizer, "step": self.step}
        self.data = False
        self.checkpoint = tf.train.Checkpoint(**self._parts)
        if iterator is not None:
            try:
                self.checkpoint = tf.train.Checkpoint(**self._parts, data=iterator)
                self.data = True
            except (TypeError, ValueError):
                self.log("checkpoints: this input iterator cannot be saved (a distributed "
                         "one); a resumed run starts the data stream over")
        self.entries = read_index(folder) if writer else []
        os.makedirs(folder, exist_ok=True)

    def boundary(self, step: int) -> bool:
        """A checkpoint is due after ``step`` (every ``every`` steps; the runner adds the
        last step)."""
        return bool(self.every) and step % self.every == 0

    def next_boundary(self, step: int) -> int | None:
        """The first step after ``step`` that ends in a checkpoint (a loop must end there)."""
        return (step // self.every + 1) * self.every if self.every else None

    def save(self, step: int, epoch: float | None, elapsed_s: float, loss: float | None,
             total_steps: int) -> dict[str, Any] | None:
        """Write ``ckpt-<step>`` and its index entry; returns the entry (None off rank 0)."""
        import shutil

        from harness.tfcompat import tf

        began = time.perf_counter()
        self.step.assign(step)
        prefix = os.path.join(self.folder if self.writer else self._scratch(), f"ckpt-{step}")
        try:
            path = self.checkpoint.write(prefix)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            if not self.data:
                raise
            # e.g. a dataset op without checkpoint support: keep saving the training state
            self.log(f"checkpoints: the input position cannot be saved ({type(exc).__name__}: "
                     f"{str(exc).splitlines()[0][:200]}); saving without it")
            self.checkpoint = tf.train.Checkpoint(**self._parts)
            self.data = False
            path = self.checkpoint.write(prefix)
        if not self.writer:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
            return None
        entry = {"step": step, "epoch": epoch, "path": os.path.basename(path),
                 "saved_at": _now_iso(), "elapsed_s": elapsed_s,
                 "save_seconds": time.perf_counter() - began, "loss": loss,
                 "total_steps": total_steps, "data_position": self.data}
        self.entries = [e for e in self.entries if e["step"] != step] + [entry]
        write_atomic(os.path.join(self.folder, INDEX), json.dumps(self.entries, indent=2) + "\n")
        return entry

    def _scratch(self) -> str:
        return os.path.join(self.folder, f".scratch-{os.getpid()}")

    def restore(self, point: dict[str, Any]) -> int:
        """Load ``point`` (from :func:`resume_point`) before the first step; returns its
        step. Optimizer slots made later by the first step get their saved values."""
        from harness.tfcompat import tf

        if point.get("data_position") and self.data:
            checkpoint = self.checkpoint
        else:
            checkpoint = tf.train.Checkpoint(**self._parts)
            if self.data:
                self.log("checkpoints: the checkpoint holds no input position; the data stream "
                         "starts over")
        checkpoint.read(point["prefix"]).expect_partial()
        return int(self.step.numpy())


def restore_model(model: Any, prefix: str) -> None:
    """Only the model's variables of a training checkpoint (``bench evaluate``); every
    variable the model has must be in it (another model's checkpoint is an error)."""
    from harness.tfcompat import tf

    try:
        status = tf.train.Checkpoint(model=model).read(prefix)
        status.assert_existing_objects_matched().expect_partial()
    except (AssertionError, tf.errors.OpError, ValueError) as exc:
        raise BenchError(f"{prefix}: does not fit the model: "
                         f"{str(exc).splitlines()[0][:300]}") from None
