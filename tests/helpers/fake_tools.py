"""Vendor command-line tools played by scripts on PATH (npu-smi, nvidia-smi) for tests."""

from __future__ import annotations

import os
import shlex
import sys


def install_tool(folder, monkeypatch, name: str, stdout: str, exit_code: int = 0) -> str:
    """Put an executable ``name`` into ``folder`` that prints ``stdout``, first on PATH."""
    folder = os.fspath(folder)
    text_path = os.path.join(folder, f"{name}.out")
    with open(text_path, "w", encoding="utf-8") as fh:
        fh.write(stdout)
    script = os.path.join(folder, name)
    with open(script, "w", encoding="utf-8") as fh:
        fh.write(f"#!{sys.executable}\nimport sys\n"
                 f"sys.stdout.write(open({text_path!r}, encoding='utf-8').read())\n"
                 f"sys.exit({exit_code})\n")
    os.chmod(script, 0o755)
    monkeypatch.setenv("PATH", folder + os.pathsep + os.environ.get("PATH", ""))
    return shlex.quote(script)
