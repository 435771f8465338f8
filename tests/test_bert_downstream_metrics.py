"""Downstream metrics against hand-computed values (no TensorFlow)."""

from __future__ import annotations

import pytest

from plugins.bert.downstream import metrics


def test_accuracy_and_macro_f1():
    gold = [0, 0, 1, 1, 2, 2]
    predicted = [0, 1, 1, 1, 0, 2]
    scores = metrics.classification_metrics(gold, predicted)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    # F1 per label = 2tp / (2tp + fp + fn): 0 -> 2/4, 1 -> 4/5, 2 -> 2/3
    assert scores["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # a label only ever predicted (never gold) counts with F1 0
    assert metrics.classification_metrics([0, 0], [0, 1])["macro_f1"] == pytest.approx(
        (2 / 3 + 0.0) / 2)
    assert metrics.classification_metrics([], []) == {}
    with pytest.raises(ValueError):
        metrics.classification_metrics([0], [0, 1])


@pytest.mark.parametrize("tags,expected", [
    # BIO (IOB2)
    (["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "O"], {("PER", 0, 1), ("LOC", 3, 5)}),
    # a stray I- starts a chunk (conlleval / IOB1)
    (["O", "I-ORG", "I-ORG", "O"], {("ORG", 1, 2)}),
    # a type change inside a chunk ends it
    (["B-PER", "I-LOC"], {("PER", 0, 0), ("LOC", 1, 1)}),
    # B after B: two chunks; an entity that ends the sentence is closed
    (["B-PER", "B-PER", "O", "B-ORG", "I-ORG"], {("PER", 0, 0), ("PER", 1, 1), ("ORG", 3, 4)}),
    # BIOES with single-token entities side by side
    (["S-PER", "O", "B-ORG", "I-ORG", "E-ORG", "S-LOC", "S-LOC"],
     {("PER", 0, 0), ("ORG", 2, 4), ("LOC", 5, 5), ("LOC", 6, 6)}),
    # BMES (M = inside)
    (["B-ORG", "M-ORG", "E-ORG", "O"], {("ORG", 0, 2)}),
    (["O", "O"], set()),
])
def test_conlleval_chunks(tags, expected):
    assert metrics.chunks(tags) == expected


def test_entity_scores_count_exact_spans_only():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    predicted = [["B-PER", "O", "O", "B-LOC", "I-LOC"],    # PER cut short: wrong; LOC right
                 ["O", "B-ORG", "I-ORG", "B-PER"]]         # ORG overlaps but misses its start
    scores = metrics.ner_metrics(gold, predicted)
    # right 1 (the LOC); gold chunks 3; predicted chunks 4
    assert scores["precision"] == pytest.approx(1 / 4)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))
    assert metrics.ner_metrics(gold, gold) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    # nothing predicted: precision 0 (conlleval), not a division error
    none = metrics.ner_metrics(gold, [["O"] * 5, ["O"] * 4])
    assert none == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError):
        metrics.ner_metrics(gold, [["O"] * 5])


def test_squad_exact_match_and_token_f1():
    assert metrics.squad_normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert metrics.squad_normalize("an Apple a day") == "apple day"
    assert metrics.squad_scores("the Eiffel Tower.", ["Eiffel Tower", "Paris"]) == (1.0, 1.0)
    # partial overlap: 1 shared token of 3 predicted, 1 gold -> P 1/3, R 1 -> F1 0.5
    assert metrics.squad_scores("in Paris France", ["Paris"]) == (0.0, pytest.approx(0.5))
    # several answers: the best one counts (CMRC/SQuAD dev sets have three)
    em, f1 = metrics.squad_scores("Denmark and Norway", ["Iceland", "Denmark, Iceland and Norway"])
    assert em == 0.0 and f1 == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    # empty prediction scores 0; an answer that normalizes to nothing matches only ""
    assert metrics.squad_scores("", ["Paris"]) == (0.0, 0.0)
    assert metrics.squad_scores("", ["The"]) == (1.0, 1.0)
    assert metrics.squad_scores("Paris", ["The"]) == (0.0, 0.0)


def test_cmrc_exact_match_and_character_f1():
    assert metrics.cmrc_segments("Google Brain团队") == ["google", "brain", "团", "队"]
    assert metrics.cmrc_segments("全长约3.5公里。") == ["全", "长", "约", "3.5", "公", "里"]
    assert metrics.cmrc_scores("1963年", ["1963年"]) == (1.0, 1.0)
    # CMRC's listed punctuation is ignored by both EM and F1
    assert metrics.cmrc_scores("“诗圣”", ["诗圣"]) == (1.0, 1.0)
    # partial overlap: 5 predicted characters all inside a 12-character answer
    em, f1 = metrics.cmrc_scores("河内总教区", ["天主教河内总教区宗座署理"])
    assert em == 0.0 and f1 == pytest.approx(2 * 1.0 * (5 / 12) / (1 + 5 / 12))
    # the longest common *contiguous* run (CMRC's find_lcs): 2 of 5 and of 4
    assert metrics.cmrc_scores("北京和大学", ["北京大学"])[1] == pytest.approx(
        2 * 0.4 * 0.5 / 0.9)
    # English words are segments, Chinese characters are segments
    assert metrics.cmrc_scores("Google Brain团队", ["Google Brain"])[1] == pytest.approx(2 / 3)
    # multi-answer items: the best answer counts for each metric
    assert metrics.cmrc_scores("约5464公里", ["5464公里", "约5464公里", "5464公里"]) == (1.0, 1.0)
    assert metrics.cmrc_scores("", ["渤海"]) == (0.0, 0.0)


def test_reading_metrics_average_over_the_predicted_questions():
    answers = {"q1": ["渤海", "注入渤海"], "q2": ["子美"], "q3": ["诗圣"]}
    scores = metrics.reading_metrics({"q1": "注入渤海", "q2": "子", "q3": ""}, answers, "cmrc")
    assert scores["em"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1.0 + 2 * 1.0 * 0.5 / 1.5 + 0.0) / 3)
    squad = metrics.reading_metrics({"a": "France"}, {"a": ["France"], "b": ["x"]}, "squad")
    assert squad == {"em": 1.0, "f1": 1.0}
    assert metrics.reading_metrics({}, answers, "cmrc") == {}
