"""The Ascend install as files and tools show it: CANN, driver and tfplugin versions, npu-smi.

Nothing here imports an adapter or TensorFlow: the fingerprint must work where only the TF 1.15
adapter (npu_bridge) is installed, and on machines with no Ascend software at all.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from harness.installed import PackageNotFoundError
from harness.installed import version as dist_version
from harness.userfiles import read_setting

# Where CANN installs when set_env.sh has not been sourced (toolkit; CANN 8.5 "cann"; the
# runtime-only nnae package). Tests point ASCEND_HOME_PATH at fixture trees instead.
DEFAULT_ROOT = "/usr/local/Ascend"
DEFAULT_HOMES = ("ascend-toolkit/latest", "cann", "nnae/latest", "latest")
HOME_VARS = ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME")


def adapter_present(module: str) -> bool:
    """Whether ``module`` is importable, without importing it (npu_bridge needs TF 1.15)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_adapter() -> str | None:
    """The Ascend TF adapter in use: ``npu_device`` (TF 2) where importable, else
    ``npu_bridge`` (TF 1.15), else None."""
    for name in ("npu_device", "npu_bridge"):
        if adapter_present(name):
            return name
    return None


def toolkit_home(environ: Mapping[str, str] | None = None, root: str | None = None) -> str | None:
    """The CANN toolkit folder: what set_env.sh exports, else the default install places."""
    environ = os.environ if environ is None else environ
    root = root or DEFAULT_ROOT
    for var in HOME_VARS:
        path = environ.get(var, "").strip()
        if path and os.path.isdir(path):
            return path
    for sub in DEFAULT_HOMES:
        path = os.path.join(root, sub)
        if os.path.isdir(path):
            return path
    return None


def install_root(home: str | None, root: str | None = None) -> str:
    """The folder holding driver/ and tfplugin/: an ancestor of the toolkit home (set_env.sh
    exports ``<root>/ascend-toolkit/latest``), else the default /usr/local/Ascend."""
    if home:
        path = os.path.abspath(home)
        for _ in range(4):
            if any(os.path.isdir(os.path.join(path, d)) for d in ("driver", "tfplugin")):
                return path
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return root or DEFAULT_ROOT


def read_key(path: str, key: str) -> str | None:
    """The value of ``key=value`` in a version file (key matched case-insensitively); None
    when the file is absent or is no small regular file (a FIFO or /dev/zero planted there
    must not hang or exhaust ``bench env``)."""
    text = read_setting(path)
    for line in (text or "").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.strip().lower() == key.lower():
            return value.strip() or None
    return None


def cann_version(home: str | None) -> tuple[str | None, str | None]:
    """(version, the file it came from), trying the three layouts newest first:
    ``<arch>-linux/ascend_toolkit_install.info`` ``version=8.0.RC3``;
    ``version.cfg`` ``runtime_running_version=[7.6.0.1.220:8.0.0]`` (the part after ':');
    CANN 20.x ``fwkacllib/version.info`` ``Version=1.75.22.0.220``."""
    if not home:
        return None, None
    infos = sorted(glob.glob(os.path.join(home, "*-linux", "ascend_toolkit_install.info")))
    infos.append(os.path.join(home, "ascend_toolkit_install.info"))
    for path in infos:
        version = read_key(path, "version")
        if version:
            return version, path
    path = os.path.join(home, "version.cfg")
    running = read_key(path, "runtime_running_version")
    if running:
        match = re.fullmatch(r"\[?([^:\]]*):?([^\]]*)\]?", running)
        if match:
            return (match.group(2) or match.group(1)).strip() or None, path
    for sub in ("fwkacllib", "runtime", "compiler"):
        path = os.path.join(home, sub, "version.info")
        version = read_key(path, "Version")
        if version:
            return version, path
    return None, None


def driver_version(root: str) -> str | None:
    """``<root>/driver/version.info`` ``Version=`` (package_version on some releases)."""
    path = os.path.join(root, "driver", "version.info")
    return read_key(path, "Version") or read_key(path, "package_version")


def tfplugin_version(root: str) -> str | None:
    """The tfplugin package's install info, else the installed adapter's distribution."""
    for path in sorted(glob.glob(os.path.join(root, "tfplugin", "*", "ascend_tfplugin_install.info"))):
        version = read_key(path, "version")
        if version:
            return version
    for dist in ("npu-device", "npu_device", "npu-bridge", "npu_bridge"):
        try:
            return dist_version(dist)
        except PackageNotFoundError:
            continue
    return None


def parse_npu_smi(text: str) -> dict[str, Any]:
    """``npu-smi info`` -> {"npu_smi": tool version, "driver": Version:, "chips": [{id, name,
    health}]}. A chip row is ``| 0     910A   | OK   | ...``; its second row and the process
    table (``| 0   0   | 1234 | python ...``) have a number, not a name, in that place."""
    out: dict[str, Any] = {"npu_smi": None, "driver": None, "chips": []}
    header = re.search(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)", text)
    if header:
        out["npu_smi"], out["driver"] = header.group(1), header.group(2)
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        words = cells[0].split()
        if (len(words) == 2 and words[0].isdigit() and not words[1].isdigit()
                and re.fullmatch(r"[A-Za-z][A-Za-z ]*", cells[1] or "-")):
            out["chips"].append({"id": int(words[0]), "name": words[1], "health": cells[1]})
    return out


def parse_npu_smi_memory(text: str) -> dict[str, Any]:
    """``npu-smi info`` -> ``{"chips": {npu id: (HBM used MB, HBM total MB)}, "processes":
    {pid: (npu id, process memory MB)}}``. The chip's second row ends in ``used / total`` of
    HBM (``| 0  | 0000:C1:00.0 | 0  0 / 0  4487 / 65536 |``); the process table has
    ``| npu chip | pid | name | memory MB |``."""
    chips: dict[int, tuple[int, int]] = {}
    processes: dict[int, tuple[int, int]] = {}
    current: int | None = None
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        words = cells[0].split()
        if len(words) == 2 and words[0].isdigit() and not words[1].isdigit():
            current = int(words[0])  # a chip's name row: the next row holds its memory
            continue
        if len(words) == 2 and all(w.isdigit() for w in words) and cells[1].isdigit() \
                and len(cells) >= 4 and cells[3].isdigit():
            processes[int(cells[1])] = (int(words[0]), int(cells[3]))
            continue
        pairs = re.findall(r"(\d+)\s*/\s*(\d+)", cells[-1])
        if current is not None and len(words) == 1 and words[0].isdigit() and pairs:
            used, total = pairs[-1]
            chips[current] = (int(used), int(total))
            current = None
    return {"chips": chips, "processes": processes}


def npu_smi_text(timeout: float = 10.0) -> str | None:
    """The text of ``npu-smi info``, or None when the tool is absent or fails."""
    exe = shutil.which("npu-smi")
    if not exe:
        return None
    try:
        return subprocess.run([exe, "info"], capture_output=True, text=True, timeout=timeout,
                              check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def npu_smi_info(timeout: float = 10.0) -> dict[str, Any] | None:
    """``npu-smi info`` parsed, or None when the tool is absent or fails."""
    text = npu_smi_text(timeout)
    return None if text is None else parse_npu_smi(text)


def chip_summary(chips: list[dict[str, Any]]) -> str:
    names = sorted({chip["name"] for chip in chips})
    return "+".join(names)


def chip_name() -> str | None:
    """The chips' name from ``npu-smi info`` (``910A``, ``910B3``; several joined by ``+``),
    None where npu-smi is absent or lists none."""
    smi = npu_smi_info()
    return chip_summary(smi["chips"]) if smi and smi["chips"] else None


def device_nodes() -> int:
    """Ascend device files (/dev/davinci0, 1, ...): a chip count without npu-smi."""
    return len(glob.glob("/dev/davinci[0-9]*"))


def fingerprint(environ: Mapping[str, str] | None = None, root: str | None = None) -> dict[str, Any]:
    """Everything above in one mapping (values None where not found)."""
    home = toolkit_home(environ, root)
    base = install_root(home, root)
    version, source = cann_version(home)
    smi = npu_smi_info()
    chips = smi["chips"] if smi else []
    adapter = installed_adapter()
    return {
        "cann_version": version,
        "cann_version_file": source,
        "toolkit_home": home,
        "driver_version": driver_version(base) or (smi or {}).get("driver"),
        "tfplugin_version": tfplugin_version(base),
        "adapter": adapter,
        "npu_smi_version": (smi or {}).get("npu_smi"),
        "chip": chip_summary(chips) or None,
        "chip_count": len(chips) if smi else (device_nodes() or None),
        "chips": chips,
    }
