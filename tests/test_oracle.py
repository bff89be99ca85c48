"""The decryption oracle (Li–Micciancio 2021) and noise flooding on decryption.

The attack is written here from public information only: the ciphertext's arrays, the
decoded output and the parameters. Without flooding one decoded result gives every
coefficient of the secret key; with flooding the recovered key is no better than a guess.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu.rlwe import decryptor as dmod
from fhe_gpu.rlwe.sampling import Sampler


@pytest.fixture(scope="module")
def world():
    params = fg.Parameters(log_n=10, q_bits=[61, 50, 50], p_bits=[61], scale_bits=50,
                           security=None)
    ctx = fg.Context(params, backend="cpu")
    kg = fg.KeyGenerator(ctx, seed=b"oracle test keys 0123456789abcde")
    enc = fg.Encoder(ctx)
    encryptor = fg.Encryptor(ctx, kg.public_key(), seed=b"oracle test encryption randomness")
    ev = fg.Evaluator(ctx, kg.evaluation_keys())
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, ctx.slots) / 8
    y = rng.uniform(-1, 1, ctx.slots) / 8
    cx, cy = (encryptor.encrypt(enc.encode(v)) for v in (x, y))
    cts = {"fresh": (cx, x), "mul": (ev.mul(cx, cy), x * y)}
    return ctx, kg, enc, cts


def recover_secret(ctx, enc, ct, decoded) -> np.ndarray:
    """Li–Micciancio from public data: re-encode the decoded slots at the ciphertext's scale
    and level (m' = c0 + c1*s exactly when nothing was added), s = (m' - c0) / c1 in the
    evaluation domain mod q0, back to coefficients, centred; clamped to the ternary range
    (the best guess when the division gives noise)."""
    be, q0 = ctx.backend, ctx.q_primes[0]
    m = be.to_host(enc.encode(decoded, level=ct.level, scale=ct.scale).data)[0, 0]
    data = be.to_host(ct.data)
    c0, c1 = data[0, 0, 0], data[0, 1, 0]
    s_ntt = np.array([(int(a) - int(b)) * pow(int(c), q0 - 2, q0) % q0
                      for a, b, c in zip(m, c0, c1)], dtype=np.uint64)
    s = be.to_host(be.intt(be.to_device(s_ntt[None]), ctx.q_basis(0)))[0]
    centred = np.where(s > q0 // 2, s.astype(object) - q0, s.astype(object))
    return np.clip(centred.astype(np.float64), -1, 1).astype(np.int64)


def matches(kg, guess) -> int:
    return int(np.sum(guess == kg.secret_key.coeffs))


@pytest.mark.parametrize("which", ["fresh", "mul"])
def test_attack_recovers_whole_key_without_flooding(world, which):
    ctx, kg, enc, cts = world
    ct, want = cts[which]
    assert ct.noise_var is not None
    got = enc.decode(fg.Decryptor(ctx, kg.secret_key).decrypt(ct))
    assert fg.precision_bits(want, got) > 25
    assert matches(kg, recover_secret(ctx, enc, ct, got)) == ctx.n


@pytest.mark.parametrize("which", ["fresh", "mul"])
def test_flooding_defeats_attack_within_predicted_precision(world, which):
    ctx, kg, enc, cts = world
    ct, want = cts[which]
    dec = fg.Decryptor(ctx, kg.secret_key, flooding=True, statistical_bits=30,
                       seed=b"oracle test flooding seed 012345")
    got = enc.decode(dec.decrypt(ct))
    found = matches(kg, recover_secret(ctx, enc, ct, got))
    assert found < ctx.n / 2, f"{found} of {ctx.n} secret coefficients recovered"
    measured, predicted = fg.precision_bits(want, got), dec.predicted_precision(ct)
    assert abs(measured - predicted) < 2.0, (measured, predicted)
    unflooded = dec.predicted_precision(ct, flooded=False)
    cost = unflooded - predicted
    assert cost > 10
    assert abs(cost - (dec.flooding_bits(ct) - 0.5 * math.log2(ct.noise_var))) < 0.5


def test_flooding_sigma_follows_formula(world):
    ctx, kg, _, cts = world
    ct = cts["fresh"][0]
    dec = fg.Decryptor(ctx, kg.secret_key, flooding=True, statistical_bits=30, queries=4)
    b = dmod.bound_tail_factor(ctx.n, 30) * math.sqrt(ct.noise_var)
    assert dec.error_bound(ct) == pytest.approx(b)
    want = math.sqrt(24 * ctx.n * 4) * 2 ** 15 * b
    assert dec.flooding_sigma(ct) == pytest.approx(want)
    one = fg.Decryptor(ctx, kg.secret_key, flooding=True, statistical_bits=30)
    assert dec.flooding_sigma(ct) / one.flooding_sigma(ct) == pytest.approx(2.0)
    assert dec.flooding_sigma(ct, noise_bound=10.0) == pytest.approx(want / b * 10.0)
    # 2n * exp(-t^2/2) = 2^-s
    t = dmod.bound_tail_factor(ctx.n, 30)
    assert math.log2(2 * ctx.n) - t * t / 2 / math.log(2) == pytest.approx(-30)


def test_default_does_not_flood(world):
    ctx, kg, _, cts = world
    ct = cts["fresh"][0]
    dec = fg.Decryptor(ctx, kg.secret_key)
    assert dec.flooding is False
    a, b = dec.decrypt(ct).data, dec.decrypt(ct).data
    assert np.array_equal(a, b)
    flooded = fg.Decryptor(ctx, kg.secret_key, flooding=True)
    assert not np.array_equal(flooded.decrypt(ct).data, a)


def test_missing_noise_information_is_a_typed_error(world):
    ctx, kg, enc, cts = world
    ct, want = cts["fresh"]
    bare = fg.Ciphertext(ct.data, ct.level, ct.scale, ctx, key_id=ct.key_id)
    assert bare.noise_var is None
    fg.Decryptor(ctx, kg.secret_key).decrypt(bare)  # no flooding: nothing to size
    dec = fg.Decryptor(ctx, kg.secret_key, flooding=True)
    with pytest.raises(fg.ParameterError, match="noise_var=None.*noise_bound"):
        dec.decrypt(bare)
    with pytest.raises(fg.ParameterError, match="noise_var=None"):
        dec.flooding_bits(bare)
    got = enc.decode(dec.decrypt(bare, noise_bound=100.0))
    assert fg.precision_bits(want, got) > 5
    stated = fg.Decryptor(ctx, kg.secret_key, flooding=True, noise_bound=100.0)
    assert stated.flooding_sigma(bare) == pytest.approx(dec.flooding_sigma(bare, 100.0))


def test_flooding_too_large_for_the_modulus(world):
    ctx, kg, _, cts = world
    ev = fg.Evaluator(ctx)
    low = ev.drop_level(cts["fresh"][0], 0)
    dec = fg.Decryptor(ctx, kg.secret_key, flooding=True, noise_bound=2.0 ** 40)
    with pytest.raises(fg.ModulusOverflowError, match=r"sigma_f = 2\^.*scale 2\^50.*log2 Q_0"):
        dec.decrypt(low)


def test_flooding_that_leaves_no_precision_is_refused(world):
    ctx, kg, _, cts = world
    ct = cts["fresh"][0]
    dec = fg.Decryptor(ctx, kg.secret_key, flooding=True, statistical_bits=80)
    assert dec.predicted_precision(ct) < 0
    with pytest.raises(fg.ModulusOverflowError, match="no bit of the value"):
        dec.decrypt(ct)


@pytest.mark.parametrize("kwargs", [{"statistical_bits": 4}, {"statistical_bits": "30"},
                                    {"queries": 0}, {"queries": 1.5}, {"noise_bound": -1.0},
                                    {"noise_bound": float("nan")}, {"flooding": "yes"}])
def test_bad_settings_are_typed_errors(world, kwargs):
    ctx, kg, _, _ = world
    with pytest.raises(fg.ParameterError):
        fg.Decryptor(ctx, kg.secret_key, **kwargs)


@pytest.mark.parametrize("log_sigma", [10, 40, 60, 70])
def test_flooding_samples_are_gaussian_down_to_the_last_bit(log_sigma):
    sigma = 2.0 ** log_sigma
    j, k, u = dmod.flooding_noise(Sampler(b"flooding sampler test seed 01234"), (200_000,),
                                  sigma)
    z = [int(a) * 2 ** k + int(b) for a, b in zip(j[:20_000], u[:20_000])] if k else None
    z_f = j.astype(np.float64) * 2.0 ** k + u
    assert np.std(z_f) / sigma == pytest.approx(1.0, abs=0.01)
    assert abs(np.mean(z_f)) / sigma < 0.01
    assert np.max(np.abs(z_f)) <= dmod.flooding_max(sigma)
    low = np.array([v % 256 for v in z]) if z is not None else (j % 256)
    counts = np.bincount(low.astype(np.int64), minlength=256)
    assert counts.min() > 0.6 * counts.mean(), "low bits of the flooding noise are not uniform"
