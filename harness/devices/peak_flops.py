"""Datasheet peak FLOP/s of GPUs and Ascend NPUs (dense, no sparsity), the MFU denominators."""

from __future__ import annotations

import re

TERA = 1e12

# (pattern on the device name as nvidia-smi / TensorFlow / npu-smi print it, TFLOP/s by dtype).
# "tf32" is the tensor-core rate TensorFlow uses for float32 matmuls and convolutions on
# Ampere and later unless tf.config.experimental.enable_tensor_float_32_execution(False).
# Most specific patterns first ("A100" before "A10", "L40S" before "L40", "V100S" before "V100").
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    # NVIDIA H100 Tensor Core GPU datasheet (2023): SXM5 / PCIe / NVL; tensor figures there are
    # "with sparsity", halved here.
    (r"H100.*PCIe", {"float32": 51.0, "tf32": 378.0, "float16": 756.5, "bfloat16": 756.5}),
    (r"H100.*NVL", {"float32": 60.0, "tf32": 417.5, "float16": 835.5, "bfloat16": 835.5}),
    (r"H100", {"float32": 67.0, "tf32": 494.5, "float16": 989.5, "bfloat16": 989.5}),
    # NVIDIA H200 datasheet (2024): same compute as H100 SXM5.
    (r"H200", {"float32": 67.0, "tf32": 494.5, "float16": 989.5, "bfloat16": 989.5}),
    # NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4 and PCIe alike.
    (r"A100", {"float32": 19.5, "tf32": 156.0, "float16": 312.0, "bfloat16": 312.0}),
    # NVIDIA A30 datasheet.
    (r"\bA30\b", {"float32": 10.3, "tf32": 82.0, "float16": 165.0, "bfloat16": 165.0}),
    # NVIDIA A40 datasheet.
    (r"\bA40\b", {"float32": 37.4, "tf32": 74.8, "float16": 149.7, "bfloat16": 149.7}),
    # NVIDIA A10 datasheet.
    (r"\bA10\b", {"float32": 31.2, "tf32": 62.5, "float16": 125.0, "bfloat16": 125.0}),
    # NVIDIA L40S and L40 datasheets.
    (r"\bL40S\b", {"float32": 91.6, "tf32": 183.0, "float16": 366.5, "bfloat16": 366.5}),
    (r"\bL40\b", {"float32": 90.5, "tf32": 90.5, "float16": 181.0, "bfloat16": 181.0}),
    # NVIDIA L4 datasheet.
    (r"\bL4\b", {"float32": 30.3, "tf32": 60.0, "float16": 121.0, "bfloat16": 121.0}),
    # NVIDIA V100 datasheet (2020): V100S PCIe, V100 PCIe, V100 SXM2; Volta has no TF32/BF16.
    (r"V100S", {"float32": 16.4, "float16": 130.0}),
    (r"V100.*PCI", {"float32": 14.0, "float16": 112.0}),
    (r"V100", {"float32": 15.7, "float16": 125.0}),
    # NVIDIA T4 datasheet: FP16 is the mixed-precision tensor-core rate.
    (r"\bT4\b", {"float32": 8.1, "float16": 65.0}),
    # Huawei, "Huawei launches Ascend 910" (press release, 2019-08-23): 256 TFLOPS FP16.
    # npu-smi names it 910A (or 910). Huawei publishes no per-chip figure for the 910B family
    # that we could source: set npu.peak_tflops for those.
    (r"^(Ascend\s*)?910A?$", {"float16": 256.0}),
]


def lookup(name: str, dtype: str) -> float | None:
    """Peak FLOP/s of one device called ``name`` at ``dtype`` (float32, tf32, float16,
    bfloat16), or None when the device or the dtype is not in the table."""
    name = name.strip()
    for pattern, peaks in PEAK_TFLOPS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            value = peaks.get(dtype)
            return value * TERA if value else None
    return None
