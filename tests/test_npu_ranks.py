"""Multi-rank NPU runs against the fake adapter: exact math over ranks, rank 0's weights on
every rank, the parent holding no NPU, logical vs physical ids and the 910A groups."""

from __future__ import annotations

import json

import pytest
from engines import tf2_adapter
from fake_tools import install_tool

from harness.errors import BenchError
from harness.testing import write_case

pytestmark = pytest.mark.core

# Unshuffled data, so one rank's batch k of 64 is the two ranks' batches k of 32 together (the
# ranks shard the examples alternately); weight decay on; each rank starts from other weights.
PARAMS = {"weight_decay": 0.05, "shuffle": False, "init_seed_per_rank": True}
TRAIN = {"steps": 12, "warmup_steps": 4, "log_every": 4}  # npu default: loops of 4


@tf2_adapter
def test_two_ranks_train_exactly_as_one_with_weight_decay(fake_npu, bench_run, tiny, tiny_case,
                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_HCCL_DIR", str(tmp_path / "hccl"))  # the ranks' collectives
    install_tool(tmp_path, monkeypatch, "hccn_tool", "ipaddr:192.168.100.101\n")
    one = bench_run({**tiny_case, "name": "one", "device": "npu", "devices": [1],
                     "batch_size": 64, "train": TRAIN, "params": PARAMS}, plugins=[tiny]).report
    assert one["status"] == "ok", one["results"][0].get("error")
    opened_inline = [c for c in fake_npu.CALLS if c[0] == "open"]
    assert len(opened_inline) == 1  # the 1-device run opens its NPU in this process
    fake_npu.CALLS.clear()

    many = bench_run({**tiny_case, "name": "many", "device": "npu", "devices": [1, 2],
                      "batch_size": 32, "train": TRAIN, "params": PARAMS}, plugins=[tiny]).report
    assert many["status"] == "ok", [r.get("error") for r in many["results"]]
    # every count ran in workers: this process never opened a device
    assert not [c for c in fake_npu.CALLS if c[0] == "open"]
    lone, pair = many["results"]
    assert lone["launcher"] == pair["launcher"] == "process"
    assert pair["global_batch_size"] == one["results"][0]["global_batch_size"] == 64

    # Same data, same start (rank 0's weights, broadcast), weight decay counted once: the loss
    # of every step equals the single rank's (before the fix the 2-rank loss held the decay
    # twice; without the broadcast rank 1 trains other weights).
    reference = one["results"][0]["loss"]
    assert pair["loss"]["first"] == pytest.approx(reference["first"], rel=1e-5)
    for (step, value), (ref_step, ref_value) in zip(pair["loss"]["curve"], reference["curve"]):
        assert step == ref_step and value == pytest.approx(ref_value, rel=1e-5)
    assert len(pair["weights_digests"]) == 2 and len(set(pair["weights_digests"])) == 1

    # each rank's own device options; the ones all ranks agree on at the top
    assert [r["device_options"]["npu_device_id"] for r in pair["ranks"]] == [0, 1]
    assert [r["device_options"]["rank_id"] for r in pair["ranks"]] == [0, 1]
    assert {r["device_options"]["rank_size"] for r in pair["ranks"]} == {2}
    assert lone["ranks"][0]["device_options"]["rank_size"] == 1
    assert many["device_options"]["precision_mode"] == "force_fp32"
    assert "npu_device_id" not in many["device_options"]


def _environments(tmp_path, monkeypatch, tiny, case, count):
    from harness.devices.npu import NpuBackend
    from harness.plugins import load_plugins
    from harness.run.launch import ProcessLauncher
    from harness.run.plan import load_cases
    from harness.run.progress import PlainProgress
    from harness.run.runner import Job

    conf = tmp_path / "hccn.conf"
    conf.write_text("".join(f"address_{i}=192.168.1.{i}\n" for i in range(8)))
    monkeypatch.setenv("PATH", str(tmp_path))  # no hccn_tool, no npu-smi: the conf answers
    plugins = load_plugins(objects=[tiny])
    (loaded,) = load_cases([write_case(tmp_path, case)], [], plugins)
    job = Job(loaded, plugins, NpuBackend(), {}, PlainProgress(), print)
    launcher = ProcessLauncher(job, "npu", str(tmp_path), hccn_conf=str(conf))
    return launcher._environments(count, list(range(count)), str(tmp_path))


def test_workers_get_logical_ascend_device_ids_and_physical_device_ids(tmp_path, monkeypatch,
                                                                      tiny):
    # a container that shows physical devices 4-7 as logical 0-3
    monkeypatch.setenv("ASCEND_VISIBLE_DEVICES", "4-7")
    case = {"model": "tiny_mlp", "device": "npu", "devices": [2], "npu": {"device_ids": [2, 3]}}
    envs = _environments(tmp_path, monkeypatch, tiny, case, 2)
    assert [envs[r]["ASCEND_DEVICE_ID"] for r in (0, 1)] == ["2", "3"]  # npu_device.open's
    assert [envs[r]["DEVICE_ID"] for r in (0, 1)] == ["6", "7"]
    with open(envs[0]["RANK_TABLE_FILE"]) as fh:
        devices = json.load(fh)["server_list"][0]["device"]
    assert [(d["device_id"], d["device_ip"], d["rank_id"]) for d in devices] == [
        ("6", "192.168.1.6", "0"), ("7", "192.168.1.7", "1")]


def test_a_single_worker_gets_no_rank_table(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("RANK_TABLE_FILE", "/somewhere/else.json")
    envs = _environments(tmp_path, monkeypatch, tiny,
                         {"model": "tiny_mlp", "device": "npu", "devices": [1, 2]}, 1)
    assert envs[0]["RANK_SIZE"] == "1" and envs[0]["ASCEND_DEVICE_ID"] == "0"
    assert "RANK_TABLE_FILE" not in envs[0]


@pytest.mark.parametrize("ids, visible, chip, problem", [
    ([3, 4], None, None, "[3, 4] (physical [3, 4]) spans both 910A device groups"),
    ([0, 1], "2,3,4,5", "910A", None),  # physical 2, 3: one group
    ([1, 2], "2-5", "910A", "[1, 2] (physical [3, 4]) spans both 910A device groups"),
    ([3, 4], None, "910B3", None),  # the 910B has no such groups
    ([0, 1, 2, 3, 4, 5, 6, 7], None, "910A", None),  # all eight may cross
    ([0, 1, 2, 3, 4, 5], None, "910A", "spans both 910A device groups"),
    ([0, 5], "0,1", None, "logical ids [5] are not visible: ASCEND_VISIBLE_DEVICES shows 2"),
])
def test_device_groups_and_visibility(monkeypatch, ids, visible, chip, problem):
    from types import MappingProxyType

    from harness.case import Case
    from harness.devices.ranktable import placement

    if visible:
        monkeypatch.setenv("ASCEND_VISIBLE_DEVICES", visible)
    else:
        monkeypatch.delenv("ASCEND_VISIBLE_DEVICES", raising=False)
    case = Case(name="c", model="tiny_mlp", device="npu",
                npu=MappingProxyType({"device_ids": ids}), source="cases/c.yaml")
    if problem is None:
        assert [logical for logical, _ in placement(case, len(ids), chip=chip)] == ids
        return
    with pytest.raises(BenchError) as err:
        placement(case, len(ids), chip=chip)
    assert str(err.value).startswith("cases/c.yaml: npu.device_ids: ")
    assert problem in str(err.value)


def test_a_910a_group_across_halves_is_bad_input(fake_npu, bench_cli, tmp_path, tiny_case,
                                                 monkeypatch):
    install_tool(tmp_path, monkeypatch, "hccn_tool", "ipaddr:192.168.100.101\n")
    path = write_case(tmp_path, {**tiny_case, "device": "npu", "devices": [1, 2],
                                 "npu": {"device_ids": [3, 4]}})
    out = tmp_path / "reports"
    result = bench_cli("run", path, "--out", str(out), "--plugin", "tiny_model")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"bench: error: {path}: npu.device_ids: [3, 4] (physical "
                                    f"[3, 4]) spans both 910A device groups; fewer than 8 "
                                    f"devices must stay within 0-3 or 4-7")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not [c for c in fake_npu.CALLS if c[0] == "open"]


def test_with_any_count_in_workers_every_npu_count_is(monkeypatch):
    from types import MappingProxyType

    from harness.case import Case
    from harness.run.plan import launcher_for

    monkeypatch.delenv("RANK_SIZE", raising=False)
    alone = Case(name="c", model="m", device="npu", devices=(1,), npu=MappingProxyType({}))
    mixed = Case(name="c", model="m", device="npu", devices=(1, 8), npu=MappingProxyType({}))
    assert launcher_for(alone, "npu", 1) == "inline"
    assert [launcher_for(mixed, "npu", n) for n in (1, 8)] == ["process", "process"]
    assert launcher_for(mixed, "cpu", 1) == "inline"
