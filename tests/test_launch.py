"""Device counts and the process launcher: data-parallel correctness, faults, rank tables."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.testing import write_case

HERE = os.path.dirname(os.path.abspath(__file__))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def _bench(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "helpers")}
    return subprocess.Popen([sys.executable, "-c", "from harness.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=cwd)


def _report(out_dir):
    (run_dir,) = [d for d in os.listdir(out_dir)]
    with open(os.path.join(out_dir, run_dir, "report.json")) as fh:
        return json.load(fh), os.path.join(out_dir, run_dir)


def test_inline_1_2_4_devices_are_data_parallel(bench_run, tiny, tiny_case):
    tiny_case.update(devices=[1, 2, 4], train={"steps": 30, "warmup_steps": 5, "log_every": 5})
    report = bench_run(tiny_case, plugins=[tiny]).report
    assert report["status"] == "ok"
    for result, count in zip(report["results"], [1, 2, 4]):
        assert result["devices"] == count
        assert result["global_batch_size"] == 32 * count
        assert result["measured_steps"] == 25
        intervals = result["throughput"]["intervals"]
        assert sum(i["samples"] for i in intervals) == 25 * 32 * count
        digests = result["weights_digests"]
        assert len(digests) == count and len(set(digests)) == 1  # replicas stayed equal
    assert report["results"][2]["scaling_efficiency"] is not None


def test_process_launcher_two_workers_over_loopback(tmp_path, tiny_case):
    tiny_case.update(devices=[2], launcher="process",
                     train={"steps": 30, "warmup_steps": 5, "log_every": 5})
    path = write_case(tmp_path, tiny_case)
    proc = _bench("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    report, folder = _report(tmp_path / "r")
    (result,) = report["results"]
    assert result["launcher"] == "process" and result["workers"] == 2
    assert result["global_batch_size"] == 64 and result["measured_steps"] == 25
    assert sum(i["samples"] for i in result["throughput"]["intervals"]) == 25 * 64
    assert len(result["weights_digests"]) == 2 and len(set(result["weights_digests"])) == 1
    assert result["accuracy"]["accuracy"] > 0.4
    # the run's events are in the run folder, as for an inline count: rank 0's stream
    # replayed by the parent (one writer), closed with the merged result's run_stop
    assert not os.path.exists(os.path.join(folder, "workers-2", "events.mllog"))
    records = [json.loads(line[len(":::MLLOG "):])
               for line in open(os.path.join(folder, "events.mllog")) if line.strip()]
    keys = [r["key"] for r in records]
    blocks = [r["metadata"] for r in records if r["key"] == "block_stop"]
    assert [b["first_step"] + b["step_count"] - 1 for b in blocks] == [10, 15, 20, 25, 30]
    assert keys.index("run_start") < keys.index("block_start") < keys.index("run_stop")
    assert all(r["metadata"]["devices"] == 2 for r in records if r["key"] == "block_stop")
    assert "eval_accuracy" in keys and keys[-1] == "run_stop"
    assert glob.glob(os.path.join(folder, "tensorboard", "devices_2", "events.out.tfevents.*"))
    for rank in result["ranks"]:
        assert rank["status"] == "ok" and rank["exit_code"] == 0
        assert os.path.exists(os.path.join(folder, rank["log"]))
        assert not _alive(rank["pid"])


def test_a_dying_worker_fails_the_run_fast_with_partial_results(tmp_path, tiny_case):
    tiny_case.update(devices=[2], launcher="process",
                     train={"steps": 400, "warmup_steps": 5, "log_every": 5},
                     params={"exit_at_step": 30, "fault_rank": 1})
    path = write_case(tmp_path, tiny_case)
    started = time.monotonic()
    proc = _bench("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    proc.communicate(timeout=240)
    assert proc.returncode == 3
    report, _ = _report(tmp_path / "r")
    (result,) = report["results"]
    assert report["status"] == "failed" and result["failed_rank"] == 1
    assert result["error"] == "rank 1 exited with code 13"
    assert "log_tail" in result
    assert 5 <= result["measured_steps"] < 400  # what was measured before the death
    assert time.monotonic() - started < 120
    # from the dying worker's last logged interval to the finished report: within 30 s
    events = os.path.join(str(tmp_path / "r"), os.listdir(tmp_path / "r")[0], "workers-2",
                          "rank1.events.jsonl")
    with open(events) as fh:
        last_seen = json.loads(fh.read().splitlines()[-1])["time_unix"]
    from datetime import datetime

    finished = datetime.fromisoformat(report["finished_at"]).timestamp()
    assert finished - last_seen < 30
    for rank in result["ranks"]:
        assert not _alive(rank["pid"])


def test_a_hanging_worker_times_out(tmp_path, tiny_case):
    tiny_case.update(devices=[2], launcher="process", timeout=25,
                     train={"steps": 400, "warmup_steps": 5, "log_every": 5},
                     params={"hang_at_step": 20, "fault_rank": 0})
    path = write_case(tmp_path, tiny_case)
    proc = _bench("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    proc.communicate(timeout=240)
    assert proc.returncode == 3
    report, _ = _report(tmp_path / "r")
    (result,) = report["results"]
    assert report["status"] == "timeout" and "25 s timeout" in result["error"]
    assert result["measured_steps"] >= 5
    for rank in result["ranks"]:
        assert not _alive(rank["pid"])


def test_sigint_to_the_parent_is_interrupted(tmp_path, tiny_case):
    tiny_case.update(devices=[2], launcher="process",
                     train={"steps": 100000, "warmup_steps": 5, "log_every": 5})
    path = write_case(tmp_path, tiny_case)
    proc = _bench("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    deadline = time.monotonic() + 180
    events = None
    while time.monotonic() < deadline:
        found = [os.path.join(root, f) for root, _d, files in os.walk(tmp_path / "r")
                 for f in files if f == "rank0.events.jsonl"]
        if found and os.path.getsize(found[0]) > 0:
            events = found[0]
            break
        time.sleep(0.5)
    assert events, "the workers never started training"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 3
    report, _ = _report(tmp_path / "r")
    (result,) = report["results"]
    assert report["status"] == "interrupted"
    assert result["measured_steps"] > 0
    for rank in result["ranks"]:
        assert rank["pid"] and not _alive(rank["pid"])


def test_two_hosts_on_loopback(tmp_path, tiny_case):
    from harness.run.launch import free_ports

    tiny_case.update(devices=[2], train={"steps": 20, "warmup_steps": 5, "log_every": 5})
    path = write_case(tmp_path, tiny_case)
    base = free_ports(1)[0]
    procs = [_bench("run", path, "--out", str(tmp_path / f"host{rank}"), "--plugin",
                    "tiny_model", "--hosts", "127.0.0.1,127.0.0.1", "--rank", str(rank),
                    "--port-base", str(base)) for rank in (0, 1)]
    for proc in procs:
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
    digests = []
    for rank in (0, 1):
        report, _ = _report(tmp_path / f"host{rank}")
        (result,) = report["results"]
        assert result["workers"] == 1 and result["hosts"] == ["127.0.0.1", "127.0.0.1"]
        assert result["global_batch_size"] == 64
        assert result["ranks"][0]["rank"] == rank
        digests += result["weights_digests"]
    assert len(set(digests)) == 1  # one cluster, one model


def test_rank_table_from_hccn_tool_and_hccn_conf(tmp_path, monkeypatch):
    from harness.devices.ranktable import rank_table

    tool = tmp_path / "bin" / "hccn_tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n# hccn_tool -i N -ip -g\n"
                    "if [ \"$2\" = 3 ]; then exit 1; fi\n"
                    "echo \"ipaddr:192.168.100.10$2\"\necho \"netmask:255.255.255.0\"\n")
    tool.chmod(0o755)
    conf = tmp_path / "hccn.conf"
    conf.write_text("address_3=192.168.103.101\nnetmask_3=255.255.255.0\n")
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    table = rank_table([0, 1, 3], hccn_conf=str(conf), server="10.0.0.1")
    assert table == {
        "server_count": "1",
        "server_list": [{"server_id": "10.0.0.1", "device": [
            {"device_id": "0", "device_ip": "192.168.100.100", "rank_id": "0"},
            {"device_id": "1", "device_ip": "192.168.100.101", "rank_id": "1"},
            {"device_id": "3", "device_ip": "192.168.103.101", "rank_id": "2"}]}],
        "status": "completed", "version": "1.0"}


def test_rank_table_without_any_source_is_a_clear_error(tmp_path, monkeypatch):
    from harness.devices.ranktable import rank_table
    from harness.errors import BenchError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BenchError, match="device 5: no device IP from hccn_tool or"):
        rank_table([5], hccn_conf=str(tmp_path / "missing.conf"))


def test_npu_workers_get_the_ascend_environment(tmp_path, monkeypatch, tiny):
    from harness.devices.npu import NpuBackend
    from harness.plugins import load_plugins
    from harness.run.launch import ProcessLauncher
    from harness.run.plan import launcher_for, load_cases
    from harness.run.progress import PlainProgress
    from harness.run.runner import Job

    conf = tmp_path / "hccn.conf"
    conf.write_text("".join(f"address_{i}=192.168.1.{i}\n" for i in range(8)))
    monkeypatch.setenv("PATH", str(tmp_path))  # no hccn_tool: the conf file answers
    plugins = load_plugins(objects=[tiny])
    case_path = write_case(tmp_path, {"model": "tiny_mlp", "device": "npu", "devices": [4],
                                      "npu": {"device_ids": [4, 5, 6, 7], "job_id": 77}})
    (case,) = load_cases([case_path], [], plugins)
    assert launcher_for(case, "npu", 4) == "process"
    job = Job(case, plugins, NpuBackend(), {}, PlainProgress(), print)
    launcher = ProcessLauncher(job, "npu", str(tmp_path), hccn_conf=str(conf))
    envs = launcher._environments(4, [0, 1, 2, 3], str(tmp_path))
    assert [envs[r]["DEVICE_ID"] for r in range(4)] == ["4", "5", "6", "7"]
    assert envs[2]["ASCEND_DEVICE_ID"] == "6" and envs[2]["RANK_ID"] == "2"
    assert {envs[r]["RANK_SIZE"] for r in range(4)} == {"4"}
    assert envs[0]["JOB_ID"] == "77" and "TF_CONFIG" not in envs[0]
    with open(envs[0]["RANK_TABLE_FILE"]) as fh:
        table = json.load(fh)
    assert [d["device_ip"] for d in table["server_list"][0]["device"]] == [
        "192.168.1.4", "192.168.1.5", "192.168.1.6", "192.168.1.7"]


def test_slurm_step_of_two_tasks(tmp_path, tiny_case):
    """Two `bench run` processes with the environment srun gives its tasks (on loopback)."""
    from harness.run.launch import free_ports

    tiny_case.update(devices=[2], train={"steps": 20, "warmup_steps": 5, "log_every": 5})
    path = write_case(tmp_path, tiny_case)
    base = free_ports(1)[0]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "helpers"),
               "SLURM_JOB_ID": "4242", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": str(rank),
               "SLURM_STEP_NODELIST": "localhost", "SLURM_STEP_TASKS_PER_NODE": "2"}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", "from harness.cli import main; main()", "run", path,
             "--out", str(tmp_path / "shared"), "--plugin", "tiny_model",
             "--port-base", str(base)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=str(tmp_path)))
    for proc in procs:
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
    reports = []
    for root, _dirs, files in os.walk(tmp_path / "shared"):
        if "report.json" in files:
            with open(os.path.join(root, "report.json")) as fh:
                reports.append(json.load(fh))
    (rank0,) = [r for r in reports if len(r["results"][0]["ranks"]) == 2]
    result = rank0["results"][0]
    assert result["launcher"] == "slurm" and result["global_batch_size"] == 64
    assert [r["rank"] for r in result["ranks"]] == [0, 1]
    assert len(set(result["weights_digests"])) == 1 and len(result["weights_digests"]) == 2


def test_the_8p_case_runs_on_8_cpu_devices_with_a_scaling_table(tmp_path):
    root = os.path.dirname(HERE)
    tiny = ("{image_size: 32, groups: 4, width_per_group: 2, base_width: 8, "
            "blocks: [1, 1, 1, 1], num_classes: 10}")
    proc = _bench("run", os.path.join(root, "cases", "resnext50_8p.yaml"), "--device", "cpu",
                  "--devices", "1,8", "--out", str(tmp_path / "r"),
                  "--set", "data.source=synthetic", "--set", "train.epochs=null",
                  "--set", "train.steps=8", "--set", "train.warmup_steps=2",
                  "--set", "train.log_every=3", "--set", "eval.at_end=false",
                  "--set", "batch_size=4", "--set", f"params={tiny}", cwd=str(tmp_path))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    report, folder = _report(tmp_path / "r")
    one, eight = report["results"]
    assert (one["devices"], eight["devices"]) == (1, 8)
    assert eight["global_batch_size"] == 32 and len(set(eight["weights_digests"])) == 1
    assert eight["scaling_efficiency"] == pytest.approx(
        eight["throughput"]["samples_per_sec"] / (8 * one["throughput"]["samples_per_sec"]))
    with open(os.path.join(folder, "report.md"), encoding="utf-8") as fh:
        table = fh.read()
    assert "| 8 | 32 |" in table and "scaling" in table
