"""Reproductions of the hardening issue: each silent wrong answer is now a typed error (or,
where fixed by design, the right answer)."""
import numpy as np
import pytest

import fhe_gpu as fg
from conftest import make_world, small_params
from fhe_gpu.ckks import noise
from fhe_gpu.rlwe.sampling import Sampler


def _quiet(**kw):
    return fg.Parameters(security=None, **kw)


@pytest.fixture(scope="module")
def w():
    return make_world(small_params("cpu"), "cpu")


@pytest.fixture(scope="module")
def w40():
    """q_bits=[40, 20, 20] at scale 2^40: the issue's overflow chain."""
    return make_world(_quiet(log_n=10, q_bits=[40, 20, 20], p_bits=[60], scale_bits=40),
                      "cpu")


# ----------------------------------------------------------------- values and scales
def test_encode_refuses_values_the_modulus_cannot_hold(w40):
    with pytest.raises(fg.ModulusOverflowError, match=r"5e\+30"):
        w40.encoder.encode([5e30, 1.0])
    params = _quiet(log_n=10, q_bits=[40, 20], p_bits=[60], scale_bits=40)
    enc = fg.Encoder(fg.Context(params, "cpu"))
    with pytest.raises(fg.ModulusOverflowError, match="786432"):
        enc.encode(np.full(params.slots, 786432.0))
    assert enc.encode(np.full(params.slots, 100.0)).value_bound == 100.0


def test_scalar_ops_refuse_values_the_modulus_cannot_hold(w, w40):
    ct40 = w40.encrypt(w40.uniform())
    for op in (lambda: w40.ev.add(ct40, 1e30), lambda: w40.ev.mul(ct40, 1e30),
               lambda: w40.ev.sub(ct40, 1e30), lambda: w40.ev.mul(ct40, 1e30 + 1j)):
        with pytest.raises(fg.ModulusOverflowError):
            op()
    ct = w.encrypt(w.uniform())
    for bad in (float("nan"), float("inf"), 10 ** 400, 2.0 ** 200):
        with pytest.raises(fg.ParameterError):
            w.ev.add(ct, bad)
        with pytest.raises(fg.ParameterError):
            w.ev.mul(ct, bad)


def test_product_scale_above_the_modulus_is_refused(w40):
    ct = w40.encrypt(np.full(w40.params.slots, 0.75))
    with pytest.raises(fg.ModulusOverflowError, match="level 2"):
        w40.ev.mul(ct, ct)
    with pytest.raises(fg.ModulusOverflowError, match="level 0"):
        w40.ev.drop_level(ct, 0)          # scale 2^40 above the 40-bit q_0


def test_sums_whose_bound_overflows_are_refused(w40):
    x = np.full(w40.params.slots, 2.0 ** 30)
    ct = w40.encrypt(x)
    big = w40.ev.add(ct, ct)
    with pytest.raises(fg.ModulusOverflowError):
        for _ in range(12):
            big = w40.ev.add(big, big)
    np.testing.assert_allclose(w40.decrypt(big).real, x * big.value_bound / 2.0 ** 30, rtol=1e-6)


def test_mul_to_scale_and_encode_refuse_bad_scales(w):
    ct = w.encrypt(w.uniform())
    for scale in (0.0, -1.0, float("nan"), 0.5):
        with pytest.raises(fg.ParameterError):
            w.ev.mul_to_scale(ct, 1.0, scale)
    for scale in (0.0, -2.0 ** 30, float("inf"), "2^30"):
        with pytest.raises(fg.ParameterError):
            w.encoder.encode([1.0], scale=scale)
    with pytest.raises(fg.ParameterError, match="no numbers"):
        w.encoder.encode([])


def test_drop_level_refuses_other_parameters(w):
    other = make_world(_quiet(log_n=10, q_bits=[50, 30, 30], p_bits=[60], scale_bits=30),
                       "cpu")
    with pytest.raises(fg.ContextMismatchError):
        w.ev.drop_level(other.encrypt(other.uniform()), 0)


def test_non_strict_add_matches_scales_at_the_higher_level(w):
    ev = fg.Evaluator(w.ctx, w.evk, strict=False)
    x = w.uniform()
    c18 = w.ev.mul(w.ev.mul(w.encrypt(x), w.encrypt(x)), w.encrypt(x, level=2))  # level 1
    c18 = w.ev.drop_level(c18, 0)
    c9 = w.ev.drop_level(w.encrypt(x), 1)
    for got in (ev.add(c18, c9), ev.add(c9, c18)):
        assert got.level == 0
        assert fg.precision_bits(x ** 3 + x, w.decrypt(got)) > 12


# ----------------------------------------------------------------- parameters
def test_digits_larger_than_p_are_refused():
    with pytest.raises(fg.ParameterError, match=r"160\.0 bits.*60\.0"):
        _quiet(log_n=13, q_bits=[60] + [50] * 5, p_bits=[60], dnum=2, scale_bits=50)
    with pytest.raises(fg.ParameterError, match="digit"):
        _quiet(log_n=13, q_bits=[60] + [50] * 5, p_bits=[20], dnum=1, scale_bits=50)


def test_p_sized_automatically_covers_the_largest_digit():
    params = _quiet(log_n=10, q_bits=[60] + [50] * 5, dnum=2, scale_bits=50)
    assert params.p_bits == [60, 60, 60]
    world = make_world(params, "cpu")
    x = world.uniform()
    got = world.decrypt(world.ev.rotate(world.encrypt(x), 1))
    assert fg.precision_bits(np.roll(x, -1), got) > 30


def test_seal_chain_stays_allowed_and_its_rotation_cost_is_predicted():
    params = fg.Parameters.preset("N13")
    assert params.p_bits == [60] and params.dnum == 3
    world = make_world(params, "cpu")
    x = world.uniform()
    fresh = world.encrypt(x)
    rotated = world.ev.rotate(fresh, 1)
    got = fg.precision_bits(np.roll(x, -1), world.decrypt(rotated))
    predicted = noise.predicted_bits(rotated)
    assert noise.predicted_bits(fresh) - predicted > 5       # a digit of P's size costs bits
    assert predicted <= got <= predicted + 7                 # a bound, and not a loose one


def test_security_checks_the_actual_product_of_the_primes():
    with pytest.raises(fg.SecurityError, match=r"1183\.\d+.*881"):
        fg.Parameters(15, [17] * 50, [31], scale_bits=17)


def test_parameters_are_immutable_and_primes_ntt_friendly():
    params = fg.Parameters.preset("N13")
    with pytest.raises(AttributeError):
        params.log_n = 14
    from fhe_gpu.rlwe.context import Context as RingContext
    with pytest.raises(fg.ParameterError, match="331777"):
        RingContext(1 << 13, (331777,), (1152921504606748673,), 1, b"x" * 32, "cpu")


# ----------------------------------------------------------------- key sets
@pytest.fixture(scope="module")
def tenants():
    params = small_params("cpu")
    return (make_world(params, "cpu", seed=b"\x0a" * 32),
            make_world(params, "cpu", seed=b"\x0b" * 32))


def test_key_sets_never_mix(tenants):
    a, b = tenants
    assert a.kg.key_id != b.kg.key_id
    ca, cb = a.encrypt(a.uniform()), b.encrypt(b.uniform())
    assert ca.key_id == a.pk.key_id == a.evk.key_id == a.sk.key_id
    for op in (lambda: b.ev.rotate(ca, 1), lambda: b.ev.mul(ca, ca), lambda: b.ev.add(ca, 1.0),
               lambda: a.ev.add(ca, cb), lambda: a.ev.mul(ca, cb), lambda: b.decryptor.decrypt(ca),
               lambda: fg.Ciphertext.stack([ca, cb]), lambda: b.ev.drop_level(ca, 0)):
        with pytest.raises(fg.KeyMismatchError, match=a.kg.key_id.hex()):
            op()


def test_keygen_and_encryptor_streams_are_separated():
    seed = b"\x05" * 32
    s = Sampler(seed, b"keygen").ternary((64,))
    u = Sampler(seed, b"encrypt").ternary((64,))
    assert not np.array_equal(s, u)
    assert np.array_equal(s, Sampler(seed, b"keygen").ternary((64,)))


# ----------------------------------------------------------------- resources
def test_huge_requests_are_refused_before_allocating():
    ctx = fg.Context(fg.Parameters.preset("N16"), "cpu")
    kg = fg.KeyGenerator(ctx)
    with pytest.raises(fg.ResourceError, match="GiB"):  # about 3 TiB of keys: no machine
        kg.evaluation_keys(rotations=range(1, ctx.slots))
    with pytest.raises(fg.ResourceError, match="1000000 vectors"):
        fg.Encoder(ctx).encode(np.zeros((10 ** 6, 4)))


def test_memory_cap_from_the_environment(w, monkeypatch):
    monkeypatch.setenv("FHE_GPU_MAX_BYTES", str(1 << 20))
    with pytest.raises(fg.ResourceError):
        w.kg.evaluation_keys(rotations=[1, 2])
