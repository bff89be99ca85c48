"""Reuse of large host buffers: arrays of many megabytes are handed out from buffers that
earlier arrays of the same size released, instead of fresh memory.

Why: glibc serves every allocation above 32 MB with a new mmap and unmaps it on free, so a
key switch on a batch of ciphertexts at N = 2^16 page-faults gigabytes per call (17 s of
system time in a batch-8 768x768 LinearTransform). A pooled buffer stays mapped.

How: a buffer is a bytearray; an array is ``np.frombuffer`` of it, whose base is the
memoryview numpy takes of the buffer. Every array and view derived from it keeps that
memoryview alive, and the buffer returns to the pool (``weakref.finalize`` on that
memoryview) only when the last of them is gone.
Idle buffers are kept up to :data:`IDLE_LIMIT` bytes in all, oldest dropped first.
"""
from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict

import numpy as np

#: an idle buffer serves requests down to 1 / FIT_RATIO of its size
FIT_RATIO = 1.25
#: arrays smaller than this come from np.empty (malloc reuses small blocks already)
MIN_BYTES = 16 << 20
def _physical_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


#: most bytes kept in idle buffers: a quarter of the physical memory (the working set of a
#: batched key switch at N = 2^16 is several GB; FHE_GPU_POOL_BYTES overrides)
IDLE_LIMIT = int(os.environ.get("FHE_GPU_POOL_BYTES", "") or _physical_bytes() // 4)


class BufferPool:
    """Large uint64 arrays from reused buffers (thread-safe)."""

    def __init__(self, min_bytes: int = MIN_BYTES, idle_limit: int = IDLE_LIMIT):
        self.min_bytes, self.idle_limit = int(min_bytes), int(idle_limit)
        self._idle: OrderedDict = OrderedDict()     # id -> bytearray, oldest first
        self._idle_bytes = 0
        self._lock = threading.Lock()

    def empty(self, shape, dtype=np.uint64) -> np.ndarray:
        """An uninitialised array (its contents are those of a released array)."""
        shape = tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype=dtype)
        buf = self._take(nbytes) or bytearray(nbytes)
        flat = np.frombuffer(buf, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize)
        owner = flat.base            # the memoryview numpy holds: every derived array keeps it
        if not isinstance(owner, memoryview):
            raise RuntimeError(f"np.frombuffer kept a {type(owner).__name__}, not a "
                               f"memoryview: cannot track the buffer's users")
        weakref.finalize(owner, self._release, buf)
        return flat.reshape(shape)

    def _take(self, nbytes: int):
        """The smallest idle buffer of nbytes to FIT_RATIO * nbytes bytes (arrays of one
        transform at neighbouring levels differ by a limb: they share buffers)."""
        with self._lock:
            best = None
            for key, buf in self._idle.items():
                size = len(buf)
                if nbytes <= size <= nbytes * FIT_RATIO and (best is None or
                                                             size < len(best[1])):
                    best = (key, buf)
                    if size == nbytes:
                        break
            if best is None:
                return None
            del self._idle[best[0]]
            self._idle_bytes -= len(best[1])
            return best[1]

    def _release(self, buf: bytearray) -> None:
        with self._lock:
            self._idle[id(buf)] = buf
            self._idle_bytes += len(buf)
            while self._idle_bytes > self.idle_limit and self._idle:
                _, old = self._idle.popitem(last=False)
                self._idle_bytes -= len(old)

    @property
    def idle_bytes(self) -> int:
        """Bytes held by idle buffers."""
        return self._idle_bytes

    def clear(self) -> None:
        """Drop every idle buffer."""
        with self._lock:
            self._idle.clear()
            self._idle_bytes = 0

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread of the parent may have held it)."""
        self._lock = threading.Lock()


#: the pool of the CPU backend
POOL = BufferPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=POOL._after_fork)
