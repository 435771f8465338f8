"""Shared test setup: the tests' own plugin modules are importable as top-level modules."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
HELPERS = os.path.join(HERE, "helpers")
FAKES = os.path.join(HERE, "fakes")
NPU_LAUNCH_VARS = ("RANK_SIZE", "RANK_ID", "RANK_TABLE_FILE", "ASCEND_DEVICE_ID", "DEVICE_ID",
                   "ASCEND_VISIBLE_DEVICES", "NPU_LOOP_SIZE", "FAKE_HCCL_DIR")
ROOT = os.path.dirname(HERE)
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)


@pytest.fixture
def tiny():
    import tiny_model

    return tiny_model


@pytest.fixture
def tiny_case():
    """A fast valid case for the tiny model (a fresh dict each time)."""
    return {
        "name": "tiny",
        "model": "tiny_mlp",
        "device": "cpu",
        "devices": [1],
        "batch_size": 32,
        "train": {"steps": 40, "warmup_steps": 5, "log_every": 5},
        "eval": {"at_end": True},
    }


def forget_modules(prefix: str) -> None:
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def fake_npu(monkeypatch):
    """The fake adapter (tests/fakes) importable as ``npu_device`` for one test, then gone
    again (so that ``device: auto`` elsewhere does not find an NPU); worker processes started
    meanwhile find it too (they get this process's sys.path)."""
    for var in NPU_LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(FAKES)
    forget_modules("npu_device")
    import npu_device

    yield npu_device
    forget_modules("npu_device")
