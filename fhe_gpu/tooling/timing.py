"""Timing of scheme operations: the calibration behind the op times of ``fhe-gpu params``,
the table of ``fhe-gpu bench`` and the key-switch times of ``fhe-gpu sweep``.

Every op runs once untimed (kernels loaded, buffers allocated), then ``repeat`` timed
calls; the median is reported. Times are wall-clock on this machine with the threads
fhe_gpu is allowed (``fg.get_num_threads()``), device-synchronized on the CUDA backend.
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from ..ckks import Context, Encoder, Evaluator
from ..errors import ParameterError
from ..ring import get_num_threads
from ..rlwe import Decryptor, Encryptor, KeyGenerator
from ..rlwe import keyswitch

#: the ops ``time_ops`` measures by default, in display order
BENCH_OPS = ("keygen public", "keygen relin", "keygen rotation", "encrypt", "decrypt+decode",
             "add", "mul plain", "mul relin", "rescale", "rotate", "rotate x4 hoisted",
             "conjugate")
#: the short list the parameter report calibrates
REPORT_OPS = ("encrypt", "mul relin", "rescale", "rotate", "decrypt+decode")


class Progress:
    """A one-line progress display on ``stream`` (stderr): redrawn in place on a terminal,
    one line per step otherwise; silent with ``enabled=False``."""

    def __init__(self, total: int, title: str, stream=None, enabled: bool = True):
        self.total, self.title, self.done = max(1, total), title, 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()

    def step(self, label: str) -> None:
        """Announce the step ``label`` as the next one running."""
        if not self.enabled:
            return
        width = 24
        filled = width * self.done // self.total
        line = (f"{self.title} [{'#' * filled}{'.' * (width - filled)}] {self.done}/"
                f"{self.total} {label} ({time.perf_counter() - self.start:.1f} s)")
        self.stream.write(("\r" + line.ljust(100)) if self.tty else line + "\n")
        self.stream.flush()
        self.done += 1

    def close(self) -> None:
        """Finish the display."""
        if self.enabled:
            self.stream.write((f"\r{self.title}: {self.done} steps in "
                               f"{time.perf_counter() - self.start:.1f} s").ljust(101)[:101]
                              + "\n")
            self.stream.flush()


def _median_ms(fn, repeat: int, sync) -> tuple[float, list[float]]:
    fn()
    sync()
    runs = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        sync()
        runs.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(runs), runs


def _scheme_ops(ctx, seed: bytes, ops) -> dict:
    """Callables of the ops of BENCH_OPS on one keyed context (only the Galois keys
    ``ops`` use are generated)."""
    kg = KeyGenerator(ctx, seed=seed)
    pk = kg.public_key()
    steps = [1, 2, 3, 4] if "rotate x4 hoisted" in ops else [1]
    evk = kg.evaluation_keys(rotations=steps, conjugation="conjugate" in ops)
    ev, enc = Evaluator(ctx, evk), Encoder(ctx)
    encryptor, dec = Encryptor(ctx, pk), Decryptor(ctx, kg.secret_key)
    rng = np.random.default_rng(0)
    a = encryptor.encrypt(enc.encode(rng.uniform(-1, 1, ctx.slots)))
    b = encryptor.encrypt(enc.encode(rng.uniform(-1, 1, ctx.slots)))
    pt = enc.encode(rng.uniform(-1, 1, ctx.slots), scale=float(ctx.q_primes[-1]))
    prod = ev.mul(a, b, rescale=False)
    return {
        "keygen public": kg.public_key,
        "keygen relin": kg.relin_key,
        "keygen rotation": lambda: kg.galois_key(ctx.galois_element(5)),
        "encrypt": lambda: encryptor.encrypt(pt),
        "decrypt+decode": lambda: enc.decode(dec.decrypt(a)),
        "add": lambda: ev.add(a, b),
        "mul plain": lambda: ev.mul(a, pt, rescale=False),
        "mul relin": lambda: ev.mul(a, b, rescale=False),
        "rescale": lambda: ev.rescale(prod),
        "rotate": lambda: ev.rotate(a, 1),
        "rotate x4 hoisted": lambda: ev.rotate_many(a, [1, 2, 3, 4]),
        "conjugate": lambda: ev.conjugate(a),
    }


def time_ops(params, ops=BENCH_OPS, repeat: int = 3, backend="auto", progress=None,
             seed: bytes = b"fhe-gpu bench".ljust(32, b".")) -> dict:
    """Median milliseconds of each op of ``ops`` (names of BENCH_OPS) at ``params``: a
    dict name -> {"ms": median, "runs": [...]}. ``progress`` is a Progress or None."""
    unknown = [op for op in ops if op not in BENCH_OPS]
    if unknown:
        raise ParameterError(f"unknown ops {unknown}: expected names of {list(BENCH_OPS)}")
    ctx = Context(params, backend=backend)
    if progress is not None:
        progress.step("key generation and inputs")
    calls = _scheme_ops(ctx, seed, ops)
    sync = getattr(ctx.backend, "synchronize", lambda: None)
    out = {}
    for name in ops:
        if progress is not None:
            progress.step(name)
        ms, runs = _median_ms(calls[name], repeat, sync)
        out[name] = {"ms": ms, "runs": runs}
    return out


def machine() -> dict:
    """What the timings ran on: backend, threads, CPU count."""
    import os
    import platform
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "threads": get_num_threads()}


class _RandomKey:
    """Key material of the right shape and range (uniform residues), for timing only."""

    def __init__(self, ctx, seed: int = 0):
        rng = np.random.default_rng(seed)
        digits = -(-len(ctx.q_primes) // ctx.alpha)
        primes = np.array(ctx.q_primes + ctx.p_primes, dtype=np.uint64)
        shape = (digits, 2, len(primes), ctx.n)
        host = (rng.integers(0, 2 ** 63, size=shape, dtype=np.uint64)
                % primes[None, None, :, None])
        self.data = ctx.backend.to_device(host)


def key_switch_ms(params, repeat: int = 2, backend="auto") -> tuple[float, list[float]]:
    """Median milliseconds of one hybrid key switch (ModUp, inner product, ModDown) at the
    top level of ``params``, on random key material (no key generation: the cost is the
    same for any key)."""
    ctx = Context(params, backend=backend)
    key = _RandomKey(ctx)
    rng = np.random.default_rng(1)
    primes = np.array(ctx.q_primes, dtype=np.uint64)
    host = rng.integers(0, 2 ** 63, size=(1, len(primes), ctx.n), dtype=np.uint64) \
        % primes[None, :, None]
    d = ctx.backend.to_device(host)
    sync = getattr(ctx.backend, "synchronize", lambda: None)
    return _median_ms(lambda: keyswitch.key_switch(ctx, d, key, ctx.max_level), repeat, sync)
