#!/usr/bin/env python3
"""ResNeXt-50 training-step throughput on this CPU through `bench run`, beside PyTorch's.

Runs cases/resnext50_cpu.yaml (full-size ResNeXt-50 32x4d, batch 16, 224 px, float32,
synthetic data) with `bench run` and prints its samples/s and MFU from report.json; with a
PyTorch interpreter (--torch-python, default /tmp/torchref/bin/python when present) it runs
../shared/tools/torch_resnext50_bench.py --batch 16 --image 224 --channels-last right after,
and prints the ratio zoobench / PyTorch (target >= 1.3). --rounds N alternates the two N times
(the machine may be shared: compare figures of the same round); --mixed adds a bfloat16 run.
--grouped-conv instead compares params.grouped_conv native and split, with TensorFlow's oneDNN
off and on (TF_ENABLE_ONEDNN_OPTS=0/1; where TF has no grouped-convolution gradient the native
run fails, and is reported so), each round in one alternating sequence; --image sets the size.
Beside each figure: the 1-minute load average before it and the cores other processes kept
busy during it (/proc/stat less this run's own CPU time): figures with other_processes_cores
well above 0 were measured on a shared, contended machine.

    python benchmarks/resnext50_cpu.py --rounds 2 --mixed
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE = os.path.join(ROOT, "cases", "resnext50_cpu.yaml")
# The reference lives beside the checkout (../shared/tools), or two levels up for a worktree.
TORCH_SCRIPTS = [os.path.join(ROOT, *[".."] * up, "shared", "tools", "torch_resnext50_bench.py")
                 for up in (1, 2)]


def load() -> float:
    return os.getloadavg()[0]


class OtherLoad:
    """Cores kept busy by *other* processes while a child runs: busy CPU time from
    /proc/stat minus the children's own CPU time, over the wall time (0 = a quiet machine)."""

    def __enter__(self) -> OtherLoad:
        self.busy, self.wall = self._busy(), time.perf_counter()
        self.own = self._children()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.wall
        others = (self._busy() - self.busy) - (self._children() - self.own)
        self.cores = max(others, 0.0) / wall if wall > 0 else 0.0

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat", encoding="utf-8") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime


def bench_run(precision: str, steps: int, sets: tuple[str, ...] = (),
              env: dict[str, str] | None = None, impl: str = "") -> dict:
    """One `bench run` of the CPU case; samples/s and MFU from its report.json (with
    ``env``, a run that fails is returned as such rather than ending the benchmark)."""
    with tempfile.TemporaryDirectory() as out:
        # The case's 2 warmup steps are excluded, as the PyTorch script's are.
        command = ["bench", "run", CASE, "--out", out, "--set", f"precision={precision}",
                   "--set", f"train.steps={steps + 2}", "--set", "train.warmup_steps=2",
                   "--set", "train.log_every=1"]
        for item in sets:
            command += ["--set", item]
        bench = os.path.join(os.path.dirname(sys.executable), "bench")
        command[0] = bench if os.path.exists(bench) else "bench"
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, **(env or {})})
        reports = glob.glob(os.path.join(out, "*", "report.json"))
        if reports:
            with open(reports[0], encoding="utf-8") as fh:
                result = json.load(fh)["results"][0]
        if env is not None and (done.returncode != 0 or not reports):
            error = result.get("error") if reports else done.stderr.strip().splitlines()[-1:]
            return {"impl": impl, "samples_per_sec": None, "fails": error}
        if done.returncode != 0 or not reports:
            sys.exit(f"bench run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return {"impl": impl or f"zoobench-tf-{precision}", "samples_per_sec":
            result["throughput"]["samples_per_sec"], "mfu": result["mfu"],
            "peak_flops": result.get("peak_flops"),
            "step_ms_median": result["step_time_ms"]["median"],
            "step_ms_p5": result["step_time_ms"]["p5"], "steps": result["measured_steps"]}


def torch_run(python: str, script: str, steps: int) -> dict:
    done = subprocess.run([python, script, "--batch", "16", "--image", "224",
                           "--steps", str(steps), "--channels-last"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"torch reference failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6, help="measured steps per run")
    parser.add_argument("--mixed", action="store_true", help="also run precision: mixed (bf16)")
    default_torch = "/tmp/torchref/bin/python"
    parser.add_argument("--torch-python", default=default_torch if os.path.exists(default_torch)
                        else "", help="Python with torch for the reference ('' to skip)")
    parser.add_argument("--torch-script", default=next(
        (os.path.normpath(p) for p in TORCH_SCRIPTS if os.path.exists(p)), TORCH_SCRIPTS[0]))
    parser.add_argument("--grouped-conv", action="store_true",
                        help="compare grouped_conv native / split, oneDNN off / on")
    parser.add_argument("--image", type=int, default=224, help="image size (params.image_size)")
    args = parser.parse_args()
    if args.grouped_conv:
        grouped_conv(args)
        return

    ratios = []
    for round_no in range(1, args.rounds + 1):
        runs = ["fp32"] + (["mixed"] if args.mixed else []) + (["torch"] if args.torch_python
                                                               else [])
        figures = {}
        for kind in runs:
            before = load()
            with OtherLoad() as other:
                if kind == "torch":
                    figure = torch_run(args.torch_python, args.torch_script, args.steps)
                else:
                    figure = bench_run(kind, args.steps)
            figure.update(round=round_no, load_1min=round(before, 2),
                          other_processes_cores=round(other.cores, 2))
            figures[kind] = figure
            print(json.dumps(figure), flush=True)
        if "torch" in figures:
            ratio = figures["fp32"]["samples_per_sec"] / figures["torch"]["samples_per_sec"]
            ratios.append(ratio)
            print(f"round {round_no}: zoobench fp32 {figures['fp32']['samples_per_sec']:.2f} "
                  f"samples/s (MFU {figures['fp32']['mfu'] or 0:.1%}), PyTorch channels-last "
                  f"{figures['torch']['samples_per_sec']:.2f} samples/s: ratio {ratio:.2f} "
                  f"(target >= 1.3)", flush=True)
    if ratios:
        print(f"ratio zoobench/PyTorch: median {statistics.median(ratios):.2f} over "
              f"{len(ratios)} round(s): {', '.join(f'{r:.2f}' for r in ratios)}")


def grouped_conv(args: argparse.Namespace) -> None:
    """native vs split grouped convolutions, TF's oneDNN off and on, alternating per round."""
    configs = [(impl, onednn) for onednn in ("0", "1") for impl in ("native", "split")]
    figures: dict[str, list[float]] = {}
    for round_no in range(1, args.rounds + 1):
        for impl, onednn in configs:
            name = f"{impl}, TF_ENABLE_ONEDNN_OPTS={onednn}"
            before = load()
            with OtherLoad() as other:
                figure = bench_run("fp32", args.steps, (f"params.grouped_conv={impl}",
                                                        f"params.image_size={args.image}"),
                                   {"TF_ENABLE_ONEDNN_OPTS": onednn}, name)
            figure.update(round=round_no, image=args.image, load_1min=round(before, 2),
                          other_processes_cores=round(other.cores, 2))
            print(json.dumps(figure), flush=True)
            if figure["samples_per_sec"]:
                figures.setdefault(name, []).append(figure["samples_per_sec"])
    for name, values in figures.items():
        print(f"{name}: median {statistics.median(values):.2f} samples/s over "
              f"{len(values)} round(s)")


if __name__ == "__main__":
    main()
