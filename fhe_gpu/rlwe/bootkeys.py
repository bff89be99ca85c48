"""Bootstrapping keys: the Galois keys of the homomorphic DFTs, conjugation,
relinearization and, for sparse-secret encapsulation, two switching keys.

Encapsulation (OpenFHE SPARSE_ENCAPSULATED, Lattigo's ephemeral secret): ModRaise lifts a
level-0 ciphertext to the whole chain, adding q0 * I where I = round((c0 + c1*s) / q0)
has coefficients as large as the secret's Hamming weight allows. Switched first to an
ephemeral secret s' of weight h (32), I stays below a bound of order sqrt(h), so EvalMod
approximates x mod 1 on a short interval; switched back to s right after ModRaise. The
key set holds (s -> s') and (s' -> s) switching keys, never s'.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from ..errors import ParameterError
from .keys import EvaluationKeys, SwitchingKey
from .resources import check_memory


class BootstrapKeys(EvaluationKeys):
    """EvaluationKeys plus the encapsulation keys of a bootstrapping preset.

    ``raise_weight``: the Hamming weight of the secret ModRaise runs under (the ephemeral
    secret's with encapsulation, else the main secret's), from which EvalMod's interval
    follows. ``to_sparse`` / ``from_sparse``: the switching keys s -> s' and s' -> s, None
    without encapsulation.

    Wire format: ``btk.to_bytes()`` / ``BootstrapKeys.from_bytes(data, ctx, max_bytes)``
    write and read a kind of their own (7, see :mod:`fhe_gpu.serialize`): raise weight,
    both encapsulation keys and every EvaluationKeys key, each seeded (b and the seed of
    a). ``EvaluationKeys.from_bytes`` refuses these bytes with a SerializationError
    rather than drop the encapsulation keys; ``fhe_gpu.serialize.loads`` reads either.
    """

    def __init__(self, context, relin=None, galois=None, key_id: bytes = None,
                 raise_weight: int = 0, to_sparse: SwitchingKey | None = None,
                 from_sparse: SwitchingKey | None = None):
        super().__init__(context, relin, galois, key_id)
        self.raise_weight = int(raise_weight)
        self.to_sparse, self.from_sparse = to_sparse, from_sparse

    @property
    def encapsulated(self) -> bool:
        """True when ModRaise runs under an ephemeral sparse secret."""
        return self.to_sparse is not None

    def __repr__(self):
        return (f"BootstrapKeys({len(self.galois)} Galois keys, raise weight "
                f"{self.raise_weight}, encapsulated={self.encapsulated})")


def _elements(ctx, steps, conjugation: bool) -> list[int]:
    out = {ctx.galois_element(int(k)) for k in steps if int(k) % ctx.slots}
    if conjugation:
        out.add(ctx.conjugation_element)
    return sorted(out)


def _stderr_progress(key_bytes: int):
    """A progress callback drawing one updating line on stderr."""
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        gb = done * key_bytes / 1e9
        end = "\n" if done == total else ""
        print(f"\r  bootstrapping keys {done}/{total} ({gb:.2f} GB, "
              f"{time.perf_counter() - start:.1f} s)", end=end, file=sys.stderr, flush=True)
    return show


def generate(kg, bp, progress=None, compact: bool | None = None) -> BootstrapKeys:
    """The BootstrapKeys of preset ``bp`` for key generator ``kg`` (see the module doc).

    ParameterError when bp belongs to other parameters, or when bp runs ModRaise under the
    main secret and that secret is not sparse of bp's weight. ``compact`` (default: on
    the cpu backend): keys held as b and the seed of a (:class:`SeededSwitchingKey`)."""
    ctx = kg.context
    if bp.params.fingerprint != ctx.fingerprint:
        raise ParameterError(f"bootstrapping preset {bp.name!r} is for other parameters "
                             f"(N=2^{bp.params.log_n}, {len(bp.params.q_primes)} primes) than "
                             f"this key generator's context")
    h = int(bp.sparse_weight)
    if not bp.encapsulate and kg.hamming_weight != h:
        got = "dense" if kg.hamming_weight is None else f"of weight {kg.hamming_weight}"
        raise ParameterError(f"bootstrapping preset {bp.name!r} raises under the main secret "
                             f"and needs it sparse of Hamming weight {h} "
                             f"(KeyGenerator(ctx, hamming_weight={h})); this one is {got}")
    elements = _elements(ctx, bp.rotations, conjugation=True)
    total = len(elements) + 1 + 2 * bool(bp.encapsulate)
    check_memory(total * kg.key_bytes(), f"{total} bootstrapping keys")
    done = [0]
    report = _stderr_progress(kg.key_bytes()) if progress is True else progress

    def step(key):
        done[0] += 1
        if report:
            report(done[0], total)
        return key

    # compact: half the memory, a expanded per key switch (~12 % slower at N = 2^16)
    seeded = ctx.backend.name == "cpu" if compact is None else bool(compact)
    if seeded and ctx.backend.xp is not np:
        raise ParameterError(f"compact bootstrapping keys expand a on the host: not for the "
                             f"{ctx.backend.name!r} backend (compact=False)")
    galois = {g: step(kg.galois_key(g, seeded=seeded)) for g in elements}
    relin = step(kg.relin_key(seeded=seeded))
    to_sparse = from_sparse = None
    if bp.encapsulate:
        eph = kg.sparse_secret(h)
        to_sparse = step(kg.switching_key(kg.secret_key.ntt(), to=eph, seeded=seeded))
        from_sparse = step(kg.switching_key(eph.ntt(), seeded=seeded))
        eph.coeffs = np.zeros_like(eph.coeffs)
        eph._ntt = eph._neg_ntt = None
    return BootstrapKeys(ctx, relin, galois, kg.key_id, raise_weight=h,
                         to_sparse=to_sparse, from_sparse=from_sparse)
