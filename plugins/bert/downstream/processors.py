"""Readers of the public downstream formats; every bad row is a BenchError naming file and line.

Classification: XNLI (MultiNLI-style ``premise, hypothesis, label`` or the official
``xnli.dev.tsv`` with ``language, gold_label, ..., sentence1, sentence2``), LCQMC
(``text_a, text_b, label``), ChnSentiCorp (``label, text``) and a generic tab-separated file
with configurable columns. NER: CoNLL-style files, one ``token ... label`` per line and a blank
line between sentences (People's Daily, MSRA), BIO, BIOES or BMES tags. Reading comprehension:
SQuAD v1.1 JSON, which CMRC 2018 also uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import BenchError, parse_json, read_user_text

XNLI_LABELS = ("contradiction", "entailment", "neutral")
BINARY_LABELS = ("0", "1")
# Google's XnliProcessor: MultiNLI's machine-translated train files say "contradictory".
XNLI_ALIASES = {"contradictory": "contradiction"}
HEADER_LABELS = ("label", "gold_label")  # a first row whose label cell is one of these
TAG_PREFIXES = ("B", "I", "E", "S", "M")  # BIO, BIOES, BMES
JSON_DEPTH = 32  # SQuAD nests 6 deep (data, paragraphs, qas, answers)


@dataclass(frozen=True)
class TextExample:
    """One classification example; ``line`` is its 1-based line in ``path``."""

    text_a: str
    text_b: str | None
    label: str
    path: str
    line: int


@dataclass(frozen=True)
class TaggedSentence:
    """One NER sentence: its tokens (characters for Chinese) and one tag per token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    path: str
    line: int  # the line of its first token


@dataclass(frozen=True)
class Question:
    """One reading-comprehension question; ``answers`` are ``(text, start)`` pairs (start is
    None for an eval answer that is not a span); training uses the first one."""

    qid: str
    question: str
    context: str
    answers: tuple[tuple[str, int | None], ...]
    path: str
    where: tuple  # JSON path of the question object (data, i, paragraphs, j, qas, k)


@dataclass(frozen=True)
class TsvColumns:
    """Columns of the generic ``tsv`` source (0-based; ``text_b`` -1 = single sentence)."""

    text_a: int = 0
    text_b: int = 1
    label: int = 2
    header: bool = False


def fail(path: str, line: int | None, message: str) -> BenchError:
    return BenchError(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def _read_lines(path: str) -> list[str]:
    """The lines of a data file (a regular file, UTF-8, BOM dropped; never a FIFO), split
    at universal newlines as a text-mode file iterates."""
    text = read_user_text(path, "data file").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    return lines[:-1] if lines and not lines[-1] else lines


# --- classification ----------------------------------------------------------------------


def read_classification(source: str, path: str, columns: TsvColumns = TsvColumns(),
                        xnli_language: str = "zh") -> list[TextExample]:
    """Examples of a ``xnli``, ``lcqmc``, ``chnsenticorp`` or ``tsv`` file, labels unchecked
    (:func:`check_labels` does that against the task's label list)."""
    rows = [(number, line.split("\t")) for number, line in enumerate(_read_lines(path), 1)
            if line.strip()]
    if source == "xnli" and rows and {"gold_label", "sentence1", "sentence2"} <= set(rows[0][1]):
        return _xnli_official(path, rows, xnli_language)
    if source == "tsv":
        spec = [("text_a", columns.text_a), ("label", columns.label)]
        if columns.text_b >= 0:
            spec.insert(1, ("text_b", columns.text_b))
        skip_header = columns.header
    else:
        spec = {"xnli": [("text_a", 0), ("text_b", 1), ("label", 2)],
                "lcqmc": [("text_a", 0), ("text_b", 1), ("label", 2)],
                "chnsenticorp": [("label", 0), ("text_a", 1)]}[source]
        label_column = dict(spec)["label"]
        # ChineseGLUE's files start with a header (text_a, text_b, label); the originals do not.
        skip_header = bool(rows) and len(rows[0][1]) > label_column and \
            rows[0][1][label_column].strip().lower() in HEADER_LABELS
    if skip_header:
        rows = rows[1:]
    width = max(column for _, column in spec) + 1
    names = ", ".join(name for name, _ in sorted(spec, key=lambda item: item[1]))
    examples = []
    for number, cells in rows:
        if len(cells) < width:
            raise fail(path, number, f"expected {width} tab-separated columns ({names}), "
                                     f"got {len(cells)}")
        values = {name: cells[column].strip() for name, column in spec}
        for name in ("text_a", "text_b"):
            if name in values and not values[name]:
                raise fail(path, number, f"empty {name}")
        label = values["label"]
        if source == "xnli":
            label = XNLI_ALIASES.get(label, label)
        examples.append(TextExample(values["text_a"], values.get("text_b"), label, path, number))
    if not examples:
        raise BenchError(f"{path}: no examples")
    return examples


def _xnli_official(path: str, rows: list, language: str) -> list[TextExample]:
    """``xnli.dev.tsv`` / ``xnli.test.tsv``: 15 languages, columns named in the header."""
    header = rows[0][1]
    index = {name: header.index(name) for name in ("language", "gold_label", "sentence1",
                                                   "sentence2")}
    examples = []
    for number, cells in rows[1:]:
        if len(cells) != len(header):
            raise fail(path, number, f"expected {len(header)} tab-separated columns as the "
                                     f"header, got {len(cells)}")
        if cells[index["language"]].strip() != language:
            continue
        text_a, text_b = cells[index["sentence1"]].strip(), cells[index["sentence2"]].strip()
        if not text_a or not text_b:
            raise fail(path, number, "empty sentence1" if not text_a else "empty sentence2")
        label = cells[index["gold_label"]].strip()
        examples.append(TextExample(text_a, text_b, XNLI_ALIASES.get(label, label), path,
                                    number))
    if not examples:
        raise BenchError(f"{path}: no examples in language {language!r} "
                         f"(params.xnli_language)")
    return examples


def default_labels(source: str) -> tuple[str, ...] | None:
    """The fixed label list of a named format (None: taken from the train file)."""
    return {"xnli": XNLI_LABELS, "lcqmc": BINARY_LABELS,
            "chnsenticorp": BINARY_LABELS}.get(source)


def check_labels(examples: list[Any], labels: tuple[str, ...]) -> None:
    """Every label (or NER tag) of ``examples`` is one of ``labels``."""
    known = set(labels)
    for example in examples:
        for offset, tag in enumerate(getattr(example, "tags", None) or (example.label,)):
            if tag not in known:
                line = example.line + offset if hasattr(example, "tags") else example.line
                raise fail(example.path, line, f"unknown label {tag!r}; labels: "
                                               f"{', '.join(labels)}")


# --- NER ---------------------------------------------------------------------------------


def read_conll(path: str) -> list[TaggedSentence]:
    """Sentences of a CoNLL-style file: the first column is the token, the last the tag
    (``张 B-PER``; CoNLL-2003's four columns work too); ``-DOCSTART-`` lines are skipped."""
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first = 0

    def close() -> None:
        if tokens:
            sentences.append(TaggedSentence(tuple(tokens), tuple(tags), path, first))
            tokens.clear()
            tags.clear()

    for number, line in enumerate(_read_lines(path), 1):
        cells = line.split()
        if not cells:
            close()
            continue
        if cells[0] == "-DOCSTART-":
            close()
            continue
        if len(cells) < 2:
            raise fail(path, number, f"expected 'token label', got {line.strip()!r}")
        tag = cells[-1]
        if tag != "O" and (len(tag) < 3 or tag[0] not in TAG_PREFIXES or tag[1] != "-"):
            raise fail(path, number, f"label {tag!r} is not O or B-/I-/E-/S-/M-TYPE")
        if not tokens:
            first = number
        tokens.append(cells[0])
        tags.append(tag)
    close()
    if not sentences:
        raise BenchError(f"{path}: no sentences")
    return sentences


def labels_of(items: list[Any]) -> tuple[str, ...]:
    """The label list found in a train file: sorted, NER's ``O`` first."""
    found = {tag for item in items for tag in (getattr(item, "tags", None) or (item.label,))}
    return tuple(sorted(found, key=lambda tag: (tag != "O", tag)))


# --- reading comprehension ---------------------------------------------------------------


class _Located(dict):
    """A JSON object that remembers its offset in the file (error messages only)."""

    offset = 0


class _LocatedList(list):
    """A JSON array that remembers where each of its values starts."""

    offsets: list[int] = []


def json_line(text: str, where: tuple) -> int | None:
    """The line where the JSON value at ``where`` (keys and indices) starts, found by
    re-parsing with the pure-Python scanner, which reports offsets; used on error only."""
    import json.decoder
    import json.scanner

    def parse_object(s_and_end: tuple, *args: Any, **kwargs: Any) -> tuple:
        obj, end = json.decoder.JSONObject(s_and_end, *args, **kwargs)
        located = _Located(obj)
        located.offset = s_and_end[1] - 1
        return located, end

    def parse_array(s_and_end: tuple, scan_once: Any, *args: Any) -> tuple:
        offsets: list[int] = []

        def scan(string: str, index: int) -> tuple:
            offsets.append(index)  # JSONArray scans each value from its first character
            return scan_once(string, index)

        values, end = json.decoder.JSONArray(s_and_end, scan, *args)
        located = _LocatedList(values)
        located.offsets = offsets
        return located, end

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object
    decoder.parse_array = parse_array
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    node = decoder.decode(text)
    offset = None
    for key in where:
        if isinstance(node, _LocatedList):
            offset = node.offsets[key]
        node = node[key]
        if isinstance(node, _Located):
            offset = node.offset
    return None if offset is None else text.count("\n", 0, offset) + 1


def read_squad(path: str, training: bool) -> list[Question]:
    """Questions of a SQuAD v1.1 file (CMRC 2018's squad-style files) or of CMRC 2018's
    original layout (a list of ``context_text`` / ``qas`` with ``query_text``, ``query_id``
    and a list of answer strings). A training answer must occur in its context; when its
    ``answer_start`` does not point at it (CMRC's files hold a few shifted starts) or there is
    none, the occurrence nearest to it is used. An eval answer is a string to compare with (as
    CMRC's evaluate does, numbers included), so one that is not a span is kept."""
    text = "\n".join(_read_lines(path))
    data = parse_json(text, path, max_depth=JSON_DEPTH)

    def error(where: tuple, message: str) -> BenchError:
        return fail(path, json_line(text, where), message)

    questions: list[Question] = []
    for context, qas, at, keys in _paragraphs(data, path, error):
        for k, qa in enumerate(qas):
            questions.append(_question(qa, context, path, at + (keys[0], k), keys, training,
                                       error))
    if not questions:
        raise BenchError(f"{path}: no questions")
    return questions


SQUAD_KEYS = ("qas", "id", "question")
CMRC_KEYS = ("qas", "query_id", "query_text")


def _paragraphs(data: Any, path: str, error: Any) -> list[tuple[str, list, tuple, tuple]]:
    """(context, questions, JSON path, key names) of each paragraph, in either layout."""
    found = []
    if isinstance(data, list):  # CMRC 2018's original layout
        for i, item in enumerate(data):
            context = item.get("context_text") if isinstance(item, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise error((i,), "item without a 'context_text'")
            if not isinstance(item.get("qas"), list):
                raise error((i,), "item without a 'qas' list")
            found.append((context, item["qas"], (i,), CMRC_KEYS))
        return found
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise fail(path, 1, "expected SQuAD JSON (an object with a 'data' list) or CMRC "
                            "2018's list of context_text / qas items")
    for i, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise error(("data", i), "article without a 'paragraphs' list")
        for j, paragraph in enumerate(paragraphs):
            at = ("data", i, "paragraphs", j)
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise error(at, "paragraph without a 'context' text")
            if not isinstance(paragraph.get("qas"), list):
                raise error(at, "paragraph without a 'qas' list")
            found.append((context, paragraph["qas"], at, SQUAD_KEYS))
    return found


def _answer_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # CMRC's dev set holds a spreadsheet date (39764.0) as an answer
    return None


def _question(qa: Any, context: str, path: str, where: tuple, keys: tuple, training: bool,
              error: Any) -> Question:
    _, id_key, question_key = keys
    if not isinstance(qa, dict):
        raise error(where[:-2], f"a '{keys[0]}' item is not an object")
    qid, question = qa.get(id_key), qa.get(question_key)
    if not isinstance(qid, (str, int)) or not isinstance(question, str) or not question.strip():
        raise error(where, f"question without an '{id_key}' and a '{question_key}' text")
    raw = qa.get("answers")
    if not isinstance(raw, list) or not raw:
        raise error(where, f"question {qid!r} has no answers (SQuAD v1.1 / CMRC: every "
                           f"question has one)")
    answers = []
    for m, answer in enumerate(raw):
        at = where + ("answers", m)
        item = answer if isinstance(answer, dict) else {"text": answer}
        answer_text = _answer_text(item.get("text"))
        if answer_text is None or not answer_text.strip():
            raise error(at, f"question {qid!r}: an answer without a text")
        start = item.get("answer_start")
        if start is not None and (isinstance(start, bool) or not isinstance(start, int)):
            raise error(at, f"question {qid!r}: answer_start {start!r} is not an integer")
        if answer_text not in context:
            if training:
                raise error(at, f"question {qid!r}: answer {answer_text!r} is not in its "
                                f"context")
            start = None
        elif start is None or context[start:start + len(answer_text)] != answer_text:
            start = _nearest(context, answer_text, start or 0)
        answers.append((answer_text, start))
    return Question(str(qid), question.strip(), context, tuple(answers), path, where)
def _nearest(context: str, text: str, start: int) -> int:
    best, at = None, context.find(text)
    while at >= 0:
        if best is None or abs(at - start) < abs(best - start):
            best = at
        at = context.find(text, at + 1)
    return best if best is not None else -1
