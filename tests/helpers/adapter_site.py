"""One fake Ascend adapter importable on its own (as in an image that ships only it)."""

from __future__ import annotations

import os

FAKES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes")


def only_adapter(tmp_path, monkeypatch, name: str = "npu_bridge", unset: tuple = ()) -> str:
    """Link ``tests/fakes/<name>`` into a folder of its own, put that first on sys.path and
    unset the ``unset`` environment variables; returns the folder (the package finds
    ``fake_hccl.py`` through the link)."""
    for var in unset:
        monkeypatch.delenv(var, raising=False)
    site = tmp_path / "site"
    site.mkdir()
    os.symlink(os.path.join(FAKES, name), str(site / name))
    monkeypatch.syspath_prepend(str(site))
    return str(site)
