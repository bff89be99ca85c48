"""Bootstrapping timings (pytest-benchmark; run with ``pytest bench -k bootstrap``).

One bootstrap of a full-slot ciphertext at level 0 with the insecure toy-N12 preset (CI
size) and the 128-bit N16 preset (``-m slow``: keys take seconds and GB), on cpu and, on a
GPU runner, cuda. The plaintext diagonals are encoded by the untimed first call.
bench/peers/bootstrap.py compares N16 against OpenFHE's EvalBootstrap in one process.
"""
from __future__ import annotations

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu import circuits as fc

from .conftest import backend_or_skip, run_benchmark

PRESETS = ("toy-N12", pytest.param("N16", marks=pytest.mark.slow))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("backend", ("cpu", "cuda"))
def test_bootstrap(benchmark, backend, preset):
    backend_or_skip(backend)
    bp = fc.BootstrapParameters.preset(preset)
    ctx = fg.Context(bp.params, backend=backend)
    kg = fg.KeyGenerator(ctx)
    bt = fc.Bootstrapper(ctx, kg.bootstrap_keys(bp), bp)
    enc = fg.Encoder(ctx)
    x = np.random.default_rng(0).uniform(-1, 1, ctx.slots)
    ct = fg.Encryptor(ctx, kg.public_key()).encrypt(enc.encode(x, level=0))
    out = run_benchmark(benchmark, ctx.backend, lambda: bt.bootstrap(ct),
                        f"bootstrap {preset}", backend=backend, levels=bp.stages)
    got = enc.decode(fg.Decryptor(ctx, kg.secret_key).decrypt(out)).real
    benchmark.extra_info["mean_bits"] = float(-np.log2(np.abs(got - x).mean()))
