"""report.json (schema zoobench.report/1) on disk: run folders, atomic writes, loading, finding."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import sys
from typing import TYPE_CHECKING, Any

from harness.errors import BenchError

if TYPE_CHECKING:
    from harness.plugins import BenchPlugins

SCHEMA = "zoobench.report/1"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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


def argv_string() -> str:
    return " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
