"""BERT model: bert_config.json, BERT-base / NEZHA layers, Google checkpoints, the optimizer."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from harness.errors import BenchError
from plugins.bert import modeling, recipe
from plugins.bert.checkpoint import load_google_checkpoint
from plugins.bert.config import BertConfig, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 32, "type_vocab_size": 2}


def features(batch=2, seq=12, predictions=3, seed=0):
    from harness.tfcompat import tf

    rng = np.random.default_rng(seed)
    mask = np.ones([batch, seq], np.int32)
    mask[0, seq - 3:] = 0
    return {"input_ids": tf.constant(rng.integers(0, 50, [batch, seq]), tf.int32),
            "input_mask": tf.constant(mask),
            "segment_ids": tf.constant([[0] * (seq // 2) + [1] * (seq - seq // 2)] * batch),
            "masked_lm_positions": tf.constant([[1, 3, 5]] * batch, tf.int32)}


def test_config_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "bert_config.json"
    cases = [({**TINY, "hidden_sise": 3}, "hidden_sise: unknown key"),
             ({k: v for k, v in TINY.items() if k != "vocab_size"}, "vocab_size: missing"),
             ({**TINY, "num_hidden_layers": "two"}, "num_hidden_layers: expected an integer"),
             ({**TINY, "num_attention_heads": 3}, "num_attention_heads: hidden_size 16 is not"),
             ({**TINY, "hidden_act": "gelu2"}, "hidden_act: expected one of")]
    for data, message in cases:
        path.write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(BenchError, match=f"^{path}: {message}"):
            BertConfig.from_json(str(path))
    with pytest.raises(BenchError, match="nope.json: no such bert_config file"):
        load_config("nope.json")


def test_shipped_configs_are_bert_base_and_nezha_large():
    base = load_config("configs/bert_base_config.json")
    nezha = load_config("configs/nezha_large_config.json")
    tiny = load_config("configs/bert_tiny_config.json")
    assert (base.hidden_size, base.num_hidden_layers, base.num_attention_heads,
            base.vocab_size, base.use_relative_position) == (768, 12, 12, 30522, False)
    assert (nezha.hidden_size, nezha.num_hidden_layers, nezha.vocab_size,
            nezha.use_relative_position, nezha.max_relative_position) == (1024, 24, 21128, True, 64)
    assert tiny.num_hidden_layers == 2
    # BERT-base forward at seq 128, 20 predictions: 2 x 85M encoder weights x 128 tokens
    # + attention (0.6 G) + the MLM head on 20 positions (1 G) = 23.3 GFLOPs per sequence
    assert 23.2e9 < modeling.forward_flops(base, 128, 20) < 23.4e9


def test_bert_base_has_googles_parameter_count():
    model = modeling.build_model(load_config("configs/bert_base_config.json"))
    model(modeling.dummy_features(1, 8, 2), training=False)
    names = modeling.google_variable_map(model)
    assert len(names) == len(model.trainable_variables) == 5 + 16 * 12 + 2 + 4 + 1 + 2
    count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    # bert/ 109,482,240 (Google's uncased_L-12_H-768_A-12) + cls/ heads 624,188
    assert count == 109_482_240 + 624_188


def test_outputs_padding_and_the_tied_mlm_weights():
    from harness.tfcompat import tf

    model = modeling.build_model(BertConfig(**TINY))
    feats = features()
    out = model(feats, training=False)
    assert out["masked_lm_logits"].shape == (2, 3, 50)
    assert out["next_sentence_logits"].shape == (2, 2)
    # padded positions (input_mask 0) do not change the outputs
    changed = dict(feats, input_ids=tf.tensor_scatter_nd_update(
        feats["input_ids"], [[0, 11]], [7]))
    again = model(changed, training=False)
    np.testing.assert_allclose(out["masked_lm_logits"], again["masked_lm_logits"], atol=1e-5)
    # the MLM output matrix is the word embedding table
    emb = model.embeddings.word_embeddings
    emb.assign(emb * 2.0)
    assert not np.allclose(out["masked_lm_logits"], model(feats)["masked_lm_logits"])


def test_nezha_uses_functional_relative_positions():
    config = BertConfig(**{**TINY, "use_relative_position": True, "max_relative_position": 3})
    table = modeling.relative_positions_table(6, 4, 3).numpy()
    assert table.shape == (6, 6, 4)
    # entry (i, j) encodes clip(j - i, -3, 3) + 3 as [sin(p), cos(p), sin(p/100), cos(p/100)]
    p = np.clip(5 - 0, -3, 3) + 3
    np.testing.assert_allclose(table[0, 5], [np.sin(p), np.cos(p), np.sin(p / 100),
                                             np.cos(p / 100)], rtol=1e-5)
    np.testing.assert_allclose(table[2, 2], table[0, 0])  # same distance, same encoding
    np.testing.assert_allclose(table[0, 5], table[1, 5])  # distances 5 and 4 both clip to 3
    assert not np.allclose(table[0, 1], table[1, 0])      # direction matters
    model = modeling.build_model(config)
    out = model(features(seq=40), training=False)  # longer than max_position_embeddings
    assert out["masked_lm_logits"].shape == (2, 3, 50)
    names = modeling.google_variable_map(model)
    assert "bert/embeddings/position_embeddings" not in names
    assert "bert/encoder/layer_1/attention/self/query/kernel" in names


def write_google_checkpoint(prefix: str, shapes: dict[str, list[int]], seed: int = 1) -> dict:
    """A TF1 name-based checkpoint, as Google's run_pretraining.py saves it."""
    from harness.tfcompat import tf

    rng = np.random.default_rng(seed)
    values = {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}
    values["global_step"] = np.int64(1000)
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=value)
                     for name, value in values.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, prefix)
    return values


def test_google_checkpoint_loads_by_name(tmp_path):
    model = modeling.build_model(BertConfig(**TINY))
    model(features(), training=False)
    names = modeling.google_variable_map(model)
    shapes = {name: var.shape.as_list() for name, var in names.items()}
    values = write_google_checkpoint(str(tmp_path / "model.ckpt"), shapes)
    done = load_google_checkpoint(model, str(tmp_path))  # a folder: its latest checkpoint
    assert sorted(done["loaded"]) == sorted(names) and done["missing"] == []
    for name, var in names.items():
        np.testing.assert_array_equal(var.numpy(), values[name])

    # a wrong shape names the variable; a checkpoint of something else is refused
    shapes["bert/encoder/layer_1/intermediate/dense/kernel"] = [16, 64]
    write_google_checkpoint(str(tmp_path / "bad" / "model.ckpt"), shapes)
    with pytest.raises(BenchError, match="layer_1/intermediate/dense/kernel: shape"):
        load_google_checkpoint(model, str(tmp_path / "bad" / "model.ckpt"))
    write_google_checkpoint(str(tmp_path / "other" / "ckpt"), {"resnet/conv1/kernel": [3, 3]})
    with pytest.raises(BenchError, match="no BERT variables"):
        load_google_checkpoint(model, str(tmp_path / "other" / "ckpt"))


def test_init_checkpoint_param_loads_through_build_model(tmp_path):
    import plugins.bert as plugin
    from harness.context import RunContext
    from harness.plugins import load_plugins
    from harness.run.plan import load
    from harness.testing import write_case

    config_path = tmp_path / "bert_config.json"
    config_path.write_text(json.dumps(TINY), encoding="utf-8")
    model = modeling.build_model(BertConfig(**TINY))
    model(features(), training=False)
    shapes = {n: v.shape.as_list() for n, v in modeling.google_variable_map(model).items()
              if n.startswith("bert/")}
    values = write_google_checkpoint(str(tmp_path / "model.ckpt-1000"), shapes)
    case = write_case(tmp_path, {"model": "bert", "params": {
        "bert_config": str(config_path), "max_seq_length": 12, "max_predictions_per_seq": 3,
        "init_checkpoint": str(tmp_path / "model.ckpt-1000")}})
    _, (loaded,) = load([case], [], plugins=load_plugins())
    spec = plugin.BertTask(loaded).build_model(RunContext(1, 2, 2, train_steps=10))
    names = modeling.google_variable_map(spec.model)
    np.testing.assert_array_equal(names["bert/embeddings/word_embeddings"].numpy(),
                                  values["bert/embeddings/word_embeddings"])
    assert spec.flops_per_sample > 0


def test_optimizer_is_googles_adam_weight_decay():
    from harness.tfcompat import tf

    kernel = tf.Variable([[1.0, -2.0], [0.5, 3.0]], name="dense/kernel")
    bias = tf.Variable([0.1, -0.1], name="dense/bias")
    norm = tf.Variable([1.0, 1.0], name="LayerNorm/gamma")
    lr, wd, eps, b1, b2 = 0.1, 0.01, 1e-4, 0.9, 0.999
    opt = recipe.adam_weight_decay(lr, wd, eps, clip_norm=1.0)
    grads = [np.array([[3.0, 0.0], [4.0, 0.0]]), np.array([0.0, 0.0]), np.array([0.0, 0.0])]
    params = [v.numpy().astype(np.float64) for v in (kernel, bias, norm)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for _ in range(2):
        opt.apply_gradients(zip([tf.constant(g, tf.float32) for g in grads],
                                [kernel, bias, norm]))
        scale = min(1.0, 1.0 / np.sqrt(sum((g ** 2).sum() for g in grads)))  # global norm 5 -> 1
        for i, g in enumerate(grads):
            g = g * scale
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            update = m[i] / (np.sqrt(v[i]) + eps)  # no bias correction (Google's optimizer)
            if i == 0:  # decay on kernels only, not on biases and LayerNorm
                update += wd * params[i]
            params[i] = params[i] - lr * update
    for var, expected in zip((kernel, bias, norm), params):
        # TF's fused CPU Adam kernel agrees with float64 to ~1e-5 relative; bias correction
        # would be off by 3x, decay on the bias by 2e-3 relative
        np.testing.assert_allclose(var.numpy(), expected, rtol=1e-4, atol=1e-7)


def test_learning_rate_warms_up_then_decays_to_zero():
    schedule = recipe.learning_rate_schedule(1e-4, warmup_steps=100, decay_steps=1000)
    values = [float(schedule(step)) for step in (0, 50, 100, 500, 1000, 2000)]
    np.testing.assert_allclose(values, [0.0, 5e-5, 9e-5, 5e-5, 0.0, 0.0], atol=1e-12)


def test_float16_loss_scaled_steps_the_gpu_path(tmp_path):
    """mixed_float16 + dynamic loss scaling (what the gpu backend does) around this optimizer,
    through the runner's train step; the log line shows the loss scale."""
    import plugins.bert as plugin
    from harness import tfcompat
    from harness.context import RunContext
    from harness.plugins import load_plugins
    from harness.run.plan import load
    from harness.run.train_step import make_train_step
    from harness.testing import write_case
    from harness.tfcompat import tf
    from plugins.bert import inputs

    config_path = tmp_path / "bert_config.json"
    config_path.write_text(json.dumps(TINY), encoding="utf-8")
    case_path = write_case(tmp_path, {"model": "bert", "precision": "mixed", "params": {
        "bert_config": str(config_path), "max_seq_length": 32,
        "max_predictions_per_seq": 5, "learning_rate": 1e-3, "warmup_steps": 0}})
    _, (case,) = load([case_path], [], plugins=load_plugins())
    tfcompat.set_precision_policy("mixed_float16")
    try:
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        ctx = RunContext(1, 4, 4, strategy=strategy, train_steps=3)
        task = plugin.BertTask(case)
        with strategy.scope():
            spec = task.build_model(ctx)
            spec.optimizer = tfcompat.loss_scale_optimizer(spec.optimizer, dynamic=True)
        ctx.model_spec = spec
        assert spec.model(modeling.dummy_features(1, 32, 5))["masked_lm_logits"].dtype == "float16"
        dataset = task.build_dataset("train", ctx)
        step = make_train_step(strategy, spec, 4)
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
        losses = [float(step(iterator)) for _ in range(3)]
        assert all(np.isfinite(losses)) and losses[-1] < losses[0]
        line = task.log_line({"step": 3, "samples_per_sec": 9.0, "lr": 1e-3}, ctx)
        assert "global_step = 3, masked_lm_loss = " in line and "loss_scale = 32768" in line
        assert inputs.EVAL_SYNTHETIC_BATCHES == int(
            task.build_dataset("eval", ctx).cardinality())
    finally:
        tfcompat.set_precision_policy("float32")
