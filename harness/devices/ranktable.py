"""HCCL rank table v1.0 for Ascend multi-device runs, as Ascend's hccl_tools.py writes it."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from typing import Any

from harness.errors import BenchError
from harness.userfiles import parse_json, read_setting, read_user_text

DEFAULT_HCCN_CONF = "/etc/hccn.conf"


def device_ip(device_id: int, hccn_conf: str = DEFAULT_HCCN_CONF) -> str:
    """The device's HCCS/RoCE IP: ``hccn_tool -i N -ip -g`` (text after ':' on the first line),
    else ``address_N=IP`` in ``/etc/hccn.conf`` — the order hccl_tools.py uses."""
    tool = shutil.which("hccn_tool")
    if tool:
        try:
            out = subprocess.run([tool, "-i", str(device_id), "-ip", "-g"], capture_output=True,
                                 text=True, timeout=20)
            lines = out.stdout.strip().splitlines()
            if out.returncode == 0 and lines and ":" in lines[0]:
                ip = lines[0].split(":", 1)[1].strip()
                if ip:
                    return ip
        except (OSError, subprocess.SubprocessError):
            pass
    for line in (read_setting(hccn_conf) or "").splitlines():
        match = re.match(rf"\s*address_{device_id}\s*=\s*(\S+)", line)
        if match:
            return match.group(1)
    raise BenchError(f"device {device_id}: no device IP from hccn_tool or {hccn_conf}; "
                     f"pass a rank table with --rank-table")


def server_id() -> str:
    """This host's IP as the rank table's server_id (hccl_tools uses the host IP)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def rank_table(device_ids: list[int], hccn_conf: str = DEFAULT_HCCN_CONF,
               server: str | None = None) -> dict[str, Any]:
    """A one-server rank table: one device entry per id, rank_id in list order."""
    devices = [{"device_id": str(d), "device_ip": device_ip(d, hccn_conf), "rank_id": str(rank)}
               for rank, d in enumerate(device_ids)]
    return {"server_count": "1",
            "server_list": [{"server_id": server or server_id(), "device": devices}],
            "status": "completed", "version": "1.0"}


def write_rank_table(path: str, table: dict[str, Any]) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(table, fh, indent=2)
    return path


def load_rank_table(path: str) -> dict[str, Any]:
    """A user-given rank table (multi-server runs), checked for the fields HCCL reads."""
    if not os.path.lexists(path):
        raise BenchError(f"{path}: no such rank table")
    table = parse_json(read_user_text(path, "rank table", 16 << 20), path)
    if not isinstance(table, dict) or not isinstance(table.get("server_list"), list):
        raise BenchError(f"{path}: server_list: missing")
    return table


def rank_devices(table: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(server_id, device_id, rank_id) for every device of the table, by rank."""
    out = []
    for server in table["server_list"]:
        for device in server.get("device", []):
            out.append((server.get("server_id", ""), int(device["device_id"]),
                        int(device["rank_id"])))
    return sorted(out, key=lambda item: item[2])


# --- which device each rank gets ----------------------------------------------------------

VISIBLE_ENV = "ASCEND_VISIBLE_DEVICES"
# npu-smi's names of the 910A (Ascend 910, 2019): two HCCS groups of four chips
_GROUPED_CHIP = re.compile(r"^(Ascend\s*)?910(A|ProA|PremiumA)?$")


def visible_devices(environ: Any = None) -> list[int] | None:
    """The physical ids behind logical ids 0, 1, ...: ``ASCEND_VISIBLE_DEVICES`` (the Ascend
    container runtime's list, ``0,1,2,3`` or ranges ``0-3``); None where it is not set (then
    logical and physical ids agree). Raises ValueError on a malformed list."""
    environ = os.environ if environ is None else environ
    text = environ.get(VISIBLE_ENV, "").strip()
    if not text:
        return None
    ids: list[int] = []
    for part in text.replace(" ", "").split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(f"{VISIBLE_ENV}={text!r}: expected ids or ranges like 0-3,6")
        ids.extend(range(int(low), int(high) + 1) if sep else [int(low)])
    return ids


def to_logical(physical: int, environ: Any = None) -> int:
    """The logical id (what ``npu_device.open`` and ASCEND_DEVICE_ID take) of a physical id
    (DEVICE_ID, a rank table's device_id), as the TF adapter's IndexTransform does."""
    visible = visible_devices(environ)
    if visible is None or physical not in visible:
        return physical
    return visible.index(physical)


def placement(case: Any, count: int, environ: Any = None, chip: str | None = None,
              ) -> list[tuple[int, int]]:
    """``(logical, physical)`` device id of each rank of ``count`` NPUs: ``npu.device_ids``
    (logical ids, the ids this machine's processes see; default 0..count-1), each mapped to
    its physical id through ASCEND_VISIBLE_DEVICES. Bad input (BenchError naming
    ``npu.device_ids``): too few ids, ids that are not visible, and on a 910A (``chip``, or
    unknown: hccl_tools applies the rule unconditionally) a group of fewer than all 8 chips
    that spans both HCCS groups (physical 0-3 and 4-7)."""
    from harness.devices.options import case_key

    key = case_key(case, "npu.device_ids")
    ids = [int(i) for i in case.npu.get("device_ids", range(count))][:count]
    if len(ids) < count:
        raise BenchError(f"{key}: {len(ids)} ids for {count} devices")
    try:
        visible = visible_devices(environ)
    except ValueError as exc:
        raise BenchError(f"{key}: {exc}") from None
    if visible is not None:
        hidden = [i for i in ids if i >= len(visible)]
        if hidden:
            raise BenchError(f"{key}: logical ids {hidden} are not visible: {VISIBLE_ENV} "
                             f"shows {len(visible)} devices (logical ids 0-{len(visible) - 1})")
    physical = [visible[i] if visible is not None else i for i in ids]
    if count > 1 and (chip is None or _GROUPED_CHIP.match(chip)):
        halves = {p // 4 for p in physical}
        if len(halves) > 1 and sorted(physical) != list(range(8)):
            raise BenchError(f"{key}: {ids} (physical {physical}) spans both 910A device groups; "
                             f"fewer than 8 devices must stay within 0-3 or 4-7 (HCCL, "
                             f"hccl_tools)")
    return list(zip(ids, physical))
