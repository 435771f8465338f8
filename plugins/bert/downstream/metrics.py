"""Task metrics, as fractions in [0, 1]: classification accuracy and macro-F1, conlleval's
entity-level precision/recall/F1, and SQuAD / CMRC 2018 exact match and F1."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

# --- classification ----------------------------------------------------------------------


def classification_metrics(gold: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """Accuracy, and macro-F1: the mean F1 over the labels that occur in ``gold`` or
    ``predicted`` (a label's F1 is 0 when it is never predicted right)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    if not gold:
        return {}
    hits = sum(g == p for g, p in zip(gold, predicted))
    f1s = []
    for label in sorted(set(gold) | set(predicted)):
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        fp = sum(p == label != g for g, p in zip(gold, predicted))
        fn = sum(g == label != p for g, p in zip(gold, predicted))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": hits / len(gold), "macro_f1": sum(f1s) / len(f1s)}


# --- NER (conlleval) ---------------------------------------------------------------------


def _split(tag: str) -> tuple[str, str]:
    if tag == "O" or "-" not in tag:
        return "O", ""
    prefix, kind = tag.split("-", 1)
    return ("I" if prefix == "M" else prefix), kind  # BMES's M is BIOES's I


def _chunk_ends(prev: str, prev_kind: str, tag: str, kind: str) -> bool:
    """conlleval's endOfChunk: does a chunk end between the previous tag and this one?"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev != "O" and prev_kind != kind


def _chunk_starts(prev: str, prev_kind: str, tag: str, kind: str) -> bool:
    """conlleval's startOfChunk: does a chunk start at this tag?"""
    if tag in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag != "O" and prev_kind != kind


def chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entity spans ``(type, first, last)`` of one sentence's tags, read the way conlleval
    reads them, so BIO (IOB2), IOB1, BIOES and BMES all work and a stray ``I-`` starts a
    chunk."""
    found = set()
    start, kind = None, ""
    prev, prev_kind = "O", ""
    for i, tag in enumerate([*tags, "O"]):
        here, here_kind = _split(tag)
        if start is not None and _chunk_ends(prev, prev_kind, here, here_kind):
            found.add((kind, start, i - 1))
            start = None
        if _chunk_starts(prev, prev_kind, here, here_kind):
            start, kind = i, here_kind
        prev, prev_kind = here, here_kind
    return found


def ner_metrics(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]],
                ) -> dict[str, float]:
    """conlleval's entity-level scores: a predicted entity counts only when its type and both
    ends match a gold entity exactly; precision = right / predicted, recall = right / gold."""
    right = n_gold = n_predicted = 0
    gold, predicted = list(gold), list(predicted)
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for gold_tags, predicted_tags in zip(gold, predicted):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"{len(gold_tags)} gold tags but {len(predicted_tags)} predicted")
        g, p = chunks(gold_tags), chunks(predicted_tags)
        right += len(g & p)
        n_gold += len(g)
        n_predicted += len(p)
    precision = right / n_predicted if n_predicted else 0.0
    recall = right / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --- reading comprehension ---------------------------------------------------------------


_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize(text: str) -> str:
    """SQuAD v1.1's normalize_answer: lower case, no punctuation, no a/an/the, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_scores(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    """(exact match, token F1) against the best of ``answers``. An answer that normalizes to
    nothing matches only an empty prediction (SQuAD 2.0's rule; v1.1 scored F1 0 there)."""
    predicted = squad_normalize(prediction).split()
    best_em = best_f1 = 0.0
    for answer in answers:
        gold = squad_normalize(answer).split()
        best_em = max(best_em, float(predicted == gold))
        if not gold or not predicted:
            best_f1 = max(best_f1, float(gold == predicted))
            continue
        same = sum((Counter(gold) & Counter(predicted)).values())
        if same:
            p, r = same / len(predicted), same / len(gold)
            best_f1 = max(best_f1, 2 * p * r / (p + r))
    return best_em, best_f1


# CMRC 2018's evaluate script: these characters are separate segments and dropped for scoring.
CMRC_PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
_CJK = re.compile("[\u4e00-\u9fa5]")
# Stands in for nltk.word_tokenize on the non-Chinese runs: numbers (3.5, 1,000), words and
# single punctuation marks.
_WORDS = re.compile(r"\d+(?:[.,]\d+)*|\w+|[^\w\s]")


def cmrc_segments(text: str, drop_punctuation: bool = True) -> list[str]:
    """CMRC's mixed_segmentation: every Chinese character (and listed punctuation mark) is a
    segment, other runs are split into words."""
    segments: list[str] = []
    run = ""
    for ch in str(text).lower().strip():
        if drop_punctuation and ch in CMRC_PUNCTUATION:
            continue
        if _CJK.match(ch) or ch in CMRC_PUNCTUATION:
            segments.extend(_WORDS.findall(run))
            run = ""
            segments.append(ch)
        else:
            run += ch
    segments.extend(_WORDS.findall(run))
    return segments


def _longest_common_run(a: list[str], b: list[str]) -> int:
    """Length of the longest common contiguous run (CMRC's find_lcs)."""
    best = 0
    row = [0] * (len(b) + 1)
    for x in a:
        previous = 0
        for j, y in enumerate(b, 1):
            current = row[j]
            row[j] = previous + 1 if x == y else 0
            best = max(best, row[j])
            previous = current
    return best


def cmrc_scores(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    """(exact match, F1) of CMRC 2018's evaluate: EM compares the texts without punctuation,
    F1 uses the longest common run of segments; the best answer counts."""
    predicted = cmrc_segments(prediction)
    plain = "".join(ch for ch in str(prediction).lower().strip() if ch not in CMRC_PUNCTUATION)
    best_em = best_f1 = 0.0
    for answer in answers:
        gold_plain = "".join(ch for ch in str(answer).lower().strip()
                             if ch not in CMRC_PUNCTUATION)
        best_em = max(best_em, float(plain == gold_plain))
        gold = cmrc_segments(answer)
        common = _longest_common_run(gold, predicted)
        if common:
            p, r = common / len(predicted), common / len(gold)
            best_f1 = max(best_f1, 2 * p * r / (p + r))
    return best_em, best_f1


def reading_metrics(predictions: dict[str, str], answers: dict[str, Sequence[str]],
                    style: str) -> dict[str, float]:
    """Mean exact match and F1 over the questions of ``predictions`` (``style``: ``cmrc`` or
    ``squad``)."""
    score = cmrc_scores if style == "cmrc" else squad_scores
    if not predictions:
        return {}
    totals = [score(text, answers[qid]) for qid, text in predictions.items()]
    return {"em": sum(em for em, _ in totals) / len(totals),
            "f1": sum(f1 for _, f1 in totals) / len(totals)}
