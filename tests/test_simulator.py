"""fg.Simulator (issue 14): the Evaluator's interface on cleartext slots with the noise
predicted, its checks, the circuits running on it, and its predictions against the
encrypted runs.

The default run measures a bounded sample of the accuracy grid at N = 2^12 (five seeds
per setting: keys, inputs and encryptions), the one-special-prime rotation loss, and the
time of the demo's model shape at N = 2^12 against its encrypted run; ``-m slow`` runs the
whole grid of fhe_gpu.tooling.accuracy.grid() (77 settings, N = 2^12 to 2^16), printing
the worst point, and the demo model's Engine plan at N14 (under 1 % of the encrypted
run's time). bench/sim_accuracy.py writes the figures to bench/results/sim_accuracy.json
and (``--plan``) sim_demo.json.
"""
from __future__ import annotations

import importlib.util
import logging
import pathlib

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu import circuits as fc
from fhe_gpu.ckks import SimCiphertext, noise, simfast
from fhe_gpu.ckks.encoder import encoded_values
from fhe_gpu.tooling import accuracy

TOLERANCE_BITS = 1.0


def _quiet_params(log_n=12, q_bits=(60, 40, 40, 40), p_bits=(60, 60), scale_bits=40,
                  dnum=None):
    log = logging.getLogger("fhe_gpu")
    was, log.disabled = log.disabled, True
    try:
        return fg.Parameters(log_n, list(q_bits), list(p_bits), scale_bits, dnum,
                             security=None)
    finally:
        log.disabled = was


@pytest.fixture(scope="module")
def sim_ctx():
    return fg.Context(_quiet_params(), backend="cpu")


def _bench():
    """bench/sim_accuracy.py, whose plan_comparison times the demo's Engine plan."""
    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "sim_accuracy.py"
    spec = importlib.util.spec_from_file_location("sim_accuracy_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the interface
def test_values_are_exact_and_levels_scales_follow_the_evaluator(sim_ctx):
    sim = fg.Simulator(sim_ctx)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, (2, sim_ctx.slots))
    a, b = sim.encrypt(x), sim.encrypt(y)
    assert isinstance(a, SimCiphertext) and a.level == sim_ctx.max_level
    m = sim.mul(a, b)
    assert m.level == a.level - 1 and m.scale == pytest.approx(
        a.scale * b.scale / sim_ctx.q_primes[a.level])
    assert np.allclose(m.values[0], x * y)
    r = sim.rotate(a, 3)
    assert np.allclose(r.values[0], np.roll(x, -3))
    assert np.allclose(sim.conjugate(sim.encrypt(x + 1j * y)).values[0], x - 1j * y)
    s = sim.sub(sim.add(a, 0.5), b)
    assert np.allclose(s.values[0], x + 0.5 - y)
    assert np.allclose(sim.mul_to_scale(a, 0.25, 2.0 ** 30).values[0], 0.25 * x)
    assert sim.mul_to_scale(a, 0.25, 2.0 ** 30).scale == 2.0 ** 30
    assert sim.drop_level(a, 1).level == 1 and sim.negate(a).values[0][0] == -x[0]
    got = sim.decrypt(m)
    assert got.shape == (sim_ctx.slots,)
    assert fg.precision_bits(x * y, got) > 20
    assert m.noise_var > 0 and m.slot_var.shape == (1, sim_ctx.slots)
    assert sim.counts["key_switch"] == 3 and sim.counts["rescale"] >= 2
    assert sim.used_rotations == {3}


def test_refuses_what_the_evaluator_refuses(sim_ctx):
    sim = fg.Simulator(sim_ctx, rotations=[1])
    a = sim.encrypt(np.ones(4))
    low = sim.drop_level(a, 0)
    with pytest.raises(fg.LevelError, match="level 0"):
        sim.rescale(low)
    with pytest.raises(fg.ScaleMismatchError):
        sim.add(a, sim.encrypt(np.ones(4), scale=2.0 ** 30))
    with pytest.raises(fg.KeyMissingError, match="rotation 2"):
        sim.rotate(a, 2)
    with pytest.raises(fg.ModulusOverflowError):
        sim.encrypt(np.full(4, 2.0 ** 30), level=0)
    with pytest.raises(fg.ParameterError, match="assume_bound"):
        sim.assume_bound(sim.encrypt(np.full(4, 3.0)), 1.0)
    with pytest.raises(fg.ParameterError, match="SimCiphertext"):
        sim.add(object(), a)
    with pytest.raises(fg.ParameterError, match="noise"):
        fg.Simulator(sim_ctx, noise="exact")
    relaxed = fg.Simulator(sim_ctx, strict=False)
    mixed = relaxed.add(relaxed.encrypt(np.ones(4)), relaxed.encrypt(np.ones(4), scale=2.0 ** 30))
    assert np.allclose(mixed.values[0][:4], 2.0)


def test_real_ciphertexts_and_other_parameters_are_refused(sim_ctx):
    sim = fg.Simulator(sim_ctx)
    other = fg.Simulator(_quiet_params(q_bits=(60, 40, 40)))
    with pytest.raises(fg.ContextMismatchError):
        sim.add(sim.encrypt(np.ones(2)), other.encrypt(np.ones(2)))
    kg = fg.KeyGenerator(sim_ctx, seed=b"\x05" * 32)
    real = fg.Encryptor(sim_ctx, kg.public_key()).encrypt(fg.Encoder(sim_ctx).encode([1.0]))
    with pytest.raises(fg.ParameterError, match="own ciphertexts"):
        sim.add(sim.encrypt([1.0]), real)


def test_batches_stack_and_index(sim_ctx):
    sim = fg.Simulator(sim_ctx)
    ct = sim.encrypt(np.arange(6.0).reshape(3, 2))
    assert ct.batch_size == 3 and len(ct[1:]) == 2
    assert np.allclose(ct[2].values[0][:2], [4, 5])
    back = SimCiphertext.stack([ct[0], ct[1]])
    assert back.batch_size == 2 and back.slot_var.shape == (2, sim_ctx.slots)
    with pytest.raises(fg.BatchIndexError):
        ct[3]
    assert sim.decrypt(ct).shape == (3, sim_ctx.slots)


def test_sampled_mode_is_reproducible_and_close_to_variance_mode(sim_ctx):
    x = np.random.default_rng(3).uniform(-1, 1, sim_ctx.slots)

    def run(mode, seed):
        sim = fg.Simulator(sim_ctx, noise=mode, seed=seed)
        a = sim.encrypt(x)
        return sim.mul(sim.mul(a, a), sim.rotate(a, 1))

    one, two = run("sample", 4), run("sample", 4)
    assert np.array_equal(one.error.state, two.error.state)
    assert not np.array_equal(one.error.state, run("sample", 5).error.state)
    assert abs(one.predicted_bits - run("variance", 0).predicted_bits) < 0.6


def test_circuits_run_on_the_simulator(sim_ctx):
    sim = fg.Simulator(sim_ctx)
    rng = np.random.default_rng(2)
    w, x = rng.uniform(-1, 1, (8, 16)), rng.uniform(-1, 1, (4, 16))
    lt = fc.LinearTransform(sim_ctx, w, bias=np.full(8, 0.1), vectors=4)
    y = lt.apply(sim, sim.encrypt(lt.input_slots(x)[0]))
    assert np.allclose(lt.decode_output(y.values[0], count=4), x @ w.T + 0.1)
    p = fc.Chebyshev.fit(np.tanh, (-1, 1), 7)
    z = fc.evaluate(sim, sim.encrypt(rng.uniform(-1, 1, sim_ctx.slots)), p)
    assert z.level == sim_ctx.max_level - p.depth and z.predicted_bits > 20
    s = fc.inner_sum(sim, sim.encrypt(np.ones(sim_ctx.slots)), 8, replicate=False)
    assert np.allclose(s.values[0][::8], 8.0)
    deep = fg.Simulator(_quiet_params(q_bits=(60,) + (40,) * 7))
    x = np.full(deep.context.slots, 0.25)
    r = fc.inv_sqrt(deep, deep.encrypt(x), interval=(0.1, 1.0), degree=7, newton=1,
                    assume_in_interval=True)
    assert np.allclose(r.values[0], fc.inv_sqrt_plain(x, (0.1, 1.0), 7, 1))


def test_the_encoder_keeps_what_it_encoded_and_the_simulator_reads_it(sim_ctx):
    slots, enc = sim_ctx.slots, fg.Encoder(sim_ctx)
    x = np.random.default_rng(4).uniform(-1, 1, slots // 8)
    pt = enc.encode(np.repeat(x, 8))
    kept = encoded_values(pt)
    assert kept.repeat == 8 and np.array_equal(kept.compact[0], x)
    assert np.array_equal(kept.full(slots)[0], np.repeat(x, 8))
    assert kept.nbytes * 4 <= pt.nbytes and kept.row[2:4] == (0, slots // 8)
    assert np.array_equal(enc.encode(np.repeat(x, 8)).data, pt.data)
    assert np.allclose(fg.Simulator(sim_ctx).decode(pt), np.repeat(x, 8))
    dense = np.random.default_rng(5).uniform(-1, 1, slots) + 0.5j
    big = enc.encode(dense, level=0)
    assert encoded_values(big) is None and encoded_values(pt[0:1]) is None
    assert np.allclose(fg.Simulator(sim_ctx).decode(big), dense, atol=1e-6)


def test_rotations_are_evaluated_once_when_read(sim_ctx):
    sim = fg.Simulator(sim_ctx)
    x = np.random.default_rng(5).uniform(-1, 1, sim_ctx.slots)
    r = sim.rotate(sim.encrypt(x), 3)
    assert "_pending" in r.__dict__ and r.batch_size == 1 and "_pending" in r.__dict__
    assert sim.counts["key_switch"] == 1 and sim.used_rotations == {3}
    assert np.array_equal(r.values[0], np.roll(x, -3)) and r.error is r.error
    low = sim.drop_level(r, 1)
    assert low.error is r.error and r.predicted_bits == low.predicted_bits
    with pytest.raises(AttributeError):
        r.no_such_attribute


def test_sums_over_rotations_stay_pending_through_rotations_and_additions(sim_ctx):
    sim, enc, slots = fg.Simulator(sim_ctx), fg.Encoder(sim_ctx), sim_ctx.slots
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, slots)
    w = [np.repeat(rng.uniform(-1, 1, slots // 4), 4) for _ in range(3)]
    pts = [enc.encode(v, level=2) for v in w]
    rots = sim.rotate_many(sim.encrypt(x, level=2), [0, 4, 8])
    one = sim.mul_plain_sum(rots, pts)
    want = sum(v * np.roll(x, -k) for v, k in zip(w, (0, 4, 8)))
    total = sim.add(sim.rotate(one, 8), sim.mul_plain_sum(rots, pts[::-1]))
    spec = total.__dict__["_pending"][3]
    assert spec is not None and len(spec.groups) == 2 and spec.r == 4
    assert sim.counts["key_switch"] == 3
    odd = sim.rotate(one, 3)
    assert odd.__dict__["_pending"][3] is None
    other = sum(v * np.roll(x, -k) for v, k in zip(w[::-1], (0, 4, 8)))
    assert np.allclose(total.values[0], np.roll(want, -8) + other, atol=1e-12)
    assert np.allclose(odd.values[0], np.roll(want, -3), atol=1e-12)
    assert 20 < total.predicted_bits < odd.predicted_bits + 2


@pytest.mark.parametrize("p_bits, kw, shape", [
    ((60, 60), dict(vectors=4), (8, 16)), ((60, 60), dict(vectors=1), (40, 30)),
    ((60, 60), dict(vectors=2, complex_packing=True), (20, 20)),
    ((60,), dict(vectors=8), (16, 16)), ((60, 60), dict(vectors=2, input="padded"), (90, 70))])
def test_sums_over_rotations_match_the_term_by_term_sums(monkeypatch, p_bits, kw, shape):
    """LinearTransforms through simfast's kernels and term by term: the same values, the
    same predicted precision (one special prime: the digit mean's peak; complex
    packing; a padded input; runs of 1 to 4 slots)."""
    ctx = fg.Context(_quiet_params(q_bits=(60,) + (40,) * 4, p_bits=p_bits), backend="cpu")
    rng = np.random.default_rng(6)
    lt = fc.LinearTransform(ctx, rng.uniform(-1, 1, shape), rng.uniform(-1, 1, shape[0]), **kw)
    x = rng.uniform(-1, 1, (lt.vectors_per_ciphertext, shape[1]))

    def run(seed):
        sim = fg.Simulator(ctx, seed=seed)
        y = lt.apply(sim, sim.encrypt(lt.input_slots(x)[0]))
        return y.values, y.predicted_bits

    fast = [run(seed) for seed in range(6)]
    monkeypatch.setattr(simfast, "fast_terms", lambda *args: None)
    slow = [run(seed) for seed in range(6)]
    assert np.allclose(fast[0][0], slow[0][0], rtol=0, atol=1e-12)
    gap = np.mean([f[1] for f in fast]) - np.mean([s[1] for s in slow])
    assert abs(gap) < 0.2, gap


def test_the_simulated_model_takes_a_few_percent_of_the_encrypted_run():
    """The demo's model shape at N = 2^12 (64 -> 32 -> 8, GELU degree 15, 8 vectors):
    a new Simulator's run against a tenant's encrypted run (key generation included)."""
    bench = _bench()
    r = bench.plan_comparison(_quiet_params(q_bits=(60,) + (40,) * 6), (64, 32, 8, 8), runs=5)
    print("\n" + bench.describe_plan(r))
    assert r["ratio_cold"] < 0.05 and abs(r["error"]) <= TOLERANCE_BITS


def test_max_error_matches_the_maximum_of_gaussians():
    rng = np.random.default_rng(1)
    for m in (1, 100, 4096):
        var = rng.uniform(0.2, 1.0, m)
        draws = [np.abs(np.sqrt(var / 2) * (rng.standard_normal(m) + 1j * rng.standard_normal(m)))
                 .max() for _ in range(1500)]
        assert abs(noise.max_error_bits(var) + np.mean(np.log2(draws))) < 0.05
        real = [np.abs(np.sqrt(var / 2) * rng.standard_normal(m)).max() for _ in range(1500)]
        assert abs(noise.max_error_bits(var, "real") + np.mean(np.log2(real))) < 0.05


# ---------------------------------------------------------------- accuracy (issue 14 §1)
def _check(rows):
    worst = accuracy.worst(rows)
    print("\nworst point:", accuracy.describe(worst))
    for r in rows:
        assert abs(r["error"]) <= TOLERANCE_BITS, accuracy.describe(r)


def test_predictions_hold_on_a_small_grid():
    """One setting per circuit kind at N = 2^12 (scales 30/40, mul and square chains,
    rotations with one special prime, a degree-15 polynomial, a linear transform, an
    inner sum), five seeds each."""
    _check([accuracy.measure(s, seeds=5) for s in accuracy.quick_grid()])


def test_the_one_special_prime_rotation_loss_is_predicted():
    """Q = [60, 40, 40] with one 60-bit special prime (SEAL's example chain): a rotation
    loses ~6-7 bits against a fresh ciphertext, two special primes lose nothing."""
    base = dict(log_n=13, q_bits=(60, 40, 40), scale_bits=40, dnum=3)
    fresh = accuracy.measure(accuracy.Setting("fresh", 0, p_bits=(60,), **base), seeds=5)
    small = accuracy.measure(accuracy.Setting("rotate", 1, p_bits=(60,), **base), seeds=5)
    large = accuracy.measure(accuracy.Setting("rotate", 1, p_bits=(60, 60), **base), seeds=5)
    loss, predicted_loss = (fresh["measured"] - small["measured"],
                            fresh["predicted"] - small["predicted"])
    print(f"\nrotation loss with one 60-bit special prime: measured {loss:.2f} bits, "
          f"predicted {predicted_loss:.2f}")
    assert 5 <= loss <= 9 and abs(loss - predicted_loss) <= TOLERANCE_BITS
    assert fresh["measured"] - large["measured"] < 1.5
    _check([fresh, small, large])


@pytest.mark.slow
def test_predictions_hold_on_the_acceptance_grid():
    grid = accuracy.grid()
    assert len(grid) >= 50
    assert {s.log_n for s in grid} >= {12, 13, 14, 15, 16}
    rows = [accuracy.measure(s, seeds=5) for s in grid]
    _check(rows)


@pytest.mark.slow
def test_the_demo_model_is_predicted_in_under_one_percent_of_its_time():
    """The Engine plan of ``fhe-gpu demo``'s model at N14: a new Simulator's run (cold:
    the first to see the plan's plaintexts) against a tenant's encrypted run (key
    generation, encryption, evaluation, decryption), medians of five."""
    bench = _bench()
    r = bench.plan_comparison(fg.Parameters.preset("N14"), runs=5)
    print("\n" + bench.describe_plan(r))
    assert abs(r["error"]) <= TOLERANCE_BITS
    assert r["ratio_cold"] < 0.01
