"""Facts about this host that several layers need: the CPU model and zoobench's cache folder."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_dir() -> str:
    """``$BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoobench`` (``~/.cache/zoobench``); created."""
    root = os.environ.get("BENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zoobench")
    os.makedirs(root, exist_ok=True)
    return root
