"""Fixtures of the fhe_gpu benchmarks: backends, prepared ring inputs, keyed scheme worlds.

Every benchmark runs once per backend: ``cpu`` always, ``cuda`` only on a real GPU. The
CUDA emulator (``FHE_GPU_CUDA_EMULATE=1``) runs the kernels on the CPU; its timings are not
GPU timings, so the ``cuda`` cases are skipped there. Timed callables synchronize the
device before they return. Select with ``-k``: ``pytest bench -k "N14 and cpu"``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu.errors import BackendUnavailableError
from fhe_gpu.ring import get_backend

BACKENDS = ("cpu", "cuda")
PRESETS = ("N13", "N14", "N15", "N16")
ROTATION_STEPS = (1, 2, 3, 4)


def backend_or_skip(name: str):
    """The backend called ``name``; skips when it is missing or only emulated."""
    try:
        be = get_backend(name)
    except BackendUnavailableError as exc:
        pytest.skip(f"backend {name!r} unavailable: {exc}")
    if getattr(be, "emulate", False):
        pytest.skip("the CUDA backend is emulated on the CPU here: its timings are not GPU "
                    "timings")
    return be


def synced(be, fn):
    """fn followed by a device synchronization, as one callable for the timer."""
    def run():
        out = fn()
        be.synchronize()
        return out
    return run


def run_benchmark(benchmark, be, fn, group: str, **info):
    """Time ``fn`` (synchronized) after one untimed first call, whose latency is recorded
    in extra_info["first_call_ms"] with ``info``."""
    timed = synced(be, fn)
    t0 = time.perf_counter()
    timed()
    benchmark.extra_info.update(info, first_call_ms=(time.perf_counter() - t0) * 1e3)
    benchmark.group = group
    return benchmark(timed)


def uniform_rns(rng, shape, basis) -> np.ndarray:
    """Uniform residues of shape ``shape + (len(basis), n)`` (host array)."""
    q = np.asarray(basis.q, dtype=np.uint64)[:, None]
    return rng.integers(0, q, size=tuple(shape) + (len(basis), basis.n), dtype=np.uint64)


@dataclass
class SchemeWorld:
    """A keyed context at one preset with encoded and encrypted operands."""

    ctx: fg.Context
    kg: fg.KeyGenerator
    enc: fg.Encoder
    encryptor: fg.Encryptor
    dec: fg.Decryptor
    ev: fg.Evaluator
    values: np.ndarray
    pt: fg.Plaintext
    ct: fg.Ciphertext
    ct2: fg.Ciphertext
    prod: fg.Ciphertext


def make_world(preset: str, backend: str) -> SchemeWorld:
    ctx = fg.Context(fg.Parameters.preset(preset), backend=backend)
    kg = fg.KeyGenerator(ctx)
    evk = kg.evaluation_keys(rotations=list(ROTATION_STEPS))
    enc = fg.Encoder(ctx)
    encryptor = fg.Encryptor(ctx, kg.public_key())
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, (2, ctx.slots))
    pt, pt2 = enc.encode(values[0]), enc.encode(values[1])
    ct, ct2 = encryptor.encrypt(pt), encryptor.encrypt(pt2)
    ev = fg.Evaluator(ctx, evk)
    return SchemeWorld(ctx, kg, enc, encryptor, fg.Decryptor(ctx, kg.secret_key), ev, values,
                       pt, ct, ct2, ev.mul(ct, ct2, rescale=False))


@pytest.fixture(scope="module",
                params=[(b, p) for b in BACKENDS for p in PRESETS],
                ids=[f"{b}-{p}" for b in BACKENDS for p in PRESETS])
def world(request) -> SchemeWorld:
    """One keyed world per (backend, preset), built once per module: pytest orders the
    tests so that each world is set up once."""
    backend, preset = request.param
    backend_or_skip(backend)
    return make_world(preset, backend)
