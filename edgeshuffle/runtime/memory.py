"""Resident memory of this process: now (/proc/self/statm) and its peak (getrusage)."""

from __future__ import annotations

import os
import sys

MIB = 1024 * 1024


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (``ru_maxrss``; 0 where unavailable).

    A high-water mark: it never goes down, so in one process it covers every
    model loaded so far.
    """
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # macOS: bytes, Linux: KiB


def current_rss_bytes() -> int:
    """The resident set size now (Linux /proc/self/statm; else the peak as an upper bound)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()
