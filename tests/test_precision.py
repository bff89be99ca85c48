"""Precision at the acceptance parameters (issue 2): one ct x ct mul + relin + rescale,
scale 2^40, uniform inputs in [-1, 1] over all N/2 slots, public-key encryption.

Bounds: >= 24 bits at N = 2^14 (Q = [60] + 6x[40]) and >= 22 bits at N = 2^16
(Q = [60] + 27x[40], 8 special primes, dnum 3); rotations and conjugation at most 2 bits
below a fresh ciphertext. SEAL reaches 25.4 / 23.3 bits, OpenFHE 21.3 / 18.6.
"""
import numpy as np
import pytest

import fhe_gpu as fg


def _measure(params, seed=b"precision".ljust(32, b"-")):
    ctx = fg.Context(params, backend="cpu")
    kg = fg.KeyGenerator(ctx, seed=seed)
    evk = kg.evaluation_keys(rotations=[1, -1, 5], conjugation=True)
    enc, rng = fg.Encoder(ctx), np.random.default_rng(11)
    x, y = rng.uniform(-1, 1, (2, params.slots))
    encryptor = fg.Encryptor(ctx, kg.public_key())
    a, b = encryptor.encrypt(enc.encode(x)), encryptor.encrypt(enc.encode(y))
    dec, ev = fg.Decryptor(ctx, kg.secret_key), fg.Evaluator(ctx, evk)

    def bits(want, ct):
        return fg.precision_bits(want, enc.decode(dec.decrypt(ct)))

    out = {"fresh": bits(x, a), "mul": bits(x * y, ev.mul(a, b)),
           "conj": bits(x, ev.conjugate(a))}
    for k in (1, -1, 5):
        out[f"rot{k}"] = bits(np.roll(x, -k), ev.rotate(a, k))
    return out


def _check(got, mul_bound):
    assert got["mul"] >= mul_bound, got
    for key in ("conj", "rot1", "rot-1", "rot5"):
        assert got[key] >= got["fresh"] - 2, (key, got)


def test_precision_n14():
    _check(_measure(fg.Parameters(log_n=14, q_bits=[60] + [40] * 6, p_bits=[60, 60])), 24)


@pytest.mark.slow
def test_precision_n16():
    _check(_measure(fg.Parameters.preset("N16")), 22)
