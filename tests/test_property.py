"""Property: whatever the parameters, values, scales and operation sequence, every result
either decrypts within its predicted error bound (fhe_gpu.ckks.noise.error_bound) or the
operation raises an FHEError. Never a silently wrong value, never an untyped exception."""
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fhe_gpu as fg
from fhe_gpu.ckks import noise

OPS = ("add", "sub", "mul", "square", "mul_pt", "mul_scalar", "add_scalar", "mul_complex",
       "rotate", "rotate_back", "conjugate", "negate", "rescale", "drop", "mul_to_scale")


@st.composite
def parameter_sets(draw):
    log_n = draw(st.integers(6, 10))
    base = draw(st.integers(30, 61))
    scale = draw(st.integers(14, 60))
    levels = draw(st.integers(1, 4))
    q_bits = [base] + [min(61, max(20, scale + draw(st.integers(-6, 6)))) for _ in range(levels)]
    p_bits = draw(st.one_of(st.none(), st.lists(st.integers(30, 61), min_size=1, max_size=3)))
    return dict(log_n=log_n, q_bits=q_bits, p_bits=p_bits, scale_bits=scale)


@st.composite
def scenarios(draw):
    kw = draw(parameter_sets())
    magnitude = 2.0 ** draw(st.integers(-4, 24))
    complex_values = draw(st.booleans())
    ops = draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=6))
    scalars = draw(st.lists(st.floats(-2 ** 12, 2 ** 12, allow_nan=False), min_size=6,
                            max_size=6))
    seed = draw(st.integers(0, 2 ** 31))
    strict, public = draw(st.booleans()), draw(st.booleans())
    return kw, magnitude, complex_values, ops, scalars, seed, strict, public


class Run:
    """A keyed world of one parameter set and the cleartext twin of the ciphertext."""

    def __init__(self, kw, seed, strict, public):
        self.params = fg.Parameters(security=None, **kw)
        self.ctx = fg.Context(self.params, "cpu")
        kg = fg.KeyGenerator(self.ctx, seed=seed.to_bytes(4, "little") * 8)
        self.ev = fg.Evaluator(self.ctx, kg.evaluation_keys(rotations=[1, -1],
                                                            conjugation=True),
                                strict=strict)
        self.enc = fg.Encoder(self.ctx)
        self.encryptor = fg.Encryptor(self.ctx, kg.public_key() if public else kg.secret_key)
        self.decryptor = fg.Decryptor(self.ctx, kg.secret_key)
        self.rng = np.random.default_rng(seed)

    def values(self, magnitude, complex_values):
        z = self.rng.uniform(-magnitude, magnitude, self.params.slots)
        if complex_values:
            z = z + 1j * self.rng.uniform(-magnitude, magnitude, self.params.slots)
        return z

    def step(self, op, ct, z, c, other):
        """(new ciphertext, new twin) of ``op``; may raise FHEError."""
        ev, (oc, oz) = self.ev, other
        table = {
            "add": lambda: (ev.add(ct, oc), z + oz), "sub": lambda: (ev.sub(ct, oc), z - oz),
            "mul": lambda: (ev.mul(ct, oc), z * oz), "square": lambda: (ev.square(ct), z * z),
            "mul_pt": lambda: (ev.mul(ct, self.enc.encode(oz, level=ct.level)), z * oz),
            "mul_scalar": lambda: (ev.mul(ct, c), z * c),
            "add_scalar": lambda: (ev.add(ct, c), z + c),
            "mul_complex": lambda: (ev.mul(ct, complex(c, 1.0)), z * complex(c, 1.0)),
            "rotate": lambda: (ev.rotate(ct, 1), np.roll(z, -1)),
            "rotate_back": lambda: (ev.rotate(ct, -1), np.roll(z, 1)),
            "conjugate": lambda: (ev.conjugate(ct), np.conj(z)),
            "negate": lambda: (ev.negate(ct), -z),
            "rescale": lambda: (ev.rescale(ct), z),
            "drop": lambda: (ev.drop_level(ct, max(ct.level - 1, 0)), z),
            "mul_to_scale": lambda: (ev.mul_to_scale(ct, c, ct.scale), z * c),
        }
        return table[op]()

    def check(self, ct, z, op):
        got = self.enc.decode(self.decryptor.decrypt(ct))
        bound = noise.error_bound(ct)
        assert bound is not None, f"{op}: result without a predicted error bound"
        err = float(np.max(np.abs(got - z)))
        assert err <= bound, (f"{op}: error {err:.3g} above the predicted bound {bound:.3g} "
                              f"(level {ct.level}, scale 2^{np.log2(ct.scale):.1f}, "
                              f"params {self.params})")


def _run(scenario):
    kw, magnitude, complex_values, ops, scalars, seed, strict, public = scenario
    try:
        run = Run(kw, seed, strict, public)
        z = run.values(magnitude, complex_values)
        ct = run.encryptor.encrypt(run.enc.encode(z))
        oz = run.values(1.0, False)
        other = (run.encryptor.encrypt(run.enc.encode(oz)), oz)
    except fg.FHEError as exc:
        event(f"setup refused: {type(exc).__name__}")
        return
    run.check(ct, z, "encrypt")
    checked = 0
    for op, c in zip(ops, scalars):
        try:
            ct, z = run.step(op, ct, z, c, other)
        except fg.FHEError as exc:
            event(f"refused: {type(exc).__name__}")
            break
        run.check(ct, z, op)
        checked += 1
        event(f"checked: {op}")
    event(f"ops checked per example: {checked}")


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_results_decrypt_within_their_prediction_or_raise(scenario):
    _run(scenario)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_results_decrypt_within_their_prediction_or_raise_long(scenario):
    _run(scenario)
