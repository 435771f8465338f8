"""The seed's training log for ``bench import-log --model bert``.

BERT's Estimator prints ``global_step/sec: 2.451`` and ``global_step = N, masked_lm_loss = ..,
next_sentence_loss = .., total_loss = .. (T sec)``; its global rate is global_step/sec x batch
x devices (a steps/s rate).
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from harness import LOG_NUMBER as NUM
from harness import BenchError, ParsedLog, read_log_lines

# glog prefix "I0521 19:45:05.731803 281473752813584 file.py:692] ": its thread id tells
# the ranks apart when several ranks' output is interleaved in one file
GLOG = r"(?:[IWEF]\d{4} [\d:.]+\s+(\d+) [^\]]*\]\s*)?"
BERT_RATE = re.compile(rf"{GLOG}global_step/sec:\s*({NUM})")
BERT_STEP = re.compile(rf"{GLOG}global_step = (\d+), masked_lm_loss = ({NUM}), "
                       rf"next_sentence_loss = ({NUM}), total_loss = ({NUM})(?: \(({NUM}) sec\))?")


def parse_bert(paths: list[str]) -> ParsedLog:
    """Throughput intervals and the ranks' mean total-loss curve of one BERT run's logs."""
    parsed = ParsedLog(rate_unit="steps", rate_name="global_step/sec")
    found: list[tuple[str, str | None, Any]] = []  # (kind, glog thread id, value) in order
    losses: dict[int, list[float]] = {}
    for _path, _lineno, line in read_log_lines(paths):
        hits = [(m.start(), "rate", m) for m in BERT_RATE.finditer(line)]
        hits += [(m.start(), "step", m) for m in BERT_STEP.finditer(line)]
        for _, kind, m in sorted(hits, key=lambda hit: hit[0]):
            if kind == "rate":
                found.append(("rate", m.group(1), float(m.group(2))))
            else:
                step = int(m.group(2))
                losses.setdefault(step, []).append(float(m.group(5)))
                found.append(("step", m.group(1), (step, float(m.group(6)) if m.group(6) else None)))
    # rates: one rank's lines only (the rank that printed the first rate line); every rank
    # prints the same global_step/sec. Losses: the mean over all ranks' lines of a step.
    rank = next((tid for kind, tid, _ in found if kind == "rate"), None)
    events = [(kind, value) for kind, tid, value in found if tid == rank]
    pairs = _pair(events)
    known = [b - a for (a, _, _), (b, _, _) in zip(pairs, pairs[1:]) if a is not None and b is not None]
    cadence = statistics.median(known) if known else None
    previous = None
    for step, rate, secs in pairs:
        if step is not None and previous is not None:
            steps = step - previous
        elif secs:
            steps = round(rate * secs)
        elif cadence:
            steps = int(cadence)
        else:
            raise BenchError(f"{', '.join(paths)}: cannot tell how many steps a global_step/sec "
                             f"line covers (no 'global_step = N, ... (T sec)' line)")
        step = step if step is not None else (previous or 0) + steps
        parsed.rates.append((step, steps, rate))
        previous = step
    parsed.loss_curve = [[s, sum(v) / len(v)] for s, v in sorted(losses.items())]
    return parsed


def _pair(events: list[tuple[str, Any]]) -> list[tuple[int | None, float, float | None]]:
    """Adjacent rate and step lines (either order) make one interval: (N, steps/s, T)."""
    pairs, i = [], 0
    while i < len(events):
        kind, value = events[i]
        nxt = events[i + 1] if i + 1 < len(events) else None
        if nxt is not None and {kind, nxt[0]} == {"rate", "step"}:
            rate = value if kind == "rate" else nxt[1]
            step, secs = nxt[1] if kind == "rate" else value
            pairs.append((step, rate, secs))
            i += 2
            continue
        if kind == "rate":
            pairs.append((None, value, None))
        i += 1
    return pairs
