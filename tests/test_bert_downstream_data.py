"""BERT downstream inputs: the format readers, their one-line errors (exit 2), features, answers."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from harness.errors import BenchError
from harness.plugins import hookimpl
from harness.testing import write_case
from plugins.bert.downstream import answers, features, processors
from plugins.bert.tokenizer import WordPieceTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "bert_downstream")


def data(name: str) -> str:
    return os.path.join(DATA, name)


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(data("vocab.txt"), do_lower_case=True)


# --- readers -----------------------------------------------------------------------------


def test_classification_formats():
    lcqmc = processors.read_classification("lcqmc", data("lcqmc_train.tsv"))
    assert len(lcqmc) == 40  # ChineseGLUE's header line is skipped
    first = lcqmc[0]
    assert (first.text_a, first.text_b, first.label, first.line) == (
        "喜欢打篮球的男生喜欢什么样的女生", "爱打篮球的男生喜欢什么样的女生", "1", 2)
    dev = processors.read_classification("lcqmc", data("lcqmc_dev.tsv"))
    assert len(dev) == 16 and dev[0].line == 1  # the original files have no header

    senti = processors.read_classification("chnsenticorp", data("chnsenticorp.tsv"))
    assert len(senti) == 20 and senti[2].label == "0" and senti[2].text_b is None
    assert senti[2].text_a.startswith("房间太小")

    xnli = processors.read_classification("xnli", data("xnli_train.tsv"))
    assert [e.label for e in xnli].count("contradiction") == 4  # "contradictory" renamed
    official = processors.read_classification("xnli", data("xnli_dev.tsv"))
    assert len(official) == 6  # the zh rows of the 15-language file
    assert official[0].text_a == "他说，妈妈，我回来了。" and official[0].line == 3
    english = processors.read_classification("xnli", data("xnli_dev.tsv"), xnli_language="en")
    assert [e.label for e in english] == ["neutral", "contradiction"]
    assert processors.default_labels("xnli") == ("contradiction", "entailment", "neutral")


def test_generic_tsv_columns(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("id\tstars\ttext\n7\tgood\t很好\n8\tbad\t很差\n", encoding="utf-8")
    columns = processors.TsvColumns(text_a=2, text_b=-1, label=1, header=True)
    rows = processors.read_classification("tsv", str(path), columns)
    assert [(r.text_a, r.text_b, r.label, r.line) for r in rows] == [
        ("很好", None, "good", 2), ("很差", None, "bad", 3)]
    assert processors.labels_of(rows) == ("bad", "good")


def test_conll_bio_and_bioes():
    sentences = processors.read_conll(data("ner_train.txt"))
    assert len(sentences) == 30
    first = sentences[0]
    assert "".join(first.tokens) == "海钓比赛地点在厦门与金门之间的海域。"
    assert first.tags[7:9] == ("B-LOC", "I-LOC") and first.line == 1
    assert sentences[1].line == len(first.tokens) + 2
    assert processors.labels_of(sentences) == ("O", "B-LOC", "B-ORG", "B-PER", "I-LOC",
                                               "I-ORG", "I-PER")
    bioes = processors.read_conll(data("ner_bioes.txt"))
    assert bioes[0].tags[:3] == ("S-PER", "O", "S-LOC")
    assert bioes[1].tags[3:7] == ("B-ORG", "I-ORG", "I-ORG", "E-ORG")


def test_squad_and_cmrc_json():
    train = processors.read_squad(data("cmrc_train.json"), training=True)
    assert len(train) == 19
    q = train[0]
    assert (q.qid, q.answers) == ("TRAIN_1_QUERY_0", (("1963年", 30),))
    assert q.context[30:35] == "1963年"
    dev = processors.read_squad(data("cmrc_dev.json"), training=False)
    assert [len(q.answers) for q in dev] == [3] * 7  # CMRC dev: three answers per question
    squad = processors.read_squad(data("squad_dev.json"), training=False)  # \u-escaped JSON
    assert squad[3].answers[0][0] == "Émile Müller"


BAD_INPUTS = {
    "malformed row": ("lcqmc", "text_a\ttext_b\tlabel\n北京哪里好玩\t北京有哪些好玩的地方\t1\n"
                               "怎么瘦脸\t1\n", "train.tsv:3: expected 3 tab-separated columns "
                                                "(text_a, text_b, label), got 2"),
    "unknown label": ("lcqmc", "北京哪里好玩\t北京有哪些好玩的地方\t1\n怎么瘦脸\t怎样瘦脸\t2\n",
                      "train.tsv:2: unknown label '2'; labels: 0, 1"),
    "empty text": ("chnsenticorp", "label\ttext_a\n1\t很好\n0\t \n", "train.tsv:3: empty text_a"),
    "malformed NER line": ("conll", "张 B-PER\n三\n", "train.tsv:2: expected 'token label', "
                                                      "got '三'"),
    "bad NER tag": ("conll", "张 B-PER\n三 PER\n", "train.tsv:2: label 'PER' is not O or "
                                                   "B-/I-/E-/S-/M-TYPE"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_rows_name_file_and_line(tmp_path, name):
    source, text, message = BAD_INPUTS[name]
    path = tmp_path / "train.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BenchError) as error:
        if source == "conll":
            processors.read_conll(str(path))
        else:
            items = processors.read_classification(source, str(path))
            processors.check_labels(items, processors.default_labels(source))
    assert str(error.value) == f"{tmp_path}/{message}"


def squad_json(answer: dict, context: str = "黄河发源于青海省巴颜喀拉山脉。") -> str:
    return json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "Q1", "question": "黄河发源于哪里？", "answers": [answer]}]}]}]},
        ensure_ascii=False, indent=2)


def test_reading_errors_name_file_and_line(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(squad_json({"text": "长江", "answer_start": 0}), encoding="utf-8")
    with pytest.raises(BenchError) as error:
        processors.read_squad(str(path), training=True)
    # the line of the answer object in the indented file
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if '"answers"' in text) + 1
    assert lines[line - 1].strip() == "{"
    assert str(error.value) == f"{path}:{line}: question 'Q1': answer '长江' is not in its context"

    path.write_text('{"data": [\n  {"paragraphs": [}\n]}', encoding="utf-8")
    with pytest.raises(BenchError, match=r"train.json: line 2: not valid JSON"):
        processors.read_squad(str(path), training=True)
    path.write_text(squad_json({"text": "巴颜喀拉山脉", "answer_start": "7"}), encoding="utf-8")
    with pytest.raises(BenchError, match=r"train.json:\d+: question 'Q1': answer_start '7'"):
        processors.read_squad(str(path), training=True)
    # a shifted answer_start (CMRC holds a few) is moved to the answer's nearest occurrence
    path.write_text(squad_json({"text": "巴颜喀拉山脉", "answer_start": 3}), encoding="utf-8")
    (question,) = processors.read_squad(str(path), training=True)
    assert question.answers == (("巴颜喀拉山脉", 8),)


def test_cmrc_original_layout(tmp_path):
    """CMRC 2018's first release: a list of context_text / qas items, answers as strings (its
    dev set holds a number, 39764.0, that is no span of the passage)."""
    path = tmp_path / "cmrc2018_dev.json"
    path.write_text(json.dumps([{"context_id": "DEV_10", "title": "苏镜宇", "context_text":
        "苏镜宇原名苏博，因为婶婶认为他命中缺金，改名镜宇。2008年11月12日，苏镜宇首次登上中超赛场。",
        "qas": [{"query_text": "苏镜宇的原名叫什么？", "query_id": "DEV_10_QUERY_0",
                 "answers": ["苏博", "苏博", "原名苏博"]},
                {"query_text": "苏镜宇什么时候首次登上中超赛场？", "query_id": "DEV_10_QUERY_2",
                 "answers": ["2008年11月12日", 39764.0]}]}], ensure_ascii=False, indent=2),
        encoding="utf-8")
    first, second = processors.read_squad(str(path), training=False)
    assert first.qid == "DEV_10_QUERY_0" and first.answers == (("苏博", 5), ("苏博", 5),
                                                                ("原名苏博", 3))
    assert second.answers == (("2008年11月12日", 25), ("39764.0", None))
    with pytest.raises(BenchError) as error:  # a training answer must be a span
        processors.read_squad(str(path), training=True)
    line = next(i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if "39764.0" in text)
    assert str(error.value) == (f"{path}:{line}: question 'DEV_10_QUERY_2': answer '39764.0' "
                                f"is not in its context")


# --- through bench run: exit 2, nothing written --------------------------------------------


def bad_case(tmp_path, source: str, task: str, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return write_case(tmp_path, {
        "model": "bert", "batch_size": 1, "data": {"source": source, "path": str(path)},
        "train": {"steps": 2, "warmup_steps": 1},
        "params": {"task": task, "bert_config": data("bert_config.json"),
                   "vocab_file": data("vocab.txt"), "max_seq_length": 32,
                   "max_query_length": 16}})


@pytest.mark.parametrize("source,task,name,text,message", [
    ("lcqmc", "classifier", "train.tsv", "北京哪里好玩\t北京有哪些好玩的地方\n",
     "train.tsv:1: expected 3 tab-separated columns (text_a, text_b, label), got 2"),
    ("conll", "ner", "train.txt", "张 B-PER\n三 I-PER\n\n李 B-PRE\n", None),
    ("cmrc", "reading", "train.json", squad_json({"text": "长江", "answer_start": 0}),
     "question 'Q1': answer '长江' is not in its context"),
], ids=["malformed row", "unknown label", "answer not in context"])
def test_bad_data_exits_2_before_anything_is_written(tmp_path, bench_cli, source, task, name,
                                                     text, message):
    case = bad_case(tmp_path, source, task, name, text)
    if task == "ner":  # an explicit label list makes B-PRE unknown
        case = write_case(tmp_path, {**_load(case), "params": {
            **_load(case)["params"], "labels": ["O", "B-PER", "I-PER"]}})
        message = "train.txt:4: unknown label 'B-PRE'; labels: O, B-PER, I-PER"
    out = tmp_path / "reports"
    result = bench_cli("run", case, "--out", str(out))
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: ")
    assert str(tmp_path / name) in lines[0] and lines[0].endswith(message)
    assert not out.exists()


def _load(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def test_task_and_source_must_agree(tmp_path, bench_cli):
    case = write_case(tmp_path, {"model": "bert", "data": {"source": "lcqmc", "path": "x.tsv"},
                                 "train": {"steps": 2, "warmup_steps": 1}})
    result = bench_cli("run", case, "--out", str(tmp_path / "reports"))
    assert result.exit_code == 2
    assert ("data.source: task pretraining reads synthetic, tfrecord; got 'lcqmc' (a "
            "classifier source: set params.task: classifier)") in result.stderr
    case = write_case(tmp_path, {"model": "bert", "train": {"steps": 2, "warmup_steps": 1},
                                 "params": {"task": "ner"}})
    result = bench_cli("run", case, "--out", str(tmp_path / "reports"))
    assert result.exit_code == 2 and "task ner reads conll; got 'synthetic'" in result.stderr


@pytest.mark.parametrize("params,message", [
    ({"vocab_file": ""}, "params.vocab_file: downstream tasks need the checkpoint's vocab.txt"),
    ({"vocab_file": "nope.txt"}, "nope.txt: no such vocabulary file (params.vocab_file)"),
    ({"warmup_proportion": 1.5}, "params.warmup_proportion: must be in [0, 1), got 1.5"),
    ({"max_query_length": 40}, "params.max_query_length: 40 leaves no room for the passage in "
                               "max_seq_length 32"),
    ({"max_seq_length": 256}, "params.max_seq_length: 256 exceeds max_position_embeddings 128"),
    ({"init_checkpoint": "nope/model.ckpt"}, "nope/model.ckpt: params.init_checkpoint: no such "
                                             "checkpoint"),
])
def test_bad_params_exit_2(tmp_path, bench_cli, params, message):
    case = bad_case(tmp_path, "cmrc", "reading", "train.json",
                    squad_json({"text": "巴颜喀拉山脉", "answer_start": 8}))
    spec = _load(case)
    spec["params"].update(params)
    result = bench_cli("run", write_case(tmp_path, spec), "--out", str(tmp_path / "reports"))
    assert result.exit_code == 2 and message in result.stderr, result.stderr


class RefusesEveryCase:
    """The validate_case contract for any plugin: raising means bad input, nothing written."""

    @hookimpl
    def validate_case(self, case):
        if case.model == "tiny_mlp":
            raise BenchError(f"{case.source}: params: refused by validate_case")


def test_validate_case_hook_stops_a_run_before_its_report(tmp_path, bench_run, tiny, tiny_case):
    with pytest.raises(BenchError, match="refused by validate_case"):
        bench_run(tiny_case, plugins=[tiny, RefusesEveryCase()])
    assert not (tmp_path / "reports").exists()


# --- features ----------------------------------------------------------------------------


def test_classification_features(tokenizer):
    examples = processors.read_classification("lcqmc", data("lcqmc_train.tsv"))[:3]
    built = features.classification_features(examples, ("0", "1"), tokenizer, 16)
    ids, segments, mask = (built.arrays[k] for k in ("input_ids", "segment_ids", "input_mask"))
    assert ids.shape == (3, 16) and built.arrays["label_ids"][:, 0].tolist() == [1, 1, 0]
    cls, sep = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
    # 16 leaves 13 tokens for the pair: the longer text loses its tail first
    row = ids[0].tolist()
    assert row[0] == cls and row.count(sep) == 2 and mask[0].sum() == 16
    first_sep = row.index(sep)
    assert first_sep - 1 == 7 and 16 - first_sep - 2 == 6  # 16 and 15 characters -> 7 + 6
    assert segments[0].tolist() == [0] * 9 + [1] * 7
    a, b = list("abcdefg"), list("xyz")
    features.truncate_pair(a, b, 6)
    assert (a, b) == (list("abc"), list("xyz"))


def test_ner_features_tag_first_sub_tokens_and_window_long_sentences(tokenizer):
    sentences = processors.read_conll(data("ner_train.txt"))
    labels = processors.labels_of(sentences)
    built = features.ner_features(sentences, labels, tokenizer, 16)
    owners = built.arrays["example_index"][:, 0]
    # every character is tagged exactly once, in order, across a sentence's windows
    for number, sentence in enumerate(sentences):
        rows = np.flatnonzero(owners == number)
        assert rows.tolist() == list(range(rows[0], rows[-1] + 1))
        mask = built.arrays["label_mask"][rows] > 0
        tags = built.arrays["label_ids"][rows][mask]
        assert [labels[t] for t in tags] == list(sentence.tags)
    assert built.count > len(sentences)  # long sentences were cut into windows
    assert (built.arrays["input_mask"].sum(axis=1) <= 16).all()
    # a multi-piece token: only its first piece carries the tag
    english = processors.TaggedSentence(("Café", "Zürichs", "在"), ("B-ORG", "I-ORG", "O"),
                                        "x", 1)
    one = features.ner_features([english], ("O", "B-ORG", "I-ORG"), tokenizer, 16)
    pieces = [tokenizer.tokenize(t) for t in english.tokens]
    assert [len(p) for p in pieces] == [1, 2, 1]  # zurich ##s
    assert one.arrays["label_mask"][0, :6].tolist() == [0, 1, 1, 0, 1, 0]


def test_sliding_windows_and_max_context():
    assert features.doc_spans(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
    assert features.doc_spans(3, 4, 2) == [(0, 3)]
    spans = features.doc_spans(10, 4, 2)
    for position in range(10):  # each token is scored in exactly one window
        owners = [i for i in range(len(spans)) if features.max_context(spans, i, position)]
        assert len(owners) == 1


def test_reading_features_and_answers_map_back_to_the_original_text(tokenizer):
    questions = processors.read_squad(data("cmrc_train.json"), training=True)
    built = features.reading_features(questions, tokenizer, 128, 16, 12, training=True)
    meta = built.meta
    assert built.count > len(questions)  # the long passages need several windows
    # oracle logits at the gold positions give back every answer's exact text
    results, found = {}, 0
    for index in range(len(meta["windows"])):
        start = built.arrays["start_positions"][index, 0]
        end = built.arrays["end_positions"][index, 0]
        logits = np.full([2, 128], -10.0, np.float32)
        if start:
            found += 1
            logits[0, start], logits[1, end] = 10.0, 10.0
        results[index] = (logits[0], logits[1])
    assert found >= len(questions)
    predicted = answers.predict_answers(meta, results, n_best=20, max_length=40)
    assert predicted == {q.qid: q.answers[0][0] for q in questions}

    # English: lower-cased, accent-stripped WordPiece tokens, original-case text back
    squad = processors.read_squad(data("squad_dev.json"), training=True)
    built = features.reading_features(squad, tokenizer, 40, 12, 8, training=True)
    cafe = next(i for i, q in enumerate(squad) if q.answers[0][0] == "Émile Müller")
    rows = [i for i, w in enumerate(built.meta["windows"]) if w["example"] == cafe
            and built.arrays["start_positions"][i, 0]]
    logits = np.full([2, 40], -10.0, np.float32)
    logits[0, built.arrays["start_positions"][rows[0], 0]] = 10.0
    logits[1, built.arrays["end_positions"][rows[0], 0]] = 10.0
    text = answers.predict_answers(built.meta, {rows[0]: (logits[0], logits[1])}, 20, 30)
    assert text == {squad[cafe].qid: "Émile Müller"}


def test_answer_spans_respect_length_order_and_context():
    # [CLS] q [SEP] then five passage tokens at positions 3..7
    window = {"offset": 3, "doc_start": 0, "doc_length": 5, "max_context": [True] * 5}
    start = np.array([0, 0, 0, 9.0, 0, 0, 0, 0])  # the best start is passage token 0
    end = np.array([9.0, 0, 5.0, 0.5, 0.2, 0.1, 1.0, 0])  # [CLS] and [SEP] are not answers
    assert answers.best_span(start, end, window, 20, 30) == (10.0, 0, 3)
    assert answers.best_span(start, end, window, 20, 3) == (9.5, 0, 0)  # at most 3 tokens
    # the start token must have its max context in this window
    assert answers.best_span(start, end, dict(window, max_context=[False] + [True] * 4), 1,
                             30) is None
    # the end may not come before the start
    late = np.array([0, 0, 0, 0, 0, 9.0, 0, 0])
    early = np.array([0, 0, 0, 9.0, 0, 0, 0, 0])
    assert answers.best_span(late, early, window, 1, 30) is None
