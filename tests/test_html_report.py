"""report.html: self-contained, escaped, and rendered with its plots by headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess

import pytest

from harness.testing import run_in_process

NAME = '<script>alert("x")</script> & co'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Injected into a copy of the page: records failed loads and the state of every image.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.src) || 'error')); }, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var pre = document.createElement('pre'); pre.id = 'zoobench-probe';
  pre.textContent = JSON.stringify({images: imgs.length, errors: window.__errors,
    loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length});
  document.body.appendChild(pre); });
</script>"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One real run at 1 and 2 devices whose case name is an HTML injection attempt."""
    import tiny_model

    case = {"name": NAME, "model": "tiny_mlp", "device": "cpu", "devices": [1, 2],
            "batch_size": 32, "train": {"steps": 40, "warmup_steps": 4, "log_every": 4},
            "eval": {"at_end": True}}
    outcome = run_in_process(case, str(tmp_path_factory.mktemp("html")), [tiny_model])
    assert outcome.report["status"] == "ok"
    return outcome


def _images(text):
    return re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)


def test_case_name_is_escaped_and_page_is_self_contained(run):
    text = open(os.path.join(run.folder, "report.html"), encoding="utf-8").read()
    assert "<script" not in text.lower()
    assert html.escape(NAME, quote=True) in text
    # no resource from outside the file: every src is an embedded image, no links/imports
    assert re.findall(r'\bsrc\s*=\s*"(?!data:image/png;base64,)', text) == []
    for pattern in (r"\bhref\s*=", r"<link\b", r"@import", r"url\s*\(", r"<iframe", r"<object"):
        assert not re.search(pattern, text, re.I), pattern
    images = _images(text)
    assert len(images) == 3  # loss, throughput per interval, scaling (1 and 2 devices)
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_report_html_combines_reports(bench_cli, run, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(run.folder, other)
    out = tmp_path / "all.html"
    result = bench_cli("report", run.folder, str(other), "--html", str(out))
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert text.count(f"zoobench report: {html.escape(NAME, quote=True)}") == 2
    assert "<script" not in text.lower() and "2 report(s)" in text
    assert "Scaling across reports" in text
    # 1 scaling chart across reports + 3 plots per report
    assert len(_images(text)) == 1 + 2 * 3


def test_the_scaling_chart_keeps_incomparable_runs_apart(run):
    from harness.reports.html import _series_labels, comparable_key

    report = run.report
    other = json.loads(json.dumps(report))
    other["case"]["launcher"] = "process"
    other["case"]["params"]["hidden"] = 64
    keys = [comparable_key(r, r["results"][0]) for r in (report, other)]
    assert keys[0] != keys[1]
    assert comparable_key(report, report["results"][1]) == keys[0]  # 1 and 2 devices: one line
    labels = _series_labels(keys)
    assert labels[keys[0]] == "tiny_mlp bs32/device synthetic fp32 [hidden=32; launcher auto]"
    assert labels[keys[1]] == "tiny_mlp bs32/device synthetic fp32 [hidden=64; launcher process]"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs "
                                              "Debian's chromium package)")
def test_headless_chromium_renders_the_plots(run, tmp_path):
    text = open(os.path.join(run.folder, "report.html"), encoding="utf-8").read()
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run(flags + ["--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)
    found = re.search(r'<pre id="zoobench-probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    state = json.loads(html.unescape(found.group(1)))
    assert state == {"images": 3, "loaded": 3, "errors": []}
    # the page as a user sees it (look at it: tmp_path/report.png)
    shot = tmp_path / "report.png"
    page = "file://" + os.path.abspath(os.path.join(run.folder, "report.html"))
    subprocess.run(flags + ["--window-size=1200,2400", f"--screenshot={shot}", page],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a blank page is a few kB
