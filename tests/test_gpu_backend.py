"""The gpu backend where no GPU is needed: precision policy, loss scale, peak table, environment."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from engines import eager_api
from fake_tools import install_tool

from harness.case import Case
from harness.devices import gpu
from harness.devices.cpu import CpuBackend
from harness.devices.gpu import GpuBackend
from harness.devices.peak_flops import lookup

pytestmark = pytest.mark.core  # also run on the TF 2.6.5 job (Ascend's TF 2 stack)


def _case(precision: str) -> Case:
    return Case(name="c", model="tiny_mlp", precision=precision, npu=MappingProxyType({}),
                source="c.yaml")


def test_precision_policies_per_device():
    assert GpuBackend().precision_policy(_case("mixed"), {}) == "mixed_float16"
    assert GpuBackend().precision_policy(_case("fp32"), {}) == "float32"
    assert CpuBackend().precision_policy(_case("mixed"), {}) == "mixed_bfloat16"
    assert CpuBackend().precision_policy(_case("fp32"), {}) == "float32"


@eager_api  # TF 2 Keras' LossScaleOptimizer attributes (dynamic, loss_scale)
def test_mixed_precision_gets_a_dynamic_loss_scale_unless_told_otherwise():
    from harness import tfcompat
    from harness.tfcompat import keras

    backend = GpuBackend()
    dynamic = backend.wrap_optimizer(keras.optimizers.SGD(0.1), {"precision": "mixed"})
    assert tfcompat.is_loss_scale_optimizer(dynamic) and dynamic.dynamic
    static = backend.wrap_optimizer(keras.optimizers.SGD(0.1),
                                    {"precision": "mixed", "loss_scale": 128})
    assert not static.dynamic and float(static.loss_scale) == 128.0
    sgd = keras.optimizers.SGD(0.1)
    assert backend.wrap_optimizer(sgd, {"precision": "fp32"}) is sgd
    assert backend.wrap_optimizer(sgd, {"precision": "mixed", "loss_scale": "none"}) is sgd


@pytest.mark.parametrize("name, dtype, tflops", [
    ("NVIDIA A100-SXM4-80GB", "float16", 312.0),
    ("NVIDIA A100-SXM4-40GB", "tf32", 156.0),
    ("NVIDIA A10", "float16", 125.0),          # not the A100's row
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.5),
    ("NVIDIA H100 PCIe", "float16", 756.5),
    ("NVIDIA L40S", "float16", 366.5),
    ("NVIDIA L40", "float16", 181.0),
    ("NVIDIA L4", "float32", 30.3),
    ("Tesla V100-SXM2-16GB", "float16", 125.0),
    ("Tesla V100-PCIE-32GB", "float32", 14.0),
    ("Tesla T4", "float16", 65.0),
    ("910A", "float16", 256.0),
    ("Tesla V100-SXM2-16GB", "bfloat16", None),  # Volta has no bfloat16
    ("910B3", "float16", None),                  # no sourced figure: npu.peak_tflops
    ("NVIDIA GeForce GTX 1080", "float32", None),
])
def test_datasheet_table(name, dtype, tflops):
    peak = lookup(name, dtype)
    assert (peak is None) if tflops is None else peak == pytest.approx(tflops * 1e12)


def test_gpu_peak_flops_sums_the_devices_in_use(monkeypatch):
    monkeypatch.setattr(gpu, "tf_gpu_names", lambda: ["NVIDIA A100-SXM4-80GB"] * 2)
    monkeypatch.setattr(gpu, "tf32_enabled", lambda: True)
    backend = GpuBackend()
    assert backend.peak_flops(2, "float32") == pytest.approx(2 * 156e12)  # TF32 tensor cores
    assert backend.peak_flops(1, "float16") == pytest.approx(312e12)
    monkeypatch.setattr(gpu, "tf32_enabled", lambda: False)
    assert backend.peak_flops(2, "float32") == pytest.approx(2 * 19.5e12)
    assert backend.peak_flops(4, "float16") is None  # only two GPUs known
    backend.options = {"peak_tflops": 100}
    assert backend.peak_flops(4, "float16") == pytest.approx(4 * 100e12)


NVIDIA_SMI = "NVIDIA A100-SXM4-80GB, 535.104.05, 81920 MiB\nNVIDIA A100-SXM4-80GB, 535.104.05, 81920 MiB\n"


def test_nvidia_smi_fills_describe_and_the_environment(tmp_path, monkeypatch, bench_cli):
    install_tool(tmp_path, monkeypatch, "nvidia-smi", NVIDIA_SMI)
    assert GpuBackend.describe() == {"type": "gpu", "name": "NVIDIA A100-SXM4-80GB", "count": 2}
    env = json.loads(bench_cli("env", "--json").stdout)
    assert env["gpu"]["names"] == ["NVIDIA A100-SXM4-80GB"] * 2
    assert env["gpu"]["driver_version"] == "535.104.05"
    assert env["gpu"]["memory"] == ["81920 MiB"] * 2
    assert "cuda_build" in env["gpu"]  # what TensorFlow was built against (None if CPU-only)


def test_without_a_driver_the_run_says_why(tmp_path, monkeypatch, bench_cli, tiny_case):
    from harness.testing import write_case

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(gpu.glob, "glob", lambda pattern: [])
    assert GpuBackend.unavailable_reason().startswith("no NVIDIA driver")
    path = write_case(tmp_path, {**tiny_case, "device": "gpu"})
    result = bench_cli("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    assert result.exit_code == 2
    assert "device: 'gpu' is not available on this machine (no NVIDIA driver" in result.stderr


@eager_api  # tf.config.experimental.get_memory_info / reset_memory_stats: TF >= 2.4
def test_gpu_memory_is_the_allocator_peak_of_the_fullest_device(tmp_path, monkeypatch):
    # tf.config.experimental.get_memory_info / reset_memory_stats as TF documents them (no
    # GPU here): {"current": bytes, "peak": bytes} per "GPU:i"
    from harness.tfcompat import tf

    install_tool(tmp_path, monkeypatch, "nvidia-smi",
                 "0, GPU-aaa, 81920 MiB\n1, GPU-bbb, 40960 MiB\n2, GPU-ccc, 24576 MiB\n")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1")  # TF's GPU:1 is the 40 GiB card
    peaks = {"GPU:0": 3 * 2**30, "GPU:1": 5 * 2**30}
    resets = []
    monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", resets.append)
    monkeypatch.setattr(tf.config.experimental, "get_memory_info",
                        lambda device: {"current": 2**20, "peak": peaks[device]})
    monitor = GpuBackend().memory_monitor(2)
    monitor.start()
    assert resets == ["GPU:0", "GPU:1"]  # the window's peak, not the process lifetime's
    memory = monitor.stop()
    assert memory["device_peak_bytes"] == 5 * 2**30
    assert memory["device_total_bytes"] == 40960 * 2**20
    assert "this process" in memory["device_source"]
