"""The plugin contract as a user meets it on the command line: an installed plugin that is
broken (disable it with -p no:NAME), the whole eval split whatever the launcher, a case file
whose later case has more devices, failure reasons on the terminal, bench list --plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from engines import multi_device

from harness.testing import write_case

pytestmark = pytest.mark.core
HERE = os.path.dirname(os.path.abspath(__file__))

BROKEN = '''"""An installed plugin whose hook has a misspelled argument."""
from harness import hookimpl


@hookimpl
def build_model(case, contxt):
    return None
'''

# Labels cycle 0, 1, 2 over 359 eval examples; the model's weights are zeros and its learning
# rate 0, so it predicts class 0 everywhere whatever the launcher and the seeds: the metrics
# depend only on which eval examples were scored. The eval dataset calls ctx.shard as the
# train one does (what the old hookspecs told authors to do).
SHARDED = '''"""A task whose eval pipeline calls ctx.shard, as its train pipeline does."""
import numpy as np

from harness import ModelSpec, Task, hookimpl

EVAL_EXAMPLES = 359


class ShardedEvalTask(Task):
    def build_dataset(self, split, ctx):
        from harness.tfcompat import tf

        n = 1024 if split == "train" else EVAL_EXAMPLES
        x = np.random.default_rng(0 if split == "train" else 1).normal(size=(n, 8))
        y = (np.arange(n) % 3).astype("int32")
        ds = ctx.shard(tf.data.Dataset.from_tensor_slices((x.astype("float32"), y)))
        return ds.batch(ctx.pipeline_batch_size, drop_remainder=split == "train")

    def build_model(self, ctx):
        from harness.tfcompat import keras

        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(
            3, kernel_initializer="zeros", bias_initializer="zeros")])
        return ModelSpec(model=model, optimizer=keras.optimizers.SGD(learning_rate=0.0),
                         loss=keras.losses.SparseCategoricalCrossentropy(
                             from_logits=True, reduction=keras.losses.Reduction.NONE))

    def evaluate(self, model, dataset, ctx):
        labels, predictions = [], []
        for x, y in dataset:
            predictions += np.argmax(model(x, training=False).numpy(), axis=1).tolist()
            labels += y.numpy().tolist()
        labels, predictions = np.array(labels), np.array(predictions)
        f1 = []
        for k in range(3):
            tp = int(((predictions == k) & (labels == k)).sum())
            fp = int(((predictions == k) & (labels != k)).sum())
            fn = int(((predictions != k) & (labels == k)).sum())
            f1.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return {"macro_f1": float(np.mean(f1)), "examples": float(len(labels))}


@hookimpl
def register_models(registry):
    registry.add("sharded_eval", task=ShardedEvalTask)
'''


def _site(tmp_path, files, dist=None):
    """A folder on PYTHONPATH holding plugin modules, and (``dist``) the metadata of an
    installed distribution with a ``bench.plugins`` entry point, as pip would leave it."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    for name, text in files.items():
        (site / name).write_text(text, encoding="utf-8")
    if dist:
        name, entry, module = dist
        info = site / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[bench.plugins]\n{entry} = {module}\n")
    return site


def _bench(*args, site=None, env=None, cwd=None, timeout=600):
    paths = [os.path.join(HERE, "helpers")] + ([str(site)] if site else [])
    full = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **(env or {})}
    full.pop("BENCH_CPU_LOGICAL_DEVICES", None)  # a fresh process plans its own devices
    full.pop("BENCH_DISABLE_PLUGINS", None)
    full.update(env or {})
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=cwd,
                          timeout=timeout)


def test_a_broken_installed_plugin_can_be_disabled_and_does_not_break_help(tmp_path):
    site = _site(tmp_path, {"broken_bench_plugin.py": BROKEN},
                 dist=("brokenbench", "broken", "broken_bench_plugin"))
    error = ("bench: error: plugin \"broken\": hook build_model(case, contxt): unknown argument "
             "'contxt' (did you mean 'ctx'?); the spec is build_model(case, ctx) "
             "(bench -p no:broken ... disables it)")
    listed = _bench("list", site=site)
    assert listed.returncode == 2 and listed.stderr.strip().splitlines() == [error]
    helped = _bench("--help", site=site)
    assert helped.returncode == 0 and "run" in helped.stdout
    assert "bench: warning: plugin \"broken\": hook build_model" in helped.stderr
    for args, env in ((["-p", "no:broken", "list", "--json"], None),
                      (["list", "--json"], {"BENCH_DISABLE_PLUGINS": "broken"})):
        ok = _bench(*args, site=site, env=env)
        assert ok.returncode == 0, ok.stderr
        data = json.loads(ok.stdout)
        assert "broken" not in {p["name"] for p in data["plugins"]}
        assert data["disabled"] == ["broken"]
    wrong = _bench("-p", "broken", "list", site=site)
    assert wrong.returncode == 2 and "-p broken: expected no:NAME" in wrong.stderr


@multi_device
def test_eval_covers_the_whole_split_inline_and_with_process_workers(tmp_path):
    """One case file: 1 device inline, then 2 devices inline (more devices than the first
    case: logical CPU devices are planned for all cases before TensorFlow starts), then 2
    worker processes. Every one scores all 359 eval examples, with the same macro-F1."""
    site = _site(tmp_path, {"sharded_eval_plugin.py": SHARDED})
    base = {"model": "sharded_eval", "batch_size": 16,
            "train": {"steps": 6, "warmup_steps": 1, "log_every": 3}}
    path = tmp_path / "cases.yaml"
    path.write_text(json.dumps({"defaults": base, "cases": [
        {"name": "one", "devices": [1], "launcher": "inline"},
        {"name": "two_inline", "devices": [2], "launcher": "inline"},
        {"name": "two_process", "devices": [2], "launcher": "process"}]}))
    ran = _bench("run", str(path), "--plugin", "sharded_eval_plugin", "--out",
                 str(tmp_path / "r"), site=site, cwd=str(tmp_path))
    assert ran.returncode == 0, ran.stderr[-3000:]
    reports = {}
    for folder in (tmp_path / "r").iterdir():
        report = json.loads((folder / "report.json").read_text())
        reports[report["case"]["name"]] = report
    assert set(reports) == {"one", "two_inline", "two_process"}
    # all of class 0 found, precision 120/359; classes 1 and 2 never predicted
    expected = 2 * 120 / (2 * 120 + 239) / 3
    for name, report in reports.items():
        (result,) = report["results"]
        assert result["accuracy"]["examples"] == 359, name
        assert result["accuracy"]["macro_f1"] == pytest.approx(expected, abs=1e-12), name
        assert report["case"]["plugins"] == ["sharded_eval_plugin"]  # --plugin recorded
    assert reports["two_process"]["results"][0]["launcher"] == "process"


def test_a_failed_run_prints_its_reason_and_keeps_the_traceback_in_train_log(tmp_path,
                                                                               bench_cli,
                                                                               tiny_case):
    path = write_case(tmp_path, {**tiny_case, "params": {"fail_at_step": 8}})
    result = bench_cli("run", path, "--plugin", "tiny_model", "--out", str(tmp_path / "r"))
    assert result.exit_code == 3
    reasons = [line for line in result.stderr.splitlines() if line.startswith("bench: ")]
    # the step's error comes back from TensorFlow as an UnknownError around the plugin's own
    assert reasons == ["bench: tiny, 1 device(s): failed: UnknownError: RuntimeError: "
                       "injected failure at step 8"], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    (folder,) = list((tmp_path / "r").iterdir())
    assert "Traceback" in (folder / "train.log").read_text()
    assert json.loads((folder / "report.json").read_text())["case"]["plugins"] == ["tiny_model"]


def test_bench_list_loads_a_plugin_module_and_names_tasks(bench_cli):
    result = bench_cli("list", "--json", "--plugin", "tiny_model")
    assert result.exit_code == 0, result.stderr
    models = {m["name"]: m for m in json.loads(result.stdout)["models"]}
    assert models["tiny_mlp"]["plugin"] == "tiny_model" and models["tiny_mlp"]["task"] is None
    assert models["resnext50"]["task"] == "plugins.resnext50.ResNeXt50Task"
    assert models["bert"]["task"] == "plugins.bert.BertTask"
