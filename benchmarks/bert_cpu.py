#!/usr/bin/env python3
"""BERT-base seq-128 pretraining throughput on this CPU: zoobench (`bench run`, synthetic data)
against the PyTorch eager reference (shared/tools/torch_bert_bench.py), side by side.

    python benchmarks/bert_cpu.py --torch-python /tmp/torchref_bert/bin/python --rounds 2

Each round runs zoobench then the reference back to back, with the same batch, sequence length,
20 masked positions, warmup and measured steps; it prints both figures, their ratio, zoobench's
MFU and the load average before and after (the machine may be shared: compare rounds).
Set up the reference once: python3 -m venv /tmp/torchref_bert &&
/tmp/torchref_bert/bin/pip install torch==2.13.0 numpy
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_reference() -> str:
    """``shared/tools/torch_bert_bench.py`` beside the checkout (or beside a parent folder)."""
    folder = ROOT
    while True:
        candidate = os.path.join(folder, "shared", "tools", "torch_bert_bench.py")
        if os.path.exists(candidate) or os.path.dirname(folder) == folder:
            return candidate
        folder = os.path.dirname(folder)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_zoobench(args: argparse.Namespace, precision: str, out: str) -> dict:
    case = {
        "name": f"bert_base_cpu_{precision}",
        "model": "bert", "device": "cpu", "devices": [1], "precision": precision,
        "batch_size": args.batch, "data": {"source": "synthetic"},
        "train": {"steps": args.warmup + args.steps, "warmup_steps": args.warmup,
                  "log_every": args.steps},
        "eval": {"at_end": False},
        "params": {"bert_config": os.path.join(ROOT, "configs", "bert_base_config.json"),
                   "max_seq_length": args.seq, "max_predictions_per_seq": 20},
    }
    path = os.path.join(out, f"case_{precision}.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(case, fh)  # JSON is YAML
    bench = os.path.join(os.path.dirname(sys.executable), "bench")
    proc = subprocess.run([bench, "run", path, "--out", os.path.join(out, "reports")],
                          capture_output=True, text=True, cwd=ROOT)
    reports = sorted(glob.glob(os.path.join(out, "reports", f"*{case['name']}*", "report.json")))
    if proc.returncode != 0 or not reports:
        sys.exit(f"bench run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(reports[-1], encoding="utf-8") as fh:
        result = json.load(fh)["results"][0]
    return {"samples_per_sec": result["throughput"]["samples_per_sec"], "mfu": result["mfu"],
            "step_ms": result["step_time_ms"]["median"]}


def run_reference(args: argparse.Namespace) -> dict:
    proc = subprocess.run([args.torch_python, args.reference, "--batch", str(args.batch),
                           "--seq", str(args.seq), "--steps", str(args.steps),
                           "--warmup", str(args.warmup)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"reference failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="measured steps (reference default)")
    ap.add_argument("--warmup", type=int, default=2, help="warmup steps (reference default)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "mixed", "both"], default="fp32",
                    help="zoobench precision (mixed = bfloat16 on CPU; the reference is fp32)")
    ap.add_argument("--torch-python", default="/tmp/torchref_bert/bin/python")
    ap.add_argument("--reference", default=find_reference())
    args = ap.parse_args()
    for path in (args.torch_python, args.reference):
        if not os.path.exists(path):
            sys.exit(f"{path}: not found; see this script's docstring")
    precisions = ["fp32", "mixed"] if args.precision == "both" else [args.precision]
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(1, args.rounds + 1):
            for precision in precisions:
                before = load()
                ours = run_zoobench(args, precision, out)
                ref = run_reference(args)
                ratio = ours["samples_per_sec"] / ref["samples_per_sec"]
                row = {"round": round_, "precision": precision, "batch": args.batch,
                       "seq": args.seq, "zoobench_samples_per_sec": round(ours["samples_per_sec"], 3),
                       "zoobench_mfu": ours["mfu"], "torch_samples_per_sec": ref["samples_per_sec"],
                       "ratio": round(ratio, 3), "load_before": before, "load_after": load()}
                rows.append(row)
                print(json.dumps(row), flush=True)
    for row in rows:
        mfu = f"{row['zoobench_mfu']:.1%}" if row["zoobench_mfu"] else "-"
        print(f"round {row['round']} {row['precision']:>5}: zoobench {row['zoobench_samples_per_sec']:.3f}"
              f" samples/s (MFU {mfu}), pytorch eager fp32 {row['torch_samples_per_sec']:.3f}"
              f" samples/s, ratio {row['ratio']:.2f} (target >= 1.2); load {row['load_before']}"
              f" -> {row['load_after']}")


if __name__ == "__main__":
    main()
