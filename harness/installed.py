"""Installed distributions: a group's entry points and package versions, on Python 3.7-3.13.

``importlib.metadata.entry_points(group=...)`` and ``EntryPoint.dist`` are Python 3.10's; Ascend's
TF 2.6.5 stack runs Python 3.9 and the TF 1.15 one Python 3.7 (no ``importlib.metadata`` at all,
the ``importlib_metadata`` backport instead). Walking the distributions works on all of them.
"""

from __future__ import annotations

from typing import Any

try:
    from importlib import metadata
except ImportError:  # Python 3.7
    import importlib_metadata as metadata  # type: ignore[no-redef]

PackageNotFoundError = metadata.PackageNotFoundError


def entry_points(group: str) -> list[tuple[Any, str, str]]:
    """``(entry point, its distribution's version, its distribution's name)`` for every entry
    point of ``group``, by name; a name installed twice is taken from the first distribution on
    ``sys.path``."""
    found: dict[str, tuple[Any, str, str]] = {}
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == group and ep.name not in found:
                found[ep.name] = (ep, dist.version or "unknown", dist.metadata["Name"])
    return [found[name] for name in sorted(found)]


def version(distribution: str) -> str:
    """The installed version of ``distribution``; raises PackageNotFoundError."""
    return metadata.version(distribution)
