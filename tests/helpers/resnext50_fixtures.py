"""Shared setup of the ResNeXt-50 plugin tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def logical_cpu_devices():
    """Create the logical CPU devices before a test touches TensorFlow eagerly: they can only
    be set before TF initialises its runtime, and later multi-device runs in this process
    (here or in other test modules) need them."""
    from harness.devices.cpu import CpuBackend

    CpuBackend().prepare(None, 0, {})  # type: ignore[arg-type] - the case only names errors
