"""CKKS end to end on every backend: encode, encrypt, evaluate, decrypt, precision.

Precision bounds come from the parameters: a fresh ciphertext's error is a rounding
term of a few units times sqrt(N) per slot, so we ask for scale_bits - log_n/2 - 9 bits
(~9 bits of margin), and an operation may cost at most the stated number of bits more.
"""
import numpy as np
import pytest

import fhe_gpu as fg
from conftest import BACKENDS, backend_for
from fhe_gpu.rlwe.encryptor import (STATISTICAL_BITS, encryption_special_primes,
                                    errors_vanish_bits)


def fresh_bound(p):
    return p.scale_bits - p.log_n / 2 - 9


def bits(expected, got):
    return fg.precision_bits(expected, got)


def test_encode_decode(world):
    x = world.uniform(3, world.params.slots) + 1j * world.uniform(3, world.params.slots)
    pt = world.encoder.encode(x)
    assert (pt.level, pt.batch_size) == (world.params.max_level, 3)
    assert bits(x, world.encoder.decode(pt)) > world.params.scale_bits - world.params.log_n - 2


def test_encode_constant_is_a_constant_polynomial(world):
    """Known answer: a constant vector c encodes to round(c * scale) + 0*X + ..."""
    ctx = world.ctx
    pt = world.encoder.encode(np.full(world.params.slots, 0.75), level=0, scale=2 ** 20)
    coeffs = ctx.backend.to_host(ctx.backend.intt(pt.data, ctx.q_basis(0)))[0, 0]
    assert int(coeffs[0]) == 786432 and not coeffs[1:].any()


def test_shorter_vectors_are_zero_padded(world):
    x = world.uniform(5)
    z = world.encoder.decode(world.encoder.encode(x))
    assert z.shape == (world.params.slots,)
    assert bits(np.pad(x, (0, world.params.slots - 5)), z) > fresh_bound(world.params)


@pytest.mark.parametrize("symmetric", [False, True])
def test_encrypt_decrypt(world, symmetric):
    x = world.uniform(2, world.params.slots)
    enc = fg.Encryptor(world.ctx, world.sk) if symmetric else world.encryptor
    ct = enc.encrypt(world.encoder.encode(x))
    assert (ct.seed is not None) == symmetric
    assert bits(x, world.decrypt(ct)) > fresh_bound(world.params)


def test_add_sub_negate(world):
    x, y = world.uniform(), world.uniform()
    a, b = world.encrypt(x), world.encrypt(y)
    ev, pt = world.ev, world.encoder.encode(y)
    cases = {
        "ct+ct": (ev.add(a, b), x + y), "ct-ct": (ev.sub(a, b), x - y),
        "ct+pt": (ev.add(a, pt), x + y), "pt-ct": (ev.sub(pt, a), y - x),
        "ct-pt": (ev.sub(a, pt), x - y), "-ct": (ev.negate(a), -x),
        "ct+0.5": (ev.add(a, 0.5), x + 0.5), "2-ct": (ev.sub(2.0, a), 2 - x),
        "ct+1j": (ev.add(a, 1j), x + 1j),
    }
    for name, (ct, want) in cases.items():
        assert bits(want, world.decrypt(ct)) > fresh_bound(world.params) - 1, name


def test_mul_ciphertexts_relinearizes_and_rescales(world):
    x, y = world.uniform(), world.uniform()
    a, b = world.encrypt(x), world.encrypt(y)
    m = world.ev.mul(a, b)
    q_l = world.params.q_primes[a.level]
    assert m.level == a.level - 1 and m.scale == a.scale * b.scale / q_l
    assert bits(x * y, world.decrypt(m)) > fresh_bound(world.params) - 1
    sq = world.ev.mul(m, m)
    assert bits((x * y) ** 2, world.decrypt(sq)) > fresh_bound(world.params) - 2


def test_mul_plaintext_and_scalars(world):
    x, y = world.uniform(), world.uniform()
    a, ev = world.encrypt(x), world.ev
    cases = {
        "ct*pt": (ev.mul(a, world.encoder.encode(y)), x * y),
        "pt*ct": (ev.mul(world.encoder.encode(y), a), x * y),
        "ct*0.3": (ev.mul(a, 0.3), 0.3 * x), "ct*-2": (ev.mul(-2, a), -2 * x),
        "ct*(1+2j)": (ev.mul(a, 1 + 2j), (1 + 2j) * x),
    }
    for name, (ct, want) in cases.items():
        assert ct.level == a.level - 1, name
        assert bits(want, world.decrypt(ct)) > fresh_bound(world.params) - 2, name
    assert ev.mul(a, 0.3).scale == a.scale


def test_mul_without_rescale_then_rescale(world):
    x, y = world.uniform(), world.uniform()
    a, b = world.encrypt(x), world.encrypt(y)
    m = world.ev.mul(a, b, rescale=False)
    assert m.level == a.level and m.scale == a.scale * b.scale
    r = world.ev.rescale(m)
    assert bits(x * y, world.decrypt(r)) > fresh_bound(world.params) - 1


@pytest.mark.parametrize("k", [1, 2, 3, -1, -3])
def test_rotate(world, k):
    x = world.uniform(2, world.params.slots)
    ct = world.encrypt(x)
    fresh = bits(x, world.decrypt(ct))
    got = world.decrypt(world.ev.rotate(ct, k))
    assert bits(np.roll(x, -k, axis=1), got) >= fresh - 2


def test_rotate_many_and_conjugate(world):
    x = world.uniform() + 1j * world.uniform()
    ct = world.encrypt(x)
    fresh = bits(x, world.decrypt(ct))
    steps = [1, -1, 3, 0]
    for k, r in zip(steps, world.ev.rotate_many(ct, steps)):
        assert bits(np.roll(x, -k), world.decrypt(r)) >= fresh - 2, k
    assert bits(np.conj(x), world.decrypt(world.ev.conjugate(ct))) >= fresh - 2


def test_rotate_many_equals_single_rotations(world):
    ct = world.encrypt(world.uniform())
    hoisted = world.ev.rotate_many(ct, [1, 2])
    for k, h in zip([1, 2], hoisted):
        single = world.ev.rotate(ct, k)
        assert np.array_equal(world.ctx.backend.to_host(h.data),
                              world.ctx.backend.to_host(single.data))


def test_batch_broadcasting_and_stacking(world):
    x = world.uniform(4, world.params.slots)
    y = world.uniform()
    ct = world.encrypt(x)
    one = world.encrypt(y)
    assert bits(x * y, world.decrypt(world.ev.mul(ct, one))) > fresh_bound(world.params) - 1
    assert bits(x + y, world.decrypt(world.ev.add(ct, world.encoder.encode(y)))) \
        > fresh_bound(world.params) - 1
    parts = fg.Ciphertext.stack([ct[3], ct[0]])
    assert parts.batch_size == 2
    assert bits(x[[3, 0]], world.decrypt(parts)) > fresh_bound(world.params)


def test_levels_align_by_dropping(world):
    x, y = world.uniform(), world.uniform()
    a = world.ev.mul(world.encrypt(x), 1.0)
    b = world.encrypt(y)
    s = world.ev.add(a, b)
    assert s.level == a.level
    d = world.ev.drop_level(b, 0)
    assert d.level == 0 and bits(y, world.decrypt(d)) > fresh_bound(world.params)


def test_scale_mismatch_matched_when_not_strict(world):
    x, y = world.uniform(), world.uniform()
    a = world.encrypt(x, scale=2.0 ** 30)
    b = world.encrypt(y, scale=2.0 ** 29)
    loose = fg.Evaluator(world.ctx, world.evk, strict=False)
    s = loose.add(a, b)
    assert bits(x + y, world.decrypt(s)) > fresh_bound(world.params) - 2


def test_evaluator_holds_no_secret(world):
    held = [v for v in vars(world.ev).values()] + list(vars(world.evk).values())
    assert not any(isinstance(v, fg.SecretKey) for v in held)


@pytest.mark.parametrize("p_bits", [[60, 60], [60, 60, 60]])
@pytest.mark.parametrize("backend", BACKENDS)
def test_public_key_errors_vanish_in_the_division_by_p(backend, p_bits):
    """With 2 x 60 special bits the Gaussian errors of public-key encryption are skipped
    and a third special prime goes unused; the ciphertexts equal, bit for bit, those with
    the errors added (they could differ only with probability below 2^-80)."""
    params = fg.Parameters(log_n=5 if backend == "reference" else 10, q_bits=[50, 30, 30],
                           p_bits=p_bits, scale_bits=30, security=None)
    ctx = fg.Context(params, backend=backend_for(backend))
    kg = fg.KeyGenerator(ctx, seed=b"\x02" * 32)
    pk = kg.public_key()
    pt = fg.Encoder(ctx).encode(np.random.default_rng(3).uniform(-1, 1, (2, params.slots)))
    fast, full = (fg.Encryptor(ctx, pk, seed=b"\x03" * 32) for _ in range(2))
    assert fast._p_count == 2 and not fast._add_errors
    full._add_errors = True
    a, b = fast.encrypt(pt), full.encrypt(pt)
    be = ctx.backend
    assert np.array_equal(be.to_host(a.data), be.to_host(b.data))
    dec, encoder = fg.Decryptor(ctx, kg.secret_key), fg.Encoder(ctx)
    want = encoder.decode(pt)
    assert bits(want, encoder.decode(dec.decrypt(a))) > fresh_bound(params)
    low = fast.encrypt(encoder.encode(want, level=1))
    assert bits(want, encoder.decode(dec.decrypt(low))) > fresh_bound(params)


def test_public_key_errors_are_kept_when_p_is_small():
    assert encryption_special_primes(1 << 13, [(1 << 60) - 1]) == 1
    assert encryption_special_primes(1 << 16, [(1 << 60) - 1] * 8) == 2
    assert errors_vanish_bits(1 << 13, [(1 << 60) - 1]) > -STATISTICAL_BITS
    assert errors_vanish_bits(1 << 10, [(1 << 60) - 1]) > -STATISTICAL_BITS
    assert errors_vanish_bits(1 << 14, [(1 << 60) - 1] * 2) < -99
    assert errors_vanish_bits(1 << 16, [(1 << 60) - 1] * 8) < -400
