"""ResNeXt-50 plugin end to end: accuracy through JPEG -> TFRecord -> tf.data, finetune,
synthetic runs on 1 and 2 devices, bad params."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from harness.errors import BenchError

SMALL = {"image_size": 32, "groups": 4, "width_per_group": 2, "base_width": 8,
         "blocks": [1, 1, 1, 1]}
LOG_LINE = re.compile(r"step:\s*\d+  epoch:\s*[\d.]+  FPS:\s*[\d.]+  loss:\s*[\d.]+  "
                      r"total_loss:\s*[\d.]+  lr:\d\.\d{7}$")


def small_case(**overrides):
    case = {"name": "rx", "model": "resnext50", "device": "cpu", "devices": [1],
            "batch_size": 8, "train": {"steps": 12, "warmup_steps": 2, "log_every": 5},
            "params": {**SMALL, "num_classes": 10}}
    case.update(overrides)
    return case


def test_small_config_learns_generated_shapes_through_tfrecords(bench_run, bench_cli, tmp_path):
    from plugins.resnext50.shapes import write_shapes

    images, records = str(tmp_path / "shapes"), str(tmp_path / "shapes_tf")
    write_shapes(images, per_class=300, size=32, seed=0)
    converted = bench_cli("data", "images", images, records, "--eval-fraction", "0.2",
                          "--shards", "4")
    assert converted.exit_code == 0, converted.stderr
    case = small_case(batch_size=32, data={"source": "tfrecord", "path": records},
                      train={"epochs": 8, "warmup_steps": 2, "log_every": 30},
                      params={**SMALL, "num_classes": 4, "warmup_epochs": 1.0,
                              "shuffle_buffer": 1000})
    outcome = bench_run(case)
    assert outcome.report["status"] == "ok", outcome.report["results"][0]["error"]
    result = outcome.report["results"][0]
    # 960 train records counted from the files: 30 steps per epoch, 8 epochs.
    assert result["measured_steps"] == 8 * 30 - 2
    assert result["data_source"] == "tfrecord"
    # 4 classes, chance 0.25; measured 0.996 and 1.000 (240 validation images) on this config.
    assert result["accuracy"]["top1"] >= 0.9
    assert result["loss"]["last"] < 0.5 < result["loss"]["first"]
    log = open(os.path.join(outcome.folder, "train.log")).read().splitlines()
    lines = [line.split(" ", 1)[1] for line in log if " step:" in line]
    assert len(lines) == 8 and all(LOG_LINE.match(line) for line in lines)
    assert lines[-1].startswith("step:   240  epoch:  8.0")


def test_finetune_restores_a_1001_class_checkpoint_into_10_classes(tmp_path):
    from harness.context import RunContext
    from harness.run.plan import load
    from harness.testing import write_case
    from harness.tfcompat import tf
    from plugins.resnext50.model import Architecture, build_resnext
    from plugins.resnext50.recipe import save_checkpoint

    source = build_resnext(Architecture(**{**SMALL, "blocks": (1, 1, 1, 1)}, num_classes=1001))
    for v in source.variables:  # move BN statistics off their initial values too
        v.assign(tf.random.stateless_normal(v.shape, seed=[7, len(v.name)]))
    prefix = save_checkpoint(source, str(tmp_path / "ckpt" / "model.ckpt-601000"))
    reader = tf.train.load_checkpoint(prefix)

    def build(exclude):
        case = small_case(params={**SMALL, "num_classes": 10, "restore_path": prefix,
                                  "restore_exclude": exclude})
        plugins, (resolved,) = load([write_case(tmp_path, case)], [])
        ctx = RunContext(devices=1, batch_size=8, global_batch_size=8, train_steps=12)
        return plugins.model_hooks(resolved).build_model(ctx).model

    model = build(["dense"])
    checked = 0
    for v in model.variables:
        name = v.name[:-2]
        if name.startswith("dense/"):
            assert v.shape[-1] == 10
            continue
        np.testing.assert_array_equal(v.numpy(), reader.get_tensor(name))
        checked += 1
    assert checked == len(model.variables) - 2 and checked > 50
    with pytest.raises(BenchError, match=r"params.restore_path: 'dense/kernel' has shape "
                                         r"\[256, 10\], the checkpoint \[256, 1001\]"):
        build([])


def test_synthetic_runs_on_1_and_2_devices_mixed_precision(bench_run):
    from plugins.resnext50.recipe import cosine_value

    outcome = bench_run(small_case(devices=[1, 2], precision="mixed",
                                   params={**SMALL, "lr_warmup_steps": 5}))
    report = outcome.report
    assert report["status"] == "ok"
    # the TF 1.15 configs' loop is train.steps_per_loop as resolved: 1 on the CPU (npu: log_every)
    assert report["device_options"] == {"precision": "mixed", "precision_mode":
                                        "allow_mix_precision", "loss_scale": 1024,
                                        "hcom_parallel": True, "iterations_per_loop": 1}
    one, two = report["results"]
    assert (one["global_batch_size"], two["global_batch_size"]) == (8, 16)
    for result in (one, two):
        assert result["data_source"] == "synthetic" and result["measured_steps"] == 10
        assert 0 < result["mfu"] < 1 and np.isfinite(result["loss"]["last"])
        assert set(result["accuracy"]) == {"top1", "top5"}
    log = open(os.path.join(outcome.folder, "train.log")).read()
    # 5 warmup steps, then cosine to 1e-6 at step 12; a line shows the rate of its last step.
    lines = [line.split(" ", 1)[1] for line in log.splitlines() if " step:" in line]
    assert len(lines) == 6 and all(LOG_LINE.match(line) for line in lines)
    assert lines[0].startswith("step:     5  epoch:  0.0") and lines[0].endswith("lr:0.1000000")
    assert lines[2].endswith(f"lr:{cosine_value(11, 0.1, 1e-6, 5, 12):.7f}")


def test_bad_params_are_bad_input_and_write_nothing(bench_cli, tmp_path):
    from harness.testing import write_case

    path = write_case(tmp_path, small_case())
    out = str(tmp_path / "reports")
    result = bench_cli("run", path, "--out", out, "--set", "params.blocks=[2, 0]")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"bench: error: {path}: params.blocks: expected a list "
                                     f"of block counts >= 1, got [2, 0]")
    result = bench_cli("run", path, "--out", out, "--set", "data.source=tfrecord",
                       "--set", f"data.path={tmp_path}")
    assert result.exit_code == 2
    assert f"data.path: no train-*-of-* files in {str(tmp_path)!r}" in result.stderr
    assert not os.path.exists(out)
