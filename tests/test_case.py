"""Case files: YAML/CSV/ModelZoo CSV loading, --set, and one-line errors for bad input."""

from __future__ import annotations

import os

import pytest

from harness.errors import BenchError
from harness.plugins import load_plugins
from harness.run.plan import load_cases

pytestmark = pytest.mark.core

GOOD = "model: tiny_mlp\ntrain: {steps: 20, warmup_steps: 2}\n"


@pytest.fixture
def plugins(tiny):
    return load_plugins(objects=[tiny])


def _write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


BAD = [
    # (file name, content, --set overrides, text the one-line error must contain)
    ("syntax.yaml", "model: tiny_mlp\ntrain: {steps: 20\n", [], "YAML syntax error"),
    ("unknown_key.yaml", GOOD + "trian: {steps: 3}\n", [], "trian: unknown key"),
    ("nested_unknown.yaml", "model: tiny_mlp\ntrain: {stepz: 20}\n", [], "train.stepz: unknown key"),
    ("wrong_type.yaml", "model: tiny_mlp\ntrain: {steps: ten}\n", [],
     "train.steps: expected an integer, got 'ten'"),
    ("no_model.yaml", "batch_size: 8\n", [], "model: missing"),
    ("unknown_model.yaml", "model: resnet\n", [],
     "model: unknown model 'resnet'; registered: "),  # + every installed model plugin's
    ("neg_batch.yaml", GOOD + "batch_size: -4\n", [], "batch_size: must be >= 1, got -4"),
    ("zero_batch.yaml", GOOD + "batch_size: 0\n", [], "batch_size: must be >= 1"),
    ("warmup.yaml", "model: tiny_mlp\ntrain: {steps: 10, warmup_steps: 10}\n", [],
     "train.warmup_steps: must be below train.steps"),
    ("device.yaml", GOOD + "device: tpu\n", [], "device: unknown device 'tpu'; registered:"),
    ("devices.yaml", GOOD + "devices: [1, 0]\n", [], "devices: expected a device count >= 1"),
    ("precision.yaml", GOOD + "precision: half\n", [], "precision: expected one of fp32, mixed"),
    ("param.yaml", GOOD + "params: {hiden: 3}\n", [],
     "params.hiden: unknown parameter of model 'tiny_mlp'"),
    ("param_type.yaml", GOOD + "params: {hidden: wide}\n", [],
     "params.hidden: expected int, got 'wide'"),
    ("source.yaml", GOOD + "data: {source: tfrecord, path: x}\n", [],
     "data.source: model 'tiny_mlp' reads synthetic"),
    ("top_list.yaml", "- model: tiny_mlp\n", [], "expected a mapping at the top, got list"),
    ("empty.yaml", "", [], "empty case file"),
    ("comments.yaml", "# nothing\n", [], "empty case file"),
    ("latin1.yaml", b"model: tiny_mlp\nname: caf\xe9\n", [], "not UTF-8 text"),
    ("items.yaml", "defaults: {model: tiny_mlp}\ncases:\n  - train: {steps: 50}\n"
     "  - train: {steps: 'x'}\n", [], "cases[1].train.steps: expected an integer"),
    ("item_type.yaml", "cases:\n  - 3\n", [], "cases[0]: expected a mapping"),
    ("both.yaml", "model: tiny_mlp\ntrain: {steps: 20, epochs: 2}\n", [],
     "train: set steps or epochs, not both"),
    ("target.yaml", GOOD + "eval: {target: {accuracy: high}}\n", [],
     "eval.target: accuracy: expected a number"),
    ("set.yaml", GOOD, ["train.steps=abc"], "train.steps: expected an integer, got 'abc' (from --set)"),
    ("set_syntax.yaml", GOOD, ["train.steps"], "--set: expected KEY=VALUE"),
    ("bad_header.csv", "model,train..steps\ntiny_mlp,3\n", [], "header: column 2 'train..steps'"),
    ("bad_row.csv", "model,train.steps\ntiny_mlp,3,4\n", [], "row 2: 3 cells, header has 2"),
    ("csv_type.csv", "model,batch_size\ntiny_mlp,big\n", [], "row 2.batch_size: expected an integer"),
    ("zoo.csv", "CASENUM,CASENAME\n1,x\n", [], "header: not the ModelZoo case CSV columns"),
    ("case.toml", "model = 'tiny_mlp'\n", [], "unknown case file format"),
]


@pytest.mark.parametrize("name,content,sets,message", BAD, ids=[b[0] for b in BAD])
def test_bad_case_is_one_line_exit_2_and_writes_nothing(tmp_path, bench_cli, name, content,
                                                       sets, message):
    path = _write(tmp_path, name, content)
    out = tmp_path / "reports"
    args = ["run", path, "--out", str(out), "--plugin", "tiny_model"]
    for item in sets:
        args += ["--set", item]
    result = bench_cli(*args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert message in lines[0]
    if not message.startswith("--set"):
        assert path in lines[0]  # names the file
    assert not out.exists()


def test_missing_file_and_directory(tmp_path, bench_cli):
    for target, message in [(tmp_path / "nope.yaml", "no such file"),
                            (tmp_path, "is a directory")]:
        result = bench_cli("run", str(target), "--out", str(tmp_path / "r"))
        assert result.exit_code == 2
        assert message in result.stderr and str(target) in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_broken_plugin_import_is_named(tmp_path, bench_cli):
    path = _write(tmp_path, "c.yaml", GOOD)
    result = bench_cli("run", path, "--plugin", "no_such_plugin_module")
    assert result.exit_code == 2
    assert result.stderr.strip() == ('bench: error: error importing plugin "no_such_plugin_module": '
                                     "ModuleNotFoundError: No module named 'no_such_plugin_module'")


def test_defaults_merge_under_each_case_and_names(tmp_path, plugins):
    path = _write(tmp_path, "multi.yaml", """
defaults: {model: tiny_mlp, batch_size: 8, train: {steps: 30, warmup_steps: 3}}
cases:
  - {name: a, params: {hidden: 8}}
  - {train: {steps: 50}}
""")
    a, b = load_cases([path], [], plugins)
    assert (a.name, a.batch_size, a.train.steps, a.params["hidden"]) == ("a", 8, 30, 8)
    assert (b.name, b.train.steps, b.train.warmup_steps) == ("multi-1", 50, 3)
    assert b.params["hidden"] == 32  # the model's default
    with pytest.raises(TypeError):
        b.params["hidden"] = 3  # frozen once validated


def test_set_overrides_are_yaml_typed(tmp_path, plugins):
    path = _write(tmp_path, "c.yaml", GOOD)
    (case,) = load_cases([path], ["params.learning_rate=0.05", "devices=[1,2]",
                                  "eval.target.accuracy=0.9", "precision=mixed"], plugins)
    assert case.params["learning_rate"] == 0.05
    assert case.devices == (1, 2)
    assert case.to_dict()["eval"]["target"] == {"accuracy": {"at_least": 0.9}}
    assert case.precision == "mixed"


def test_epochs_replace_default_steps(tmp_path, plugins):
    path = _write(tmp_path, "c.yaml", "model: tiny_mlp\ntrain: {epochs: 1.5}\n")
    (case,) = load_cases([path], [], plugins)
    assert case.train.steps is None and case.train.epochs == 1.5


def test_dotted_csv(tmp_path, plugins):
    path = _write(tmp_path, "c.csv", "name,model,devices,batch_size,train.steps,"
                                     "params.learning_rate\n"
                                     "a,tiny_mlp,1,16,20,0.5\n"
                                     "b,tiny_mlp,\"[1, 2]\",8,30,\n")
    a, b = load_cases([path], [], plugins)
    assert (a.name, a.batch_size, a.train.steps, a.params["learning_rate"]) == ("a", 16, 20, 0.5)
    assert b.devices == (1, 2) and b.params["learning_rate"] == 0.1


def test_modelzoo_csv_maps_columns(tmp_path, tiny):
    plugins = load_plugins()  # the installed resnext50 plugin
    header = ("CASENUM,CASENAME,ENV_SET,JOB_ID,PROFILING_MODE,PROFILING_OPTIONS,FP_POINT,"
              "BP_POINT,AICPU_PROFILING_MODE,SERVER_ID,DEVICE_ID,RUN_ALGORITHM_CMD,CHECKPOINT_DIR")
    row = ("8,resnext50_tf_32bs_8p,npu_set_env.sh,123456789,FALSE,training_trace,,,,"
           "10.151.161.191,0 1 2 3 4 5 6 7,/x/res50.py --config_file=res50_32bs_8p_host "
           "--max_train_steps=4000 --iterations_per_loop=1000 --debug=True --eval=True,"
           "--model_dir=/x/ckpt${DEVICE_ID}")
    path = _write(tmp_path, "case_resnext50.csv", f"{header}\n#9,skipped\n{row}\n")
    (case,) = load_cases([path], [], plugins)
    assert case.name == "resnext50_tf_32bs_8p" and case.model == "resnext50"
    assert case.device == "npu" and case.devices == (8,)
    assert case.batch_size == 32 and case.train.steps == 4000
    assert case.npu["iterations_per_loop"] == 1000
    assert list(case.npu["device_ids"]) == list(range(8))
    assert case.eval.at_end is True


def test_shipped_cases_validate():
    """Every cases/*.yaml loads with the installed plugins (STYLE 9)."""
    root = os.path.join(os.path.dirname(__file__), "..", "cases")
    paths = sorted(os.path.join(root, n) for n in os.listdir(root) if n.endswith(".yaml"))
    assert paths
    try:
        cases = load_cases(paths, [], load_plugins())
    except BenchError as exc:  # pragma: no cover - the message is the failure
        pytest.fail(str(exc))
    assert all(c.model for c in cases)
