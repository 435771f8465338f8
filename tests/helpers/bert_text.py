"""Real English text for the BERT tests, from Python's own docs (``pydoc_data.topics``).

Each help topic becomes one document, one sentence per line, blank lines between documents
(the input format of create_pretraining_data). Every fifth document is held out for eval.
The corpus, a WordPiece vocab trained on it and the TFRecords made by ``bench data`` are built
once per test process (they take a few seconds) in a temporary folder.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
from functools import lru_cache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEQ, PREDICTIONS, VOCAB = 64, 10, 2000


def documents() -> list[list[str]]:
    from pydoc_data.topics import topics

    docs = []
    for name in sorted(topics):
        text = re.sub(r"\s+", " ", topics[name]).strip()
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
                     if len(s.strip()) > 1]
        if len(sentences) >= 2:
            docs.append(sentences)
    return docs


def write_text(path: str, docs: list[list[str]]) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n\n".join("\n".join(doc) for doc in docs) + "\n")
    return path


@lru_cache(maxsize=None)
def prepared() -> dict[str, str]:
    """Paths: train/eval text, vocab.txt, train/eval TFRecords, a tiny bert_config.json."""
    from harness.testing import run_cli

    folder = tempfile.mkdtemp(prefix="zoobench-bert-")
    atexit.register(shutil.rmtree, folder, True)
    docs = documents()
    paths = {
        "train_text": write_text(os.path.join(folder, "train.txt"),
                                 [d for i, d in enumerate(docs) if i % 5]),
        "eval_text": write_text(os.path.join(folder, "eval.txt"),
                                [d for i, d in enumerate(docs) if not i % 5]),
        "vocab": os.path.join(folder, "vocab.txt"),
        "train": os.path.join(folder, "train.tfrecord"),
        "eval": os.path.join(folder, "eval.tfrecord"),
        "config": os.path.join(folder, "bert_config.json"),
        "folder": folder,
    }
    result = run_cli("data", "vocab", "--input", paths["train_text"], "--size", str(VOCAB),
                     "--output", paths["vocab"])
    assert result.exit_code == 0, result.stderr
    for split, seed, dupe in (("train", 12345, 3), ("eval", 54321, 1)):
        result = run_cli("data", "pretraining", "--input_file", paths[f"{split}_text"],
                         "--output_file", paths[split], "--vocab_file", paths["vocab"],
                         "--do_lower_case=True", "--max_seq_length", str(SEQ),
                         "--max_predictions_per_seq", str(PREDICTIONS), "--masked_lm_prob",
                         "0.15", "--random_seed", str(seed), "--dupe_factor", str(dupe))
        assert result.exit_code == 0, result.stderr
    with open(os.path.join(ROOT, "configs", "bert_tiny_config.json"), encoding="utf-8") as fh:
        config = json.load(fh)
    with open(paths["vocab"], encoding="utf-8") as fh:
        config["vocab_size"] = sum(1 for _ in fh)
    # no dropout: a 2-layer model learns more in the few hundred steps a test can afford
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with open(paths["config"], "w", encoding="utf-8") as fh:
        json.dump(config, fh)
    return paths


def read_records(path: str) -> list[dict[str, tuple[str, list]]]:
    """Every record as feature name -> (kind, values), kind "int64" or "float"."""
    from harness.tfcompat import tf

    out = []
    for raw in tf.data.TFRecordDataset(path):
        feature = tf.train.Example.FromString(raw.numpy()).features.feature
        record = {}
        for name, value in feature.items():
            kind = value.WhichOneof("kind")
            values = list(value.int64_list.value if kind == "int64_list"
                          else value.float_list.value)
            record[name] = (kind.replace("_list", ""), values)
        out.append(record)
    return out
