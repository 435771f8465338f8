"""Loads the shared tests/fakes/fake_hccl.py once per process, wherever this package is
(a copy in each fake, so either works alone, e.g. symlinked into a folder of its own)."""

from __future__ import annotations

import importlib.util
import os
import sys


def load():
    module = sys.modules.get("fake_hccl")
    if module is None:
        root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
        spec = importlib.util.spec_from_file_location("fake_hccl", os.path.join(root, "fake_hccl.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["fake_hccl"] = module
        spec.loader.exec_module(module)
    return module
