"""``NPUBasics``: the job info the distributed optimizer takes its rank size from.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/estimator/npu/npu_common.py. A process-wide
singleton, read once: from the job start file if there is one, else from the environment,
where ``JOB_ID`` is required (without it ``jobinfo`` is None and ``size()`` raises
AttributeError) and the rank size is RANK_SIZE (CM_WORKER_SIZE) or 1.
"""

from __future__ import annotations

import json
import os

from .util import check_nonnegative_integer, check_not_none, check_positive_integer, get_ranksize


class JobInfo:
    def __init__(self, job_id="", heartbeat_time="", device_info=None, rank_table_file="",
                 local_checkpoint_dir="", rank_size=1):
        self._job_id = job_id
        self._heartbeat_time = heartbeat_time
        self._device_info = device_info
        self._rank_table_file = rank_table_file
        self._local_checkpoint_dir = local_checkpoint_dir
        self._rank_size = rank_size


class NPUBasics:
    _instance = None
    _has_init = False

    def __new__(cls, file_name):
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance

    def __init__(self, file_name):
        if not NPUBasics._has_init:
            self._job_info = self._read_job_info(file_name)
            NPUBasics._has_init = True

    @property
    def jobinfo(self):
        return self._job_info

    def size(self):
        return self._job_info._rank_size

    @staticmethod
    def _read_job_info(file_name):
        try:
            with open(file_name, encoding="UTF-8") as f:
                data = json.loads(f.read())
        except OSError:
            job_id = os.getenv("JOB_ID", "")
            if job_id == "":
                return None
            rank_size = get_ranksize()
            rank_size = int(rank_size) if rank_size.isdigit() else 1
            return JobInfo(job_id=job_id, heartbeat_time=os.getenv("HEARTBEAT", ""),
                           device_info={"Index": os.getenv("POD_NAME", "") or os.getenv("RANK_ID", "")},
                           rank_table_file=os.getenv("RANK_TABLE_FILE", ""),
                           local_checkpoint_dir=os.getenv("LOCAL_CHECKPOINT_DIR", ""),
                           rank_size=rank_size)
        device_info = data.get("device_info")
        check_not_none(device_info, "device_info")
        check_nonnegative_integer(device_info.get("Index", None), "Index")
        check_not_none(data.get("rank_table_file", None), "rank_table_file")
        check_positive_integer(data.get("rank_size", None), "rank_size")
        return JobInfo(device_info={"Index": str(device_info["Index"])},
                       rank_table_file=data["rank_table_file"],
                       local_checkpoint_dir=data.get("local_checkpoint_dir"),
                       rank_size=data["rank_size"])
