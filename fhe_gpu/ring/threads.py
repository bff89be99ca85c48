"""The CPU kernels' threads: how many they use, and which Numba threading layer runs any
``parallel=True`` Numba code in the process.

Thread count. The kernels are serial ``nogil`` functions that the thread team
(:mod:`~fhe_gpu.ring.team`) runs on the calling thread plus up to ``n - 1`` helper threads.
:func:`set_num_threads` sets that ``n`` for the whole process: every Python thread's kernel
calls (an Engine's workers) share the same ``n - 1`` helpers. The bound is also passed on to
Numba (``numba.set_num_threads``, thread-local) and, under the ``tbb`` layer, to oneTBB as a
process-wide ``global_control(max_allowed_parallelism)``, so that Numba ``prange`` code
honours it too. Idle threads sleep; none spins.

Threading layer. The kernels do not use Numba's parallel layer (a ``prange`` kernel costs
twice the compile time), but code in the same process may. Imported first by
:mod:`fhe_gpu.ring`, this module pins Numba's ``tbb`` layer (oneTBB, the PyPI package
``tbb``) before any parallel code is compiled, loaded from cache or run. It is the only
Numba layer that is at once

* thread-safe: Python threads may call parallel code concurrently (the ``workqueue`` layer
  aborts the process with "Concurrent access has been detected"),
* fork-safe: a child of ``os.fork()`` (a ``fork`` multiprocessing pool) runs parallel code
  (GNU OpenMP, the ``omp`` layer on Linux, kills the child on its first parallel region),
* free of busy waiting by default: idle TBB workers sleep, whereas GNU OpenMP workers spin
  unless ``OMP_WAIT_POLICY=PASSIVE``.

A pip install puts ``libtbb.so.12`` in ``<prefix>/lib``, which is not on the loader path of a
virtual environment, so Numba's ``tbbpool`` extension cannot find it by itself: this module
loads it by its installed path first. An explicit ``NUMBA_THREADING_LAYER`` set by the user
is respected. Where TBB is not installed (no wheel for the platform), the fallback is
``omp`` with ``OMP_WAIT_POLICY=PASSIVE``, with a warning.
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import numbers
import os
import threading
import warnings

import numba
from numba.np.ufunc import parallel as _parallel

from ..errors import ParameterError

ENV_LAYER = "NUMBA_THREADING_LAYER"
TBB_SONAME = "libtbb.so.12"
#: TBB_INTERFACE_VERSION Numba's tbb layer needs (oneTBB 2021.6)
TBB_MIN_INTERFACE = 12060
#: oneTBB ``tbb::global_control::max_allowed_parallelism``
_MAX_ALLOWED_PARALLELISM = 0
_GC_CREATE = "_ZN3tbb6detail2r16createERNS0_2d114global_controlE"
_GC_DESTROY = "_ZN3tbb6detail2r17destroyERNS0_2d114global_controlE"
_GC_ACTIVE = "_ZN3tbb6detail2r127global_control_active_valueEi"


class _GlobalControl(ctypes.Structure):
    """Layout of ``tbb::detail::d1::global_control`` (oneTBB 2021+, stable ABI)."""

    _fields_ = [("value", ctypes.c_size_t), ("reserved", ctypes.c_ssize_t),
                ("param", ctypes.c_int)]


def _tbb_candidates() -> list[str]:
    """Paths of libtbb.so.12 installed by the ``tbb`` distribution, then the bare soname."""
    try:
        files = importlib.metadata.files("tbb") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    return [str(f.locate()) for f in files if f.name == TBB_SONAME] + [TBB_SONAME]


def _load_tbb():
    """libtbb loaded process-wide (so Numba's tbbpool links to it), or None when absent or
    older than the interface version Numba needs."""
    for path in _tbb_candidates():
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            lib.TBB_runtime_interface_version.restype = ctypes.c_int
            if lib.TBB_runtime_interface_version() >= TBB_MIN_INTERFACE:
                return lib
        except (OSError, AttributeError):
            continue
    return None


def _configure_layer() -> str:
    """Choose Numba's threading layer before any parallel kernel runs; returns its name."""
    requested = os.environ.get(ENV_LAYER, "").strip().lower()
    if _parallel._is_initialized:
        active = _parallel.threading_layer()
        if active != "tbb" and not requested:
            warnings.warn(f"fhe_gpu: Numba's threading layer was started as {active!r} before "
                          f"fhe_gpu was imported, not 'tbb': kernels may not be fork- or "
                          f"thread-safe (import fhe_gpu first)", RuntimeWarning, stacklevel=2)
        return active
    if requested:
        if requested != "tbb":
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        return requested
    if _TBB is not None:
        # should Numba re-read its environment later (a NUMBA_* variable changed), its
        # "default" layer still picks tbb first, now that libtbb is loaded
        numba.config.THREADING_LAYER = "tbb"
        return "tbb"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    numba.config.THREADING_LAYER = "omp"
    warnings.warn("fhe_gpu: the TBB threading layer is unavailable (pip install tbb); using "
                  "OpenMP with OMP_WAIT_POLICY=PASSIVE: a fork()ed child must not run CPU "
                  "kernels (use the 'spawn' or 'forkserver' start method)", RuntimeWarning,
                  stacklevel=2)
    return "omp"


_TBB = _load_tbb()
_REQUESTED_LAYER = _configure_layer()
_LOCK = threading.Lock()
_LIMIT: int | None = None
_CAP: _GlobalControl | None = None


def threading_layer() -> str:
    """The Numba threading layer the CPU kernels run on (``"tbb"`` by default): the active
    one once a parallel kernel ran, the requested one before."""
    if _parallel._is_initialized:
        return _parallel.threading_layer()
    return _REQUESTED_LAYER


def available_threads() -> int:
    """The most threads the CPU kernels can use: the size of Numba's thread pool
    (``NUMBA_NUM_THREADS``, by default the number of CPUs)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def get_num_threads() -> int:
    """The process-wide bound on the CPU kernels' threads (see :func:`set_num_threads`);
    :func:`available_threads` until it is set."""
    return available_threads() if _LIMIT is None else _LIMIT


def set_num_threads(n: int) -> None:
    """Bound the CPU kernels' threads to ``n`` (1 ≤ n ≤ :func:`available_threads`): each
    kernel call runs on its calling thread and at most ``n - 1`` helper threads, shared by
    all Python threads of the process.

    Numba ``prange`` code gets the same process-wide bound under the default ``tbb`` layer;
    under another layer chosen through ``NUMBA_THREADING_LAYER`` it holds for the calling
    thread. Idle kernel threads never spin-wait. Raises
    :class:`~fhe_gpu.errors.ParameterError` for a non-integer or out-of-range ``n``.
    """
    top = available_threads()
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= top:
        raise ParameterError(f"set_num_threads needs an integer from 1 to {top} (the CPU "
                             f"kernels' thread pool, NUMBA_NUM_THREADS), got {n!r}")
    global _LIMIT
    n = int(n)
    with _LOCK:
        numba.set_num_threads(n)
        if threading_layer() == "tbb" and _TBB is not None:
            _set_tbb_cap(None if n == top else n)
        _LIMIT = n


def _set_tbb_cap(n: int | None) -> None:
    """Replace the oneTBB global_control(max_allowed_parallelism) by one of ``n`` (None:
    no cap). The structure stays referenced while active: oneTBB keeps its address."""
    global _CAP
    if _CAP is not None:
        getattr(_TBB, _GC_DESTROY)(ctypes.byref(_CAP))
        _CAP = None
    if n is not None:
        cap = _GlobalControl(n, 0, _MAX_ALLOWED_PARALLELISM)
        getattr(_TBB, _GC_CREATE)(ctypes.byref(cap))
        _CAP = cap


def tbb_max_parallelism() -> int | None:
    """oneTBB's active ``max_allowed_parallelism`` (None when TBB is not loaded)."""
    if _TBB is None:
        return None
    fn = getattr(_TBB, _GC_ACTIVE)
    fn.restype, fn.argtypes = ctypes.c_size_t, [ctypes.c_int]
    return int(fn(_MAX_ALLOWED_PARALLELISM))


__all__ = ["set_num_threads", "get_num_threads", "available_threads", "threading_layer",
           "tbb_max_parallelism"]
