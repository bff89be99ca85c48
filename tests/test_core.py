"""fhe_gpu.ring._core (C++) against the Python spec in fhe_gpu.ring.reference."""
import random

import numpy as np
import pytest

from fhe_gpu.ring import _core, reference as ref


def outcome(fn, *args):
    """fn(*args), or the message of the ValueError it raises."""
    try:
        return fn(*args)
    except ValueError as exc:
        return ("ValueError", str(exc))


def trial_division_is_prime(q):
    return q >= 2 and all(q % d for d in range(2, int(q ** 0.5) + 1))


# ----------------------------------------------------------------------------- numbers


def test_is_prime_matches_reference_and_known_values():
    known_primes = [2, 3, 17, 65537, 2**31 - 1, 2**61 - 1, 2**64 - 59]
    known_composites = [0, 1, 4, 561, 3215031751, 2**61 + 1, 2**64 - 1, (2**31 - 1) * (2**31 + 11)]
    assert all(_core.is_prime(q) for q in known_primes)
    assert not any(_core.is_prime(q) for q in known_composites)
    rng = random.Random(1)
    for q in [rng.randrange(2**64) | 1 for _ in range(300)] + list(range(2000)):
        assert _core.is_prime(q) == ref.is_prime(q), q
    assert all(_core.is_prime(q) == trial_division_is_prime(q) for q in range(3000))


def test_pow_mod_inv_mod():
    rng = random.Random(2)
    for _ in range(200):
        q = rng.randrange(2, 2**64)
        a, e = rng.randrange(2**64), rng.randrange(2**64)
        assert _core.pow_mod(a, e, q) == pow(a, e, q)
        try:
            expected = pow(a, -1, q)
        except ValueError:
            with pytest.raises(ValueError):
                _core.inv_mod(a, q)
        else:
            assert _core.inv_mod(a, q) == expected
    with pytest.raises(ValueError):
        _core.inv_mod(6, 9)
    with pytest.raises(ValueError):
        _core.pow_mod(2, 3, 0)


def test_shoup_known_values():
    rng = random.Random(3)
    for q in [17, 65537, 2**61 - 1, 1152921504606584833]:
        for w in [0, 1, 2, q // 2, q - 1, rng.randrange(q)]:
            assert _core.shoup(w, q) == (w << 64) // q == ref.shoup(w, q)
    assert _core.shoup(1, 17) == 1085102592571150095  # floor(2^64 / 17)
    with pytest.raises(ValueError):
        _core.shoup(17, 17)


# ----------------------------------------------------------------------------- primes


def test_generate_primes_known_answers():
    assert _core.generate_primes(8, 4, 1, []) == [17]
    assert _core.generate_primes(8, 16, 1, []) == [65537]
    first = _core.generate_primes(8, 17, 3, [])
    # candidates 2^17+1 (= 3·43691), then 2^17+1 -/+ 16k, below first
    order = [2**17 + 1] + [c for k in range(1, 200) for c in (2**17 + 1 - 16 * k, 2**17 + 1 + 16 * k)]
    assert first == [c for c in order if trial_division_is_prime(c)][:3]
    assert all(q % 16 == 1 for q in first)


@pytest.mark.parametrize("n", [8, 64, 1024, 4096])
@pytest.mark.parametrize("bits", [20, 30, 40, 60, 61])
def test_generate_primes_matches_reference(n, bits):
    got = outcome(_core.generate_primes, n, bits, 5, [])
    assert got == outcome(ref.generate_primes, n, bits, 5)
    if isinstance(got, list) and len(got) > 2:
        exclude = got[:2]
        assert _core.generate_primes(n, bits, 3, exclude) == ref.generate_primes(n, bits, 3, exclude)
        assert _core.generate_primes(n, bits, 3, exclude)[:1] == got[2:3]


def test_generate_primes_default_exclude_and_zero_count():
    assert _core.generate_primes(16, 30, 2) == ref.generate_primes(16, 30, 2)
    assert _core.generate_primes(16, 30, 0, []) == []


def test_generate_primes_exhausted_and_bad_args():
    args = (2**50, 61, 1000)
    got, expected = outcome(_core.generate_primes, *args, []), outcome(ref.generate_primes, *args)
    assert got == expected and got[0] == "ValueError"
    for bits in (1, 62, 64):
        with pytest.raises(ValueError):
            _core.generate_primes(8, bits, 1, [])
    with pytest.raises(ValueError):
        _core.generate_primes(0, 30, 1, [])


# ----------------------------------------------------------------------------- NTT tables


def test_find_psi_known_answers():
    assert _core.find_psi(17, 8) == 3  # 2^8 = 1 mod 17, 3^8 = 16 = -1 mod 17
    assert _core.find_psi(65537, 8) == pow(3, 4096, 65537)  # 2 has order 32, 3 generates
    with pytest.raises(ValueError):
        _core.find_psi(19, 8)  # 18 is not a multiple of 16
    with pytest.raises(ValueError):
        _core.find_psi(33, 8)  # 33 = 1 mod 16 but not prime


def test_ntt_tables_known_answer():
    psi_rev, psi_rev_sh, ipsi_rev, ipsi_rev_sh, n_inv, n_inv_sh = _core.ntt_tables(17, 8)
    assert psi_rev.tolist() == [1, 13, 9, 15, 3, 5, 10, 11]  # 3^brv(i) mod 17
    assert (psi_rev.astype(object) * ipsi_rev.astype(object) % 17).tolist() == [1] * 8
    assert n_inv == 15 and n_inv_sh == (15 << 64) // 17
    assert psi_rev_sh.tolist() == [(int(w) << 64) // 17 for w in psi_rev]
    assert ipsi_rev_sh.tolist() == [(int(w) << 64) // 17 for w in ipsi_rev]


@pytest.mark.parametrize("n", [8, 32, 256, 4096])
@pytest.mark.parametrize("bits", [30, 40, 60, 61])
def test_ntt_tables_match_reference(n, bits):
    for q in ref.generate_primes(n, bits, 2):
        psi_rev, psi_rev_sh, ipsi_rev, ipsi_rev_sh, n_inv, n_inv_sh = _core.ntt_tables(q, n)
        expected = ref.ntt_tables(q, n)
        psi = _core.find_psi(q, n)
        assert psi == expected["psi"] and pow(psi, n, q) == q - 1
        for arr in (psi_rev, psi_rev_sh, ipsi_rev, ipsi_rev_sh):
            assert arr.dtype == np.uint64 and arr.shape == (n,)
        assert psi_rev.tolist() == expected["psi_rev"]
        assert ipsi_rev.tolist() == expected["ipsi_rev"]
        assert psi_rev_sh.tolist() == [ref.shoup(w, q) for w in expected["psi_rev"]]
        assert ipsi_rev_sh.tolist() == [ref.shoup(w, q) for w in expected["ipsi_rev"]]
        assert (n_inv, n_inv_sh) == (expected["n_inv"], ref.shoup(expected["n_inv"], q))


def test_ntt_tables_bad_args():
    for q, n in [(17, 6), (17, 0), (19, 8), (33, 8)]:
        with pytest.raises(ValueError):
            _core.ntt_tables(q, n)


# ----------------------------------------------------------------------------- base conversion


@pytest.mark.parametrize("n_src,n_dst", [(1, 1), (2, 3), (5, 4), (12, 6)])
def test_base_conv_tables_match_reference(n_src, n_dst):
    primes = ref.generate_primes(1024, 50, n_src + n_dst)
    src, dst = primes[:n_src], primes[n_src:]
    hat_inv, hat_inv_sh, hat_mod = _core.base_conv_tables(src, dst)
    assert hat_inv.dtype == hat_mod.dtype == np.uint64 and hat_mod.shape == (n_dst, n_src)
    big = 1
    for s in src:
        big *= s
    assert hat_inv.tolist() == [pow(big // s % s, -1, s) for s in src]
    assert hat_inv_sh.tolist() == [ref.shoup(int(w), s) for w, s in zip(hat_inv, src)]
    assert hat_mod.tolist() == [[big // s % t for s in src] for t in dst]
    rng = np.random.default_rng(n_src)
    x = np.stack([rng.integers(0, s, size=16, dtype=np.uint64) for s in src])
    y = (x.astype(object) * hat_inv.astype(object)[:, None]) % np.array(src, dtype=object)[:, None]
    conv = (hat_mod.astype(object) @ y) % np.array(dst, dtype=object)[:, None]
    assert conv.tolist() == ref.base_convert(x, src, dst).tolist()


def test_base_conv_tables_bad_args():
    with pytest.raises(ValueError):
        _core.base_conv_tables([17, 17], [97])
    with pytest.raises(ValueError):
        _core.base_conv_tables([17, 1], [97])


# ----------------------------------------------------------------------------- CRT


def residues_of(values, primes):
    """(1, L, N) uint64 residues of the Python ints ``values``."""
    return np.array([[[v % q for v in values] for q in primes]], dtype=np.uint64)


def assert_crt_matches(res, primes, scale):
    got = _core.crt_compose(res, primes, scale)
    exact = ref.crt_compose(res, primes)
    expected = np.array([[int(v) / scale for v in row] for row in exact], dtype=np.float64)
    assert got.dtype == np.float64 and got.shape == (res.shape[0], res.shape[2])
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("L,bits", [(1, 60), (2, 61), (5, 50), (30, 30)])
def test_crt_compose_random_residues(L, bits):
    primes = ref.generate_primes(256, bits, L)
    rng = np.random.default_rng(L)
    res = np.stack([rng.integers(0, q, size=(3, 64), dtype=np.uint64) for q in primes], axis=1)
    assert_crt_matches(res, primes, 2.0**40)


@pytest.mark.parametrize("L,bits", [(1, 60), (2, 61), (5, 50), (30, 30)])
def test_crt_compose_near_half_q(L, bits):
    primes = ref.generate_primes(256, bits, L)
    big = 1
    for q in primes:
        big *= q
    half = big // 2
    values = [0, 1, -1, half, half - 1, -half, -half + 1, half + 1, 12345, -(2**40) + 7]
    res = residues_of(values, primes)
    assert_crt_matches(res, primes, 3.0)
    got = _core.crt_compose(res, primes, 1.0)[0]
    centered = [v if v <= half else v - big for v in (x % big for x in values)]
    np.testing.assert_allclose(got, [float(v) for v in centered], rtol=1e-14, atol=0)


def test_crt_compose_small_values_large_modulus():
    primes = ref.generate_primes(1024, 60, 30)
    rng = random.Random(5)
    values = [rng.randrange(-(2**e), 2**e) for e in (1, 20, 53, 64, 100, 200, 500) for _ in range(4)]
    values += [s * (2**127 + d) for s in (1, -1) for d in (-1, 0, 1, 2**127)]  # 128-bit boundary
    res = residues_of(values, primes)
    got = _core.crt_compose(res, primes, 2.0**50)[0]
    np.testing.assert_allclose(got, [v / 2.0**50 for v in values], rtol=1e-14, atol=0)
    assert_crt_matches(res, primes, 2.0**50)


def test_crt_compose_threaded_matches_blocks():
    """Large inputs are split over threads; each slice alone runs single-threaded."""
    primes = ref.generate_primes(1 << 14, 50, 16)
    rng = np.random.default_rng(11)
    x = rng.integers(-(2**62), 2**62, size=(2, 1 << 14), dtype=np.int64)
    res = np.stack([(x % np.int64(q)).astype(np.uint64) for q in primes], axis=1)
    res[1, :, :100] = np.stack([rng.integers(0, q, size=100, dtype=np.uint64) for q in primes])
    got = _core.crt_compose(res, primes, 2.0**30)
    np.testing.assert_allclose(got[0], x[0].astype(np.float64) / 2.0**30, rtol=1e-15, atol=0)
    for r in range(2):
        for start in range(0, 1 << 14, 4096):
            piece = np.ascontiguousarray(res[r:r + 1, :, start:start + 4096])
            assert np.array_equal(got[r:r + 1, start:start + 4096], _core.crt_compose(piece, primes, 2.0**30))
    assert_crt_matches(np.ascontiguousarray(res[1:, :, 90:110]), primes, 2.0**30)


def test_crt_compose_noncontiguous_and_empty():
    primes = ref.generate_primes(64, 40, 3)
    rng = np.random.default_rng(7)
    res = np.stack([rng.integers(0, q, size=(2, 32), dtype=np.uint64) for q in primes], axis=1)
    view = np.asfortranarray(res)
    assert np.array_equal(_core.crt_compose(view, primes, 1.0), _core.crt_compose(res, primes, 1.0))
    assert _core.crt_compose(np.zeros((0, 3, 8), np.uint64), primes, 1.0).shape == (0, 8)


def test_crt_compose_bad_input_raises():
    primes = ref.generate_primes(64, 40, 3)
    good = np.zeros((1, 3, 8), dtype=np.uint64)
    bad_inputs = [
        (good.astype(np.int64), primes, 1.0),
        (good.astype(np.float64), primes, 1.0),
        (good[0], primes, 1.0),
        (good[None], primes, 1.0),
        (np.zeros((1, 2, 8), np.uint64), primes, 1.0),
        (good, [], 1.0),
        (good, primes, 0.0),
        (good, primes, float("nan")),
        (good, [primes[0], primes[0], primes[1]], 1.0),
    ]
    for args in bad_inputs:
        with pytest.raises(ValueError):
            _core.crt_compose(*args)
    with pytest.raises(TypeError):
        _core.crt_compose([[[0] * 8] * 3], primes, 1.0)  # not an ndarray
