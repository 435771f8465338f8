"""Google BERT's create_pretraining_data: documents -> masked-LM / next-sentence TFRecords.

A port of ``create_pretraining_data.py`` (google-research/bert, used as is by the seed) that keeps
its random draws in the same order, so the same text, vocab and seed give the same instances:
documents are blank-line separated with one sentence per line; each instance is
``[CLS] A [SEP] B [SEP]`` where B is the true continuation or, half of the time, a random
document's text; 15% of the tokens (at most ``max_predictions_per_seq``) are predicted, of
which 80% become [MASK], 10% a random vocabulary word and 10% stay as they were.
"""

from __future__ import annotations

import glob
import os
import random
from dataclasses import dataclass

from harness import BenchError, open_user_text

FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "masked_lm_weights", "next_sentence_labels")


@dataclass
class TrainingInstance:
    tokens: list[str]
    segment_ids: list[int]
    masked_lm_positions: list[int]
    masked_lm_labels: list[str]
    is_random_next: bool


def expand_inputs(spec: str) -> list[str]:
    """Comma-separated files or globs (the seed's ``--input_file``), in order."""
    files: list[str] = []
    for pattern in [p.strip() for p in spec.split(",") if p.strip()]:
        matched = sorted(glob.glob(pattern))
        if not matched:
            raise BenchError(f"{pattern}: --input_file: no such file")
        files.extend(matched)
    if not files:
        raise BenchError("--input_file: no input files given")
    return files


def read_documents(input_files: list[str], tokenizer) -> list[list[list[str]]]:
    """Documents (lists of tokenized sentences); blank lines separate documents."""
    documents: list[list[str]] = [[]]
    for path in input_files:
        try:
            with open_user_text(path, "input file") as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        documents.append([])
                    else:
                        documents[-1].append(line)
        except UnicodeDecodeError as exc:
            raise BenchError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    documents = [d for d in documents if d]
    tokenized = []
    for doc in documents:
        sentences = [tokens for tokens in tokenizer.tokenize_batch(doc) if tokens]
        if sentences:
            tokenized.append(sentences)
    return tokenized


def create_training_instances(documents: list[list[list[str]]], vocab_words: list[str],
                              max_seq_length: int, dupe_factor: int, short_seq_prob: float,
                              masked_lm_prob: float, max_predictions_per_seq: int,
                              rng: random.Random, do_whole_word_mask: bool = False,
                              ) -> list[TrainingInstance]:
    documents = list(documents)
    rng.shuffle(documents)
    instances: list[TrainingInstance] = []
    for _ in range(dupe_factor):
        for index in range(len(documents)):
            instances.extend(instances_from_document(
                documents, index, max_seq_length, short_seq_prob, masked_lm_prob,
                max_predictions_per_seq, vocab_words, rng, do_whole_word_mask))
    rng.shuffle(instances)
    return instances


def instances_from_document(documents, document_index, max_seq_length, short_seq_prob,
                            masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
                            do_whole_word_mask=False) -> list[TrainingInstance]:
    document = documents[document_index]
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]
    # Mostly fill the sequence; sometimes (short_seq_prob) a shorter one, to lessen the
    # pretraining/fine-tuning length mismatch.
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)
    instances = []
    chunk: list[list[str]] = []
    length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        chunk.append(segment)
        length += len(segment)
        if i == len(document) - 1 or length >= target_seq_length:
            if chunk:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = [t for seg in chunk[:a_end] for t in seg]
                tokens_b: list[str] = []
                if len(chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_index = rng.randint(0, len(documents) - 1)
                        if random_index != document_index:
                            break
                    random_document = documents[random_index]
                    start = rng.randint(0, len(random_document) - 1)
                    for j in range(start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The segments not used as A go back to be used by the next chunk.
                    i -= len(chunk) - a_end
                else:
                    is_random_next = False
                    tokens_b = [t for seg in chunk[a_end:] for t in seg]
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                tokens = ["[CLS]", *tokens_a, "[SEP]", *tokens_b, "[SEP]"]
                segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                tokens, positions, labels = create_masked_lm_predictions(
                    tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
                    do_whole_word_mask)
                instances.append(TrainingInstance(tokens, segment_ids, positions, labels,
                                                  is_random_next))
            chunk = []
            length = 0
        i += 1
    return instances


def create_masked_lm_predictions(tokens, masked_lm_prob, max_predictions_per_seq, vocab_words,
                                 rng, do_whole_word_mask=False):
    """Pick and corrupt the tokens to predict; returns (tokens, positions, labels)."""
    candidates: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if do_whole_word_mask and candidates and token.startswith("##"):
            candidates[-1].append(i)
        else:
            candidates.append([i])
    rng.shuffle(candidates)
    output = list(tokens)
    num_to_predict = min(max_predictions_per_seq,
                         max(1, int(round(len(tokens) * masked_lm_prob))))
    masked: list[tuple[int, str]] = []
    covered: set[int] = set()
    for index_set in candidates:
        if len(masked) >= num_to_predict:
            break
        if len(masked) + len(index_set) > num_to_predict:
            continue
        if any(index in covered for index in index_set):
            continue
        for index in index_set:
            covered.add(index)
            if rng.random() < 0.8:
                replacement = "[MASK]"
            elif rng.random() < 0.5:
                replacement = tokens[index]
            else:
                replacement = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            output[index] = replacement
            masked.append((index, tokens[index]))
    masked.sort(key=lambda item: item[0])
    return output, [m[0] for m in masked], [m[1] for m in masked]


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng) -> None:
    """Trim the longer side, randomly from its front or back, until the pair fits."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()


def instance_features(instance: TrainingInstance, tokenizer, max_seq_length: int,
                      max_predictions_per_seq: int) -> dict[str, list]:
    """The padded feature lists of one instance (Google's write_instance_to_example_files)."""
    input_ids = tokenizer.convert_tokens_to_ids(instance.tokens)
    pad = max_seq_length - len(input_ids)
    positions = list(instance.masked_lm_positions)
    ids = tokenizer.convert_tokens_to_ids(instance.masked_lm_labels)
    pad_p = max_predictions_per_seq - len(positions)
    return {
        "input_ids": input_ids + [0] * pad,
        "input_mask": [1] * len(input_ids) + [0] * pad,
        "segment_ids": list(instance.segment_ids) + [0] * pad,
        "masked_lm_positions": positions + [0] * pad_p,
        "masked_lm_ids": ids + [0] * pad_p,
        "masked_lm_weights": [1.0] * len(ids) + [0.0] * pad_p,
        "next_sentence_labels": [1 if instance.is_random_next else 0],
    }


def write_examples(instances: list[TrainingInstance], tokenizer, max_seq_length: int,
                   max_predictions_per_seq: int, output_files: list[str]) -> int:
    """Write the instances round-robin over ``output_files`` as tf.train.Example records."""
    from harness.tfcompat import tf

    def int_feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    def float_feature(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))

    writers = [tf.io.TFRecordWriter(path) for path in output_files]
    try:
        for index, instance in enumerate(instances):
            feats = instance_features(instance, tokenizer, max_seq_length,
                                      max_predictions_per_seq)
            example = tf.train.Example(features=tf.train.Features(feature={
                name: (float_feature(values) if name == "masked_lm_weights"
                       else int_feature(values))
                for name, values in feats.items()}))
            writers[index % len(writers)].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return len(instances)


@dataclass(frozen=True)
class PretrainingDataOptions:
    input_file: str
    output_file: str
    vocab_file: str
    do_lower_case: bool = True
    do_whole_word_mask: bool = False
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    random_seed: int = 12345
    dupe_factor: int = 10
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1

    def check(self) -> None:
        if self.max_seq_length < 5:
            raise BenchError(f"--max_seq_length: must be >= 5, got {self.max_seq_length}")
        if self.max_predictions_per_seq < 1:
            raise BenchError("--max_predictions_per_seq: must be >= 1")
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise BenchError(f"--masked_lm_prob: must be in (0, 1), got {self.masked_lm_prob}")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise BenchError(f"--short_seq_prob: must be in [0, 1], got {self.short_seq_prob}")
        if self.dupe_factor < 1:
            raise BenchError(f"--dupe_factor: must be >= 1, got {self.dupe_factor}")


def create_pretraining_data(opts: PretrainingDataOptions) -> tuple[int, list[str]]:
    """The whole command: read, tokenize, build instances, write; returns (count, outputs)."""
    from plugins.bert.tokenizer import WordPieceTokenizer

    opts.check()
    inputs = expand_inputs(opts.input_file)
    outputs = [p.strip() for p in opts.output_file.split(",") if p.strip()]
    if not outputs:
        raise BenchError("--output_file: no output file given")
    for path in outputs:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise BenchError(f"{path}: --output_file: folder {folder} does not exist")
    tokenizer = WordPieceTokenizer(opts.vocab_file, opts.do_lower_case)
    documents = read_documents(inputs, tokenizer)
    if not documents:
        raise BenchError(f"{inputs[0]}: --input_file: no text found")
    rng = random.Random(opts.random_seed)
    instances = create_training_instances(
        documents, tokenizer.vocab_words, opts.max_seq_length, opts.dupe_factor,
        opts.short_seq_prob, opts.masked_lm_prob, opts.max_predictions_per_seq, rng,
        opts.do_whole_word_mask)
    count = write_examples(instances, tokenizer, opts.max_seq_length,
                           opts.max_predictions_per_seq, outputs)
    return count, outputs
