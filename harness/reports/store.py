"""report.json (schema zoobench.report/1) on disk: run folders, atomic writes, strict JSON,
loading (with the schema check every command relies on), finding."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import secrets
import sys
from typing import TYPE_CHECKING, Any

from harness.errors import EXIT_RUN_FAILED, BenchError
from harness.reports.schema import check_report
from harness.userfiles import REPORT_LIMIT, parse_json, read_user_text

if TYPE_CHECKING:
    from harness.plugins import BenchPlugins

SCHEMA = "zoobench.report/1"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def folder_name(text: str) -> str:
    """``text`` (a case name, a job id) as one safe path component: ASCII letters, digits,
    ``_.-`` only, no leading dot, at most 60 characters. Every folder named after user text
    is made through this (run folders, the Slurm exchange folder)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")[:60] or "run"


def new_run_folder(out_root: str, case_name: str) -> tuple[str, str]:
    """Create ``out_root/<run_id>/``; never reuses an existing folder."""
    try:
        os.makedirs(out_root, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"--out {out_root}: cannot create: {exc.strerror}") from None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        run_id = f"{stamp}-{folder_name(case_name)}-{secrets.token_hex(2)}"
        path = os.path.join(out_root, run_id)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BenchError(f"--out {out_root}: cannot create a run folder: {exc.strerror}") from None
        return run_id, path
    raise BenchError(f"--out {out_root}: no free run folder name")


def write_atomic(path: str, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temp file and rename: readers never see half.

    The temp file has a random name and is created with O_EXCL | O_NOFOLLOW, so a file or
    symlink planted at that name (a shared ``--out``) is never written through; on any
    failure (a full disk) it is removed and the OSError raised, ``path`` left as it was.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    folder = os.path.dirname(path) or "."
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_CLOEXEC", 0))
    for _ in range(100):
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"{path}: no free temp file name")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


MAX_NOTES = 20


def strict_json(value: Any, notes: list[str] | None = None, key: str = "") -> Any:
    """``value`` with every NaN and infinity replaced by None (strict JSON has neither: a
    bare ``NaN`` breaks JSON.parse), each replacement noted in ``notes`` by its key."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if notes is not None:
            notes.append(f"{key or 'value'}: {value} written as null")
        return None
    if isinstance(value, dict):
        return {k: strict_json(v, notes, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v, notes, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def to_json(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``value`` (NaN/infinity as null; other objects as their str):
    the one way zoobench writes JSON."""
    return json.dumps(strict_json(value), indent=indent, default=str, allow_nan=False)


def _strict_report(report: dict[str, Any]) -> None:
    """Make ``report`` strict JSON in place (so the renderers show what report.json holds),
    listing what was replaced under ``notes``."""
    notes: list[str] = []
    clean = strict_json({k: v for k, v in report.items() if k != "notes"}, notes)
    report.update(clean)
    if notes:
        shown = notes[:MAX_NOTES]
        if len(notes) > MAX_NOTES:
            shown.append(f"... and {len(notes) - MAX_NOTES} more values written as null")
        report["notes"] = list(report.get("notes") or []) + shown


def write_report(folder: str, report: dict[str, Any], plugins: BenchPlugins) -> None:
    """report.json first, then every registered renderer's file, then the report_written
    hook. A file that cannot be written (a full disk) does not stop the others; afterwards
    one BenchError (exit 3) names the first such file, and no temp file is left behind."""
    _strict_report(report)
    files = [("report.json", lambda data: json.dumps(data, indent=2, default=str,
                                                      allow_nan=False) + "\n")]
    files += list(plugins.report_writers.items())
    failed: list[tuple[str, str]] = []
    for filename, render in files:
        path = os.path.join(folder, filename)
        try:
            write_atomic(path, render(report))
        except OSError as exc:
            failed.append((path, exc.strerror or str(exc)))
            if filename == "report.json":
                break  # the renderers' files without report.json would mislead
    if failed:
        path, why = failed[0]
        more = f" ({len(failed) - 1} more file(s) not written)" if len(failed) > 1 else ""
        raise BenchError(f"{path}: cannot write the report: {why}{more}",
                         exit_code=EXIT_RUN_FAILED)
    plugins.hook.report_written(report=report, path=folder)


def load_report(path: str) -> dict[str, Any]:
    """A report.json (or the run folder holding one), read as a user file (regular, at most
    256 MiB, strict JSON) and checked for its schema tag and the shape every command reads;
    anything else is one line naming the file and key (exit 2)."""
    if os.path.isdir(path):
        path = os.path.join(path, "report.json")
    if not os.path.lexists(path):
        raise BenchError(f"{path}: no such report")
    report = parse_json(read_user_text(path, "report", REPORT_LIMIT), path, max_depth=64)
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise BenchError(f"{path}: schema: expected {SCHEMA!r}, "
                         f"got {report.get('schema') if isinstance(report, dict) else None!r}")
    return check_report(report, path)


def find_reports(paths: list[str]) -> list[str]:
    """report.json files named directly or found below the given folders, in order; each
    file once, however often it is named. A folder without any report.json is an error."""
    found: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if os.path.isdir(path):
            top = os.path.join(path, "report.json")
            here = [top] if os.path.lexists(top) else [
                os.path.join(root, "report.json")
                for root, _dirs, files in sorted(os.walk(path)) if "report.json" in files]
            if not here:
                raise BenchError(f"{path}: no report.json in this folder")
        elif os.path.lexists(path):
            here = [path]  # load_report says what is wrong with one that is no regular file
        else:
            raise BenchError(f"{path}: no such file or folder")
        for item in here:
            real = os.path.realpath(item)
            if real not in seen:
                seen.add(real)
                found.append(item)
    return found


def argv_string() -> str:
    return " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
