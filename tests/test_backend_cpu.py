"""The Numba CPU backend against the spec (reference backend), verb by verb, bit for bit."""
from __future__ import annotations

import time
from functools import lru_cache, partial

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhe_gpu.ring import get_backend, reference as ref, tables

CPU = get_backend("cpu")
REF = get_backend("reference")
NS = (8, 16, 64, 256)
BITS = (30, 40, 50, 60, 61)
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=None)
def primes_for(n: int, bits: tuple[int, ...]) -> tuple[int, ...]:
    """Distinct NTT primes for n, one per entry of bits, nearest to 2^bits."""
    out: list[int] = []
    for b in bits:
        out += ref.generate_primes(n, b, 1, exclude=out)
    return tuple(out)


def make_bases(n, bits, split):
    """(Q basis, P basis) over one PrimeSet: the first `split` primes and the rest."""
    ps = tables.prime_set(n, primes_for(n, tuple(bits)))
    return tables.basis(ps, tuple(range(split))), tables.basis(ps, tuple(range(split, len(bits))))


def uniform(rng, shape, basis):
    """Uniform residues of shape (..., limbs, n), with some entries forced to 0 and q - 1."""
    q = basis.q[:, None]
    a = rng.integers(0, q, size=tuple(shape) + (len(basis), basis.n), dtype=np.uint64)
    edge = rng.random(a.shape)
    a[edge < 0.05] = 0
    return np.where(edge > 0.95, q - np.uint64(1), a).astype(np.uint64)


@st.composite
def setups(draw, ns=NS, max_limbs=6, min_limbs=1, extra=0):
    """(rng, n, bits): a random prime chain of min_limbs..max_limbs (+ extra) primes."""
    n = draw(st.sampled_from(ns))
    count = draw(st.integers(min_limbs, max_limbs)) + extra
    bits = draw(st.lists(st.sampled_from(BITS), min_size=count, max_size=count))
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1))), n, bits


BATCHES = st.sampled_from([(), (1,), (3,), (2, 2), (2, 1, 3)])


def check_out(verb, args, expected, shape):
    """verb(*args, out=buf) writes into buf, returns it and matches expected."""
    buf = np.empty(shape, dtype=np.uint64)
    got = verb(*args, out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, expected)


# ----------------------------------------------------------------------------- transforms


@SETTINGS
@given(setups(), BATCHES)
def test_ntt_intt_match_reference(setup, batch):
    rng, n, bits = setup
    basis, _ = make_bases(n, bits, len(bits))
    a = uniform(rng, batch, basis)
    fwd = REF.ntt(a, basis)
    np.testing.assert_array_equal(CPU.ntt(a, basis), fwd)
    np.testing.assert_array_equal(CPU.intt(a, basis), REF.intt(a, basis))
    np.testing.assert_array_equal(CPU.intt(CPU.ntt(a, basis), basis), a)
    check_out(CPU.ntt, (a, basis), fwd, a.shape)
    inplace = a.copy()
    assert CPU.ntt(inplace, basis, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, fwd)
    assert CPU.intt(inplace, basis, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, a)


@SETTINGS
@given(setups(ns=(8, 16, 64), max_limbs=3))
def test_ntt_product_is_negacyclic_convolution(setup):
    rng, n, bits = setup
    basis, _ = make_bases(n, bits, len(bits))
    a, b = uniform(rng, (), basis), uniform(rng, (), basis)
    prod = CPU.intt(CPU.mul(CPU.ntt(a, basis), CPU.ntt(b, basis), basis), basis)
    for i, q in enumerate(basis.primes):
        expected = ref.negacyclic_convolution([int(x) for x in a[i]], [int(x) for x in b[i]], q)
        assert [int(x) for x in prod[i]] == expected


def test_ntt_known_answer_n4_q17():
    """n = 4, q = 17, psi = 9: ntt(a)[j] = a(9^e_j), e = (1, 5, 3, 7) (bit-reversed order)."""
    basis = tables.basis(tables.prime_set(4, (17,)), (0,))
    a = np.array([[1, 2, 3, 4]], dtype=np.uint64)
    assert ref.find_psi(17, 4) == 9
    # 9^1 = 9, 9^5 = 8, 9^3 = 15, 9^7 = 2 (mod 17); e.g. 1 + 2*9 + 3*13 + 4*15 = 118 = 16
    expected = np.array([[16, 13, 11, 15]], dtype=np.uint64)
    np.testing.assert_array_equal(CPU.ntt(a, basis), expected)
    np.testing.assert_array_equal(CPU.intt(expected, basis), a)


# ----------------------------------------------------------------------------- pointwise

# (a's batch, b's batch): full, broadcast in either operand, rank-deficient, exotic
PAIRS = st.sampled_from([((), ()), ((3, 2), (3, 1)), ((3, 2), (1, 1)), ((3, 2), ()),
                         ((2,), (3, 2)), ((3, 1), (1, 2)), ((2, 3, 2), (2, 1, 2)),
                         ((3, 2), (3, 2))])


@SETTINGS
@given(setups(), PAIRS, st.sampled_from(["add", "sub", "mul"]))
def test_binary_verbs_match_reference(setup, shapes, verb):
    rng, n, bits = setup
    basis, _ = make_bases(n, bits, len(bits))
    a, b = uniform(rng, shapes[0], basis), uniform(rng, shapes[1], basis)
    expected = getattr(REF, verb)(a, b, basis)
    np.testing.assert_array_equal(getattr(CPU, verb)(a, b, basis), expected)
    check_out(getattr(CPU, verb), (a, b, basis), expected, expected.shape)
    if a.shape == expected.shape:
        got = getattr(CPU, verb)(a, b, basis, out=a)
        assert got is a
        np.testing.assert_array_equal(a, expected)


@SETTINGS
@given(setups(), st.sampled_from([((2, 3), (2, 1), (1, 3)), ((), (), ()), ((2,), (), (2,))]))
def test_mul_add_matches_reference(setup, shapes):
    rng, n, bits = setup
    basis, _ = make_bases(n, bits, len(bits))
    a, b, c = (uniform(rng, s, basis) for s in shapes)
    expected = REF.mul_add(a, b, c, basis)
    np.testing.assert_array_equal(CPU.mul_add(a, b, c, basis), expected)
    check_out(CPU.mul_add, (a, b, c, basis), expected, expected.shape)


@SETTINGS
@given(setups(), BATCHES)
def test_unary_verbs_match_reference(setup, batch):
    rng, n, bits = setup
    basis, _ = make_bases(n, bits, len(bits))
    a = uniform(rng, batch, basis)
    np.testing.assert_array_equal(CPU.neg(a, basis), REF.neg(a, basis))
    scalars = uniform(rng, (), basis)[:, 0].copy()
    expected = REF.mul_scalar(a, scalars, basis)
    np.testing.assert_array_equal(CPU.mul_scalar(a, scalars, basis), expected)
    check_out(CPU.mul_scalar, (a, scalars, basis), expected, a.shape)
    for g in (5, 25 % (2 * n), 2 * n - 1, -5, 3):
        expected = REF.automorphism(a, g, basis)
        np.testing.assert_array_equal(CPU.automorphism(a, g, basis), expected)
    inplace = a.copy()
    assert CPU.automorphism(inplace, 5, basis, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, REF.automorphism(a, 5, basis))


def test_strided_inputs_and_outputs():
    basis, _ = make_bases(16, (40, 50, 60), 3)
    rng = np.random.default_rng(5)
    big = uniform(rng, (2, 4), basis)
    a, b = big[:, ::2], big[:, 1::2]  # non-contiguous operands
    out = np.zeros((2, 4) + a.shape[-2:], dtype=np.uint64)[:, ::2]  # non-contiguous out
    assert CPU.add(a, b, basis, out=out) is out
    np.testing.assert_array_equal(out, REF.add(a, b, basis))
    obj = a.astype(object)
    np.testing.assert_array_equal(CPU.ntt(obj, basis), REF.ntt(a, basis))


def test_shape_errors():
    basis, _ = make_bases(16, (40, 50), 2)
    a = np.zeros((2, 16), dtype=np.uint64)
    with pytest.raises(ValueError, match="does not match"):
        CPU.ntt(np.zeros((3, 16), dtype=np.uint64), basis)
    with pytest.raises(ValueError, match="does not match"):
        CPU.add(a, np.zeros((2, 8), dtype=np.uint64), basis)
    with pytest.raises(ValueError, match="out of shape"):
        CPU.add(a, a, basis, out=np.zeros((1, 2, 16), dtype=np.uint64))
    with pytest.raises(ValueError, match="rescale"):
        CPU.rescale(a[:1], basis[:1])
    with pytest.raises(ValueError, match="alpha"):
        CPU.mod_up(a, basis, basis[:0], 0)
    with pytest.raises(ValueError, match="not odd"):
        CPU.automorphism(a, 4, basis)
    with pytest.raises(ValueError, match="lacks primes"):
        CPU.key_switch_inner(np.zeros((1, 2, 16), dtype=np.uint64),
                             np.zeros((1, 2, 1, 16), dtype=np.uint64), basis, basis[:1])


# ----------------------------------------------------------------------------- basis change

KEY_SETUP = setups(ns=(8, 16, 64), max_limbs=6, extra=3)


@SETTINGS
@given(KEY_SETUP, st.integers(1, 3), st.integers(1, 3), st.sampled_from([(), (2,), (2, 1)]))
def test_mod_up_matches_reference(setup, k, alpha, batch):
    rng, n, bits = setup
    nq = len(bits) - 3
    q_basis, p_basis = make_bases(n, bits[:nq + k], nq)
    a = uniform(rng, batch, q_basis)
    expected = REF.mod_up(a, q_basis, p_basis, alpha)
    assert expected.shape[-3] == -(-nq // alpha)
    np.testing.assert_array_equal(CPU.mod_up(a, q_basis, p_basis, alpha), expected)
    check_out(CPU.mod_up, (a, q_basis, p_basis, alpha), expected, expected.shape)


@SETTINGS
@given(KEY_SETUP, st.integers(1, 3), st.integers(0, 2), st.sampled_from([(), (3,), (2, 2)]))
def test_key_switch_inner_matches_reference(setup, k, spare, batch):
    rng, n, bits = setup
    nq = len(bits) - 3
    q_all, p_basis = make_bases(n, bits[:nq + k], nq)
    level = int(rng.integers(1, nq + 1))
    basis = q_all[:level] + p_basis  # a lower level: the key covers more primes
    key_basis = p_basis + q_all  # same primes, another order
    digits = int(rng.integers(1, 4))
    ext = uniform(rng, batch + (digits,), basis)
    key = uniform(rng, (digits + spare, 2), key_basis)
    expected = REF.key_switch_inner(ext, key, basis, key_basis)
    np.testing.assert_array_equal(CPU.key_switch_inner(ext, key, basis, key_basis), expected)
    check_out(CPU.key_switch_inner, (ext, key, basis, key_basis), expected, expected.shape)
    g = int(rng.choice([5, 2 * n - 1, 25 % (2 * n)]))
    expected = REF.key_switch_inner(REF.automorphism(ext, g, basis), key, basis, key_basis)
    np.testing.assert_array_equal(
        CPU.key_switch_inner(ext, key, basis, key_basis, galois_elt=g), expected)


@SETTINGS
@given(KEY_SETUP, st.integers(1, 3), st.integers(1, 4), st.integers(1, 5),
       st.sampled_from([(), (2,)]), st.booleans())
def test_key_switch_inner_with_key_index_matches_reference(setup, k, slots, rows, inner, fuse):
    """A slab of keys, one slot per row (repeats allowed), galois_elt fused or not."""
    rng, n, bits = setup
    nq = len(bits) - 3
    q_all, p_basis = make_bases(n, bits[:nq + k], nq)
    basis = q_all[:int(rng.integers(1, nq + 1))] + p_basis
    key_basis = p_basis + q_all
    digits = int(rng.integers(1, 4))
    ext = uniform(rng, (rows,) + inner + (digits,), basis)
    slab = uniform(rng, (slots, digits + 1, 2), key_basis)
    index = rng.integers(0, slots, size=rows)
    g = int(rng.choice([5, 2 * n - 1, 25 % (2 * n)])) if fuse else None
    expected = REF.key_switch_inner(ext, slab, basis, key_basis, galois_elt=g, key_index=index)
    got = CPU.key_switch_inner(ext, slab, basis, key_basis, galois_elt=g, key_index=index)
    np.testing.assert_array_equal(got, expected)
    check_out(partial(CPU.key_switch_inner, galois_elt=g, key_index=index),
              (ext, slab, basis, key_basis), expected, expected.shape)
    for b, slot in enumerate(index):  # row b is the single-key product with its slot
        np.testing.assert_array_equal(
            CPU.key_switch_inner(ext[b], slab[slot], basis, key_basis, galois_elt=g), expected[b])


@pytest.mark.parametrize("be", [CPU, REF], ids=lambda b: b.name)
def test_key_index_errors(be):
    basis, _ = make_bases(16, (40, 50), 2)
    ext = np.zeros((2, 1, 2, 16), dtype=np.uint64)
    slab = np.zeros((3, 1, 2, 2, 16), dtype=np.uint64)
    for bad, match in (([0, 3], "3 out of range for a slab of 3"), ([-1, 0], "-1 out of range"),
                       ([0], r"shape \(1,\).*batch of 2"), ([[0, 1]], "batch of 2"),
                       ([0.0, 1.0], "float64")):
        with pytest.raises(ValueError, match=match):
            be.key_switch_inner(ext, slab, basis, basis, key_index=np.array(bad))
    with pytest.raises(ValueError, match="key slab"):
        be.key_switch_inner(ext, slab[0], basis, basis, key_index=[0, 1])
    with pytest.raises(ValueError, match="key slab"):
        be.key_switch_inner(ext[0], slab, basis, basis, key_index=[0])


@SETTINGS
@given(KEY_SETUP, st.integers(1, 3), st.sampled_from([(), (2,), (2, 3)]))
def test_mod_down_and_rescale_match_reference(setup, k, batch):
    rng, n, bits = setup
    nq = len(bits) - 3
    q_basis, p_basis = make_bases(n, bits[:nq + k], nq)
    qp = q_basis + p_basis
    a = uniform(rng, batch, qp)
    expected = REF.mod_down(a, q_basis, p_basis)
    np.testing.assert_array_equal(CPU.mod_down(a, q_basis, p_basis), expected)
    check_out(CPU.mod_down, (a, q_basis, p_basis), expected, expected.shape)
    expected = REF.rescale(a, qp)
    np.testing.assert_array_equal(CPU.rescale(a, qp), expected)
    check_out(CPU.rescale, (a, qp), expected, expected.shape)


@pytest.mark.parametrize("n", [2, 4])
def test_tiny_rings_match_reference(n):
    """n = 2 and 4: the fused first/last NTT stages of mod_down and rescale degenerate."""
    q_basis, p_basis = make_bases(n, (60, 40, 30, 61, 60), 3)
    qp = q_basis + p_basis
    a = uniform(np.random.default_rng(n), (2,), qp)
    np.testing.assert_array_equal(CPU.ntt(a, qp), REF.ntt(a, qp))
    np.testing.assert_array_equal(CPU.intt(a, qp), REF.intt(a, qp))
    np.testing.assert_array_equal(CPU.mod_down(a, q_basis, p_basis),
                                  REF.mod_down(a, q_basis, p_basis))
    np.testing.assert_array_equal(CPU.rescale(a, qp), REF.rescale(a, qp))


def test_mod_down_near_rounding_ties():
    """Coefficients of a_P near +-P/2 and 0 (the centered conversion's edge cases)."""
    q_basis, p_basis = make_bases(16, (50, 40, 61, 60), 2)
    big_p = p_basis.product
    vals = [0, 1, big_p - 1, big_p // 2, big_p // 2 + 1, big_p // 2 - 1, (big_p + 1) // 2]
    coeff = np.array([[v % p for v in vals + [0] * (16 - len(vals))] for p in p_basis.primes],
                     dtype=np.uint64)
    rng = np.random.default_rng(9)
    a = np.concatenate([uniform(rng, (), q_basis), CPU.ntt(coeff, p_basis)], axis=0)
    np.testing.assert_array_equal(CPU.mod_down(a, q_basis, p_basis),
                                  REF.mod_down(a, q_basis, p_basis))


def test_key_switch_pipeline_on_batches():
    """mod_up -> key_switch_inner -> mod_down on a (B, 2) batch with a partial last digit."""
    q_basis, p_basis = make_bases(64, (60, 40, 40, 40, 40, 61, 61), 5)
    qp = q_basis + p_basis
    rng = np.random.default_rng(3)
    a = uniform(rng, (2, 2), q_basis)
    key = uniform(rng, (3, 2), qp)
    results = []
    for be in (CPU, REF):
        # C order between stages: reference._per_limb mishandles non-C-contiguous batches
        ext = np.ascontiguousarray(be.mod_up(a, q_basis, p_basis, 2))
        acc = np.ascontiguousarray(be.key_switch_inner(ext, key, qp, qp))
        results.append(be.mod_down(acc, q_basis, p_basis))
    np.testing.assert_array_equal(*results)


def test_reduce_wide_edges():
    """reduce_wide (the 3-multiplication reduction) equals x mod q up to its bound."""
    from numba import njit

    from fhe_gpu.ring._numba_arith import reduce_wide, wide_consts, wide_ok

    @njit
    def reduce_all(hi, lo, q, mu, sh, out):
        for i in range(hi.shape[0]):
            out[i] = reduce_wide(hi[i], lo[i], q, mu, sh)

    rng = np.random.default_rng(11)
    for bits in (2, 17, 30, 40, 59, 60, 61):
        for q in ref.generate_primes(8, bits, 2):
            if q >= 1 << 61:
                continue
            top = 1 << (q.bit_length() + 63)
            assert wide_ok(top, q) and not wide_ok(top + 1, q)
            xs = [int(v) * (top >> 64) + int(w) for v, w in
                  rng.integers(0, 1 << 63, size=(400, 2), dtype=np.uint64)]
            xs = [x % top for x in xs] + [0, q - 1, q, (q - 1) ** 2, top - 1, top - q]
            mu, sh = wide_consts(q)
            out = np.empty(len(xs), dtype=np.uint64)
            reduce_all(np.array([x >> 64 for x in xs], dtype=np.uint64),
                       np.array([x & (2**64 - 1) for x in xs], dtype=np.uint64),
                       np.uint64(q), np.uint64(mu), np.uint64(sh), out)
            assert [int(v) for v in out] == [x % q for x in xs]


# ----------------------------------------------------------------------------- sampling


def test_chacha20_rfc8439_block():
    """The keystream kernel reproduces RFC 8439, section 2.3.2."""
    import struct

    from fhe_gpu.ring import _numba_sampling

    key = list(struct.unpack("<8I", bytes(range(32))))
    init = np.array(list(_numba_sampling.SIGMA_WORDS) + key + [0, 0x09000000, 0x4A000000, 0],
                    dtype=np.uint32)
    buf = np.empty((16, 3), dtype=np.uint32)
    _numba_sampling.chacha20_blocks(init, np.uint64(1), buf)
    assert buf[:, 0].astype("<u4").tobytes().hex() == (
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")


def test_uniform_poly_per_limb_and_range():
    """A limb of a multi-prime expansion equals the single-prime expansion of that limb."""
    from fhe_gpu.rlwe.sampling import keystream, to_rns, uniform_poly

    primes = ref.generate_primes(64, 61, 1) + ref.generate_primes(64, 30, 2) + [17]
    seed = bytes(range(32))
    many = uniform_poly(seed, b"t", primes, 64, batch=2)
    assert many.shape == (2, len(primes), 64)
    for i, q in enumerate(primes):
        one = uniform_poly(seed, b"t", (q,), 64, batch=2)
        np.testing.assert_array_equal(many[:, i], one[:, 0])
        assert int(many[:, i].max()) < q
    np.testing.assert_array_equal(uniform_poly(seed, b"t", primes, 64), many[0])
    assert keystream(seed, b"k", 100) == keystream(seed, b"k", 300)[:100]
    x = np.random.default_rng(2).integers(-40, 41, size=(3, 64))
    for small in (x, x * 10**9):
        np.testing.assert_array_equal(
            to_rns(small, primes), (small[..., None, :] % np.array(primes).reshape(-1, 1))
            .astype(np.uint64))


# ----------------------------------------------------------------------------- timing


def test_ntt_timing_sanity(capsys):
    """Printed, not asserted: one n = 2^16, 28-limb NTT on one thread."""
    import numba

    n = 1 << 16
    primes = ref.generate_primes(n, 60, 1) + ref.generate_primes(n, 40, 27)
    basis = tables.basis(tables.prime_set(n, tuple(primes)), tuple(range(28)))
    a = uniform(np.random.default_rng(0), (), basis)
    out = np.empty_like(a)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        CPU.ntt(a, basis, out=out)
        best = min(_timed(lambda: CPU.ntt(a, basis, out=out)) for _ in range(5))
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(CPU.intt(out, basis), a)
    with capsys.disabled():
        print(f"\n[cpu] ntt n=2^16 x 28 limbs, 1 thread: {best * 1e3:.1f} ms "
              f"({best * 1e3 / 28:.3f} ms per limb)")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
