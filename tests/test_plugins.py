"""Plugins extend the harness the way builtins do: devices, report writers, loaders."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from engines import multi_device

from harness.devices.cpu import CpuBackend
from harness.errors import BenchError
from harness.plugins import BUILTIN_PLUGINS, hookimpl, load_plugins

pytestmark = pytest.mark.core
CALLS: list = []


class RecordingBackend(CpuBackend):
    name = "recording"
    description = "a CPU backend that records what the runner asks of it"

    def prepare(self, case, max_devices, options):
        CALLS.append(("prepare", max_devices, options["precision"]))
        super().prepare(case, max_devices, options)

    def strategy(self, count, workers=1):
        CALLS.append(("strategy", count))
        return super().strategy(count, workers)

    def precision_policy(self, case, options):
        CALLS.append(("precision_policy", case.precision))
        return "float32"

    def wrap_optimizer(self, optimizer, options):
        CALLS.append(("wrap_optimizer", type(optimizer).__name__))
        return optimizer


@hookimpl
def register_devices(registry):
    registry.add(RecordingBackend)


@hookimpl
def register_report_writers(registry):
    registry.add("summary.txt", lambda report: f"{report['case']['name']}: {report['status']}\n")


EXTRA = SimpleNamespace(__name__="extra", register_devices=register_devices,
                        register_report_writers=register_report_writers)


def test_builtins_load_through_the_plugin_path():
    plugins = load_plugins()
    for name, module in BUILTIN_PLUGINS.items():
        assert plugins.infos[name].module == module
        assert plugins.infos[name].source == "builtin"
    assert {"cpu", "gpu", "npu"} <= set(plugins.devices.names())
    assert "report.md" in plugins.report_writers.names()


@multi_device
def test_third_party_device_and_writer(bench_run, tiny, tiny_case):
    CALLS.clear()
    outcome = bench_run({**tiny_case, "device": "recording", "devices": [1, 2]},
                        plugins=[tiny, EXTRA])
    assert outcome.report["status"] == "ok"
    assert CALLS[0] == ("prepare", 2, "fp32")
    assert ("strategy", 1) in CALLS and ("strategy", 2) in CALLS
    assert ("wrap_optimizer", "SGD") in CALLS
    assert outcome.report["environment"]["device"]["type"] == "recording"
    with open(os.path.join(outcome.folder, "summary.txt")) as fh:
        assert fh.read() == "tiny: ok\n"


def test_registering_a_name_twice_is_an_error(tiny):
    again = SimpleNamespace(__name__="again", register_models=tiny.register_models)
    with pytest.raises(BenchError, match="model 'tiny_mlp' is registered twice"):
        load_plugins(objects=[tiny, again]).models.names()


def test_unknown_names_list_what_is_registered():
    plugins = load_plugins()
    with pytest.raises(BenchError, match=r"unknown device 'tpu'; registered: cpu, gpu, npu"):
        plugins.devices.get("tpu")


class JsonCases:
    def claims(self, path, text):
        return path.endswith(".json")

    def read(self, path, text):
        import json

        return [("", json.loads(text))]


@hookimpl
def register_case_formats(registry):
    registry.add("json", JsonCases())


def test_a_plugin_adds_a_case_format(tmp_path, tiny):
    from harness.run.plan import load_cases

    path = tmp_path / "c.json"
    path.write_text('{"model": "tiny_mlp", "batch_size": 4, "train": {"steps": 19}}')
    fmt = SimpleNamespace(__name__="json-cases", register_case_formats=register_case_formats)
    (case,) = load_cases([str(path)], [], load_plugins(objects=[tiny, fmt]))
    assert (case.name, case.batch_size, case.train.steps) == ("c", 4, 19)
