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
