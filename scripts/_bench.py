"""Peak-memory helpers shared by the benchmark scripts (Linux ``/proc``; CPU resident memory)."""

from __future__ import annotations

import resource

__all__ = ["peak_rss_mib", "reset_peak_rss", "rss_mib"]


def rss_mib() -> float:
    """Current resident memory of this process in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mib() -> float:
    """Peak resident memory (VmHWM) of this process in MiB since the last reset."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
