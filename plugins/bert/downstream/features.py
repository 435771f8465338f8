"""Examples -> fixed-length BERT features (numpy), as Google's run_classifier / run_squad build them.

Classification: ``[CLS] a [SEP] b [SEP]``, the longer text truncated first.
NER: each token (a character in the Chinese sets) is WordPiece-tokenized on its own; its first
sub-token carries the tag and the rest are masked out of loss and metric (the seed marks them
``X`` and trains on them; masking keeps conlleval on the original tokens). Sentences longer
than the sequence are cut into consecutive windows, so every token is tagged and scored.
Reading: ``[CLS] question [SEP] passage window [SEP]`` over a sliding window (``doc_stride``)
with each passage token's character span kept, so a predicted token span maps back to the
exact original text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import BenchError

if TYPE_CHECKING:
    from plugins.bert.downstream.processors import Question, TaggedSentence, TextExample
    from plugins.bert.tokenizer import WordPieceTokenizer


@dataclass
class Features:
    """Parallel int32 arrays (``arrays[name]`` is ``[count, ...]``) plus what eval needs."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.arrays["input_ids"])


def _special_ids(tokenizer: WordPieceTokenizer) -> tuple[int, int]:
    return tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]


def _pack(rows: list[list[int]], segments: list[list[int]], seq: int) -> dict[str, np.ndarray]:
    ids = np.zeros([len(rows), seq], np.int32)
    mask = np.zeros([len(rows), seq], np.int32)
    segment = np.zeros([len(rows), seq], np.int32)
    for i, (row, seg) in enumerate(zip(rows, segments)):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
        segment[i, :len(seg)] = seg
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segment}


def truncate_pair(a: list, b: list, budget: int) -> None:
    """Google's _truncate_seq_pair: drop the last token of the longer list until both fit."""
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()


def classification_features(examples: list[TextExample], labels: tuple[str, ...],
                            tokenizer: WordPieceTokenizer, seq: int) -> Features:
    cls, sep = _special_ids(tokenizer)
    index = {label: i for i, label in enumerate(labels)}
    first = tokenizer.tokenize_batch([e.text_a for e in examples])
    pairs = [e for e in examples if e.text_b is not None]
    second = iter(tokenizer.tokenize_batch([e.text_b for e in pairs]))
    rows, segments = [], []
    for example, tokens_a in zip(examples, first):
        tokens_b = next(second) if example.text_b is not None else []
        truncate_pair(tokens_a, tokens_b, seq - (3 if example.text_b is not None else 2))
        ids = [cls, *tokenizer.convert_tokens_to_ids(tokens_a), sep]
        segment = [0] * len(ids)
        if example.text_b is not None:
            ids += [*tokenizer.convert_tokens_to_ids(tokens_b), sep]
            segment += [1] * (len(tokens_b) + 1)
        rows.append(ids)
        segments.append(segment)
    arrays = _pack(rows, segments, seq)
    arrays["label_ids"] = np.array([[index[e.label]] for e in examples], np.int32)
    return Features(arrays, {"labels": list(labels)})


def ner_features(sentences: list[TaggedSentence], labels: tuple[str, ...],
                 tokenizer: WordPieceTokenizer, seq: int) -> Features:
    """One feature per window of at most ``seq - 2`` sub-tokens; ``example_index`` says which
    sentence a window belongs to (windows of a sentence are consecutive and in order)."""
    cls, sep = _special_ids(tokenizer)
    index = {label: i for i, label in enumerate(labels)}
    budget = seq - 2
    flat = tokenizer.tokenize_batch([token for s in sentences for token in s.tokens])
    pieces_of = iter(flat)
    rows, tag_rows, mask_rows, owners = [], [], [], []
    for number, sentence in enumerate(sentences):
        ids: list[int] = []
        tags: list[int] = []
        mask: list[int] = []
        for tag in sentence.tags:
            # A token the tokenizer drops (a control or zero-width character) still gets a tag.
            pieces = tokenizer.convert_tokens_to_ids(next(pieces_of) or ["[UNK]"])[:budget]
            if len(ids) + len(pieces) > budget:
                rows.append(ids)
                tag_rows.append(tags)
                mask_rows.append(mask)
                owners.append(number)
                ids, tags, mask = [], [], []
            ids += pieces
            tags += [index[tag]] + [0] * (len(pieces) - 1)
            mask += [1] + [0] * (len(pieces) - 1)
        rows.append(ids)
        tag_rows.append(tags)
        mask_rows.append(mask)
        owners.append(number)
    arrays = _pack([[cls, *r, sep] for r in rows], [[0] * (len(r) + 2) for r in rows], seq)
    arrays["label_ids"] = np.zeros([len(rows), seq], np.int32)
    arrays["label_mask"] = np.zeros([len(rows), seq], np.int32)
    for i, (tags, mask) in enumerate(zip(tag_rows, mask_rows)):
        arrays["label_ids"][i, 1:len(tags) + 1] = tags
        arrays["label_mask"][i, 1:len(mask) + 1] = mask
    arrays["example_index"] = np.array(owners, np.int32)[:, None]
    return Features(arrays, {"labels": list(labels)})


def doc_spans(length: int, max_tokens: int, stride: int) -> list[tuple[int, int]]:
    """run_squad's sliding window: ``(start, length)`` spans, each ``stride`` after the last,
    until one reaches the end of the passage."""
    spans, start = [], 0
    while start < length:
        size = min(length - start, max_tokens)
        spans.append((start, size))
        if start + size == length:
            break
        start += min(size, stride)
    return spans or [(0, 0)]


def max_context(spans: list[tuple[int, int]], span: int, position: int) -> bool:
    """run_squad's _check_is_max_context: a token is scored in the window where it has the
    most context on its shorter side (+ 0.01 x window length breaks ties)."""
    best, best_score = None, None
    for i, (start, size) in enumerate(spans):
        end = start + size - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * size
        if best_score is None or score > best_score:
            best, best_score = i, score
    return best == span


def reading_features(questions: list[Question], tokenizer: WordPieceTokenizer, seq: int,
                     max_query: int, stride: int, training: bool) -> Features:
    """Training features carry ``start_positions``/``end_positions`` (0 = [CLS] when the answer
    is not inside the window, as run_squad); every feature carries ``unique_ids`` (its index)
    and ``meta`` holds the passages' token character spans for turning predictions into text."""
    cls, sep = _special_ids(tokenizer)
    rows, segments, starts, ends = [], [], [], []
    examples: list[dict[str, Any]] = []
    windows: list[dict[str, Any]] = []
    passages: dict[str, int] = {}
    offsets: list[list[tuple[int, int]]] = []
    token_ids: list[list[int]] = []
    query_tokens = tokenizer.tokenize_batch([q.question for q in questions])
    for number, (question, query) in enumerate(zip(questions, query_tokens)):
        if question.context not in passages:  # the questions of a paragraph share its tokens
            passages[question.context] = len(offsets)
            tokens = tokenizer.tokenize_with_offsets(question.context)
            offsets.append([(start, end) for _, start, end in tokens])
            token_ids.append(tokenizer.convert_tokens_to_ids(t for t, _, _ in tokens))
        passage = passages[question.context]
        spans_of_doc, doc_ids = offsets[passage], token_ids[passage]
        query_ids = tokenizer.convert_tokens_to_ids(query[:max_query])
        budget = seq - len(query_ids) - 3
        if budget < 1:
            raise BenchError(f"params.max_seq_length: {seq} leaves no room for the passage "
                             f"after a {len(query_ids)}-token question (max_query_length)")
        answer_tokens = _answer_tokens(spans_of_doc, *question.answers[0]) if training else None
        spans = doc_spans(len(doc_ids), budget, stride)
        examples.append({"id": question.qid, "passage": passage,
                         "answers": [text for text, _ in question.answers]})
        for span_index, (start, size) in enumerate(spans):
            head = [cls, *query_ids, sep]
            rows.append(head + doc_ids[start:start + size] + [sep])
            segments.append([0] * len(head) + [1] * (size + 1))
            windows.append({"example": number, "doc_start": start, "doc_length": size,
                            "offset": len(head),
                            "max_context": [max_context(spans, span_index, start + i)
                                            for i in range(size)]})
            first = last = 0
            if answer_tokens is not None:
                a, b = answer_tokens
                if a <= b and start <= a and b < start + size:
                    first, last = a - start + len(head), b - start + len(head)
            starts.append(first)
            ends.append(last)
    arrays = _pack(rows, segments, seq)
    arrays["start_positions"] = np.array(starts, np.int32)[:, None]
    arrays["end_positions"] = np.array(ends, np.int32)[:, None]
    arrays["unique_ids"] = np.arange(len(rows), dtype=np.int32)[:, None]
    contexts = [""] * len(passages)
    for context, index in passages.items():
        contexts[index] = context
    return Features(arrays, {"examples": examples, "windows": windows, "contexts": contexts,
                             "offsets": offsets})


def _answer_tokens(spans: list[tuple[int, int]], text: str, start: int) -> tuple[int, int]:
    """The first and last passage token overlapping the answer's characters."""
    end = start + len(text)
    inside = [i for i, (a, b) in enumerate(spans) if a < end and b > start]
    if not inside:  # the answer is only characters the tokenizer drops (whitespace)
        return 0, -1
    return inside[0], inside[-1]
