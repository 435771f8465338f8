"""zoobench harness: plugins, case files, the measured runner and reports."""

from __future__ import annotations

__version__ = "0.1.0"
