"""The shipped ResNeXt-50 case files: all validate, the NPU ones carry the seed's settings, the
CPU one runs with tiny overrides."""

from __future__ import annotations

import glob
import os

import pytest

from harness.run.plan import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE_FILES = sorted(glob.glob(os.path.join(ROOT, "cases", "*resnext50*")))
TINY = ["params.image_size=32", "params.groups=4", "params.width_per_group=2",
        "params.base_width=8", "params.blocks=[1, 1, 1, 1]"]


@pytest.mark.parametrize("path", CASE_FILES, ids=os.path.basename)
def test_case_file_validates(path):
    _, cases = load([path], [])
    assert cases and all(case.model == "resnext50" for case in cases)


def test_npu_cases_carry_the_seed_settings():
    from harness.run.plan import device_options

    plugins, cases = load([os.path.join(ROOT, "cases", "resnext50_8p.yaml"),
                           os.path.join(ROOT, "cases", "resnext50_1p.yaml")], [])
    eight, one = cases
    assert (eight.device, eight.devices, eight.batch_size, eight.train.epochs) == ("npu", (8,), 32,
                                                                                   120.0)
    assert (one.devices, one.train.steps, one.eval.at_end) == ((1,), 10000, False)
    for case in cases:
        assert case.params["train_examples"] == 1281167 and case.params["num_classes"] == 1001
        options = device_options(case, plugins)
        assert {k: options[k] for k in ("precision_mode", "loss_scale", "hcom_parallel",
                                        "iterations_per_loop")} == {
            "precision_mode": "allow_mix_precision", "loss_scale": 1024,
            "hcom_parallel": True, "iterations_per_loop": 1000}


def test_imagenet_cases_without_data_are_bad_input(tmp_path):
    from harness.errors import BenchError

    plugins, (case,) = load([os.path.join(ROOT, "cases", "resnext50_8p.yaml")],
                            [f"data.path={tmp_path / 'absent'}"])
    with pytest.raises(BenchError, match=r"resnext50_8p.yaml: data.path: no such directory"):
        plugins.model_hooks(case).validate()
    (tmp_path / "train-00000-of-00001").write_bytes(b"")
    plugins, (case,) = load([os.path.join(ROOT, "cases", "resnext50_8p.yaml")],
                            [f"data.path={tmp_path}"])
    with pytest.raises(BenchError, match=r"data.path: no validation-\*-of-\* files in"):
        plugins.model_hooks(case).validate()  # eval.at_end needs the validation split
    (tmp_path / "validation-00000-of-00001").write_bytes(b"")
    plugins.model_hooks(case).validate()


def test_cpu_case_runs_with_tiny_overrides(bench_run):
    outcome = bench_run(os.path.join(ROOT, "cases", "resnext50_cpu.yaml"),
                        overrides=TINY + ["train.steps=4", "train.warmup_steps=1"])
    assert outcome.report["status"] == "ok"
    (result,) = outcome.report["results"]
    assert result["measured_steps"] == 3 and result["global_batch_size"] == 16
