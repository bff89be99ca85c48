"""CKKS bootstrapping (fhe_gpu.circuits.Bootstrapper) on the insecure toy presets.

* ModRaise is a ring verb: bit-identical to the reference on every backend; the lifted
  ciphertext decrypts to m + q0 I with |I| within the Hamming-weight bound.
* A random complex vector bootstraps with mean precision >= log2(scale) - (log N + 2) - 10
  bits (Lattigo's bound), at the preset's stated level and exactly the default scale; a
  product after bootstrapping decrypts correctly; cpu and emulated CUDA are bit-identical.
* Meta-BTS: two iterations reach >= 1.6x the bits of one; the iteration count is honoured.
* EvalMod's interval follows the secret's Hamming weight (a sparse main secret of weight
  192 needs K = 34 at N = 2^11, and bootstraps with it); mismatched keys are refused.
* Bootstrapping keys: public a components uniform and expanded from their seeds; the
  ephemeral secret never leaves key generation.
* Typed errors: inputs above the message bound, unknown bounds, wrong keys or context.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu import circuits as fc
from fhe_gpu.circuits.dft import apply_plain, dft_factors
from fhe_gpu.circuits.evalmod import interval_bound
from fhe_gpu.errors import KeyMissingError, LevelError, ParameterError
from fhe_gpu.rlwe.sampling import uniform_poly
from conftest import BACKENDS, backend_for


class World:
    """A toy preset with its keys on one backend (deterministic seeds)."""

    def __init__(self, preset: str, backend: str = "cpu"):
        self.bp = fc.BootstrapParameters.preset(preset)
        self.ctx = fg.Context(self.bp.params, backend=backend_for(backend))
        weight = None if self.bp.encapsulate else self.bp.sparse_weight
        self.kg = fg.KeyGenerator(self.ctx, seed=b"b" * 32, hamming_weight=weight)
        self.keys = self.kg.bootstrap_keys(self.bp)
        self.bt = fc.Bootstrapper(self.ctx, self.keys, self.bp)
        self.enc = fg.Encoder(self.ctx)
        self.encryptor = fg.Encryptor(self.ctx, self.kg.public_key())
        self.dec = fg.Decryptor(self.ctx, self.kg.secret_key)
        self.ev = fg.Evaluator(self.ctx, self.keys)

    def vector(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        n = self.ctx.slots
        return (rng.uniform(-1, 1, n) + 1j * rng.uniform(-1, 1, n)) / math.sqrt(2)

    def encrypt(self, z, level: int = 0):
        return self.encryptor.encrypt(self.enc.encode(z, level=level))

    def decrypt(self, ct) -> np.ndarray:
        return self.enc.decode(self.dec.decrypt(ct)).reshape(-1)[: self.ctx.slots]

    def bound_bits(self) -> float:
        """Lattigo's bootstrapping-test bound: log2(scale) - (log N + 2) - 10."""
        return self.bp.scale_bits - (self.bp.log_n + 2) - 10


@lru_cache(maxsize=None)
def world(preset: str = "toy-N11", backend: str = "cpu") -> World:
    return World(preset, backend)


def stats(want, got):
    return fg.precision_stats(want, got)


# ------------------------------------------------------------------------ ring and ckks


@pytest.mark.parametrize("backend", BACKENDS)
def test_mod_raise_verb_matches_the_reference(backend):
    ctx = fg.Context(world().bp.params, backend=backend_for(backend))
    ref = fg.Context(world().bp.params, backend="reference").backend
    a = np.random.default_rng(3).integers(0, ctx.q_primes[0], (2, 1, ctx.n), dtype=np.uint64)
    want = ref.mod_raise(a, ctx.q_basis(0), ctx.q_basis(5))
    got = ctx.backend.to_host(ctx.backend.mod_raise(ctx.backend.to_device(a), ctx.q_basis(0),
                                                    ctx.q_basis(5)))
    np.testing.assert_array_equal(got, want)


def test_mod_raise_adds_q0_times_a_small_integer():
    w = world()
    ctx, q0 = w.ctx, w.ctx.q_primes[0]
    ct = w.encrypt(w.vector(1))
    raised = w.ev.mod_raise(ct)
    assert raised.level == ctx.max_level
    basis = ctx.q_basis(raised.level)
    t = _centered(ctx, w.dec.decrypt(raised), basis.primes)
    m = _centered(ctx, w.dec.decrypt(ct), [q0])
    I = np.array([round(int(v) / q0) for v in t - m])
    assert np.abs(I).max() < w.bp.K and 0.5 < I.std() < 3.0       # sd ~ sqrt(33/12)
    noise = np.array([int(v) for v in t - m - q0 * I])
    assert np.abs(noise).max() < 2 ** 12                # two key switches' noise


def _centered(ctx, pt, primes):
    from fhe_gpu.ring import reference as ref
    be = ctx.backend
    coeffs = be.to_host(be.intt(pt.data, ctx.q_basis(len(primes) - 1)))[0]
    big = ref.crt_compose(coeffs, primes)
    q = math.prod(int(p) for p in primes)
    return np.array([int(v) - q if int(v) > q // 2 else int(v) for v in big], dtype=object)


def test_mul_by_i_and_mul_int_are_exact():
    w = world()
    z = w.vector(2)
    ct = w.encrypt(z, level=3)
    for power in range(5):
        got = w.decrypt(w.ev.mul_by_i(ct, power))
        assert np.abs(got - z * 1j ** power).max() < 2 ** -20
    assert w.ev.mul_by_i(ct).level == ct.level and w.ev.mul_by_i(ct).scale == ct.scale
    tripled = w.ev.mul_int(ct, -3)
    assert tripled.scale == ct.scale and np.abs(w.decrypt(tripled) + 3 * z).max() < 2 ** -18
    with pytest.raises(ParameterError, match="nonzero integer"):
        w.ev.mul_int(ct, 1.5)


def test_dft_factors_compose_to_the_slot_embedding():
    n, m = 64, 256
    zeta = np.exp(1j * np.pi * np.array([pow(5, j, m) for j in range(n)]) / (m // 2))
    V = zeta[:, None] ** np.arange(n)[None, :]
    w = np.random.default_rng(4).normal(size=n) + 1j * np.random.default_rng(5).normal(size=n)
    bitrev = [int(format(i, "06b")[::-1], 2) for i in range(n)]
    for budget in (1, 2, 3, 6):
        x = w[bitrev]
        for d in dft_factors(n, m, budget, inverse=False):
            x = apply_plain(d, x)
        np.testing.assert_allclose(x, V @ w, atol=1e-9)
        y = V @ w
        for d in dft_factors(n, m, budget, inverse=True):
            y = apply_plain(d, y)
        np.testing.assert_allclose(y, w[bitrev], atol=1e-9)


# ------------------------------------------------------------------------ bootstrapping


def test_bootstrap_precision_level_scale_and_a_product_after():
    w = world()
    z = w.vector(7)
    out = w.bt.bootstrap(w.encrypt(z))
    assert out.level == w.bp.output_level == w.bt.output_level == 2
    assert out.scale == w.ctx.default_scale
    s = stats(z, w.decrypt(out))
    assert min(s.real.mean, s.imag.mean) >= w.bound_bits(), s
    assert s.min >= w.bp.residual_bits + 2, s        # Meta-BTS's promise on the residual
    twin = w.bt.plain(z)
    assert stats(z, twin).min > s.min + 4             # approximation error far below noise
    prod = w.ev.mul(out, out)
    assert stats(z * z, w.decrypt(prod)).mean >= w.bound_bits() - 1


def test_bootstrap_depth_is_the_stated_one():
    bp = world().bp
    assert bp.stages == {"CoeffsToSlots": 2, "EvalMod": 9, "SlotsToCoeffs": 2, "left": 2}
    assert bp.depth == 13 == bp.params.max_level - bp.output_level
    assert fc.BootstrapParameters.preset("N16").stages == {
        "CoeffsToSlots": 3, "EvalMod": 9, "SlotsToCoeffs": 3, "left": 6}
    for name, left in (("N16", 6), ("N16-deep", 8), ("N16-sparse", 4)):
        bp = fc.BootstrapParameters.preset(name)               # SecurityError if over
        assert bp.output_level == bp.stages["left"] == left
        assert bp.params.security == 128 and bp.params.log_qp <= 1747


def test_cpu_and_emulated_cuda_bootstrap_bit_identically():
    if "cuda" not in BACKENDS:
        pytest.skip("no CUDA backend (GPU or emulator)")
    cpu, cuda = world("toy-N10", "cpu"), world("toy-N10", "cuda")
    ct = cpu.encrypt(cpu.vector(8))
    a = cpu.bt.bootstrap(ct)
    b = cuda.bt.bootstrap(fg.Ciphertext.from_bytes(ct.to_bytes(), cuda.ctx))
    np.testing.assert_array_equal(cpu.ctx.backend.to_host(a.data),
                                  cuda.ctx.backend.to_host(b.data))
    assert stats(cpu.vector(8), cpu.decrypt(a)).mean >= cpu.bound_bits()


def test_meta_bts_doubles_the_bits_and_honours_the_count():
    w = world()
    z = w.vector(9)
    ct = w.encrypt(z)
    one, two = (stats(z, w.decrypt(w.bt.bootstrap(ct, iterations=k))) for k in (1, 2))
    assert two.mean >= 1.6 * one.mean, (one, two)
    out = w.bt.bootstrap(ct, iterations=2)
    assert out.level == w.bp.output_level - 1 and out.scale == ct.scale
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="iterations"):
            w.bt.bootstrap(ct, iterations=bad)


def test_evalmod_interval_follows_the_hamming_weight():
    assert interval_bound(32, 2 ** 11) == 15 and interval_bound(192, 2 ** 11) == 34
    assert interval_bound(32, 2 ** 16) == 16 and interval_bound(32, 2 ** 16) < \
        interval_bound(64, 2 ** 16) < interval_bound(192, 2 ** 16)
    assert interval_bound(4, 2 ** 16) == 1 + 3                 # exact bound (h + 1) / 2
    dense, sparse = world(), world("toy-N11-sparse")
    assert dense.bt.evalmod.K == dense.bp.K == 15 and sparse.bt.evalmod.K == sparse.bp.K == 34
    z = sparse.vector(10)
    got = sparse.decrypt(sparse.bt.bootstrap(sparse.encrypt(z)))
    assert stats(z, got).mean >= sparse.bound_bits()
    # the h = 32 interval on a weight-192 raise: keys and preset disagree -> refused
    with pytest.raises(ParameterError, match="Hamming weight 32.*weight 192"):
        fc.Bootstrapper(sparse.ctx, sparse.keys, _with_weight(sparse.bp, 32))


def _with_weight(bp, weight):
    from dataclasses import replace
    return replace(bp, sparse_weight=weight)


def test_sparse_preset_needs_a_sparse_main_secret():
    bp = fc.BootstrapParameters.preset("toy-N11-sparse")
    kg = fg.KeyGenerator(fg.Context(bp.params, backend="cpu"), seed=b"d" * 32)
    with pytest.raises(ParameterError, match="hamming_weight=192.*dense"):
        kg.bootstrap_keys(bp)
    sparse = world("toy-N11-sparse")
    assert np.count_nonzero(sparse.kg.secret_key.coeffs) == 192


def test_bootstrap_key_a_is_uniform_and_expanded_from_its_seed():
    w = world()
    ctx = w.ctx
    qp = ctx.full_qp
    keys = [w.keys.to_sparse, w.keys.from_sparse, w.keys.relin_key()] + \
        list(w.keys.galois.values())[:3]
    for key in keys:
        a = ctx.backend.to_host(key.data)[:, 1]
        digits = a.shape[0]
        np.testing.assert_array_equal(a, uniform_poly(key.seed, b"ksk", qp.primes, ctx.n,
                                                      batch=digits))
        u = a / np.array(qp.primes, dtype=np.float64)[:, None]
        counts = np.histogram(u, bins=16, range=(0, 1))[0]
        expected = u.size / 16
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 60, chi2                                    # 15 dof: p ~ 1e-7
    assert not hasattr(w.keys, "secret_key") and w.keys.encapsulated


def test_bootstrap_errors_are_typed():
    w = world()
    z = w.vector(11)
    with pytest.raises(ParameterError, match="exceeds the preset's message bound 1.0"):
        w.bt.bootstrap(w.encrypt(2 * z))
    ct = w.encrypt(z)
    unknown = fg.Ciphertext(ct.data, ct.level, ct.scale, w.ctx, key_id=ct.key_id)
    with pytest.raises(ParameterError, match="assume_bounded=True"):
        w.bt.bootstrap(unknown)
    assert stats(z, w.decrypt(w.bt.bootstrap(unknown, assume_bounded=True))).mean > 17
    keys = w.kg.evaluation_keys(rotations=[1], conjugation=True)
    with pytest.raises(ParameterError, match="Hamming weight 32"):
        fc.Bootstrapper(w.ctx, keys, w.bp)
    other = fc.BootstrapParameters.preset("toy-N10")
    with pytest.raises(ParameterError, match="other parameters"):
        fc.Bootstrapper(w.ctx, w.keys, other)
    with pytest.raises(ParameterError, match="no bootstrapping preset"):
        fc.BootstrapParameters.preset("N99")
    partial = type(w.keys)(w.ctx, w.keys.relin, dict(list(w.keys.galois.items())[:2]),
                           w.keys.key_id, raise_weight=32, to_sparse=w.keys.to_sparse,
                           from_sparse=w.keys.from_sparse)
    with pytest.raises(KeyMissingError, match="lack rotations"):
        fc.Bootstrapper(w.ctx, partial, w.bp)
    with pytest.raises(LevelError, match="level 0"):
        w.ev.mod_raise(w.encrypt(z, level=2))


def test_fused_ops_agree_between_evaluator_and_simulator():
    w = world()
    z = w.vector(12)
    sim = fg.Simulator(w.bp.params, rotations=[1, 3])
    s_ct, e_ct = sim.encrypt(z, level=4), w.encrypt(z, level=4)
    for ev, ct, dec in ((sim, s_ct, sim.decrypt), (w.ev, e_ct, w.decrypt)):
        got = dec(ev.lincomb_to_scale([ct, ev.mul_by_i(ct)], [0.5, -2.0], ct.scale))
        assert np.abs(got - (0.5 * z - 2j * z)).max() < 2 ** -20
        assert np.abs(dec(ev.mul_int(ct, 3)) - 3 * z).max() < 2 ** -20
    steps = [0, 1, 3]
    want = sum(np.roll(z, -k) for k in steps)
    rot = w.kg.evaluation_keys(rotations=[1, 3])
    ev = fg.Evaluator(w.ctx, rot)
    assert np.abs(w.decrypt(ev.rotate_sum([e_ct] * 3, steps)) - want).max() < 2 ** -20
    assert np.abs(sim.decrypt(sim.rotate_sum([s_ct] * 3, steps)) - want).max() < 2 ** -20


def test_sparse_slots_bootstrap_to_the_replicated_input():
    w = world("toy-N11-s128")
    n, slots = w.bp.slots, w.ctx.slots
    assert n == 128 and w.bp.subsum_steps == [128, 256, 512]
    assert len(w.bp.rotations) < len(world().bp.rotations)
    z = w.vector(13)[:n]
    padded = np.zeros(slots, dtype=complex)
    padded[:n] = z
    out = w.bt.bootstrap(w.encrypt(padded))
    assert out.level == w.bp.output_level and out.scale == w.ctx.default_scale
    s = stats(np.tile(z, slots // n), w.decrypt(out))
    assert min(s.real.mean, s.imag.mean) >= w.bound_bits(), s
    assert stats(np.tile(z, slots // n), w.bt.plain(padded)).min > s.min + 4
    with pytest.raises(ParameterError, match="log_slots"):
        _with_log_slots(w.bp, 1)


def _with_log_slots(bp, log_slots):
    from dataclasses import replace
    return replace(bp, log_slots=log_slots)


def test_compact_and_full_keys_bootstrap_bit_identically():
    w = world("toy-N10")
    keys = {c: fg.KeyGenerator(w.ctx, seed=b"c" * 32).bootstrap_keys(w.bp, compact=c)
            for c in (True, False)}
    assert all(hasattr(k, "operand") for k in keys[True].galois.values())
    assert all(not hasattr(k, "operand") for k in keys[False].galois.values())
    for g, key in keys[False].galois.items():
        np.testing.assert_array_equal(key.data, keys[True].galois[g].data)
    ct = fg.Encryptor(w.ctx, fg.KeyGenerator(w.ctx, seed=b"c" * 32).public_key()).encrypt(
        w.enc.encode(w.vector(14), level=0))
    a, b = (fc.Bootstrapper(w.ctx, keys[c], w.bp).bootstrap(ct) for c in (True, False))
    np.testing.assert_array_equal(a.data, b.data)
