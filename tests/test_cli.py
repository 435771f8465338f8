"""The bench command as a user runs it: help, list, env, run, report; a third-party plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from engines import GRAPH_ONLY

from harness.testing import write_case

pytestmark = pytest.mark.core
HERE = os.path.dirname(os.path.abspath(__file__))


def _bench(*args, env=None, cwd=None, timeout=300):
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    full_env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "helpers"), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)


def test_help_does_not_import_tensorflow():
    code = ("import sys; from harness.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TF-LOADED' if 'tensorflow' in sys.modules else 'TF-FREE')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert "bench run" in out.stdout or "run " in out.stdout
    assert out.stdout.strip().endswith("TF-FREE"), out.stdout


def test_list_json_names_builtins_and_models(bench_cli):
    result = bench_cli("list", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    builtin = {p["name"] for p in data["plugins"] if p["source"] == "builtin"}
    assert {"cpu", "gpu", "npu", "case-formats", "report-writers"} <= builtin
    devices = {d["name"]: d["available"] for d in data["devices"]}
    assert devices["cpu"] is True and set(devices) >= {"cpu", "gpu", "npu"}
    for model in data["models"]:
        assert model["version"] and model["plugin"]


def test_plugin_adds_a_subcommand():
    result = _bench("--help", env={"BENCH_PLUGINS": ""})
    assert result.returncode == 0
    hello = subprocess.run(
        [sys.executable, "-c", "import tiny_model, sys\n"
         "from harness import cli\n"
         "plugins = cli._plugins(); plugins.add(tiny_model, 'tiny', '0', 'object')\n"
         "cli.main(['tiny-hello', 'world'])"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.path.join(HERE, "helpers")})
    assert hello.stdout.strip() == "hello world from tiny_model", hello.stderr


def test_env_json_has_the_fingerprint(bench_cli):
    result = bench_cli("env", "--json")
    assert result.exit_code == 0, result.stderr
    env = json.loads(result.stdout)
    for key in ("python", "tensorflow", "keras", "harness", "plugins", "host", "cpu",
                "cann_version", "driver_version"):
        assert key in env
    assert env["tensorflow"][0].isdigit()
    assert "cpu" in env["devices_available"]


def test_run_then_report_rerenders(tmp_path, tiny_case):
    counts = [1] if GRAPH_ONLY else [1, 2]  # TF 1.x: one device per process
    path = write_case(tmp_path, {**tiny_case, "devices": counts})
    out = tmp_path / "reports"
    result = _bench("run", path, "--out", str(out), "--plugin", "tiny_model",
                    "--set", "train.steps=30")
    assert result.returncode == 0, result.stderr
    assert "zoobench results" in result.stdout and "samples/s" in result.stdout
    (run_dir,) = list(out.iterdir())
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "ok" and report["case"]["train"]["steps"] == 30
    assert [r["devices"] for r in report["results"]] == counts
    assert "step     30/30" in result.stdout  # plain log lines when stdout is not a TTY
    (run_dir / "report.md").unlink()
    again = _bench("report", str(out))
    assert again.returncode == 0, again.stderr
    assert (run_dir / "report.md").read_text().startswith("# zoobench report: tiny")


def test_failed_run_exits_3_with_report(tmp_path, tiny_case):
    path = write_case(tmp_path, {**tiny_case, "params": {"fail_at_step": 8}})
    result = _bench("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    assert result.returncode == 3
    (run_dir,) = list((tmp_path / "r").iterdir())
    assert json.loads((run_dir / "report.json").read_text())["status"] == "failed"


def test_report_of_a_broken_file_is_one_line(tmp_path, bench_cli):
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    result = bench_cli("report", str(bad))
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def thirdparty_installed():
    source = os.path.join(HERE, "data", "thirdparty")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", source], check=True, capture_output=True, timeout=300)
    yield
    subprocess.run([*pip, "uninstall", "--yes", "--quiet", "bench-thirdparty-example"],
                   check=True, capture_output=True, timeout=120)


def test_third_party_plugin_by_entry_point(tmp_path, thirdparty_installed):
    listed = _bench("list", "--json", cwd=str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    plugin = next(p for p in data["plugins"] if p["name"] == "thirdparty")
    assert plugin == {"name": "thirdparty", "version": "1.2.3", "source": "entry point",
                      "module": "bench_thirdparty"}
    assert any(m["name"] == "linreg" and m["version"] == "1.2.3" for m in data["models"])
    path = write_case(tmp_path, {"model": "linreg", "batch_size": 64,
                                 "train": {"steps": 60, "warmup_steps": 4, "log_every": 20}})
    ran = _bench("run", path, "--out", str(tmp_path / "r"), cwd=str(tmp_path))
    assert ran.returncode == 0, ran.stderr
    (run_dir,) = list((tmp_path / "r").iterdir())
    report = json.loads((run_dir / "report.json").read_text())
    assert report["environment"]["plugins"]["thirdparty"] == "1.2.3"
    assert report["results"][0]["accuracy"]["mae"] < 0.5  # the builtin evaluate fallback


def test_a_terminal_gets_the_rich_progress_bar(tmp_path, tiny_case):
    import pty

    path = write_case(tmp_path, {**tiny_case, "train": {"steps": 400, "warmup_steps": 5,
                                                        "log_every": 100}})
    env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "helpers"), "COLUMNS": "160"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: bench on a pseudo-terminal
        os.execve(sys.executable, [sys.executable, "-c", "from harness.cli import main; main()",
                                   "run", path, "--out", str(tmp_path / "r"), "--plugin",
                                   "tiny_model"], env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    screen = b"".join(chunks).decode("utf-8", "replace")
    # os.waitstatus_to_exitcode is Python 3.9's
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, screen[-2000:]
    assert "\x1b[" in screen  # a live display, not plain lines
    assert "━" in screen and "samples/s" in screen  # the bar and its rate column
    assert "zoobench results" in screen
