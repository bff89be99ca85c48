"""RingBackend verbs by ring degree, limbs and batch.

Cases are the primes of a preset (N = 2^log_n, its special primes and dnum) at a level with
``limbs`` ciphertext primes. ``batch`` counts polynomials for ntt, intt and mod_up (mod_up
decomposes one polynomial, c1) and ciphertexts, i.e. pairs of polynomials, for
key_switch_inner (one per component), mod_down, rescale and automorphism.

    pytest bench/test_ring.py -k "N16 and mod_up" --benchmark-json ring.json
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

import fhe_gpu as fg

from .conftest import BACKENDS, backend_or_skip, run_benchmark, uniform_rns

# (preset, limbs at the benchmarked level)
CASES = (("N14", 7), ("N15", 14), ("N16", 10), ("N16", 28))
BATCHES = (1, 4)
GALOIS_ELT = 5  # rotation by one slot


@dataclass
class Ring:
    """The bases of one case and the device arrays every verb needs, per batch size."""

    be: object
    ctx: fg.Context
    log_n: int
    limbs: int
    _arrays: dict = field(default_factory=dict)

    @property
    def q(self):
        return self.ctx.q_basis(self.limbs - 1)

    @property
    def qp(self):
        return self.ctx.qp_basis(self.limbs - 1)

    @property
    def digits(self) -> int:
        return math.ceil(self.limbs / self.ctx.alpha)

    def arrays(self, batch: int) -> dict:
        """Uniform inputs of every verb at this batch size (made once, kept)."""
        if batch not in self._arrays:
            self._arrays[batch] = self._make_arrays(batch)
        return self._arrays[batch]

    def _make_arrays(self, batch: int) -> dict:
        rng, be, ctx = np.random.default_rng(batch), self.be, self.ctx
        dev = be.to_device
        return {
            "poly": dev(uniform_rns(rng, (batch,), self.q)),
            "ct": dev(uniform_rns(rng, (batch, 2), self.q)),
            "ext": dev(uniform_rns(rng, (batch, self.digits), self.qp)),
            "acc": dev(uniform_rns(rng, (batch, 2), self.qp)),
            "key": dev(uniform_rns(rng, (ctx.dnum, 2), ctx.full_qp)),
        }


CASE_PARAMS = [(b, p, lim) for b in BACKENDS for p, lim in CASES]


@pytest.fixture(scope="module", params=CASE_PARAMS,
                ids=[f"{b}-{p}-L{lim}" for b, p, lim in CASE_PARAMS])
def ring(request) -> Ring:
    backend, preset, limbs = request.param
    be = backend_or_skip(backend)
    params = fg.Parameters.preset(preset)
    return Ring(be, fg.Context(params, backend=backend), params.log_n, limbs)


def _verbs(r: Ring, a: dict) -> dict:
    be, ctx = r.be, r.ctx
    return {
        "ntt": lambda: be.ntt(a["poly"], r.q),
        "intt": lambda: be.intt(a["poly"], r.q),
        "mod_up": lambda: be.mod_up(a["poly"], r.q, ctx.p_basis, ctx.alpha),
        "key_switch_inner": lambda: be.key_switch_inner(a["ext"], a["key"], r.qp, ctx.full_qp),
        "mod_down": lambda: be.mod_down(a["acc"], r.q, ctx.p_basis),
        "rescale": lambda: be.rescale(a["ct"], r.q),
        "automorphism": lambda: be.automorphism(a["ct"], GALOIS_ELT, r.q),
    }


VERBS = ("ntt", "intt", "mod_up", "key_switch_inner", "mod_down", "rescale", "automorphism")


@pytest.mark.parametrize("batch", BATCHES, ids=[f"B{b}" for b in BATCHES])
@pytest.mark.parametrize("verb", VERBS)
def test_verb(benchmark, ring, verb, batch):
    fn = _verbs(ring, ring.arrays(batch))[verb]
    run_benchmark(benchmark, ring.be, fn, group=f"ring {verb}", verb=verb, log_n=ring.log_n,
                  limbs=ring.limbs, batch=batch, backend=ring.be.name,
                  special_primes=len(ring.ctx.p_primes), dnum=ring.ctx.dnum)
