"""bench import-log: the seed's ModelZoo log lines become reports that compare can read."""

from __future__ import annotations

import json
import os

import pytest

# Verbatim from the ModelZoo READMEs (shared/reference/modelzoo-readmes.txt): ResNeXt-50's
# training lines and eval table, and BERT's output of eight ranks interleaved in one file.
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "modelzoo")


def _seed(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as fh:
        return fh.read()


RESNEXT_TRAIN = _seed("resnext50_train.log")
RESNEXT_EVAL = _seed("resnext50_eval.log")
BERT_SEED = _seed("bert_8p.log")


def _bert_block(step, rate, clock):
    """The seed's line format for a later logging step, from two of its ranks."""
    return (
        f"I0521 {clock} 281473752813584 basic_session_run_hooks.py:692] global_step/sec: {rate}\n"
        f"I0521 {clock} 281473584246800 basic_session_run_hooks.py:692] global_step/sec: {rate}\n"
        f"I0521 {clock} 281473752813584 basic_session_run_hooks.py:260] global_step = {step}, "
        f"masked_lm_loss = 0.75, next_sentence_loss = 0.02, total_loss = 0.77 (81.600 sec)\n"
        f"I0521 {clock} 281473584246800 basic_session_run_hooks.py:260] global_step = {step}, "
        f"masked_lm_loss = 0.77, next_sentence_loss = 0.02, total_loss = 0.79 (81.600 sec)\n")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _load(stdout):
    line = next(x for x in stdout.splitlines() if x.startswith("report: "))
    path = line.split(" ", 1)[1].rsplit(" (", 1)[0]
    with open(path, encoding="utf-8") as fh:
        return json.load(fh), os.path.dirname(path)


def test_resnext50_seed_lines_give_their_fps_and_top1(bench_cli, tmp_path):
    train = _write(tmp_path, "train_0.log", RESNEXT_TRAIN)
    evals = _write(tmp_path, "eval.log", RESNEXT_EVAL)
    result = bench_cli("import-log", train, evals, "--model", "resnext50", "--cann-version",
                       "20.1", "--devices", "1", "--batch-size", "32", "--tensorflow", "1.15.0",
                       "--out", str(tmp_path / "reports"))
    assert result.exit_code == 0, result.stderr
    report, folder = _load(result.stdout)
    assert report["schema"] == "zoobench.report/1" and report["status"] == "ok"
    assert report["environment"]["cann_version"] == "20.1"
    assert report["environment"]["tensorflow"] == "1.15.0"
    assert report["case"]["name"] == "resnext50_1p"
    (res,) = report["results"]
    tp = res["throughput"]
    # the first two FPS lines (180.0 and 741.5) are dropped, as the ModelZoo scripts do
    assert [round(i["samples_per_sec"], 1) for i in tp["intervals"]] == [
        741.5, 741.3, 741.4, 741.4, 741.2, 741.5]
    assert [i["step"] for i in tp["intervals"]] == [3000, 4000, 5000, 6000, 7000, 8000]
    assert tp["samples_per_sec"] == pytest.approx(741.38, abs=0.01)  # samples / seconds
    assert res["warmup_steps"] == 2000 and res["measured_steps"] == 6000
    assert res["global_batch_size"] == 32
    assert res["accuracy"] == pytest.approx({"top1": 0.78197, "top5": 0.9414})
    assert [e["step"] for e in res["evals"]] == [226000, 339000, 452000, 565000, 601000]
    assert res["loss"]["curve"][0] == [1000, 8.258] and res["loss"]["last"] == 6.656
    for name in ("report.md", "report.html"):
        assert os.path.exists(os.path.join(folder, name))


def test_bert_seed_lines_give_global_step_rate_times_global_batch(bench_cli, tmp_path):
    text = (BERT_SEED + _bert_block(1323800, 2.452, "19:46:27.1")
            + _bert_block(1324000, 2.449, "19:47:48.7") + _bert_block(1324200, 2.45, "19:49:10.3"))
    log = _write(tmp_path, "bert.log", text)
    result = bench_cli("import-log", log, "--model", "bert", "--cann-version", "20.2",
                       "--devices", "8", "--batch-size", "128", "--out",
                       str(tmp_path / "reports"))
    assert result.exit_code == 0, result.stderr
    report, _ = _load(result.stdout)
    (res,) = report["results"]
    # one rank's rate lines (2.451, 2.452 dropped), 8p FPS = global_step/sec x 128 x 8
    rates = [i["samples_per_sec"] for i in res["throughput"]["intervals"]]
    assert rates == pytest.approx([2.449 * 1024, 2.45 * 1024])
    assert [i["steps"] for i in res["throughput"]["intervals"]] == [200, 200]
    assert [i["step"] for i in res["throughput"]["intervals"]] == [1324000, 1324200]
    assert res["global_batch_size"] == 1024 and report["case"]["name"] == "bert_8p"
    # the loss of a step is the mean over every rank's line for it
    seed_losses = [0.7743191, 0.7663654, 0.96514636, 0.77614343, 0.8364129, 0.9282802]
    assert res["loss"]["curve"][0] == pytest.approx([1323600, sum(seed_losses) / 6])
    assert res["loss"]["curve"][-1] == pytest.approx([1324200, 0.78])


def test_too_few_lines_is_bad_input_naming_the_file(bench_cli, tmp_path):
    log = _write(tmp_path, "short.log", RESNEXT_TRAIN.splitlines()[1] + "\n")
    result = bench_cli("import-log", log, "--model", "resnext50", "--cann-version", "1",
                       "--devices", "1", "--batch-size", "32", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "short.log: found 1 FPS line(s)" in result.stderr
    assert not (tmp_path / "r").exists()


def test_imported_logs_compare_and_flag_a_slower_cann(bench_cli, tmp_path):
    slow = RESNEXT_TRAIN.replace("FPS:  741.", "FPS:  690.")
    folders = []
    for text, version in ((RESNEXT_TRAIN, "20.1"), (slow, "20.2")):
        log = _write(tmp_path, f"train_{version}.log", text)
        result = bench_cli("import-log", log, "--model", "resnext50", "--cann-version", version,
                           "--devices", "1", "--batch-size", "32", "--out", str(tmp_path / "r"))
        assert result.exit_code == 0, result.stderr
        folders.append(_load(result.stdout)[1])
    result = bench_cli("compare", *folders, "--format", "json", "--fail-on-regression")
    assert result.exit_code == 1, result.stderr
    comparison = json.loads(result.stdout)
    (row,) = comparison["rows"]
    assert comparison["columns"] == ["20.1", "20.2"] and row["verdict"] == "regression"
    assert row["cells"][1]["change_pct"] == pytest.approx(100 * (690.38 / 741.38 - 1), abs=0.05)


class _CsvLogFormat:
    """A third party's log format: ``step,samples_per_sec,loss`` lines."""

    __name__ = "csvlog"

    @staticmethod
    def register_log_parsers(registry):
        from harness import ParsedLog, read_log_lines

        def parse(paths):
            parsed = ParsedLog(rate_unit="samples", rate_name="csv")
            previous = 0
            for _path, _n, line in read_log_lines(paths):
                step, rate, loss = line.split(",")
                parsed.rates.append((int(step), int(step) - previous, float(rate)))
                parsed.loss_curve.append([int(step), float(loss)])
                previous = int(step)
            return parsed

        registry.add("csvmodel", parse)


def test_a_plugin_registers_its_own_log_format(tmp_path):
    from harness.plugins import hookimpl, load_plugins
    from harness.reports.import_log import import_logs

    hookimpl(_CsvLogFormat.register_log_parsers)
    plugins = load_plugins(objects=[_CsvLogFormat()])
    assert "csvmodel" in plugins.log_parsers and "resnext50" in plugins.log_parsers
    log = _write(tmp_path, "run.csv", "10,90.0,2.0\n20,100.0,1.5\n30,110.0,1.0\n40,120.0,0.5\n")
    report, _folder = import_logs([log], str(tmp_path / "r"), plugins, model="csvmodel",
                                  cann_version="8.0", devices=2, batch_size=4)
    (res,) = report["results"]
    assert [i["samples_per_sec"] for i in res["throughput"]["intervals"]] == [110.0, 120.0]
    assert res["loss"]["curve"][-1] == [40, 0.5] and res["warmup_steps"] == 20


def test_an_unknown_log_format_lists_the_registered_ones(bench_cli, tmp_path):
    log = _write(tmp_path, "x.log", "nothing\n")
    result = bench_cli("import-log", log, "--model", "resnet", "--cann-version", "1",
                       "--devices", "1", "--batch-size", "32", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert result.stderr.strip() == ("bench: error: --model: unknown log format 'resnet'; "
                                     "registered: bert, resnext50")
