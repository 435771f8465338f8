"""report.json (schema zoobench.report/1): environment capture, run folders, atomic writes."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.errors import BenchError

if TYPE_CHECKING:
    from harness.plugins import BenchPlugins

SCHEMA = "zoobench.report/1"
STATUSES = ("ok", "failed", "timeout", "interrupted", "diverged")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
    from harness.devices.cpu import cpu_model

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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def new_run_folder(out_root: str, case_name: str) -> tuple[str, str]:
    """Create ``out_root/<run_id>/``; never reuses an existing folder."""
    try:
        os.makedirs(out_root, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"--out {out_root}: cannot create: {exc.strerror}") from None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        run_id = f"{stamp}-{_slug(case_name)}-{secrets.token_hex(2)}"
        path = os.path.join(out_root, run_id)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BenchError(f"--out {out_root}: cannot create a run folder: {exc.strerror}") from None
        return run_id, path
    raise BenchError(f"--out {out_root}: no free run folder name")


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and rename: readers never see half."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def overall_status(results: list[dict[str, Any]]) -> str:
    """The worst result status (ok only when every result is ok)."""
    order = {"interrupted": 5, "timeout": 4, "failed": 3, "diverged": 2, "ok": 0}
    if not results:
        return "failed"
    return max((r["status"] for r in results), key=lambda s: order.get(s, 3))


def write_report(folder: str, report: dict[str, Any], plugins: BenchPlugins) -> None:
    """report.json plus every registered renderer's file, then the report_written hook."""
    write_atomic(os.path.join(folder, "report.json"),
                 json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
    for filename, render in plugins.report_writers.items():
        write_atomic(os.path.join(folder, filename), render(report))
    plugins.hook.report_written(report=report, path=folder)


def load_report(path: str) -> dict[str, Any]:
    """A report.json (or the run folder holding one), checked for its schema."""
    if os.path.isdir(path):
        path = os.path.join(path, "report.json")
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except FileNotFoundError:
        raise BenchError(f"{path}: no such report") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise BenchError(f"{path}: schema: expected {SCHEMA!r}, "
                         f"got {report.get('schema') if isinstance(report, dict) else None!r}")
    return report


def find_reports(paths: list[str]) -> list[str]:
    """report.json files named directly or found below the given folders, in order."""
    found = []
    for path in paths:
        if os.path.isfile(path):
            found.append(path)
        elif os.path.isdir(path):
            here = os.path.join(path, "report.json")
            if os.path.isfile(here):
                found.append(here)
                continue
            for root, _dirs, files in sorted(os.walk(path)):
                if "report.json" in files:
                    found.append(os.path.join(root, "report.json"))
        else:
            raise BenchError(f"{path}: no such file or folder")
    if not found:
        raise BenchError(f"{', '.join(paths)}: no report.json found")
    return found


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per result, shared by the terminal table and the Markdown report."""
    rows = []
    for r in report.get("results", []):
        tp = r.get("throughput", {})
        st = r.get("step_time_ms", {})
        rows.append({
            "case": report["case"]["name"],
            "devices": r["devices"],
            "global_batch": r["global_batch_size"],
            "samples_per_sec": tp.get("samples_per_sec"),
            "per_device": tp.get("per_device"),
            "p5": tp.get("p5"),
            "p95": tp.get("p95"),
            "step_ms": st.get("median"),
            "mfu": r.get("mfu"),
            "scaling": r.get("scaling_efficiency"),
            "accuracy": r.get("accuracy") or {},
            "tta": r.get("time_to_accuracy_s"),
            "status": r["status"],
        })
    return rows


def fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def argv_string() -> str:
    return " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
