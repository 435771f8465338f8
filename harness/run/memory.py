"""Peak memory over the measured window: the host's resident set, the devices' allocator peak.

Host: Linux keeps the peak resident set size of a process (``VmHWM`` in ``/proc/self/status``)
and resets it to the current size when ``5`` is written to ``/proc/self/clear_refs``; so the
window's exact peak is VmHWM read at its end after a reset at its start. Where the reset is
refused, a thread samples ``VmRSS`` every ``interval`` seconds (a peak between two samples can
be missed: the source says so). Elsewhere ``resource.getrusage`` gives the process's lifetime
peak. Devices: the backend's :meth:`~harness.devices.base.DeviceBackend.memory_monitor`. What
cannot be measured is None, never a guess.
"""

from __future__ import annotations

import threading
from typing import Any

STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"
SAMPLE_INTERVAL_S = 0.05


def proc_status(path: str = STATUS) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``path`` in bytes (empty when unreadable)."""
    out: dict[str, int] = {}
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return {}
    return out


def reset_peak_rss(path: str = CLEAR_REFS) -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0); False where refused."""
    try:
        with open(path, "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def lifetime_peak_rss() -> int | None:
    """``ru_maxrss`` of this process in bytes (kB on Linux, bytes on macOS), or None."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError, ValueError):
        return None
    return int(peak if sys.platform == "darwin" else peak * 1024)


class MemorySampler:
    """``start()`` at the measured window's start, ``stop()`` at its end -> the memory block.

    ``device`` is the backend's monitor (or None): ``start()``, ``sample()`` (called from the
    sampling thread at most every ``device_interval`` seconds) and ``stop() -> dict`` with
    ``device_peak_bytes``, ``device_total_bytes``, ``device_source``.
    """

    def __init__(self, device: Any = None, interval: float = SAMPLE_INTERVAL_S,
                 status_path: str = STATUS, clear_refs_path: str = CLEAR_REFS) -> None:
        self.device = device
        self.interval = interval
        self.status_path = status_path
        self.clear_refs_path = clear_refs_path
        self.device_interval = float(getattr(device, "sample_interval", 0) or 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0
        self._hwm_reset = False
        self._started = False
        self.errors: list[str] = []

    def start(self) -> None:
        self._started = True
        self._peak = proc_status(self.status_path).get("VmRSS", 0)
        self._hwm_reset = bool(self._peak) and reset_peak_rss(self.clear_refs_path)
        if self.device is not None:
            try:
                self.device.start()
            except Exception as exc:  # noqa: BLE001 - a monitor that breaks leaves null
                self.errors.append(f"device memory: {type(exc).__name__}: {exc}")
                self.device = None
        needs_rss = bool(self._peak) and not self._hwm_reset
        if needs_rss or self.device_interval:
            self._thread = threading.Thread(target=self._run, name="zoobench-memory",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import time

        next_device = time.monotonic()
        wait = self.interval if not self._hwm_reset else self.device_interval
        while not self._stop.wait(wait):
            self._sample_rss()
            if self.device is not None and self.device_interval and \
                    time.monotonic() >= next_device:
                next_device = time.monotonic() + self.device_interval
                try:
                    self.device.sample()
                except Exception as exc:  # noqa: BLE001 - see start()
                    self.errors.append(f"device memory: {type(exc).__name__}: {exc}")

    def _sample_rss(self) -> None:
        rss = proc_status(self.status_path).get("VmRSS", 0)
        if rss > self._peak:
            self._peak = rss

    def stop(self) -> dict[str, Any]:
        """The memory block of a result (see the README's report schema)."""
        if not self._started:
            return empty_memory()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample_rss()
        status = proc_status(self.status_path)
        if self._hwm_reset and status.get("VmHWM"):
            host, source = max(status["VmHWM"], self._peak), "VmHWM (reset at the window start)"
        elif self._peak:
            host, source = self._peak, f"VmRSS sampled every {self.interval * 1000:g} ms"
        else:
            host, source = lifetime_peak_rss(), "ru_maxrss (process lifetime)"
            if host is None:
                source = None
        out = {**empty_memory(), "host_peak_bytes": host, "host_source": source}
        if self.device is not None:
            try:
                out.update({k: v for k, v in self.device.stop().items() if k in out})
            except Exception as exc:  # noqa: BLE001 - see start()
                self.errors.append(f"device memory: {type(exc).__name__}: {exc}")
        return out


def empty_memory() -> dict[str, Any]:
    return {"host_peak_bytes": None, "device_peak_bytes": None, "device_total_bytes": None,
            "host_source": None, "device_source": None}


def max_memory(blocks: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The memory of several ranks (or repeats): each figure's largest known value."""
    out = empty_memory()
    for key in ("host_peak_bytes", "device_peak_bytes", "device_total_bytes"):
        values = [b[key] for b in blocks if b and b.get(key) is not None]
        out[key] = max(values) if values else None
    for key in ("host_source", "device_source"):
        out[key] = next((b[key] for b in blocks if b and b.get(key)), None)
    return out


def parse_mib(text: str) -> int | None:
    """``"81559 MiB"`` / ``"32768"`` (MB as npu-smi writes) -> bytes."""
    digits = "".join(ch for ch in str(text).split()[0] if ch.isdigit()) if text else ""
    return int(digits) * 1024 * 1024 if digits else None

