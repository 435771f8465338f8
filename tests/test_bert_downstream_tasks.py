"""BERT finetuning through `bench run`: a tiny BERT learns each task on the committed files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from harness.plugins import load_plugins
from harness.run import plan
from harness.testing import write_case

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "bert_downstream")


def data(name: str) -> str:
    return os.path.join(DATA, name)


def case(tmp_path, task: str, source: str, train_file: str, eval_file: str, **extra) -> dict:
    params = {"task": task, "bert_config": data("bert_config.json"),
              "vocab_file": data("vocab.txt"), "max_seq_length": 64, "learning_rate": 2e-3,
              "warmup_proportion": 0.05, "adam_epsilon": 1e-6,
              "feature_cache": str(tmp_path / "features"), **extra.pop("params", {})}
    return {"model": "bert", "device": "cpu", "batch_size": 8,
            "data": {"source": source, "path": data(train_file), "eval_path": data(eval_file)},
            "train": {"steps": 100, "warmup_steps": 2, "log_every": 25},
            "params": params, **extra}


def ok_result(outcome) -> dict:
    report = outcome.report
    assert report["status"] == "ok", [r.get("error") for r in report["results"]]
    result = report["results"][0]
    print(report["case"]["params"]["task"], result["accuracy"])
    assert result["throughput"]["samples_per_sec"] > 0 and result["mfu"] > 0
    assert result["loss"]["last"] < result["loss"]["first"]
    return result


# Memorising the train file and scoring on it checks the whole chain: features line up with
# their labels, the heads learn, predictions map back to labels, tags and answer text.


def test_classifier_learns_lcqmc(bench_run, tmp_path):
    outcome = bench_run(case(tmp_path, "classifier", "lcqmc", "lcqmc_train.tsv",
                             "lcqmc_train.tsv"))
    result = ok_result(outcome)
    assert set(result["accuracy"]) == {"accuracy", "macro_f1"}
    assert result["accuracy"]["accuracy"] >= 0.9 and result["accuracy"]["macro_f1"] >= 0.9
    assert result["data_source"] == "lcqmc"
    assert outcome.report["case"]["params"]["task"] == "classifier"


def test_ner_learns_entities(bench_run, tmp_path):
    outcome = bench_run(case(tmp_path, "ner", "conll", "ner_train.txt", "ner_train.txt",
                             params={"max_seq_length": 32}))
    result = ok_result(outcome)
    assert set(result["accuracy"]) == {"precision", "recall", "f1"}
    assert result["accuracy"]["f1"] >= 0.8


def test_reading_learns_cmrc_answers(bench_run, tmp_path):
    outcome = bench_run(case(tmp_path, "reading", "cmrc", "cmrc_train.json", "cmrc_train.json",
                             batch_size=4, train={"steps": 160, "warmup_steps": 2,
                                                  "log_every": 40},
                             params={"doc_stride": 32, "max_query_length": 24,
                                     "max_answer_length": 40, "do_lower_case": False}))
    result = ok_result(outcome)
    assert set(result["accuracy"]) == {"em", "f1"}
    # exact match needs the predicted token span mapped back to the passage's exact text
    assert result["accuracy"]["em"] >= 0.7 and result["accuracy"]["f1"] >= result["accuracy"]["em"]


def test_xnli_on_two_devices_in_mixed_precision(bench_run, tmp_path):
    spec = case(tmp_path, "classifier", "xnli", "xnli_train.tsv", "xnli_dev.tsv",
                devices=[1, 2], precision="mixed", batch_size=2,
                train={"epochs": 1, "warmup_steps": 1, "log_every": 1})
    outcome = bench_run(spec)
    assert outcome.report["status"] == "ok", [r.get("error") for r in outcome.report["results"]]
    one, two = outcome.report["results"]
    assert (one["global_batch_size"], two["global_batch_size"]) == (2, 4)
    # one epoch of the 12 training pairs: 6 steps of 2, 3 of 4
    assert (one["warmup_steps"] + one["measured_steps"],
            two["warmup_steps"] + two["measured_steps"]) == (6, 3)
    for result in (one, two):
        assert 0.0 <= result["accuracy"]["accuracy"] <= 1.0  # the 6 Chinese dev pairs
    assert outcome.report["device_options"]["precision_mode"] == "allow_mix_precision"


def test_shipped_tiny_cases_run(bench_cli, tmp_path):
    out = tmp_path / "reports"
    result = bench_cli("run", os.path.join(ROOT, "cases", "bert_downstream_tiny.yaml"),
                       "--set", "train.epochs=1", "--set", "train.warmup_steps=1",
                       "--set", f"params.feature_cache={tmp_path / 'features'}",
                       "--out", str(out))
    assert result.exit_code == 0, result.stdout + result.stderr
    reports = [json.loads((folder / "report.json").read_text()) for folder in out.iterdir()]
    metrics = {r["case"]["name"]: set(r["results"][0]["accuracy"]) for r in reports}
    assert metrics == {"bert_classifier_lcqmc_tiny": {"accuracy", "macro_f1"},
                       "bert_ner_tiny": {"precision", "recall", "f1"},
                       "bert_reading_cmrc_tiny": {"em", "f1"}}


def load(tmp_path, spec: dict):
    _, (loaded,) = plan.load([write_case(tmp_path, spec)], [], plugins=load_plugins())
    return loaded


def test_features_are_cached_tfrecords_keyed_by_their_inputs(tmp_path):
    from harness.tfcompat import tf
    from plugins.bert.downstream import tasks

    train = tmp_path / "train.txt"
    train.write_text(open(data("ner_train.txt"), encoding="utf-8").read(), encoding="utf-8")
    spec = case(tmp_path, "ner", "conll", "ner_train.txt", "ner_dev.txt")
    spec["data"]["path"] = str(train)
    path, meta = tasks.records(load(tmp_path, spec), training=True)
    assert os.path.dirname(path) == str(tmp_path / "features")
    records = list(tf.data.TFRecordDataset(path))
    assert len(records) == meta["count"] and meta["shapes"]["label_ids"] == 64
    example = tf.train.Example.FromString(records[0].numpy()).features.feature
    assert sorted(example) == ["example_index", "input_ids", "input_mask", "label_ids",
                               "label_mask", "segment_ids"]
    stamp = os.stat(path).st_mtime_ns
    assert tasks.records(load(tmp_path, spec), training=True)[0] == path
    assert os.stat(path).st_mtime_ns == stamp  # reused, not rewritten
    with open(train, "a", encoding="utf-8") as fh:
        fh.write("\n王 B-PER\n五 I-PER\n")
    changed, meta2 = tasks.records(load(tmp_path, spec), training=True)
    assert changed != path and meta2["count"] == meta["count"] + 1
    other = dict(spec, params={**spec["params"], "max_seq_length": 32})
    assert tasks.records(load(tmp_path, other), training=True)[0] not in (path, changed)


def test_init_checkpoint_fills_the_encoder_by_google_name(tmp_path):
    from test_bert_model import write_google_checkpoint

    import plugins.bert as plugin
    from harness.context import RunContext
    from plugins.bert import modeling
    from plugins.bert.config import load_config

    config = load_config(data("bert_config.json"))
    pretrained = modeling.build_model(config)
    pretrained(modeling.dummy_features(1, 8, 1), training=False)
    shapes = {n: v.shape.as_list() for n, v in modeling.google_variable_map(pretrained).items()}
    values = write_google_checkpoint(str(tmp_path / "model.ckpt-100"), shapes)
    spec = case(tmp_path, "classifier", "chnsenticorp", "chnsenticorp.tsv", "chnsenticorp.tsv",
                params={"init_checkpoint": str(tmp_path / "model.ckpt-100"),
                        "warmup_proportion": 0.1})
    loaded = load(tmp_path, spec)
    built = plugin.BertTask(loaded).build_model(RunContext(1, 8, 8, train_steps=10))
    model = built.model
    np.testing.assert_array_equal(model.embeddings.word_embeddings.numpy(),
                                  values["bert/embeddings/word_embeddings"])
    np.testing.assert_array_equal(model.encoder_layers[1].output_dense.kernel.numpy(),
                                  values["bert/encoder/layer_1/output/dense/kernel"])
    np.testing.assert_array_equal(model.pooler.kernel.numpy(), values["bert/pooler/dense/kernel"])
    # the classifier trains the encoder, the pooler and its own output layer, not the
    # pretraining heads (they would get no gradients)
    names = {v.name for v in model.trainable_variables}
    assert len(model.trainable_variables) == 5 + 16 * 2 + 2 + 2
    assert not any("transform" in n or "nsp" in n for n in names)
    assert built.extra["labels"] == ["0", "1"] and model.output_weights.shape == (2, 32)
    assert model(modeling.dummy_features(3, 16, 1))["logits"].shape == (3, 2)
    # the seed's schedule: 10% of the 10 steps warm up, then linear decay to 0
    schedule = built.optimizer.learning_rate
    assert float(schedule(0)) == 0.0 and float(schedule(1)) == pytest.approx(0.9 * 2e-3)
    assert float(schedule(10)) == pytest.approx(0.0)


def test_training_shards_are_equal_and_cover_the_records(tmp_path):
    from harness.context import RunContext
    from plugins.bert.downstream import features, records

    count = 41
    arrays = {"input_ids": np.arange(count * 4, dtype=np.int32).reshape(count, 4),
              "input_mask": np.ones([count, 4], np.int32),
              "segment_ids": np.zeros([count, 4], np.int32),
              "label_ids": np.arange(count, dtype=np.int32)[:, None]}
    path = str(tmp_path / "train.tfrecord")
    records.write(path, features.Features(arrays, {"labels": ["a"]}))
    meta = records.load_meta(path)
    assert meta["count"] == count and meta["labels"] == ["a"]
    seen = []
    for worker in range(2):  # two input pipelines (process launch), 5 examples each per step
        ctx = RunContext(2, 5, 10, num_input_pipelines=2, input_pipeline_id=worker)
        dataset = records.dataset(path, meta, ctx, training=True, seed=0)
        assert int(dataset.cardinality()) == 4  # 20 records each: the same steps per epoch
        for inputs, labels in dataset:
            assert inputs["input_ids"].shape == (5, 4) and inputs["input_ids"].dtype.name == "int32"
            seen += labels["label_ids"][:, 0].numpy().tolist()
    assert len(seen) == len(set(seen)) == 40
    ctx = RunContext(1, 8, 8)
    evaluation = records.dataset(path, meta, ctx, training=False, seed=0)
    order = [int(x) for _, labels in evaluation for x in labels["label_ids"][:, 0]]
    assert order == list(range(count))  # eval: every record, in file order, last batch short
