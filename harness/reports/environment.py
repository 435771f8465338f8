"""The environment fingerprint every report records: versions, host, CPU, device, git."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from typing import TYPE_CHECKING, Any

from harness.errors import BenchError
from harness.host import cpu_model
from harness.version import __version__

if TYPE_CHECKING:
    from harness.plugins import BenchPlugins


def git_commit(path: str = ".") -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout at ``path``, or None outside one."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def capture_environment(plugins: BenchPlugins, device: dict[str, Any] | None = None,
                        with_tf: bool = True) -> dict[str, Any]:
    """The environment fingerprint: software versions, host, CPU, device, git; plugins add to
    it through the ``environment`` hook (the npu backend adds CANN, driver and tfplugin)."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "tensorflow": None,
        "keras": None,
        "harness": __version__,
        "plugins": plugins.versions(),
        "device": device or {},
        "cann_version": None,
        "driver_version": None,
        "tfplugin_version": None,
        "host": socket.gethostname(),
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "git": git_commit(),
    }
    if with_tf:
        try:
            from harness import tfcompat

            env["tensorflow"] = tfcompat.tf.__version__
            env["keras"] = tfcompat.keras_version()
        except (ImportError, BenchError) as exc:
            env["tensorflow"] = f"unavailable ({exc})"
    plugins.hook.environment(env=env)
    return env
