"""LinearTransform and inner_sum timings (pytest-benchmark; run with ``pytest bench``).

Cases: a 256 x 256 transform on one vector at N = 2^14, and 16 vectors of 768 (lanes of
1024) times a 768 x 768 matrix at N = 2^15 dropped to level 9 (10 limbs), both with a warm
diagonal cache; inner_sum over 64 slots at N = 2^14. Each runs on one ciphertext and on a
batch of 4 (the batch should cost at most 4 single calls). bench/linear_speed.py times the
N = 2^16 case of the issue (32 vectors x 768) as a script.
"""
from __future__ import annotations

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu import circuits as fc

from .conftest import backend_or_skip, run_benchmark

CASES = {  # name: (preset, d, vectors, level or None for the top level)
    "N14-256x256": ("N14", 256, 1, None),
    "N15-768x768-v16-l9": ("N15", 768, 16, 9),
}
BATCHES = (1, 4)


@pytest.fixture(scope="module", params=[(b, c) for b in ("cpu", "cuda") for c in CASES],
                ids=[f"{b}-{c}" for b in ("cpu", "cuda") for c in CASES])
def linear_world(request):
    """(lt, ev, {batch: ciphertext}) with the diagonals of the input level cached."""
    backend, case = request.param
    backend_or_skip(backend)
    preset, d, vectors, level = CASES[case]
    ctx = fg.Context(fg.Parameters.preset(preset), backend=backend)
    rng = np.random.default_rng(0)
    lt = fc.LinearTransform(ctx, rng.uniform(-1, 1, (d, d)), rng.uniform(-1, 1, d),
                            vectors=vectors, cache_bytes=1 << 34)
    kg = fg.KeyGenerator(ctx)
    ev = fg.Evaluator(ctx, kg.evaluation_keys(rotations=lt.rotations))
    encryptor = fg.Encryptor(ctx, kg.public_key())
    cts = {}
    for batch in BATCHES:
        ct = encryptor.encrypt(lt.encode_input(rng.uniform(-1, 1, (batch * vectors, d))))
        cts[batch] = ev.drop_level(ct, ctx.max_level if level is None else level)
    lt.warm(cts[1].level)
    return backend, case, lt, ev, cts


@pytest.mark.parametrize("batch", BATCHES)
def test_linear_transform(benchmark, linear_world, batch):
    backend, case, lt, ev, cts = linear_world
    run_benchmark(benchmark, ev.context.backend, lambda: lt.apply(ev, cts[batch]),
                  f"LinearTransform {case}", backend=backend, batch=batch,
                  diagonals=lt.diagonals, key_switches=lt.key_switches,
                  cache_bytes=lt.cache_nbytes, level=cts[batch].level)


@pytest.mark.parametrize("backend", ("cpu", "cuda"))
def test_inner_sum(benchmark, backend):
    backend_or_skip(backend)
    ctx = fg.Context(fg.Parameters.preset("N14"), backend=backend)
    kg = fg.KeyGenerator(ctx)
    ev = fg.Evaluator(ctx, kg.evaluation_keys(rotations=fc.inner_sum_rotations(64, False)))
    ct = fg.Encryptor(ctx, kg.public_key()).encrypt(
        fg.Encoder(ctx).encode(np.random.default_rng(1).uniform(-1, 1, ctx.slots)))
    run_benchmark(benchmark, ctx.backend, lambda: fc.inner_sum(ev, ct, 64, replicate=False),
                  "inner_sum N14 n=64", backend=backend)
