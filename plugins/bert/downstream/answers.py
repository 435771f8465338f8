"""Start/end logits -> answer text, as run_squad's write_predictions, mapped by character spans.

For each question, every window's ``n_best_size`` highest start and end logits are paired; a
pair counts when both ends are passage tokens, the start token has its maximum context in this
window, end >= start and the span is at most ``max_answer_length`` tokens; the best sum of
logits wins. Its text is the original passage from the start token's first character to the
end token's last one (exact, whatever lower-casing, accent stripping or [UNK] did to tokens).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, window: dict[str, Any],
              n_best: int, max_length: int) -> tuple[float, int, int] | None:
    """``(score, first, last)`` passage-token indices of the best valid span in one window."""
    offset, size = window["offset"], window["doc_length"]
    starts = np.argsort(-start_logits)[:n_best]
    ends = np.argsort(-end_logits)[:n_best]
    best = None
    for s in starts:
        i = int(s) - offset
        if not 0 <= i < size or not window["max_context"][i]:
            continue
        for e in ends:
            j = int(e) - offset
            if not i <= j < size or j - i + 1 > max_length:
                continue
            score = float(start_logits[s] + end_logits[e])
            if best is None or score > best[0]:
                best = (score, window["doc_start"] + i, window["doc_start"] + j)
    return best


def predict_answers(meta: dict[str, Any], results: dict[int, tuple[np.ndarray, np.ndarray]],
                    n_best: int, max_length: int) -> dict[str, str]:
    """Question id -> predicted text, for every question with at least one window in
    ``results`` (window index -> (start logits, end logits)); "" when no span is valid."""
    best: dict[int, tuple[float, int, int] | None] = {}
    for index, (start_logits, end_logits) in results.items():
        window = meta["windows"][index]
        found = best_span(start_logits, end_logits, window, n_best, max_length)
        example = window["example"]
        if example not in best or (found and (best[example] is None
                                              or found[0] > best[example][0])):
            best[example] = found
    answers = {}
    for example, found in best.items():
        record = meta["examples"][example]
        text = ""
        if found is not None:
            spans = meta["offsets"][record["passage"]]
            text = meta["contexts"][record["passage"]][spans[found[1]][0]:spans[found[2]][1]]
        answers[record["id"]] = text
    return answers
