"""CANN, driver and tfplugin versions from fixture install trees; npu-smi from captured text."""

from __future__ import annotations

import json
import os

import pytest
from fake_tools import install_tool

from harness.devices import ascend
from harness.devices.npu import NpuBackend

pytestmark = pytest.mark.core  # also run on the TF 2.6.5 job (Ascend's TF 2 stack)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "ascend")


def _tree(layout: str) -> str:
    return os.path.join(DATA, layout, "Ascend")


def _smi(name: str) -> str:
    with open(os.path.join(DATA, name), encoding="utf-8") as fh:
        return fh.read()


@pytest.fixture
def no_ascend(monkeypatch, tmp_path):
    """No set_env.sh variables, an empty default root, no npu-smi on PATH."""
    for var in ascend.HOME_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(ascend, "DEFAULT_ROOT", str(tmp_path / "no-ascend"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    return monkeypatch


@pytest.mark.parametrize("layout, var, cann, source, driver", [
    # CANN 7/8: <arch>-linux/ascend_toolkit_install.info wins over version.cfg beside it
    ("cann8", "ASCEND_HOME_PATH", "8.0.RC3", "aarch64-linux/ascend_toolkit_install.info",
     "24.1.rc3"),
    # version.cfg only: the release after the ':' of runtime_running_version=[inner:release]
    ("cann7", "ASCEND_TOOLKIT_HOME", "8.0.0", "version.cfg", "23.0.rc3"),
    # CANN 20.x: fwkacllib/version.info Version=
    ("cann20", "ASCEND_HOME_PATH", "1.75.22.0.220", "fwkacllib/version.info", "20.2.2.spc001"),
])
def test_the_three_cann_layouts(no_ascend, layout, var, cann, source, driver):
    home = os.path.join(_tree(layout), "ascend-toolkit", "latest")
    no_ascend.setenv(var, home)
    facts = ascend.fingerprint()
    assert facts["toolkit_home"] == home
    assert facts["cann_version"] == cann
    assert facts["cann_version_file"] == os.path.join(home, source)
    assert facts["driver_version"] == driver  # <root>/driver/version.info, root found upwards


def test_tfplugin_version_from_its_install_info(no_ascend):
    no_ascend.setenv("ASCEND_HOME_PATH", os.path.join(_tree("cann8"), "ascend-toolkit", "latest"))
    assert ascend.fingerprint()["tfplugin_version"] == "8.0.RC3"


def test_default_root_is_used_without_set_env(no_ascend):
    no_ascend.setattr(ascend, "DEFAULT_ROOT", _tree("cann20"))
    facts = ascend.fingerprint()
    assert facts["cann_version"] == "1.75.22.0.220"
    assert facts["driver_version"] == "20.2.2.spc001"


def test_nothing_installed_is_all_none(no_ascend):
    facts = ascend.fingerprint()
    assert {k: facts[k] for k in ("cann_version", "driver_version", "tfplugin_version",
                                  "chip", "toolkit_home")} == dict.fromkeys(
        ("cann_version", "driver_version", "tfplugin_version", "chip", "toolkit_home"))


def test_npu_smi_910a_text():
    info = ascend.parse_npu_smi(_smi("npu-smi-910A.txt"))
    assert info["npu_smi"] == "1.8.21" and info["driver"] == "20.2.2.spc001"
    assert [c["id"] for c in info["chips"]] == list(range(8))
    assert {c["name"] for c in info["chips"]} == {"910A"}
    assert {c["health"] for c in info["chips"]} == {"OK"}


def test_npu_smi_910b_text_skips_the_process_table():
    info = ascend.parse_npu_smi(_smi("npu-smi-910B3.txt"))
    assert info["driver"] == "24.1.rc3"
    assert [(c["id"], c["name"], c["health"]) for c in info["chips"]] == [
        (0, "910B3", "OK"), (1, "910B3", "Warning")]


def test_npu_smi_on_path_gives_chip_name_count_and_driver(no_ascend, tmp_path):
    install_tool(tmp_path, no_ascend, "npu-smi", _smi("npu-smi-910A.txt"))
    facts = ascend.fingerprint()
    assert (facts["chip"], facts["chip_count"]) == ("910A", 8)
    assert facts["driver_version"] == "20.2.2.spc001"  # no driver/version.info: npu-smi's
    assert NpuBackend.describe() == {"type": "npu", "name": "Ascend 910A", "count": 8}


def test_bench_env_json_shows_the_ascend_fingerprint(no_ascend, tmp_path, bench_cli):
    no_ascend.setenv("ASCEND_HOME_PATH", os.path.join(_tree("cann8"), "ascend-toolkit", "latest"))
    install_tool(tmp_path, no_ascend, "npu-smi", _smi("npu-smi-910B3.txt"))
    result = bench_cli("env", "--json")
    assert result.exit_code == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["cann_version"] == "8.0.RC3"
    assert env["driver_version"] == "24.1.rc3"
    assert env["tfplugin_version"] == "8.0.RC3"
    assert env["npu"]["chip"] == "910B3" and env["npu"]["chip_count"] == 2
    assert env["npu"]["npu_smi_version"] == "24.1.rc3"


def test_report_environment_records_the_versions(no_ascend, bench_run, tiny, tiny_case):
    no_ascend.setenv("ASCEND_TOOLKIT_HOME", os.path.join(_tree("cann7"), "ascend-toolkit",
                                                         "latest"))
    tiny_case["train"] = {"steps": 8, "warmup_steps": 2, "log_every": 4}
    outcome = bench_run(tiny_case, plugins=[tiny])
    with open(os.path.join(outcome.folder, "report.json"), encoding="utf-8") as fh:
        env = json.load(fh)["environment"]
    assert (env["cann_version"], env["driver_version"]) == ("8.0.0", "23.0.rc3")
    assert env["npu"]["cann_version_file"].endswith("version.cfg")


def test_no_ascend_adds_no_npu_section(no_ascend, bench_cli):
    env = json.loads(bench_cli("env", "--json").stdout)
    assert env["cann_version"] is None and "npu" not in env
