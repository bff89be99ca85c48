"""The wire format (fhe_gpu.serialize): bit-exact round trips on every backend, seeded
parts, validation errors, sizes at N=2^14 / 2^16 and parsing speed against a CPU rescale."""
from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest

import fhe_gpu as fg
from conftest import BACKENDS, backend_for, make_world, small_params
from fhe_gpu.rlwe import wire_hook
from fhe_gpu.rlwe.sampling import uniform_poly
from fhe_gpu.serialize import _codec
from fhe_gpu.serialize.format import HEADER

TENSOR_AT = HEADER.size          # offset of the Plaintext / Ciphertext header fields


def host(ctx, a):
    return np.asarray(ctx.backend.to_host(a))


def same(ctx_a, a, ctx_b, b) -> bool:
    x, y = host(ctx_a, a), host(ctx_b, b)
    return x.dtype == y.dtype == np.uint64 and x.shape == y.shape and np.array_equal(x, y)


def objects(w):
    """(name, object, class) of every serializable kind of a world."""
    sym = fg.Encryptor(w.ctx, w.sk).encrypt(w.encoder.encode(w.uniform(3, w.params.slots)))
    ct = w.encrypt(w.uniform())
    return [
        ("plaintext", w.encoder.encode(w.uniform(2, w.params.slots)), fg.Plaintext),
        ("ciphertext", ct, fg.Ciphertext),
        ("symmetric", sym, fg.Ciphertext),
        ("product", w.ev.mul(ct, ct), fg.Ciphertext),
        ("dropped", w.ev.drop_level(sym, 0), fg.Ciphertext),
        ("public_key", w.pk, fg.PublicKey),
        ("evaluation_keys", w.evk, fg.EvaluationKeys),
    ]


def assert_equal_objects(ctx_a, a, ctx_b, b):
    assert type(a) is type(b)
    if isinstance(a, fg.EvaluationKeys):
        assert sorted(a.galois) == sorted(b.galois)
        assert same(ctx_a, a.relin.data, ctx_b, b.relin.data)
        for g in a.galois:
            assert same(ctx_a, a.galois[g].data, ctx_b, b.galois[g].data)
        return
    assert same(ctx_a, a.data, ctx_b, b.data)
    if hasattr(a, "level"):
        assert (a.level, a.scale) == (b.level, b.scale)


# ------------------------------------------------------------------ round trips
def test_round_trip_every_kind(world):
    for name, obj, cls in objects(world):
        data = obj.to_bytes()
        back = cls.from_bytes(data, world.ctx)
        assert_equal_objects(world.ctx, obj, world.ctx, back)
        assert back.to_bytes() == data, name
        assert type(fg.serialize.loads(data, world.ctx)) is cls


def test_round_trip_secret_key_and_parameters(world):
    data = world.sk.to_bytes(secret=True)
    back = fg.SecretKey.from_bytes(data, world.ctx)
    assert back.coeffs.dtype == np.int8 and np.array_equal(back.coeffs, world.sk.coeffs)
    assert len(data) == HEADER.size + 1 + math.ceil(world.ctx.n / 4)
    params = fg.Parameters.from_bytes(world.params.to_bytes())
    assert params == world.params and params.q_primes == world.params.q_primes
    assert (params.q_bits, params.p_bits, params.dnum, params.security) == \
        (world.params.q_bits, world.params.p_bits, world.params.dnum, world.params.security)


@pytest.mark.parametrize("name", sorted(fg.Parameters.presets()))
def test_presets_round_trip(name):
    for security in (128, None):
        p = fg.Parameters.preset(name, security=security)
        back = fg.Parameters.from_bytes(p.to_bytes())
        assert back == p and back.security == p.security and back.p_primes == p.p_primes


@pytest.mark.parametrize("reader", BACKENDS)
def test_written_on_cpu_read_on_every_backend(reader):
    w = make_world(small_params("cpu"), "cpu")
    ctx = fg.Context(w.params, backend=backend_for(reader))
    for name, obj, cls in objects(w):
        back = cls.from_bytes(obj.to_bytes(), ctx)
        assert back.context is ctx, name
        assert_equal_objects(w.ctx, obj, ctx, back)


def test_read_result_decrypts(world):
    values = world.uniform()
    ct = fg.Ciphertext.from_bytes(world.encrypt(values).to_bytes(), world.ctx)
    assert np.abs(world.decrypt(world.ev.mul(ct, ct)) - values ** 2).max() < 1e-3


# ------------------------------------------------------------------ seeded parts
def test_symmetric_ciphertext_is_seeded(world):
    sym = fg.Encryptor(world.ctx, world.sk).encrypt(world.encoder.encode(world.uniform(3, 8)))
    primes = world.ctx.q_primes[: sym.level + 1]
    expanded = uniform_poly(sym.seed, b"ct", primes, world.ctx.n, batch=3)
    assert np.array_equal(expanded, host(world.ctx, sym.data[:, 1]))
    full = fg.Ciphertext(sym.data, sym.level, sym.scale, world.ctx)     # no seed
    body = len(full.to_bytes()) - HEADER.size - 16          # c0 and c1, packed
    assert len(sym.to_bytes()) == HEADER.size + 16 + body // 2 + 32
    back = fg.Ciphertext.from_bytes(sym.to_bytes(), world.ctx)
    assert back.seed == sym.seed


def test_keys_are_seeded(world):
    pk_full = fg.PublicKey(world.pk.data, world.ctx)
    body = len(pk_full.to_bytes()) - HEADER.size - 3        # b and a, packed
    assert len(world.pk.to_bytes()) == HEADER.size + 3 + body // 2 + 32
    relin = world.evk.relin
    a = uniform_poly(relin.seed, b"ksk", world.ctx.q_primes + world.ctx.p_primes,
                     world.ctx.n, batch=relin.data.shape[0])
    assert np.array_equal(a, host(world.ctx, relin.data[:, 1]))
    unseeded = fg.EvaluationKeys(world.ctx, fg.rlwe.SwitchingKey(relin.data, world.ctx, None))
    assert len(world.evk.to_bytes()) < len(world.evk.galois) * len(unseeded.to_bytes())
    back = fg.EvaluationKeys.from_bytes(unseeded.to_bytes(), world.ctx)
    assert same(world.ctx, back.relin.data, world.ctx, relin.data) and back.relin.seed is None


def test_wrong_seed_is_not_trusted(world):
    sym = fg.Encryptor(world.ctx, world.sk).encrypt(world.encoder.encode([0.5]))
    forged = fg.Ciphertext(sym.data, sym.level, sym.scale, world.ctx, seed=b"\x07" * 32)
    back = fg.Ciphertext.from_bytes(forged.to_bytes(), world.ctx)
    assert same(world.ctx, back.data, world.ctx, sym.data) and back.seed is None


# ------------------------------------------------------------------ validation
@pytest.fixture(scope="module")
def w():
    return make_world(small_params("cpu"), "cpu")


def test_other_parameters_are_refused(w):
    other = make_world(fg.Parameters(log_n=10, q_bits=[50, 30, 30], p_bits=[60],
                                     scale_bits=30, security=None), "cpu")
    data = other.encrypt(other.uniform()).to_bytes()
    with pytest.raises(fg.ContextMismatchError) as err:
        fg.Ciphertext.from_bytes(data, w.ctx)
    assert other.params.fingerprint.hex() in str(err.value)
    assert w.params.fingerprint.hex() in str(err.value)
    for obj in (other.pk, other.evk):
        with pytest.raises(fg.ContextMismatchError):
            type(obj).from_bytes(obj.to_bytes(), w.ctx)


def _patched(data: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d[:-1], "bytes"),
    (lambda d: d + b"\0", "declares"),
    (lambda d: d[:10], "truncated"),
    (lambda d: b"XXXX" + d[4:], "magic"),
    (lambda d: _patched(d, 4, "<H", 99), "version 99"),
    (lambda d: _patched(d, 6, "<B", 2), "plaintext, not a ciphertext"),
    (lambda d: _patched(d, 6, "<B", 77), "unknown kind 77"),
    (lambda d: _patched(d, 7, "<B", 0x80), "flags"),
    (lambda d: _patched(d, TENSOR_AT, "<H", 40), "level 40"),
    (lambda d: _patched(d, TENSOR_AT + 2, "<d", float("nan")), "scale nan"),
    (lambda d: _patched(d, TENSOR_AT + 2, "<d", -1.0), "scale -1.0"),
    (lambda d: _patched(d, TENSOR_AT + 10, "<I", 2 ** 32 - 1), "declares"),
    (lambda d: _patched(d, TENSOR_AT + 14, "<B", 9), "9 components"),
    (lambda d: _patched(d, TENSOR_AT + 15, "<B", 11), "log_n=11"),
])
def test_malformed_ciphertexts(w, mutate, needle):
    data = w.encrypt(w.uniform()).to_bytes()
    with pytest.raises(fg.SerializationError, match=needle):
        fg.Ciphertext.from_bytes(mutate(data), w.ctx)


def test_coefficient_not_below_modulus(w):
    data = bytearray(w.encrypt(w.uniform()).to_bytes())
    body = HEADER.size + 16
    data[body:body + 8] = b"\xff" * 8          # first coefficient of limb 0 = 2^w - 1 >= q_0
    with pytest.raises(fg.SerializationError, match="not below its modulus"):
        fg.Ciphertext.from_bytes(bytes(data), w.ctx)


def test_writer_refuses_unreduced_coefficients(w):
    ct = w.encrypt(w.uniform())
    data = host(w.ctx, ct.data).copy()
    data[0, 1, 2, 5] = w.ctx.q_primes[2]
    q = w.ctx.q_primes[2]                       # row 6 = component 1, limb 2
    with pytest.raises(fg.SerializationError, match=f"row 6: {q} is not below its modulus {q}"):
        fg.Ciphertext(data, ct.level, ct.scale, w.ctx).to_bytes()


def test_max_bytes_bounds_data_and_allocation(w):
    data = w.encrypt(w.uniform(4, 8)).to_bytes()
    with pytest.raises(fg.SerializationError, match=f"{len(data)} bytes.*max_bytes=1000"):
        fg.Ciphertext.from_bytes(data, w.ctx, max_bytes=1000)
    with pytest.raises(fg.SerializationError, match="would allocate .* max_bytes"):
        fg.Ciphertext.from_bytes(data, w.ctx, max_bytes=len(data) + 10)
    fg.Ciphertext.from_bytes(data, w.ctx, max_bytes=4 * len(data) + (1 << 17))
    for bad in (0, -5, 1.5, "big"):
        with pytest.raises(fg.SerializationError, match="max_bytes"):
            fg.Ciphertext.from_bytes(data, w.ctx, max_bytes=bad)


def test_evaluation_keys_counts_are_bounded(w):
    data = w.evk.to_bytes()
    with pytest.raises(fg.SerializationError, match="Galois keys"):
        fg.EvaluationKeys.from_bytes(_patched(data, HEADER.size + 1, "<I", 2 ** 31), w.ctx)
    with pytest.raises(fg.SerializationError, match="relinearization flag"):
        fg.EvaluationKeys.from_bytes(_patched(data, HEADER.size, "<B", 3), w.ctx)


def test_not_bytes_and_wrong_context(w):
    data = w.pk.to_bytes()
    for bad in ("text", 12, None, [1, 2], np.zeros((2, 2), np.uint16)[:, :1]):
        with pytest.raises(fg.SerializationError):
            fg.PublicKey.from_bytes(bad, w.ctx)
    assert fg.PublicKey.from_bytes(memoryview(data), w.ctx).data.shape == w.pk.data.shape
    assert fg.PublicKey.from_bytes(bytearray(data), w.ctx).data.shape == w.pk.data.shape
    with pytest.raises(fg.ParameterError, match="Context"):
        fg.PublicKey.from_bytes(data, w.params)
    with pytest.raises(fg.SerializationError, match="Parameters.from_bytes"):
        fg.serialize.loads(w.params.to_bytes(), w.ctx)


def test_peek_and_dumps(w):
    data = fg.serialize.dumps(w.pk)
    assert data == w.pk.to_bytes() and fg.serialize.dumps(w.params) == w.params.to_bytes()
    head = fg.serialize.peek(data)
    assert head == {"kind": "public key", "version": 1, "flags": 1,
                    "fingerprint": w.params.fingerprint}
    with pytest.raises(fg.SerializationError, match="magic"):
        fg.serialize.peek(b"PK\x03\x04" + data[4:])


def test_secret_key_needs_explicit_consent(w):
    for call in (lambda: w.sk.to_bytes(), lambda: w.sk.to_bytes(secret=1)):
        with pytest.raises(fg.SerializationError, match="secret=True"):
            call()


def test_parameters_validation(w):
    data = w.params.to_bytes()
    with pytest.raises(fg.ContextMismatchError, match="fingerprint"):
        fg.Parameters.from_bytes(data[:8] + bytes(32) + data[40:])
    with pytest.raises(fg.SerializationError, match="log_n=30"):
        fg.Parameters.from_bytes(_patched(data, HEADER.size, "<B", 30))
    with pytest.raises(fg.SerializationError, match="exceeds the 128-bit bound"):
        fg.Parameters.from_bytes(_patched(data, HEADER.size + 5, "<H", 128))
    with pytest.raises(fg.SerializationError, match="primes"):
        fg.Parameters.from_bytes(_patched(data, HEADER.size + 7, "<H", 1000))
    with pytest.raises(fg.SerializationError, match="holds a ciphertext"):
        fg.Parameters.from_bytes(w.encrypt([1.0]).to_bytes())


def test_unregistered_codec_is_a_clear_error(w, monkeypatch):
    monkeypatch.setattr(wire_hook, "_CODEC", None)
    with pytest.raises(fg.SerializationError, match="wire format not loaded"):
        w.pk.to_bytes()


# ------------------------------------------------------------------ codec
@pytest.mark.parametrize("n", [1, 3, 4, 64, 1000])
def test_codec_round_trip_all_widths(n):
    rng = np.random.default_rng(n)
    widths = np.arange(1, 65, dtype=np.uint8)
    masks = np.array([(1 << int(b)) - 1 for b in np.tile(widths, 2)], dtype=np.uint64)
    rows = rng.integers(0, 2 ** 64 - 1, (128, n), dtype=np.uint64, endpoint=True) & masks[:, None]
    size = _codec.packed_size(widths, 128, n)
    assert size == 2 * sum((n * int(b) + 7) // 8 for b in widths)
    buf = bytearray(size + 3)
    assert _codec.pack_into(buf, 3, rows, widths) == size + 3
    out = np.empty_like(rows)
    assert _codec.unpack_into(bytes(buf), 3, widths, np.full(64, 2 ** 64 - 1, np.uint64),
                              out) == size + 3
    assert np.array_equal(out, rows)
    with pytest.raises(fg.SerializationError, match="truncated"):
        _codec.unpack_into(bytes(buf[:-1]), 3, widths, np.full(64, 2 ** 64 - 1, np.uint64), out)


def test_codec_pack_unpack_bytes():
    widths, moduli = np.array([3, 61], np.uint8), np.array([5, 2 ** 61 - 1], np.uint64)
    rows = np.array([[0, 1, 4], [2 ** 61 - 2, 7, 0], [3, 3, 3], [1, 2, 3]], dtype=np.uint64)
    data = _codec.pack(rows, widths)
    assert len(data) == 2 * (2 + 23)
    assert np.array_equal(_codec.unpack(data, widths, moduli, 4, 3), rows)
    with pytest.raises(fg.SerializationError, match="got 49"):
        _codec.unpack(data[:-1], widths, moduli, 4, 3)
    with pytest.raises(fg.SerializationError, match="row 0 is 4, not below its modulus 4"):
        _codec.unpack(data, widths, np.array([4, 2 ** 61 - 1], np.uint64), 4, 3)


def test_codec_rejects_bad_input():
    rows = np.full((2, 8), 5, dtype=np.uint64)
    with pytest.raises(fg.SerializationError, match="5 is wider than 2 bits"):
        _codec.pack_into(bytearray(100), 0, rows, np.array([2], np.uint8))
    with pytest.raises(fg.SerializationError, match="5 is not below its modulus 5"):
        _codec.pack_into(bytearray(100), 0, rows, np.array([3], np.uint8),
                         np.array([5], np.uint64))
    with pytest.raises(fg.SerializationError, match="needs 1..64"):
        _codec.packed_size(np.array([0], np.uint8), 1, 8)
    with pytest.raises(fg.SerializationError, match="cannot hold"):
        _codec.pack_into(bytearray(3), 0, rows, np.array([8], np.uint8))
    with pytest.raises(fg.SerializationError, match="at least one"):
        _codec.packed_size(np.array([], np.uint8), 2, 8)
    assert _codec.packed_size(np.array([8, 16, 24], np.uint8), 5, 8) == 8 * (6 + 3)


# ------------------------------------------------------------------ sizes and speed
def test_sizes_n14():
    params = fg.Parameters.preset("N14")
    ctx = fg.Context(params, backend="cpu")
    kg = fg.KeyGenerator(ctx, seed=b"\x02" * 32)
    pt = fg.Encoder(ctx).encode(np.linspace(-1, 1, params.slots))
    sym = len(fg.Encryptor(ctx, kg.secret_key).encrypt(pt).to_bytes())
    pub = len(fg.Encryptor(ctx, kg.public_key()).encrypt(pt).to_bytes())
    print(f"\nN=2^14, 7 limbs: symmetric ciphertext {sym:,} B, public-key ciphertext {pub:,} B")
    assert sym <= 650_000 and pub <= 1_300_000


def test_relinearization_key_size_n16():
    ctx = fg.Context(fg.Parameters.preset("N16"), backend="cpu")
    relin = fg.KeyGenerator(ctx, seed=b"\x03" * 32).relin_key()
    size = len(fg.EvaluationKeys(ctx, relin).to_bytes())
    print(f"\nN=2^16, 28+8 limbs, dnum 3: relinearization key {size:,} B")
    assert size <= 45_000_000


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def test_parsing_is_faster_than_a_cpu_rescale():
    ctx = fg.Context(fg.Parameters.preset("N16"), backend="cpu")
    q = np.array(ctx.q_primes, dtype=np.uint64)[:, None]
    data = np.random.default_rng(5).integers(0, 2 ** 63, (1, 2, 28, ctx.n), dtype=np.uint64) % q
    ct = fg.Ciphertext(data, 27, 2.0 ** 40, ctx)
    ev, blob = fg.Evaluator(ctx), ct.to_bytes()
    for _ in range(2):
        ev.rescale(ct)
        fg.Ciphertext.from_bytes(blob, ctx)
    rescale = _median_time(lambda: ev.rescale(ct), 7)
    load = _median_time(lambda: fg.Ciphertext.from_bytes(blob, ctx), 7)
    print(f"\nN=2^16, 28 limbs, batch 1 ({len(blob):,} B): from_bytes {load * 1e3:.1f} ms, "
          f"cpu rescale {rescale * 1e3:.1f} ms")
    assert load < rescale
