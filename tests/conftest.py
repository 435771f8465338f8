"""Shared test setup: the tests' own plugin modules are importable as top-level modules."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
HELPERS = os.path.join(HERE, "helpers")
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
