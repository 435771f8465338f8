#!/usr/bin/env python3
"""The ResNeXt-50 JPEG input pipeline alone, per CPU core, beside training at 224 px.

Real JPEGs: `bench data shapes --size 224` (4 drawn shapes, 224 x 224 RGB JPEGs) written as
ImageNet-format TFRecords by `bench data images` (or --data DIR: any such folder). Each round:

1. `bench run cases/resnext50_cpu.yaml --input-only` on that data (batch 16, 224 px: the
   train preprocessing, decode_and_crop_jpeg + resize + flip + normalise, batch, prefetch;
   no model) pinned to 1 core with `taskset -c 0`, then on every core;
2. the same case trained on that data (full-size ResNeXt-50, float32, every core), whose
   report also holds the pipeline's own rate from its input probe (`data.probe_steps`)
   measured in the same process just before training, and `bound`.

Beside each figure: the 1-minute load average before it and the cores other processes kept
busy meanwhile (see benchmarks/resnext50_cpu.py): a shared machine moves these figures.

    python benchmarks/input_pipeline.py --rounds 2
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

from resnext50_cpu import CASE, ROOT, OtherLoad, load


def bench() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "bench")
    return here if os.path.exists(here) else "bench"


def make_data(folder: str, per_class: int) -> str:
    jpeg, records = os.path.join(folder, "jpeg"), os.path.join(folder, "tfrecord")
    for command in ([bench(), "data", "shapes", jpeg, "--per-class", str(per_class), "--size",
                     "224"],
                    [bench(), "data", "images", jpeg, records, "--shards", "4"]):
        subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return records


def run(data: str, extra: list[str], cores: str | None = None) -> tuple[dict, float, float]:
    """One `bench run` of the CPU case on ``data``; its result, the load before, others' cores."""
    with tempfile.TemporaryDirectory() as out:
        command = [bench(), "run", CASE, "--out", out, "--set", "data.source=tfrecord",
                   "--set", f"data.path={data}", "--set", "params.num_classes=4", *extra]
        if cores is not None:
            command = ["taskset", "-c", cores, *command]
        before = load()
        with OtherLoad() as others:
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        reports = glob.glob(os.path.join(out, "*", "report.json"))
        if done.returncode != 0 or not reports:
            sys.exit(f"bench run failed ({done.returncode}):\n{done.stderr[-2000:]}")
        with open(reports[0], encoding="utf-8") as fh:
            return json.load(fh)["results"][0], before, others.cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--data", help="ImageNet-format TFRecords (default: made here)")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--input-steps", type=int, default=110)
    parser.add_argument("--train-steps", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is needed to pin the 1-core run")
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or make_data(scratch, args.per_class)
        input_only = ["--input-only", "--set", f"train.steps={args.input_steps}",
                      "--set", "train.warmup_steps=10", "--set", "train.log_every=20"]
        train = ["--set", f"train.steps={args.train_steps + 2}", "--set", "train.warmup_steps=2",
                 "--set", "train.log_every=1", "--set", "data.probe_steps=30"]
        print(f"# {cores} cores; batch 16, 224 px; data {data}")
        for round_ in range(1, args.rounds + 1):
            one, load1, busy1 = run(data, input_only, cores="0")
            every, load_n, busy_n = run(data, input_only)
            trained, load_t, busy_t = run(data, train)
            rate1 = one["throughput"]["samples_per_sec"]
            rate_n = every["throughput"]["samples_per_sec"]
            rate_t = trained["throughput"]["samples_per_sec"]
            probe = trained["input_pipeline"]
            print(f"round {round_}: input only, 1 core: {rate1:.1f} samples/s (load {load1:.1f}, "
                  f"others {busy1:.2f} cores)")
            print(f"round {round_}: input only, {cores} cores: {rate_n:.1f} samples/s = "
                  f"{rate_n / cores:.1f} per core (load {load_n:.1f}, others {busy_n:.2f})")
            print(f"round {round_}: training: {rate_t:.2f} samples/s; its probe: pipeline "
                  f"{probe['samples_per_sec']:.1f} samples/s, bound={probe['bound']}; "
                  f"pipeline / training = {probe['samples_per_sec'] / rate_t:.0f}x; 1-core "
                  f"pipeline / training = {rate1 / rate_t:.0f}x (load {load_t:.1f}, "
                  f"others {busy_t:.2f})")


if __name__ == "__main__":
    main()
