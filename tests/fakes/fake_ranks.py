"""Run one Python snippet as N ranks of a fake Ascend job (for tests of multi-rank math).

Each rank is its own process, started together, with the environment an Ascend launch gives
(RANK_SIZE, RANK_ID, ASCEND_DEVICE_ID, DEVICE_ID, JOB_ID, RANK_TABLE_FILE: a v1.0 rank table
written into ``folder``) plus ``FAKE_HCCL_DIR`` (so the fakes' collectives exchange values
through files in ``folder``) and this directory first on PYTHONPATH (so ``import npu_device`` /
``import npu_bridge`` get the fakes). The snippet prints one JSON line last; ``run_ranks``
returns those values in rank order, or raises AssertionError with a failed rank's output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def write_rank_table(path: str, size: int) -> str:
    table = {"server_count": "1", "status": "completed", "version": "1.0",
             "server_list": [{"server_id": "127.0.0.1", "device": [
                 {"device_id": str(r), "device_ip": f"192.168.100.{101 + r}", "rank_id": str(r)}
                 for r in range(size)]}]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(table, f)
    return path


def run_ranks(code: str, size: int, folder: str, env: dict | None = None,
              timeout: float = 120.0) -> list:
    table = write_rank_table(os.path.join(folder, f"rank_table_{size}p.json"), size)
    hccl = os.path.join(folder, "hccl")
    os.makedirs(hccl, exist_ok=True)
    base = dict(os.environ)
    base.update(env or {})
    base.update({"RANK_SIZE": str(size), "RANK_TABLE_FILE": table, "FAKE_HCCL_DIR": hccl,
                 "JOB_ID": base.get("JOB_ID", "10086"), "TF_CPP_MIN_LOG_LEVEL": "3",
                 "PYTHONPATH": os.pathsep.join([HERE] + [p for p in
                                                         [base.get("PYTHONPATH", "")] if p])})
    procs, logs = [], []
    for rank in range(size):
        rank_env = dict(base, RANK_ID=str(rank), ASCEND_DEVICE_ID=str(rank), DEVICE_ID=str(rank))
        logs.append(os.path.join(folder, f"rank{rank}.log"))
        with open(logs[-1], "wb") as log:  # a file, not a pipe: a chatty rank cannot block
            procs.append(subprocess.Popen([sys.executable, "-c", code], env=rank_env, cwd=folder,
                                          stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    outputs = [b""] * size
    pending = set(range(size))
    while pending:  # the first rank to fail stops the others (they would wait for it)
        for rank in sorted(pending):
            proc = procs[rank]
            if proc.poll() is None:
                continue
            with open(logs[rank], "rb") as log:
                outputs[rank] = log.read()
            pending.discard(rank)
            if proc.returncode != 0:
                _stop(procs)
                raise AssertionError(f"rank {rank} exited {proc.returncode}:\n"
                                     f"{outputs[rank].decode(errors='replace')[-4000:]}")
        if pending and time.monotonic() > deadline:
            _stop(procs)
            raise AssertionError(f"ranks {sorted(pending)} did not finish in {timeout:g}s")
        time.sleep(0.02)
    results = []
    for rank, out in enumerate(outputs):
        lines = [line for line in out.decode(errors="replace").splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"rank {rank} printed nothing")
        results.append(json.loads(lines[-1]))
    return results


def _stop(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
