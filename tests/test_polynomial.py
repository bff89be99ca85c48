"""Chebyshev interpolants and their encrypted evaluation: depth ceil(log2(d + 1)), exact
scales, precision against the cleartext twin, typed errors."""
import numpy as np
import pytest

import fhe_gpu as fg
from conftest import backend_for, BACKENDS
from fhe_gpu import circuits as fc


class Setup:
    def __init__(self, log_n=10, levels=10, scale_bits=40, backend="cpu"):
        self.params = fg.Parameters(log_n=log_n, q_bits=[60] + [scale_bits] * levels,
                                    scale_bits=scale_bits, security=None)
        self.ctx = fg.Context(self.params, backend_for(backend))
        kg = fg.KeyGenerator(self.ctx, seed=b"\x07" * 32)
        self.ev = fg.Evaluator(self.ctx, kg.evaluation_keys(conjugation=True))
        self.enc = fg.Encoder(self.ctx)
        self.encryptor = fg.Encryptor(self.ctx, kg.public_key(), seed=b"\x08" * 32)
        self.decryptor = fg.Decryptor(self.ctx, kg.secret_key)
        self.rng = np.random.default_rng(3)

    def encrypt(self, x, level=None, scale=None):
        return self.encryptor.encrypt(self.enc.encode(x, level=level, scale=scale))

    def prescaled(self, x, p):
        """x encrypted at alpha times the prime its first product removes: the change of
        variable of p folded into the encoding."""
        return self.encrypt(x, scale=p.alpha * float(self.ctx.q_primes[self.params.max_level]))

    def decrypt(self, ct):
        return self.enc.decode(self.decryptor.decrypt(ct)).real


@pytest.fixture(scope="module")
def s():
    return Setup()


def test_fit_reports_its_error_and_twin():
    p = fc.Chebyshev.fit(np.tanh, (-4, 4), 27)
    x = np.linspace(-4, 4, 1001)
    assert p.degree == 27 and p.interval == (-4.0, 4.0)
    assert 0 < p.max_error < 1e-4
    assert np.max(np.abs(p(x) - np.tanh(x))) <= p.max_error * 1.01


def test_power_basis_and_chebyshev_basis_agree():
    power = [0.5, 0.197, 0.0, -0.004]
    p = fc.Chebyshev.from_coefficients(power, interval=(-4, 4), basis="power")
    x = np.linspace(-4, 4, 17)
    np.testing.assert_allclose(p(x), np.polynomial.polynomial.polyval(x, power), atol=1e-14)
    assert p.degree == 3


@pytest.mark.parametrize("degree,levels", [(1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4),
                                           (15, 4), (16, 5), (31, 5), (63, 6)])
def test_depth_is_ceil_log2_degree_plus_one(s, degree, levels):
    coeffs = s.rng.uniform(-1, 1, degree + 1) / np.arange(1, degree + 2)
    p = fc.Chebyshev(coeffs)
    x = s.rng.uniform(-1, 1, s.params.slots)
    ct = s.encrypt(x)
    y = fc.evaluate(s.ev, ct, p)
    assert p.depth == levels == ct.level - y.level
    assert abs(y.scale - ct.scale) <= 1e-9 * ct.scale
    assert fg.precision_bits(p(x), s.decrypt(y)) > 22


def test_degree_59_takes_16_ciphertext_products(s, monkeypatch):
    products = []
    real_mul_ct = s.ev._mul_ct
    monkeypatch.setattr(s.ev, "_mul_ct", lambda a, b: products.append(1) or real_mul_ct(a, b))
    p = fc.activation("sigmoid", degree=59)
    fc.evaluate(s.ev, s.encrypt(s.rng.uniform(-8, 8, s.params.slots)), p,
                assume_in_interval=True)
    assert len(products) == 16


def test_cube_fits_in_two_levels(s):
    p = fc.Chebyshev.from_coefficients([0, 0, 0, 1], basis="power")
    x = s.rng.uniform(-1, 1, s.params.slots)
    ct = s.encrypt(x, level=2)
    y = fc.evaluate(s.ev, ct, p)
    assert y.level == 0
    assert fg.precision_bits(x ** 3, s.decrypt(y)) > 24


@pytest.mark.parametrize("name,degree", [("sigmoid", 27), ("gelu", 59), ("tanh", 59),
                                         ("exp", 27), ("silu", 27)])
def test_activations_match_their_twin(s, name, degree):
    p = fc.activation(name, degree=degree)
    a, b = p.interval
    x = s.rng.uniform(a, b, s.params.slots)
    exact = fc.ACTIVATIONS[name][0](x)
    twin = fg.precision_bits(exact, p(x))
    for ct, levels in ((s.encrypt(x), p.depth + 1), (s.prescaled(x, p), p.depth)):
        y = fc.evaluate(s.ev, ct, p, assume_in_interval=(a != -b))
        assert ct.level - y.level == levels       # wide interval: + 1 unless pre-scaled
        he = fg.precision_bits(exact, s.decrypt(y))
        assert he >= min(twin, 25.0) - 1.0, (he, twin)
    assert p.evaluation_depth() == p.depth + 1


def test_prescaled_input_loses_no_precision_to_its_scale(s):
    """An input pre-scaled by alpha = 1/8 saves the level of the change of variable; its
    result lands on the default scale, not on alpha times it, so it is as precise as the
    7-level path (it once lost log2(8) = 3 bits in the last rescale)."""
    p = fc.activation("sigmoid", degree=59)
    x = s.rng.uniform(-8, 8, s.params.slots)
    full, pre = s.encrypt(x), s.prescaled(x, p)
    y_full = fc.evaluate(s.ev, full, p, assume_in_interval=True)
    y_pre = fc.evaluate(s.ev, pre, p, assume_in_interval=True)
    assert (full.level - y_full.level, pre.level - y_pre.level) == (7, 6)
    assert y_pre.scale == pytest.approx(s.ctx.default_scale, rel=1e-12)
    assert y_full.scale == pytest.approx(s.ctx.default_scale, rel=1e-12)
    bits_full = fg.precision_bits(p(x), s.decrypt(y_full))
    bits_pre = fg.precision_bits(p(x), s.decrypt(y_pre))
    assert bits_pre >= bits_full - 0.5, (bits_pre, bits_full)
    kept = fc.evaluate(s.ev, pre, p, scale=pre.scale, assume_in_interval=True)
    assert kept.scale == pytest.approx(pre.scale, rel=1e-12)   # an explicit scale is honoured


@pytest.mark.parametrize("interval", [(-0.25, 0.25), (-0.4, 0.4), (-2.5, 2.5), (1.0, 3.0)])
def test_every_interval_keeps_its_precision(s, interval):
    """A scale left in T_1 compounds as r^k in T_k: an interval narrower than [-1, 1] with a
    non-integer alpha once lost 20 bits silently; now it costs one level, and an integer
    alpha (or a pre-scaled input) costs none."""
    a, b = interval
    p = fc.Chebyshev.fit(lambda t: np.cos(12 * (2 * t - a - b) / (b - a)), interval, 31)
    x = s.rng.uniform(a, b, s.params.slots)
    extra = 0 if p.integer_alpha else 1
    for ct, levels in ((s.encrypt(x), p.depth + extra), (s.prescaled(x, p), p.depth)):
        y = fc.evaluate(s.ev, ct, p, assume_in_interval=True)
        assert ct.level - y.level == levels
        assert fg.precision_bits(p(x), s.decrypt(y)) > 22


def test_narrow_interval_folds_the_change_of_variable(s):
    p = fc.Chebyshev.fit(np.sin, (0.25, 0.75), 7)
    assert p.folds_change_of_variable and p.evaluation_depth() == p.depth == 3
    x = s.rng.uniform(0.25, 0.75, s.params.slots)
    ct = s.encrypt(x)
    y = fc.evaluate(s.ev, ct, p, assume_in_interval=True)
    assert ct.level - y.level == 3
    assert fg.precision_bits(np.sin(x), s.decrypt(y)) > min(-np.log2(p.max_error), 25) - 1


def test_wide_interval_folded_into_the_previous_step(s):
    p = fc.activation("gelu", degree=27)
    x = s.rng.uniform(-8, 8, s.params.slots)
    y_in = s.encrypt(p.alpha * x + p.beta)           # what a LinearTransform with alpha*W,
    unit = p.in_unit_coordinates()                   # alpha*b + beta would hand over
    y = fc.evaluate(s.ev, y_in, unit)
    assert y_in.level - y.level == unit.depth == 5
    assert fg.precision_bits(p(x), s.decrypt(y)) > 24


def test_complex_slots_are_refused_unless_promised(s):
    z = s.rng.uniform(-0.5, 0.5, s.params.slots) * (1 + 1j)
    p = fc.Chebyshev.fit(np.tanh, (-1, 1), 15)
    ct = s.encryptor.encrypt(s.enc.encode(z))
    assert not ct.real and s.encrypt(z.real).real
    with pytest.raises(fg.ParameterError, match="not known to be real"):
        fc.evaluate(s.ev, ct, p)
    loaded = fg.Ciphertext.from_bytes(s.encrypt(z.real).to_bytes(), s.ctx)
    with pytest.raises(fg.ParameterError, match="not known to be real"):
        fc.evaluate(s.ev, loaded, p)
    y = fc.evaluate(s.ev, loaded, p, assume_in_interval=True)
    assert fg.precision_bits(p(z.real), s.decrypt(y)) > 22


def test_inverse_square_root_seed_and_newton(s):
    x = s.rng.uniform(0.01, 1.0, s.params.slots)
    ct = s.encrypt(x)
    y = fc.inv_sqrt(s.ev, ct, assume_in_interval=True)
    assert ct.level - y.level == fc.inv_sqrt_depth()
    exact = 1 / np.sqrt(x)
    twin = fg.precision_bits(exact, fc.inv_sqrt_plain(x))
    assert fg.precision_bits(exact, s.decrypt(y)) >= min(twin, 22.0) - 1.0   # values up to 10


def test_errors_are_typed_and_raised_before_work(s):
    p = fc.activation("sigmoid", degree=59)
    ct = s.encrypt(s.rng.uniform(-1, 1, s.params.slots), level=4)
    with pytest.raises(fg.LevelError, match="needs 7 levels, ciphertext has 4"):
        fc.evaluate(s.ev, ct, p)
    wide = s.encrypt(s.rng.uniform(-9, 9, s.params.slots))
    with pytest.raises(fg.ParameterError, match=r"\[-8, 8\].*9"):
        fc.evaluate(s.ev, wide, p)
    with pytest.raises(fg.ParameterError, match="not finite.*f\\(0"):
        fc.Chebyshev.fit(lambda v: 1.0 / v, (-1, 1), 7)
    for bad in (lambda: fc.Chebyshev([1.0, np.nan]), lambda: fc.Chebyshev([1.0], (1, -1)),
                lambda: fc.activation("relu6"), lambda: fc.Chebyshev.fit(np.sin, (0, 1), 0),
                lambda: fc.evaluate(s.ev, ct, [1.0, 2.0])):
        with pytest.raises(fg.ParameterError):
            bad()


@pytest.mark.skipif("cuda" not in BACKENDS, reason="no CUDA backend or emulator")
def test_cuda_is_bit_identical_to_cpu():
    outs = []
    for backend in ("cpu", "cuda"):
        st = Setup(log_n=6, levels=4, scale_bits=30, backend=backend)
        x = np.linspace(-1, 1, st.params.slots)
        y = fc.evaluate(st.ev, st.encrypt(x), fc.Chebyshev.fit(np.tanh, (-1, 1), 9))
        outs.append(np.asarray(st.ctx.backend.to_host(y.data)))
    assert np.array_equal(outs[0], outs[1])
