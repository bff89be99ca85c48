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


def test_precision_stats_reports_the_distribution():
    want = np.array([1.0, 2.0, 3.0, 4.0]) + 1j * np.array([0.0, 1.0, 0.0, 1.0])
    err = np.array([2.0 ** -10, 2.0 ** -20, 2.0 ** -30, 0.0]) + 1j * np.array([0, 0, 2.0 ** -8, 0])
    s = fg.precision_stats(want, want + err)
    assert s.slots == 4 and s.real.min == 10.0 and s.real.median == 25.0
    assert s.imag.min == 8.0 and s.imag.mean == (8 + 3 * 53) / 4
    assert abs(s.min - 8.0) < 1e-3 and s.max_abs_error == abs(err).max()
    assert abs(s.l2 + np.log2(np.sqrt(np.mean(np.abs(err) ** 2)))) < 1e-12
    assert "median" in str(s) and "imag" in str(s)
    assert fg.precision_stats(want, want).min == 53.0
    for bad in ((want, want[:2]), ([], []), (want, want * np.nan)):
        with pytest.raises(fg.ParameterError):
            fg.precision_stats(*bad)
