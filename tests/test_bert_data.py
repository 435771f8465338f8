"""BERT data: WordPiece tokenizer, `bench data vocab`, `bench data pretraining` (Google's spec)."""

from __future__ import annotations

import os
import random
from collections import Counter

import bert_text
import pytest

from harness.errors import BenchError
from plugins.bert import pretraining_data
from plugins.bert.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer

FEATURES = {"input_ids": ("int64", 64), "input_mask": ("int64", 64),
            "segment_ids": ("int64", 64), "masked_lm_positions": ("int64", 10),
            "masked_lm_ids": ("int64", 10), "masked_lm_weights": ("float", 10),
            "next_sentence_labels": ("int64", 1)}


def write_vocab(folder, tokens) -> str:
    path = os.path.join(folder, "vocab.txt")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join([*SPECIAL_TOKENS, *tokens]) + "\n")
    return path


def test_tokenizer_follows_bert_basic_and_wordpiece_rules(tmp_path):
    vocab = write_vocab(tmp_path, ["hello", "world", "un", "##aff", "##able", ",", "!",
                                   "我", "爱", "北", "京", "Hello"])
    lower = WordPieceTokenizer(vocab, do_lower_case=True)
    # lower case + accent stripping, punctuation split, greedy longest-match "##" pieces
    assert lower.tokenize("Héllo, WORLD! unaffable") == [
        "hello", ",", "world", "!", "un", "##aff", "##able"]
    # CJK characters become one token each, even without spaces; unknown words -> [UNK]
    assert lower.tokenize("我爱北京xyz") == ["我", "爱", "北", "京", "[UNK]"]
    assert lower.convert_tokens_to_ids(["[CLS]", "hello", "nope"]) == [2, 5, 1]
    cased = WordPieceTokenizer(vocab, do_lower_case=False)
    assert cased.tokenize("Hello hello") == ["Hello", "hello"]


def test_vocab_file_without_special_tokens_is_one_line_error(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(BenchError, match=r"vocab.txt: missing special token \[CLS\]"):
        WordPieceTokenizer(str(path))


def test_bench_data_vocab_trains_wordpiece_on_real_text():
    paths = bert_text.prepared()
    with open(paths["vocab"], encoding="utf-8") as fh:
        tokens = fh.read().split("\n")[:-1]
    assert tokens[:5] == list(SPECIAL_TOKENS)
    assert 1000 < len(tokens) <= bert_text.VOCAB
    assert any(t.startswith("##") for t in tokens) and "the" in tokens
    tok = WordPieceTokenizer(paths["vocab"])
    pieces = tok.tokenize("The interpreter raises an exception")
    assert "[UNK]" not in pieces and pieces[0] == "the"


def test_whole_word_masking_masks_every_piece_of_a_word():
    tokens = ["[CLS]", "un", "##aff", "##able", "is", "[SEP]", "word", "##s", "[SEP]"]
    for seed in range(20):
        out, positions, labels = pretraining_data.create_masked_lm_predictions(
            tokens, 0.5, 20, ["x"], random.Random(seed), do_whole_word_mask=True)
        words = [{1, 2, 3}, {4}, {6, 7}]
        assert all(w <= set(positions) or not (w & set(positions)) for w in words)
        assert labels == [tokens[p] for p in positions] and positions == sorted(positions)


def test_pretraining_records_match_google_bert_spec():
    paths = bert_text.prepared()
    vocab = WordPieceTokenizer(paths["vocab"]).vocab
    cls, sep, mask = vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"]
    records = bert_text.read_records(paths["train"])
    assert len(records) > 1000
    outcome = Counter()
    next_labels = []
    for rec in records:
        assert {k: (kind, len(v)) for k, (kind, v) in rec.items()} == FEATURES
        ids, input_mask = rec["input_ids"][1], rec["input_mask"][1]
        segments, positions = rec["segment_ids"][1], rec["masked_lm_positions"][1]
        labels, weights = rec["masked_lm_ids"][1], rec["masked_lm_weights"][1]
        n = sum(input_mask)
        assert input_mask == [1] * n + [0] * (64 - n)
        assert ids[n:] == [0] * (64 - n) and segments[n:] == [0] * (64 - n)
        # [CLS] A [SEP] B [SEP]: segment 0 up to and including the first [SEP], then 1
        a_len = segments[:n].index(1)
        assert segments[:n] == [0] * a_len + [1] * (n - a_len) and a_len >= 3 and n - a_len >= 2
        assert ids[0] == cls and ids[a_len - 1] == sep and ids[n - 1] == sep
        count = min(10, max(1, round(n * 0.15)))
        assert weights == [1.0] * count + [0.0] * (10 - count)
        picked = positions[:count]
        assert picked == sorted(set(picked)) and positions[count:] == [0] * (10 - count)
        assert all(0 < p < n - 1 and p != a_len - 1 for p in picked)  # never [CLS]/[SEP]
        assert labels[count:] == [0] * (10 - count)
        assert cls not in labels[:count] and sep not in labels[:count]
        for p, label in zip(picked, labels):
            outcome["mask" if ids[p] == mask else "kept" if ids[p] == label else "random"] += 1
        next_labels.append(rec["next_sentence_labels"][1][0])
    total = sum(outcome.values())
    assert total > 10000
    # 80% [MASK], 10% unchanged, 10% random word (a random word equals the label ~1/2000)
    assert abs(outcome["mask"] / total - 0.8) < 0.02, outcome
    assert abs(outcome["kept"] / total - 0.1) < 0.02, outcome
    assert abs(outcome["random"] / total - 0.1) < 0.02, outcome
    # random B half the time, and always when a chunk holds one (long) sentence
    assert set(next_labels) == {0, 1} and 0.45 < sum(next_labels) / len(next_labels) < 0.8


def test_next_sentence_pairs_are_true_continuations_or_random_half_the_time():
    # sentences of unique tokens "d<doc>s<sentence>w<word>" make every pair traceable
    docs = [[[f"d{d}s{s}w{w}" for w in range(4)] for s in range(30)] for d in range(20)]
    rng = random.Random(3)
    instances = pretraining_data.create_training_instances(
        docs, ["x"], max_seq_length=40, dupe_factor=3, short_seq_prob=0.1,
        masked_lm_prob=0.15, max_predictions_per_seq=5, rng=rng)
    randoms = 0
    for inst in instances:
        tokens = list(inst.tokens)
        for position, label in zip(inst.masked_lm_positions, inst.masked_lm_labels):
            tokens[position] = label
        sep = tokens.index("[SEP]")
        a, b = tokens[1:sep], tokens[sep + 1:-1]
        doc_a, doc_b = a[-1].split("s")[0], b[0].split("s")[0]
        if inst.is_random_next:
            randoms += 1
            assert doc_a != doc_b
        else:  # B starts right after A, in the same document
            assert doc_a == doc_b
            assert int(b[0].split("s")[1].split("w")[0]) == int(a[-1].split("s")[1].split("w")[0]) + 1
        assert len(tokens) <= 40 and inst.segment_ids == [0] * (sep + 1) + [1] * (len(b) + 1)
    assert abs(randoms / len(instances) - 0.5) < 0.07, (randoms, len(instances))


def test_pretraining_data_is_reproducible_from_the_seed(tmp_path, bench_cli):
    paths = bert_text.prepared()
    outputs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = str(tmp_path / f"{name}.tfrecord")
        result = bench_cli("data", "pretraining", "--input_file", paths["eval_text"],
                           "--output_file", out, "--vocab_file", paths["vocab"],
                           "--max_seq_length", "64", "--max_predictions_per_seq", "10",
                           "--random_seed", str(seed), "--dupe_factor", "1")
        assert result.exit_code == 0, result.stderr
        assert "instances" in result.stdout
        with open(out, "rb") as fh:
            outputs.append(fh.read())
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]


def test_pretraining_command_bad_input_names_the_file(tmp_path, bench_cli):
    paths = bert_text.prepared()
    missing = str(tmp_path / "nope.txt")
    result = bench_cli("data", "pretraining", "--input_file", paths["eval_text"],
                       "--output_file", str(tmp_path / "x.tfrecord"), "--vocab_file", missing)
    assert result.exit_code == 2
    assert f"{missing}: no such vocabulary file" in result.stderr
    result = bench_cli("data", "pretraining", "--input_file", missing, "--output_file",
                       str(tmp_path / "x.tfrecord"), "--vocab_file", paths["vocab"])
    assert result.exit_code == 2 and f"{missing}: --input_file: no such file" in result.stderr
    result = bench_cli("data", "vocab", "--input", missing, "--output", str(tmp_path / "v.txt"))
    assert result.exit_code == 2 and f"{missing}: no such input file" in result.stderr


def test_data_group_is_shared_between_plugins():
    import click

    from harness.datacli import data_group

    @click.group()
    def cli():
        pass

    group = data_group(cli)
    group.add_command(click.Command("images", callback=lambda: None))
    assert data_group(cli) is group and set(cli.commands["data"].commands) >= {"images"}
