"""fhe_gpu.circuits linear algebra: LinearTransform (BSGS over diagonals) and slot sums.

CI sizes run at N = 2^10 (512 slots) on the cpu backend and on the CUDA backend (the
emulator without a GPU), bit-identical to cpu for the same seeds; shapes cover non-powers
of two, d_in != d_out, packed vectors (lanes), both input modes and vectors longer than
the slot count (block matrices). The acceptance error bound is
max|W x + b - dec(y)| <= 2^-20 (||W||_inf ||x||_inf + ||b||_inf). Key switches are counted
by wrapping rlwe.keyswitch (decompose = one ModUp, apply_key = one key switch), kernel
launches by wrapping the CUDA backend's launch helper. ``-m slow`` runs the real sizes at
N = 2^15 and prints the measured precision per shape.
"""
from __future__ import annotations

import contextlib
import math
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu import circuits as fc
from fhe_gpu.rlwe import keyswitch
from conftest import BACKENDS, backend_for

BOUND_BITS = 20
CI_BACKENDS = [b for b in BACKENDS if b != "reference"]
# (d_out, d_in, vectors, input mode): 512 slots, so 1100, 1000 and 600 span several
# ciphertexts; vectors=4/8 pack lanes of 128/64 positions
SHAPES = [(24, 40, 1, "periodic"), (40, 24, 1, "periodic"), (7, 100, 1, "periodic"),
          (300, 5, 1, "periodic"), (1100, 7, 1, "periodic"), (9, 1000, 1, "periodic"),
          (600, 600, 1, "padded"), (24, 40, 1, "padded"), (100, 60, 4, "periodic"),
          (200, 130, 4, "padded"), (24, 40, 8, "periodic")]


def ci_params(log_n=10):
    return fg.Parameters(log_n=log_n, q_bits=[60, 40, 40], p_bits=[60], scale_bits=40,
                         security=None)


class Keyed:
    """A context with keys for a set of rotation steps, seeded (reproducible)."""

    def __init__(self, params, backend, rotations):
        self.ctx = fg.Context(params, backend=backend_for(backend))
        self.kg = fg.KeyGenerator(self.ctx, seed=b"\x11" * 32)
        self.evk = self.kg.evaluation_keys(rotations=sorted(set(rotations)))
        self.ev = fg.Evaluator(self.ctx, self.evk)
        self.encoder = fg.Encoder(self.ctx)
        self.encryptor = fg.Encryptor(self.ctx, self.kg.public_key(), seed=b"\x12" * 32)
        self.decryptor = fg.Decryptor(self.ctx, self.kg.secret_key)

    def encrypt(self, pts):
        if isinstance(pts, list):
            return [self.encryptor.encrypt(p) for p in pts]
        return self.encryptor.encrypt(pts)

    def decrypt(self, cts):
        if isinstance(cts, list):
            return [self.decrypt(c) for c in cts]
        return self.encoder.decode(self.decryptor.decrypt(cts))


def _weights(d_out, d_in, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (d_out, d_in)), rng.uniform(-1, 1, d_out) if bias else None


def _transform(ctx, shape, seed=0, **kw):
    d_out, d_in, vectors, mode = shape
    W, b = _weights(d_out, d_in, seed)
    return fc.LinearTransform(ctx, W, b, vectors=vectors, input=mode, **kw)


SUM_CASES = [(8, 1, False), (8, 1, True), (4, 16, True), (512, 1, True), (64, 8, True),
             (1, 1, True)]
CHAIN = [(40, 24, 4, "periodic"), (24, 40, 4, "periodic"), (24, 40, 4, "padded")]
COMPLEX = [(24, 40, 8, "periodic"), (1100, 7, 1, "periodic"), (200, 130, 4, "padded"),
           (40, 24, 5, "periodic")]


def _all_rotations(params):
    ctx = fg.Context(params, backend="cpu")
    steps = {k for n, stride, rep in SUM_CASES
             for k in fc.inner_sum_rotations(n, rep, stride, ctx.slots)}
    steps |= set(fc.replicate_rotations(8, 3, length=6) + fc.replicate_rotations(512, 4))
    for shape in SHAPES + CHAIN:
        lt = _transform(ctx, shape)
        steps |= set(lt.rotations) | set(lt.input_rotations)
    for shape in COMPLEX:
        steps |= set(_transform(ctx, shape, complex_packing=True).rotations)
    return steps


_KEYED: dict = {}


@pytest.fixture(params=CI_BACKENDS)
def keyed(request) -> Keyed:
    """Per backend, one seeded key set holding every rotation the CI shapes need."""
    if request.param not in _KEYED:
        params = ci_params()
        _KEYED[request.param] = Keyed(params, request.param, _all_rotations(params))
    return _KEYED[request.param]


def _error_bits(lt, x, got) -> float:
    """-log2(max error / (||W||_inf ||x||_inf + ||b||_inf))."""
    ref = np.abs(lt.W).sum(axis=1).max() * np.abs(x).max()
    ref += 0.0 if lt.bias is None else np.abs(lt.bias).max()
    err = np.abs(got - lt.forward_plain(x)).max()
    return math.inf if err == 0 else float(-np.log2(err / ref))


def _run(keyed, lt, x, level=None):
    ct = keyed.encrypt(lt.encode_input(x, level=level))
    y = lt.apply(keyed.ev, ct)
    return ct, y, lt.decode_output(keyed.decrypt(y), count=len(x))


# ---------------------------------------------------------------- correctness (CI sizes)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}-v{s[2]}-{s[3]}")
def test_transform_matches_cleartext(keyed, shape):
    lt = _transform(keyed.ctx, shape)
    x = np.random.default_rng(1).uniform(-1, 1, (2 * shape[2] + 1, shape[1]))
    ct, y, got = _run(keyed, lt, x)
    assert _error_bits(lt, x, got) >= BOUND_BITS
    first_in, outs = (ct if isinstance(ct, list) else [ct])[0], y if isinstance(y, list) else [y]
    assert len(outs) == len(lt.output_chunks)
    for out in outs:
        assert out.level == first_in.level - 1 and out.scale == first_in.scale
        assert out.batch_size == -(-len(x) // lt.stride)


def _host_bits(keyed, y):
    outs = y if isinstance(y, list) else [y]
    return [keyed.ctx.backend.to_host(o.data) for o in outs]


@pytest.mark.skipif("cuda" not in BACKENDS, reason="no CUDA backend (GPU or emulator)")
@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[4], SHAPES[8]],
                         ids=lambda s: f"{s[0]}x{s[1]}-v{s[2]}")
def test_cuda_is_bit_identical_to_cpu(shape):
    params = ci_params()
    got = []
    for backend in ("cpu", "cuda"):
        keyed = Keyed(params, backend, _transform(fg.Context(params, "cpu"), shape).rotations)
        lt = _transform(keyed.ctx, shape)
        x = np.random.default_rng(2).uniform(-1, 1, (3, shape[1]))
        got.append(_host_bits(keyed, lt.apply(keyed.ev, keyed.encrypt(lt.encode_input(x)))))
    for a, b in zip(*got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", COMPLEX, ids=lambda s: f"{s[0]}x{s[1]}-v{s[2]}-{s[3]}")
def test_complex_packing(keyed, shape):
    """Two real vectors per lane (real and imaginary parts): same precision, twice the
    vectors per ciphertext or lanes twice as long."""
    lt = _transform(keyed.ctx, shape, complex_packing=True)
    plain = _transform(keyed.ctx, shape)
    assert lt.vectors_per_ciphertext == 2 * lt.stride >= shape[2]
    assert lt.block == plain.block * plain.stride // lt.stride
    n = 2 * lt.vectors_per_ciphertext - 1
    x = np.random.default_rng(14).uniform(-1, 1, (n, shape[1]))
    ct, y, got = _run(keyed, lt, x)
    assert (ct if isinstance(ct, list) else [ct])[0].batch_size == 2
    assert got.shape == (n, shape[0])
    assert _error_bits(lt, x, got) >= BOUND_BITS
    with pytest.raises(fg.ParameterError, match="real vectors"):
        lt.encode_input(x + 1j)


def test_no_bias_and_zero_rows(keyed):
    W, _ = _weights(30, 20)
    W[5:12] = 0.0
    W[:, 3] = 0.0
    lt = fc.LinearTransform(keyed.ctx, W)
    x = np.random.default_rng(3).uniform(-1, 1, (2, 20))
    assert _error_bits(lt, x, _run(keyed, lt, x)[2]) >= BOUND_BITS
    zero = fc.LinearTransform(keyed.ctx, np.zeros((3, 4)), bias=[1.0, -2.0, 0.5])
    assert zero.diagonals == 0 and zero.rotations == []
    got = _run(keyed, zero, np.ones((1, 4)))[2]
    np.testing.assert_allclose(got, [[1.0, -2.0, 0.5]], atol=2 ** -25)


def test_lower_level_and_large_values(keyed):
    lt = _transform(keyed.ctx, (40, 24, 1, "periodic"))
    x = np.random.default_rng(4).uniform(-100, 100, (3, 24))
    ct, y, got = _run(keyed, lt, x, level=1)
    assert y.level == 0 and _error_bits(lt, x, got) >= BOUND_BITS
    row = np.abs(lt.W).sum(axis=1).max() * np.abs(ct.value_bound) + np.abs(lt.bias).max()
    assert y.value_bound <= row * (1 + 1e-12)


def test_chaining_periodic_and_padded(keyed):
    """A transform's output feeds the next one through replicate_input in "periodic" mode,
    and as it is in "padded" mode, even after a slot-wise function (here + 0.75, which
    fills the padding too)."""
    x = np.random.default_rng(7).uniform(-1, 1, (4, 24))
    lt1 = _transform(keyed.ctx, CHAIN[0], seed=5)
    y1 = lt1.apply(keyed.ev, keyed.encrypt(lt1.encode_input(x)))
    norm = lambda lt: np.abs(lt.W).sum(axis=1).max()  # noqa: E731
    for shape, shift in ((CHAIN[1], 0.0), (CHAIN[2], 0.0), (CHAIN[2], 0.75)):
        lt2 = _transform(keyed.ctx, shape, seed=6)
        assert (lt2.input_rotations == []) == (shape[3] == "padded")
        y = keyed.ev.add(y1, shift) if shift else y1
        y2 = lt2.apply(keyed.ev, lt2.replicate_input(keyed.ev, y))
        got = lt2.decode_output(keyed.decrypt(y2), count=4)
        want = lt2.forward_plain(lt1.forward_plain(x) + shift)
        ref = norm(lt2) * (norm(lt1) + np.abs(lt1.bias).max() + shift) \
            + np.abs(lt2.bias).max()
        assert np.abs(got - want).max() <= 2.0 ** -BOUND_BITS * ref


def test_padded_mode_ignores_padding(keyed):
    lt = _transform(keyed.ctx, CHAIN[2])
    x = np.random.default_rng(12).uniform(-1, 1, (3, 40))
    slots = lt.input_slots(x)[0]
    junk = np.random.default_rng(13).uniform(-5, 5, slots.shape)
    pad = np.arange(keyed.ctx.slots) // lt.stride >= 40
    slots[:, pad] = junk[:, pad]
    y = lt.apply(keyed.ev, keyed.encrypt(keyed.encoder.encode(slots)))
    got = lt.decode_output(keyed.decrypt(y), count=3)
    assert _error_bits(lt, x, got) >= BOUND_BITS - 3


def test_layout_round_trip_and_twins(keyed):
    lt = _transform(keyed.ctx, (1100, 7, 1, "periodic"))
    x = np.random.default_rng(8).uniform(-1, 1, (3, 7))
    slots = lt.input_slots(x)
    assert len(slots) == 1 and slots[0].shape == (3, keyed.ctx.slots)
    assert lt.periods == [8]
    np.testing.assert_array_equal(slots[0][:, :16], np.tile(np.pad(x, ((0, 0), (0, 1))), 2))
    y = lt.forward_plain(x)
    z = [np.zeros((3, keyed.ctx.slots)) for _ in lt.output_chunks]
    for (r0, rows), part in zip(lt.output_chunks, z):
        part[:, :rows] = y[:, r0:r0 + rows]
    np.testing.assert_array_equal(lt.decode_output(z), y)
    np.testing.assert_allclose(lt.forward_plain(x[0]), y[0], rtol=1e-12)
    packed = _transform(keyed.ctx, (100, 60, 4, "padded"))
    s = packed.input_slots(x[:, :1].repeat(60, axis=1))[0]
    assert s.shape == (1, keyed.ctx.slots) and np.all(s[0, 3:packed.slots:4] == 0)


# ---------------------------------------------------------------- cache
def test_cache_bound_and_on_the_fly_encoding(keyed):
    shape = (100, 60, 4, "periodic")
    x = np.random.default_rng(9).uniform(-1, 1, (4, 60))
    full = _transform(keyed.ctx, shape)
    half = _transform(keyed.ctx, shape, cache_bytes=full.diagonal_nbytes(2) // 2)
    none = _transform(keyed.ctx, shape, cache_bytes=0)
    ct = keyed.encrypt(full.encode_input(x))
    outs = [_host_bits(keyed, lt.apply(keyed.ev, ct)) for lt in (full, half, none, half)]
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0][0], other[0])
    assert none.cache_nbytes == 0
    assert 0 < half.cache_nbytes <= full.diagonal_nbytes(2) // 2
    assert full.cache_nbytes >= full.diagonal_nbytes(2)


def test_warm_stops_when_full(keyed):
    lt = _transform(keyed.ctx, (24, 40, 1, "periodic"), cache_bytes=0)
    with mock.patch.object(lt._encoder, "encode", wraps=lt._encoder.encode) as encode:
        assert lt.warm(2) == 0
    assert encode.call_count == 1


def test_cache_evicts_least_recent_level(keyed):
    lt = _transform(keyed.ctx, (24, 40, 1, "periodic"))
    one_level = lt.diagonal_nbytes(2)
    lt = _transform(keyed.ctx, (24, 40, 1, "periodic"), level=2,
                    cache_bytes=int(one_level * 1.5))
    assert lt.cache_nbytes == one_level
    lt.warm(1)
    assert lt.cache_nbytes == lt.diagonal_nbytes(1)
    lt.clear_cache()
    assert lt.cache_nbytes == 0


# ---------------------------------------------------------------- counts
@contextmanager
def counting_key_switches():
    """Counts ModUps (decompose), key inner products (key_operand: one per key switch,
    hoisted or summed) and key-switching ModDowns (one per apply_key, one per
    automorph_sum)."""
    counts = {"decompose": 0, "key_switch": 0, "mod_down": 0}

    def counted(name, fn):
        def wrapper(*args, **kw):
            counts[name] += 1
            return fn(*args, **kw)
        return wrapper

    patches = [mock.patch.object(keyswitch, attr, counted(name, getattr(keyswitch, attr)))
               for attr, name in (("decompose", "decompose"), ("key_operand", "key_switch"),
                                  ("apply_key", "mod_down"), ("automorph_sum", "mod_down"))]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        yield counts


@pytest.mark.parametrize("d,log_n", [(384, 11), (24, 10), (50, 10)])
def test_key_switches_per_batch(d, log_n):
    """A d x d transform: at most 2*ceil(sqrt(d)) + 2 key switches per ciphertext batch,
    the same for batch 1 and 8, the baby steps sharing one decomposition."""
    params = ci_params(log_n)
    W, b = _weights(d, d, seed=d)
    lt = fc.LinearTransform(fg.Context(params, "cpu"), W, b)
    keyed = Keyed(params, "cpu", lt.rotations)
    lt = fc.LinearTransform(keyed.ctx, W, b, level=2)
    giants = [g for g, _ in lt._giants[0] if g]
    assert lt.key_switches <= 2 * math.ceil(math.sqrt(d)) + 2
    for batch in (1, 8):
        x = np.random.default_rng(batch).uniform(-1, 1, (batch, d))
        ct = keyed.encrypt(lt.encode_input(x))
        with counting_key_switches() as counts:
            y = lt.apply(keyed.ev, ct)
        babies = lt.key_switches - len(giants)       # the giants share one ModDown
        assert counts == {"decompose": 1 + len(giants), "key_switch": lt.key_switches,
                          "mod_down": babies + 1}
        assert len(lt.rotations) == lt.key_switches
        got = lt.decode_output(keyed.decrypt(y), count=batch)
        assert _error_bits(lt, x, got) >= BOUND_BITS


@pytest.mark.skipif("cuda" not in BACKENDS, reason="no CUDA backend (GPU or emulator)")
def test_kernel_launches_do_not_grow_with_batch():
    params = ci_params()
    shape = (100, 60, 4, "periodic")
    keyed = Keyed(params, "cuda", _transform(fg.Context(params, "cpu"), shape).rotations)
    lt = _transform(keyed.ctx, shape)
    be = keyed.ctx.backend
    launches = []
    for batch in (1, 6):
        ct = keyed.encrypt(lt.encode_input(np.ones((4 * batch, 60))))
        lt.apply(keyed.ev, ct)  # warms the diagonal and bias cache
        with mock.patch.object(be, "_launch", wraps=be._launch) as launch:
            lt.apply(keyed.ev, ct)
        launches.append(launch.call_count)
    assert launches[0] == launches[1] > 0


# ---------------------------------------------------------------- typed errors
@pytest.mark.parametrize("W,match", [
    (np.ones(5), r"shape \(5,\)"), (np.ones((0, 3)), r"shape \(0, 3\)"),
    (np.array([[1.0, np.nan]]), "finite.*nan"), (np.ones((2, 2), dtype=complex), "real"),
    ("abc", "shape"), (np.array([[1.0, np.inf], [0, 1]]), r"inf at index \(0, 1\)")])
def test_bad_matrix(keyed, W, match):
    with pytest.raises(fg.ParameterError, match=match):
        fc.LinearTransform(keyed.ctx, W)


@pytest.mark.parametrize("kw,match", [
    (dict(bias=np.ones(4)), r"bias must have shape \(3,\), got \(4,\)"),
    (dict(bias=[1.0, np.nan, 0]), "bias must be finite"),
    (dict(vectors=513), r"vectors must be an integer in \[1, 512\], got 513"),
    (dict(vectors=0), "vectors"), (dict(input="cyclic"), "input must be one of"),
    (dict(baby=0), "baby"), (dict(cache_bytes=-1), "cache_bytes")])
def test_bad_options(keyed, kw, match):
    with pytest.raises(fg.ParameterError, match=match):
        fc.LinearTransform(keyed.ctx, np.ones((3, 5)), **kw)


def test_bad_context_and_level(keyed):
    with pytest.raises(fg.ParameterError, match="Context"):
        fc.LinearTransform("ctx", np.ones((3, 5)))
    with pytest.raises(fg.LevelError, match=r"\[1, 2\].*got 0"):
        fc.LinearTransform(keyed.ctx, np.ones((3, 5)), level=0)


@pytest.mark.parametrize("x,match", [
    (np.ones(6), r"shape \(5,\) or \(B, 5\).*got shape \(6,\)"),
    (np.ones((2, 4)), r"d_in = 5\), got shape \(2, 4\)"),
    (np.ones((1, 2, 5)), r"got shape \(1, 2, 5\)"),
    (np.array([1.0, 2, np.nan, 0, 0]), "finite"), (["a"] * 5, "dtype")])
def test_bad_input_vectors(keyed, x, match):
    lt = fc.LinearTransform(keyed.ctx, np.ones((3, 5)))
    with pytest.raises(fg.ParameterError, match=match):
        lt.encode_input(x)


def test_apply_refuses_before_any_work(keyed):
    lt = _transform(keyed.ctx, (600, 600, 1, "padded"))
    cts = keyed.encrypt(lt.encode_input(np.ones((1, 600))))
    with counting_key_switches() as counts:
        with pytest.raises(fg.ParameterError, match=r"takes 2 input ciphertext\(s\).*got 1"):
            lt.apply(keyed.ev, cts[:1])
        with pytest.raises(fg.ParameterError, match="takes 2.*got Plaintext"):
            lt.apply(keyed.ev, lt.encode_input(np.ones(600))[0])
        with pytest.raises(fg.LevelError, match="level 0"):
            lt.apply(keyed.ev, [keyed.ev.drop_level(c, 0) for c in cts])
        with pytest.raises(fg.ParameterError, match="level 1 batch 1 vs level 2"):
            lt.apply(keyed.ev, [cts[0], keyed.ev.drop_level(cts[1], 1)])
        with pytest.raises(fg.ScaleMismatchError, match="scales"):
            lt.apply(keyed.ev, [cts[0], keyed.ev.mul_by_scale(cts[1], 2.0)])
        few = keyed.kg.evaluation_keys(rotations=lt.rotations[:-3])
        with pytest.raises(fg.KeyMissingError, match=str(lt.rotations[-3:])[1:-1]):
            lt.apply(fg.Evaluator(keyed.ctx, few), cts)
        with pytest.raises(fg.KeyMissingError, match="missing"):
            lt.apply(fg.Evaluator(keyed.ctx), cts)
    assert counts == {"decompose": 0, "key_switch": 0, "mod_down": 0}


@pytest.mark.skipif("cuda" not in BACKENDS, reason="no CUDA backend (GPU or emulator)")
def test_evaluator_on_another_backend():
    params = ci_params()
    keyed = Keyed(params, "cuda", [1])
    lt = fc.LinearTransform(fg.Context(params, "cpu"), np.ones((2, 2)))
    ct = keyed.encrypt(keyed.encoder.encode(np.ones(2)))
    with pytest.raises(fg.ContextMismatchError, match="backend"):
        lt.apply(keyed.ev, ct)


def test_bad_decode_output(keyed):
    lt = _transform(keyed.ctx, (600, 600, 1, "padded"))
    with pytest.raises(fg.ParameterError, match=r"needs 2 slot array\(s\).*got 1"):
        lt.decode_output(np.zeros(512))
    with pytest.raises(fg.ParameterError, match=r"\(512,\) or \(batch, 512\).*\(100,\)"):
        lt.decode_output([np.zeros(512), np.zeros(100)])
    with pytest.raises(fg.ParameterError, match="count"):
        lt.decode_output([np.zeros(512)] * 2, count=2)


# ---------------------------------------------------------------- sums
@pytest.mark.parametrize("n,stride,replicate", SUM_CASES)
def test_inner_sum(keyed, n, stride, replicate):
    ctx, sub = keyed.ctx, keyed
    steps = fc.inner_sum_rotations(n, replicate, stride, ctx.slots)
    cyclic = n * stride == ctx.slots
    assert len(steps) == (1 if cyclic or not replicate else 2) * int(math.log2(n))
    z = np.random.default_rng(n).uniform(-1, 1, ctx.slots)
    ct = sub.encrypt(sub.encoder.encode(z))
    with counting_key_switches() as counts:
        out = fc.inner_sum(sub.ev, ct, n, replicate=replicate, stride=stride)
    assert counts["key_switch"] == len(steps)
    assert out.level == ct.level - fc.inner_sum_depth(n, replicate, stride, ctx.slots)
    got = sub.decrypt(out).real
    want = fc.inner_sum_plain(z, n, replicate, stride)
    blocks = z.reshape(-1, n, stride).sum(axis=1)
    first = np.zeros((ctx.slots // (n * stride), n, stride), dtype=bool)
    first[:, 0] = True
    first = first.ravel()
    np.testing.assert_allclose(want[first], blocks.ravel(), atol=1e-12)
    if replicate:
        np.testing.assert_allclose(want, np.repeat(blocks, n, axis=0).ravel(), atol=1e-12)
        np.testing.assert_allclose(got, want, atol=2 ** -20 * n)
    else:
        np.testing.assert_allclose(got[first], want[first], atol=2 ** -20 * n)


def test_dot_and_replicate(keyed):
    ctx, ev = keyed.ctx, keyed.ev
    rng = np.random.default_rng(11)
    a, b = rng.uniform(-1, 1, (2, ctx.slots))
    ca, cb = keyed.encrypt(keyed.encoder.encode(a)), keyed.encrypt(keyed.encoder.encode(b))
    got = keyed.decrypt(fc.dot(ev, ca, cb, 8, replicate=False)).real
    np.testing.assert_allclose(got[::8], (a * b).reshape(-1, 8).sum(axis=1), atol=2 ** -20)
    x = np.zeros(ctx.slots)
    x[:3] = [1.0, -2.0, 0.5]
    steps = fc.replicate_rotations(8, 3, length=6)
    assert steps == [-3]
    sub = keyed
    out = fc.replicate(sub.ev, sub.encrypt(sub.encoder.encode(x)), 8, 3, length=6)
    np.testing.assert_allclose(sub.decrypt(out).real[:8], [1, -2, 0.5, 1, -2, 0.5, 0, 0],
                               atol=2 ** -25)
    y = np.zeros(ctx.slots)
    y[:4] = [1.0, 2.0, 3.0, 4.0]
    full = fc.replicate(sub.ev, sub.encrypt(sub.encoder.encode(y)), ctx.slots, 4)
    np.testing.assert_allclose(sub.decrypt(full).real, np.tile(y[:4], ctx.slots // 4),
                               atol=2 ** -25)
    np.testing.assert_allclose(fc.replicate_plain(y, ctx.slots, 4), np.tile(y[:4], 128))


def test_sums_typed_errors(keyed):
    ctx, ev = keyed.ctx, keyed.ev
    ct = keyed.encrypt(keyed.encoder.encode(np.ones(4)))
    with pytest.raises(fg.ParameterError, match="power of two"):
        fc.inner_sum(ev, ct, 6)
    with pytest.raises(fg.ParameterError, match="divide the slot count 512"):
        fc.inner_sum(ev, ct, 256, stride=4)
    with pytest.raises(fg.KeyMissingError, match=r"\[64, 128, 256\] \(missing\)"):
        fc.inner_sum(fg.Evaluator(ctx, keyed.kg.evaluation_keys(rotations=[1, 2, 4, 8, 16,
                                                                           32])), ct, 512)
    with pytest.raises(fg.LevelError, match="level 0"):
        fc.inner_sum(ev, ev.drop_level(ct, 0), 8)
    with pytest.raises(fg.LevelError, match="dot needs 2 levels"):
        fc.dot(ev, ev.drop_level(ct, 1), ct, 8)
    with pytest.raises(fg.ParameterError, match="more than the block of n = 8"):
        fc.replicate_rotations(8, 3)
    with pytest.raises(fg.ParameterError, match="Ciphertext"):
        fc.replicate(ev, "ct", 8, 2)


# ---------------------------------------------------------------- real sizes (-m slow)
SLOW_SHAPES = [(384, 384, 1, False), (1536, 384, 1, False), (384, 1536, 1, False),
               (16, 384, 1, False), (768, 768, 1, False), (40000, 8, 1, False),
               (768, 768, 16, False), (768, 768, 32, True)]


@pytest.mark.slow
@pytest.mark.parametrize("shape", SLOW_SHAPES,
                         ids=lambda s: f"{s[0]}x{s[1]}-v{s[2]}{'-complex' if s[3] else ''}")
def test_real_sizes_n15(shape, capsys):
    """N = 2^15 (preset N15): random W, b, x in [-1, 1]; prints the precision in bits."""
    d_out, d_in, vectors, complex_packing = shape
    params = fg.Parameters.preset("N15")
    W, b = _weights(d_out, d_in, seed=d_out + d_in)
    kw = dict(vectors=vectors, complex_packing=complex_packing)
    lt = fc.LinearTransform(fg.Context(params, "cpu"), W, b, **kw)
    keyed = Keyed(params, "cpu", lt.rotations)
    lt = fc.LinearTransform(keyed.ctx, W, b, **kw)
    x = np.random.default_rng(d_in).uniform(-1, 1, (2 * vectors, d_in))
    bits = _error_bits(lt, x, _run(keyed, lt, x)[2])
    with capsys.disabled():
        print(f"\n{lt}: {bits:.1f} bits (bound {BOUND_BITS})")
    assert bits >= BOUND_BITS
