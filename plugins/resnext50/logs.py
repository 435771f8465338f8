"""The seed's training log for ``bench import-log --model resnext50``.

ResNeXt-50 (``utils/logger.py``) prints ``step:  1000  epoch:  0.0  FPS:  741.5  loss: 6.797
total_loss: 8.258  lr:0.1000000`` every ``iterations_per_loop`` steps, FPS already global
(global batch x steps / time: every rank prints the same cluster-wide line), then an eval
table ``step epoch top1 top5 loss checkpoint_time(UTC)`` in percent.
"""

from __future__ import annotations

import re
from typing import Any

from harness import LOG_NUMBER as NUM
from harness import ParsedLog, read_log_lines

RESNEXT_LINE = re.compile(rf"step:\s*(\d+)\s+epoch:\s*({NUM})\s+FPS:\s*({NUM})\s+loss:\s*({NUM})"
                          rf"\s+total_loss:\s*({NUM})\s+lr:\s*({NUM})")
EVAL_HEADER = re.compile(r"^\s*step\s+epoch\s+top1\s+top5\s+loss\s+checkpoint_time")
EVAL_ROW = re.compile(rf"^\s*(\d+)\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM})(?:\s+(.*?))?\s*$")


def parse_resnext50(paths: list[str]) -> ParsedLog:
    """Throughput intervals, total-loss curve and eval table of one ResNeXt-50 run's logs."""
    parsed = ParsedLog(rate_unit="samples", rate_name="FPS", metrics=("top1", "top5"))
    seen: dict[int, tuple] = {}
    evals: dict[int, dict[str, Any]] = {}
    in_table = False
    for _path, _lineno, line in read_log_lines(paths):
        if EVAL_HEADER.match(line):
            in_table = True
            continue
        if in_table:
            row = EVAL_ROW.match(line)
            if row:
                step = int(row.group(1))
                # the table prints percentages; zoobench metrics are fractions (top1 0.78)
                evals.setdefault(step, {"step": step, "elapsed_s": None,
                                        "top1": float(row.group(3)) / 100.0,
                                        "top5": float(row.group(4)) / 100.0,
                                        "loss": float(row.group(5))})
                continue
            in_table = False
        match = RESNEXT_LINE.search(line)
        if match:  # every rank prints the same cluster-wide line: the first one counts
            step = int(match.group(1))
            seen.setdefault(step, (float(match.group(3)), float(match.group(5))))
    previous = 0
    for step in sorted(seen):
        fps, total_loss = seen[step]
        parsed.rates.append((step, step - previous, fps))
        parsed.loss_curve.append([step, total_loss])
        previous = step
    parsed.evals = [evals[s] for s in sorted(evals)]
    return parsed
