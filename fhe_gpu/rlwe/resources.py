"""Memory estimates checked before large allocations (a typed error instead of the OOM killer)."""
from __future__ import annotations

import os

from ..errors import ResourceError

#: fraction of the available memory one request may claim
MAX_FRACTION = 0.8
#: requests below this size are not checked (no /proc read on the hot path)
CHECK_FROM_BYTES = 1 << 26


def available_bytes() -> int:
    """Memory the process may still allocate: MemAvailable from /proc/meminfo, else the
    free physical pages; FHE_GPU_MAX_BYTES (bytes) lowers it."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62
    cap = os.environ.get("FHE_GPU_MAX_BYTES", "")
    if cap.isdigit():
        avail = min(avail, int(cap))
    return avail


def check_memory(nbytes: int, what: str) -> None:
    """ResourceError when ``what`` needs more than MAX_FRACTION of the available memory
    (requests under CHECK_FROM_BYTES pass unchecked)."""
    if nbytes < CHECK_FROM_BYTES and not os.environ.get("FHE_GPU_MAX_BYTES"):
        return
    limit = int(available_bytes() * MAX_FRACTION)
    if nbytes > limit:
        raise ResourceError(f"{what} needs about {nbytes / 2**30:.2f} GiB, but only "
                            f"{limit / 2**30:.2f} GiB may be allocated here "
                            f"({MAX_FRACTION:.0%} of the available memory): split the work "
                            f"into smaller requests")
