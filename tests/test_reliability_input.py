"""Reliability, bad input: one line and exit 2, before anything is written, for deep nesting,
values a run cannot use, unbounded or blocking files, BOMs, duplicate keys, and a case
file's plugins (issue 16, items 7, 8, 13, 14, 17)."""

from __future__ import annotations

import os
import threading

import pytest

from harness.devices import ascend

GOOD = "model: tiny_mlp\ntrain: {steps: 20, warmup_steps: 2}\n"


def _one_line_exit_2(result, *fragments):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _run(bench_cli, tmp_path, path, *extra):
    out = tmp_path / "reports"
    result = bench_cli("run", str(path), "--out", str(out), "--plugin", "tiny_model", *extra)
    assert not out.exists()  # nothing written for bad input
    return result


# --- item 7: deep nesting ----------------------------------------------------------------


def test_a_case_nested_600_deep_is_one_line(bench_cli, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(GOOD + "npu: " + "[" * 600 + "]" * 600 + "\n")
    _one_line_exit_2(_run(bench_cli, tmp_path, path), "deep.yaml", "nested deeper than 32")
    _one_line_exit_2(bench_cli("npu-config", str(path), "--plugin", "tiny_model"),
                     "nested deeper than 32")
    deep = "[" * 600 + "]" * 600
    _one_line_exit_2(_run(bench_cli, tmp_path, tmp_path / "deep.yaml", "--set",
                          f"params.hidden={deep}"), "--set params.hidden", "nested deeper")


def test_nesting_past_the_cap_names_the_line_or_the_key(bench_cli, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(GOOD + "params: {hidden: " + "[" * 40 + "]" * 40 + "}\n")  # flow style
    _one_line_exit_2(_run(bench_cli, tmp_path, path), "deep.yaml: line 3: nested deeper")
    path.write_text(GOOD + "params:\n  hidden:\n    " + "- " * 40 + "1\n")  # block style
    _one_line_exit_2(_run(bench_cli, tmp_path, path), "params.hidden[0][0]", "nested deeper")


def test_a_squad_json_nested_100k_deep_is_one_line(tmp_path):
    from harness.errors import BenchError
    from plugins.bert.downstream import processors

    path = tmp_path / "cmrc.json"
    path.write_text('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BenchError, match="cmrc.json: nested deeper than 32 levels"):
        processors.read_squad(str(path), training=True)


def test_a_yaml_alias_bomb_is_refused(bench_cli, tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    path = tmp_path / "bomb.yaml"
    path.write_text(GOOD + "params:\n" + "".join(f"  {line}\n" for line in lines))
    _one_line_exit_2(_run(bench_cli, tmp_path, path), "bomb.yaml", "more than 100000 values")


# --- item 8: values a run cannot use ----------------------------------------------------


@pytest.mark.parametrize("extra, message", [
    ("seed: 4294967296\n", "seed: must be <= 4294967295"),
    ("train: {epochs: .inf}\n", "train.epochs: expected a finite number, got inf"),
    ("train: {epochs: .nan}\n", "train.epochs: expected a finite number, got nan"),
    ("batch_size: 99999999999999999999\n", "batch_size: must be <= 2147483647"),
    ("batch_size: 1e300\n", "batch_size: must be <= 2147483647"),
    ("batch_size: 1073741824\ndevices: [4]\n", "batch_size: the global batch 1073741824 x 4"),
    ("timeout: .inf\n", "timeout: expected a finite number"),
    ("devices: [100000]\n", "devices: expected a device count >= 1 (at most 4096)"),
    ("params: {learning_rate: .nan}\n", "params.learning_rate: expected a finite number"),
    ("params: {hidden: 99999999999999999999}\n", "params.hidden: 99999999999999999999 does not "
                                                 "fit in a 64-bit integer"),
    ("eval: {target: {accuracy: .inf}}\n", "eval.target: accuracy: expected a finite number"),
])
def test_values_a_run_cannot_use_are_refused_up_front(bench_cli, tmp_path, extra, message):
    path = tmp_path / "case.yaml"
    base = GOOD if "train:" not in extra else "model: tiny_mlp\n"
    path.write_text(base + extra)
    _one_line_exit_2(_run(bench_cli, tmp_path, path), str(path), message)


def test_a_global_batch_larger_than_the_train_split_is_refused_before_the_run(bench_cli,
                                                                              tmp_path):
    path = tmp_path / "rx.yaml"
    path.write_text("model: resnext50\nbatch_size: 32\ntrain: {steps: 4, warmup_steps: 1}\n"
                    "params: {image_size: 32, groups: 2, width_per_group: 2, base_width: 8, "
                    "blocks: [1, 1, 1, 1], num_classes: 4, train_examples: 16}\n")
    _one_line_exit_2(_run(bench_cli, tmp_path, path),
                     "batch_size: the global batch 32 is larger than the 16 train examples")


# --- item 13: unbounded or blocking reads ---------------------------------------------------


def _with_deadline(call, seconds=20):
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it blocks."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the read blocked"
    return box["value"]


def test_a_fifo_case_file_is_refused_without_blocking(bench_cli, tmp_path):
    fifo = tmp_path / "case.yaml"
    os.mkfifo(fifo)
    result = _with_deadline(lambda: _run(bench_cli, tmp_path, fifo))
    _one_line_exit_2(result, "case.yaml: not a regular file")


def test_dev_zero_and_huge_case_files_are_refused(bench_cli, tmp_path):
    _one_line_exit_2(_with_deadline(lambda: _run(bench_cli, tmp_path, "/dev/zero")),
                     "/dev/zero: not a regular file")
    huge = tmp_path / "huge.csv"
    huge.write_text("model,train.steps\n" + "tiny_mlp,20\n" * 100_000)  # 1.2 MB
    _one_line_exit_2(_run(bench_cli, tmp_path, huge), "huge.csv", "at most 1 MiB")
    many = tmp_path / "many.csv"
    many.write_text("model,train.steps\n" + "tiny_mlp,20\n" * 1001)
    _one_line_exit_2(_run(bench_cli, tmp_path, many), "many.csv: 1001 cases", "at most 1000")


def test_bench_env_survives_a_fifo_and_dev_zero_as_version_files(bench_cli, tmp_path,
                                                                 monkeypatch):
    root = tmp_path / "Ascend"
    home = root / "ascend-toolkit" / "latest"
    (home / "aarch64-linux").mkdir(parents=True)
    (home / "aarch64-linux" / "ascend_toolkit_install.info").write_text("version=8.0.RC3\n")
    (root / "driver").mkdir()
    os.symlink("/dev/zero", root / "driver" / "version.info")
    (root / "tfplugin" / "latest").mkdir(parents=True)
    os.mkfifo(root / "tfplugin" / "latest" / "ascend_tfplugin_install.info")
    for var in ascend.HOME_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ASCEND_HOME_PATH", str(home))
    facts = _with_deadline(ascend.fingerprint)
    assert facts["cann_version"] == "8.0.RC3"
    assert facts["driver_version"] is None and facts["tfplugin_version"] is None
    result = _with_deadline(lambda: bench_cli("env", "--json"), 120)
    assert result.exit_code == 0, result.stderr
    assert '"cann_version": "8.0.RC3"' in result.stdout


# --- item 14: BOM, duplicate keys, 1e12 -----------------------------------------------------


def test_a_bom_in_a_dotted_csv_is_accepted(tmp_path, tiny):
    from harness.plugins import load_plugins
    from harness.run.plan import load_cases

    path = tmp_path / "cases.csv"
    path.write_bytes(b"\xef\xbb\xbfname,model,train.steps\nbom,tiny_mlp,20\n")
    (case,) = load_cases([str(path)], [], load_plugins(objects=[tiny]))
    assert case.name == "bom" and case.train.steps == 20


def test_duplicate_yaml_keys_are_errors(bench_cli, tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("model: tiny_mlp\ntrain: {steps: 20, steps: 30}\n")
    _one_line_exit_2(_run(bench_cli, tmp_path, path), "dup.yaml: line 2: duplicate key 'steps'")
    from harness.userfiles import parse_yaml

    # a YAML merge key's values may still be overridden: that is no duplicate
    assert parse_yaml("a: &b {x: 1}\nc: {<<: *b, x: 2}\n", "t")["c"] == {"x": 2}


def test_1e12_is_a_float_in_set_and_case_files(tmp_path, tiny):
    from harness.plugins import load_plugins
    from harness.run.plan import load_cases

    path = tmp_path / "c.yaml"
    path.write_text(GOOD + "params: {learning_rate: 1e-3}\n")
    (case,) = load_cases([str(path)], ["params.learning_rate=1e12", "timeout=3e3"],
                         load_plugins(objects=[tiny]))
    assert case.params["learning_rate"] == 1e12 and case.timeout == 3000.0
    (case,) = load_cases([str(path)], [], load_plugins(objects=[tiny]))
    assert case.params["learning_rate"] == 1e-3
    from harness.userfiles import parse_yaml

    assert parse_yaml("a: '1e12'\nb: 1e12\nc: 12\n", "t") == {"a": "1e12", "b": 1e12, "c": 12}


# --- item 17: a case file's plugins --------------------------------------------------------


def test_a_case_files_plugins_are_not_imported_before_its_keys_check(bench_cli, tmp_path,
                                                                      monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "planted_plugin.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "case.yaml"
    path.write_text("model: tiny_mlp\nplugins: [planted_plugin]\ntrain: {steps: ten}\n")
    for command in (["npu-config", str(path)], ["run", str(path), "--out", "r"]):
        result = bench_cli(*command, "--plugin", "tiny_model")
        _one_line_exit_2(result, "train.steps: expected an integer, got 'ten'")
        assert not marker.exists()
    path.write_text("model: tiny_mlp\nplugins: ['os; rm -rf x']\n")
    _one_line_exit_2(bench_cli("npu-config", str(path), "--plugin", "tiny_model"),
                     "plugins: 'os; rm -rf x' is not a dotted module name")
    # a sound case imports them: a case file is code (the README says so)
    path.write_text("model: tiny_mlp\nplugins: [planted_plugin]\n")
    result = bench_cli("npu-config", str(path), "--plugin", "tiny_model", "--json")
    assert result.exit_code == 0, result.stderr
    assert marker.exists()
