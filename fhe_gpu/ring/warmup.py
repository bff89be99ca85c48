"""Kernel warm-up: compile (or load from the JIT caches) every kernel a run needs before
the run, with progress.

The first call of a CPU kernel compiles it with Numba (about 7 s for all of them on an
idle 2-core machine) and writes it to Numba's on-disk cache (``NUMBA_CACHE_DIR``, by
default ``__pycache__`` beside the sources); later processes load it in milliseconds. The
CUDA backend compiles its one module with NVRTC on first use (cached by CuPy). Without a
warm-up that cost lands silently on whichever operation comes first; :func:`warm_up` pays
it up front, one step at a time, and reports each step.

Every step runs real verbs on a tiny ring (n = 16, three ciphertext primes, two special
primes), so it compiles exactly the kernel specializations the verbs use at any size;
``tests/test_cold_start.py`` checks that a full workload after :func:`warm_up` compiles
nothing more.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Callable

import numba
import numpy as np

from . import _core, _numba_sampling, tables
from . import _numba_kernels as K
from .backend import RingBackend, get_backend

#: progress(name, i, n, seconds): step ``name`` (i of n) is ready after ``seconds``
Progress = Callable[[str, int, int, float], None]

_N = 16
_GALOIS = 5


class _Ring:
    """Uniform operands over a tiny ring: Q (3 primes, 2 digits of 2), P (2 primes)."""

    def __init__(self, be: RingBackend):
        q = _core.generate_primes(_N, 50, 3)
        p = _core.generate_primes(_N, 60, 2, q)
        u = tables.prime_set(_N, tuple(q + p))
        self.be, self.q, self.p = be, tables.basis(u, (0, 1, 2)), tables.basis(u, (3, 4))
        self.qp, self.alpha = self.q + self.p, 2
        rng = np.random.default_rng(0)

        def uniform(shape, basis):
            bound = np.asarray(basis.q, dtype=np.uint64)[:, None]
            return be.to_device(rng.integers(0, bound, size=shape + (len(basis), _N),
                                             dtype=np.uint64))
        self.ct = uniform((2, 2), self.q)
        self.ext = uniform((2, 2), self.qp)
        self.key = uniform((2, 2), self.qp)
        self.slab = uniform((2, 2, 2), self.qp)
        self.acc = uniform((2, 2), self.qp)


def _verb_steps(r: _Ring) -> list[tuple[str, Callable[[], object]]]:
    """(name, call) per kernel group of the ring verbs, in the order a run meets them."""
    be, q, p = r.be, r.q, r.p
    ones = np.ones(len(q), dtype=np.uint64)
    return [
        ("ntt", lambda: be.ntt(r.ct, q)),
        ("intt", lambda: be.intt(r.ct, q)),
        ("pointwise", lambda: [be.add(r.ct, r.ct, q), be.sub(r.ct, r.ct, q),
                               be.mul(r.ct, r.ct[0], q), be.neg(r.ct, q),
                               be.mul_add(r.ct, r.ct, r.ct, q)]),
        ("mul_scalar", lambda: be.mul_scalar(r.ct, ones, q)),
        ("automorphism", lambda: be.automorphism(r.ct, _GALOIS, q)),
        ("mod_up", lambda: be.mod_up(r.ct[:, 1], q, p, r.alpha)),
        ("key_switch_inner", lambda: [
            be.key_switch_inner(r.ext, r.key, r.qp, r.qp),
            be.key_switch_inner(r.ext, r.key, r.qp, r.qp, galois_elt=_GALOIS),
            be.key_switch_inner(r.ext, r.slab, r.qp, r.qp, key_index=[1, 0])]),
        ("mod_down", lambda: be.mod_down(r.acc, q, p)),
        ("rescale", lambda: be.rescale(r.ct, q)),
    ]


def _sampling_steps() -> list[tuple[str, Callable[[], object]]]:
    """The Numba sampling kernels (every backend samples on the CPU), with the argument
    types fhe_gpu.rlwe.sampling passes."""
    primes = np.array(_core.generate_primes(_N, 50, 2), dtype=np.uint64)
    init = np.zeros(16, dtype=np.uint32)

    def chacha20():
        ratios = np.array([(1 << 64) // int(x) for x in primes], dtype=np.uint64)
        limits = np.array([((1 << 64) // int(x)) * int(x) - 1 for x in primes],
                          dtype=np.uint64)
        out = np.empty((len(primes), _N), dtype=np.uint64)
        _numba_sampling.uniform_kernel(np.stack([init, init]), primes, limits, ratios, out)
        _numba_sampling.keystream_kernel(init, np.empty((16, 2), dtype=np.uint32))

    def small():
        out = np.empty((2, len(primes), _N), dtype=np.uint64)
        _numba_sampling.small_to_rns_kernel(np.zeros((2, _N), dtype=np.int64), primes, out)

    return [("chacha20", chacha20), ("small_to_rns", small)]


#: step: kernel, for the steps a helper process compiles while this process compiles the
#: others: sampling and the verbs whose kernels share no row function with the NTT family
#: (about half of the compile time; a shared row function is compiled in both processes).
#: The two sampling steps also serve the CUDA backend.
_HELPER_STEPS = {"chacha20": _numba_sampling.uniform_rows_kernel,
                 "small_to_rns": _numba_sampling.small_to_rns_rows_kernel,
                 "pointwise": K.pointwise_kernel, "mul_scalar": K.mul_scalar_kernel,
                 "automorphism": K.permute_kernel, "key_switch_inner": K.key_switch_kernel}
_READY = "fhe_gpu-warm-up-ready"
#: longest wait for the helper process's steps, from its start, before compiling the rest
#: here instead
_HELPER_PATIENCE_S = 120.0
_LOCK = threading.Lock()


class _Helper:
    """A Python process (running :func:`_helper_main`) that compiles steps into
    Numba's on-disk cache, and reports each step on its stdout as it is ready."""

    def __init__(self, names: tuple[str, ...]):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)  # import this very fhe_gpu, whatever the path set up
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        code = f"from {__name__} import _helper_main; _helper_main({list(names)!r})"
        self.proc = subprocess.Popen([sys.executable, "-c", code],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, text=True)
        self.names, self.ready, self.ended = names, {}, False  # ready: name -> seconds
        self.deadline = time.monotonic() + _HELPER_PATIENCE_S
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name="fhe_gpu-warm-up").start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            word = line.split()
            if len(word) == 3 and word[0] == _READY:
                with self.cond:
                    self.ready[word[1]] = float(word[2])
                    self.cond.notify_all()
        self.proc.wait()
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def wait(self, name: str) -> float:
        """The helper's seconds for step ``name`` once it is in the cache; 0.0 when the
        helper ended or stalled without it (the caller then compiles it itself)."""
        with self.cond:
            self.cond.wait_for(lambda: name in self.ready or self.ended,
                               max(0.0, self.deadline - time.monotonic()))
            return self.ready.get(name, 0.0)

    def close(self) -> None:
        """Stop the process if it stalled (it exits by itself after its last step)."""
        if len(self.ready) < len(self.names) and self.proc.poll() is None:
            self.proc.kill()


def _spare_cpus() -> float:
    """CPUs this process may use minus the 1-minute load average: about how many sit idle
    (a second compiling process only pays off on an idle CPU)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        return cpus - os.getloadavg()[0]
    except (AttributeError, OSError):
        return cpus - 1.0


def _cold(kernels) -> bool:
    """True when one of ``kernels`` is neither compiled in this process nor in Numba's
    on-disk cache for its current source (read through Numba's cache index, a private
    interface: where it is missing, e.g. caching is off, a helper process cannot help)."""
    for kernel in kernels:
        if kernel.signatures:
            continue
        try:
            if not kernel._cache._cache_file._load_index():
                return True
        except Exception:  # noqa: BLE001 (no cache, or Numba's internals changed)
            return False
    return False


def _start_helper(be: RingBackend, wanted: bool | None) -> _Helper | None:
    """A helper process for the helper steps when it pays (a cold cache and an idle CPU)
    or when asked for."""
    names = tuple(_HELPER_STEPS)[:len(_HELPER_STEPS) if be.name == "cpu" else 2]
    if wanted is False or numba.config.DISABLE_JIT or not sys.executable:
        return None
    if wanted is None and (_spare_cpus() < 1.0 or not _cold(_HELPER_STEPS[s] for s in names)):
        return None
    try:
        return _Helper(names)
    except OSError:
        return None


def warm_up(backend="auto", progress: Progress | None = None,
            helper_process: bool | None = None) -> float:
    """Compile, or load from the JIT caches, every kernel that the ring verbs and the
    samplers of ``backend`` run, so that no later call pays a compilation; returns the
    seconds it took.

    ``backend``: ``"auto"``, ``"cpu"``, ``"cuda"`` or a :class:`RingBackend` (as
    :func:`~fhe_gpu.ring.get_backend` takes). ``progress``: called on this thread after
    each of its 11 steps (a verb's kernels, or a sampling kernel) as
    ``progress(name, i, n, seconds)``: step ``name`` is ready, the i-th of n, after
    ``seconds`` (compiling, or loading from the cache); use it to show a progress line,
    e.g. on stderr. ``helper_process``: compile about half of the kernels in a second
    Python process at the same time (they reach this one through Numba's on-disk cache);
    None (default) does so when the cache is cold and a CPU is idle (the CPUs available
    minus the 1-minute load average is at least 1).
    Safe to call again (then every step takes about a millisecond) and from several
    threads (calls run one at a time).

    A cold start (empty ``NUMBA_CACHE_DIR``) takes about 4 s on an idle 2-core machine
    (about 6 s without the helper process); a warm one about 0.2 s.
    """
    start = time.perf_counter()
    with _LOCK:
        be = get_backend(backend)
        helper = _start_helper(be, helper_process)
        later = set(helper.names) if helper is not None else set()
        steps = _sampling_steps() + _verb_steps(_Ring(be))
        steps = [s for s in steps if s[0] not in later] + [s for s in steps if s[0] in later]
        try:
            for i, (name, call) in enumerate(steps, 1):
                elsewhere = helper.wait(name) if name in later else 0.0
                t0 = time.perf_counter()
                call()
                be.synchronize()
                if progress is not None:
                    progress(name, i, len(steps), elsewhere + time.perf_counter() - t0)
        finally:
            if helper is not None:
                helper.close()
    return time.perf_counter() - start


def _helper_main(names: list[str]) -> None:
    """The helper process: run the named steps on the CPU backend, report each one."""
    steps = dict(_sampling_steps() + _verb_steps(_Ring(get_backend("cpu"))))
    for name in names:
        t0 = time.perf_counter()
        steps[name]()
        print(_READY, name, f"{time.perf_counter() - t0:.3f}", flush=True)


__all__ = ["warm_up", "Progress"]
