"""Reliability, files: a peak-FLOP/s cache that cannot be used never costs a run, a full disk
is one line with no temp file left, report.json is strict JSON, atomic writes never follow a
planted symlink, and `bench data images` leaves nothing half-written (issue 16, items 1, 4,
6, 12, 16)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import resource
import subprocess
import sys

import pytest

from harness.errors import BenchError
from harness.testing import write_case

HERE = os.path.dirname(os.path.abspath(__file__))


def _strict(text):
    """json.loads that refuses NaN and Infinity, as JSON.parse does."""
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@contextlib.contextmanager
def _tmpfs(path, size, read_only=False):
    """A real tmpfs of ``size`` at ``path`` (root only; skips where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --- item 1: the CPU peak cache ---------------------------------------------------------


def _run_with_cache(bench_run, tiny, tiny_case, monkeypatch, cache):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    tiny_case["train"] = {"steps": 12, "warmup_steps": 2, "log_every": 5}
    report = bench_run(tiny_case, plugins=[tiny]).report
    assert report["status"] == "ok", report
    (result,) = report["results"]
    assert result["measured_steps"] == 10 and result["peak_flops"] > 0 and result["mfu"] > 0
    return report


def test_a_foreign_peak_cache_is_ignored_and_replaced(bench_run, tiny, tiny_case, monkeypatch,
                                                      tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cpu_peak_flops.json").write_text("[1, 2, 3]")
    _run_with_cache(bench_run, tiny, tiny_case, monkeypatch, cache)
    stored = json.loads((cache / "cpu_peak_flops.json").read_text())
    assert isinstance(stored, dict) and all(v > 0 for v in stored.values())


def test_a_peak_cache_folder_that_cannot_be_made_costs_nothing(bench_run, tiny, tiny_case,
                                                               monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _run_with_cache(bench_run, tiny, tiny_case, monkeypatch, blocker / "cache")


def test_a_read_only_peak_cache_costs_nothing(bench_run, tiny, tiny_case, monkeypatch, tmp_path):
    with _tmpfs(tmp_path / "ro", "64k", read_only=True) as cache:
        _run_with_cache(bench_run, tiny, tiny_case, monkeypatch, cache)
        assert os.listdir(cache) == []


# --- item 4: a full disk -----------------------------------------------------------------


def _bench(*args, preexec_fn=None):
    env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "helpers")}
    return subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=240,
                          preexec_fn=preexec_fn)


def _assert_one_line_no_leftovers(result, out):
    assert result.returncode == 3, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("bench:")]
    assert len(errors) == 1 and "cannot write the report" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    leftovers = [p for p in glob.glob(os.path.join(str(out), "**", "*"), recursive=True)
                 + glob.glob(os.path.join(str(out), "**", ".*"), recursive=True)
                 if p.endswith(".tmp") or ".watchdog" in p]
    assert leftovers == []
    return errors[0]


def test_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, tiny_case):
    """--out on a 200 KB tmpfs: the run's own files fill it before report.html fits."""
    path = write_case(tmp_path, tiny_case)
    with _tmpfs(tmp_path / "small", "200k") as out:
        with open(out / "ballast", "wb") as fh:  # leave room for the run folder, not the report
            fh.write(b"\0" * 150 * 1024)
        result = _bench("run", path, "--out", str(out), "--plugin", "tiny_model")
        line = _assert_one_line_no_leftovers(result, out)
        assert "No space left on device" in line


def test_a_file_size_limit_is_one_line_and_leaves_no_temp_file(tmp_path, tiny_case):
    """The same without root: RLIMIT_FSIZE makes the report's writes fail (EFBIG)."""
    path = write_case(tmp_path, tiny_case)
    out = tmp_path / "out"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 * 1024, resource.RLIM_INFINITY))

    result = _bench("run", path, "--out", str(out), "--plugin", "tiny_model", preexec_fn=limit)
    line = _assert_one_line_no_leftovers(result, out)
    assert "File too large" in line


def test_write_atomic_failing_midway_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    from harness.reports import store

    target = tmp_path / "report.json"
    target.write_text("old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        store.write_atomic(str(target), "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["report.json"]


# --- item 6: strict JSON ---------------------------------------------------------------


def test_a_diverged_report_is_strict_json_with_a_note(bench_run, tiny, tiny_case):
    tiny_case["params"] = {"nan_at_step": 12}
    tiny_case["train"] = {"steps": 40, "warmup_steps": 2, "log_every": 5}
    outcome = bench_run(tiny_case, plugins=[tiny])
    assert outcome.report["status"] == "diverged"
    with open(os.path.join(outcome.folder, "report.json"), encoding="utf-8") as fh:
        report = _strict(fh.read())
    (result,) = report["results"]
    assert result["loss"]["last"] is None and "loss is nan" in result["error"]
    assert any("loss.last: nan written as null" in note for note in report["notes"])
    md = open(os.path.join(outcome.folder, "report.md"), encoding="utf-8").read()
    assert "## Notes" in md and "written as null" in md


def test_to_json_never_writes_nan():
    from harness.reports.store import to_json

    assert _strict(to_json({"a": float("nan"), "b": [float("-inf"), 1.5]})) == {
        "a": None, "b": [None, 1.5]}


# --- item 16: planted symlinks ------------------------------------------------------------


def test_atomic_writes_never_follow_a_planted_symlink(tmp_path, monkeypatch):
    from harness.reports import store

    victim = tmp_path / "victim"
    victim.write_text("precious")
    shared = tmp_path / "shared"
    shared.mkdir()
    names = iter(["guessed", "fresh"])
    monkeypatch.setattr(store.secrets, "token_hex", lambda n: next(names))
    os.symlink(victim, shared / ".report.json.guessed.tmp")  # the attacker's guess
    store.write_atomic(str(shared / "report.json"), "mine")
    assert victim.read_text() == "precious"
    assert (shared / "report.json").read_text() == "mine"
    assert os.path.islink(shared / ".report.json.guessed.tmp")  # left alone, not written
    assert sorted(os.listdir(shared)) == [".report.json.guessed.tmp", "report.json"]


def test_the_slurm_exchange_folder_must_be_a_real_folder_of_this_user(tmp_path):
    from harness.run.slurm import _exchange_folder

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = tmp_path / "slurm-1-x"
    os.symlink(elsewhere, planted)
    with pytest.raises(BenchError, match="not a folder of this user"):
        _exchange_folder(str(planted))
    _exchange_folder(str(tmp_path / "slurm-2-x"))  # a fresh one is made
    assert os.path.isdir(tmp_path / "slurm-2-x")


def test_folder_names_are_one_safe_component():
    from harness.reports.store import folder_name

    assert folder_name("../../etc") == "etc"
    assert folder_name("slurm-7-../x") == "slurm-7-..-x"
    assert "/" not in folder_name("a/b\\c\0d") and folder_name("...") == "run"


# --- item 12: bench data images ---------------------------------------------------------


def test_a_corrupt_jpeg_leaves_no_partial_split_and_the_rerun_works(bench_cli, tmp_path):
    from plugins.resnext50.shapes import write_shapes

    src = tmp_path / "src"
    write_shapes(str(src), per_class=6, size=16, seed=1)
    corrupt = src / "circle" / "zz-corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    result = bench_cli("data", "images", str(src), str(out), "--eval-fraction", "0.3")
    assert result.exit_code == 2 and "zz-corrupt.jpg: not a readable image" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()  # it made the folder, so it removed it
    out.mkdir()
    result = bench_cli("data", "images", str(src), str(out), "--eval-fraction", "0.3")
    assert result.exit_code == 2 and os.listdir(out) == []  # an existing folder stays empty
    corrupt.unlink()
    again = bench_cli("data", "images", str(src), str(out), "--eval-fraction", "0.3")
    assert again.exit_code == 0, again.stderr
    assert sorted(os.listdir(out)) == ["labels.txt", "train-00000-of-00001",
                                       "validation-00000-of-00001"]
