"""Wire format of BootstrapKeys (kind 7, see fhe_gpu.serialize) on the toy-N10 preset.

* Round trip: every key array bit-identical, raise weight, key id and type kept; a
  Bootstrapper on the loaded keys bootstraps to the same bytes as on the originals.
* Layout: the kind-7 blob is the EvaluationKeys blob with the raise weight and the two
  encapsulation records inserted after the header; seeded, so about 0.4x the memory.
* No secret on the wire: neither the main secret nor the ephemeral sparse one, in any of
  the forms a careless writer could have used (packed, int8, NTT rows).
* Malformed bytes (truncated, other kind, bad header fields, random mutations) raise only
  SerializationError / ContextMismatchError; max_bytes bounds data and allocation.
"""
from __future__ import annotations

import random
import struct
import tracemalloc

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu import circuits as fc
from fhe_gpu.rlwe.bootkeys import BootstrapKeys
from fhe_gpu.rlwe.sampling import SEED_BYTES, to_rns
from fhe_gpu.serialize.format import (FIXED_OVERHEAD, HEADER, Layout, Writer,
                                      expansion_scratch)
from fhe_gpu.serialize.keys import BOOT_KEYS, EVAL_KEYS, KEY_RECORD, digits

KIND_AT = 6                      # offset of the kind byte in the common header
BOOT_AT = HEADER.size            # raise_weight (u32), then encapsulated (u8)
ALLOWED = (fg.SerializationError, fg.ContextMismatchError)


class Keys:
    """toy-N10 bootstrapping keys, with a copy of the ephemeral secret kept for the tests
    (key generation zeroes it once the two encapsulation keys are made)."""

    def __init__(self):
        self.bp = fc.BootstrapParameters.preset("toy-N10")
        self.ctx = fg.Context(self.bp.params, backend="cpu")
        self.kg = fg.KeyGenerator(self.ctx, seed=b"k" * 32)
        self.ephemeral = []
        draw = self.kg.sparse_secret

        def spy(weight):
            eph = draw(weight)
            self.ephemeral.append(eph.coeffs.copy())
            return eph

        self.kg.sparse_secret = spy
        self.btk = self.kg.bootstrap_keys(self.bp)
        self.data = self.btk.to_bytes()

    def arrays(self, keys) -> dict:
        """Every switching key of ``keys`` by name, as host arrays."""
        out = {"relin": keys.relin.data, "to_sparse": keys.to_sparse.data,
               "from_sparse": keys.from_sparse.data}
        out.update({f"galois {g}": k.data for g, k in keys.galois.items()})
        return {name: np.asarray(self.ctx.backend.to_host(a)) for name, a in out.items()}

    @property
    def record_bytes(self) -> int:
        """Bytes of one seeded switching-key record (header, b polynomials, seed)."""
        layout = Layout(self.ctx.q_primes + self.ctx.p_primes, self.ctx.n)
        return KEY_RECORD.size + digits(self.ctx) * layout.nbytes + SEED_BYTES

    def load(self, data, ctx=None, max_bytes=None):
        return BootstrapKeys.from_bytes(data, ctx or self.ctx, max_bytes=max_bytes)


@pytest.fixture(scope="module")
def keys():
    return Keys()


def _patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


# ------------------------------------------------------------------ round trip
def test_round_trip_is_bit_exact(keys):
    loaded = keys.load(keys.data)
    assert type(loaded) is BootstrapKeys
    assert loaded.raise_weight == keys.btk.raise_weight == 32
    assert loaded.key_id == keys.btk.key_id and loaded.encapsulated
    want, got = keys.arrays(keys.btk), keys.arrays(loaded)
    assert set(got) == set(want) and len(want) == 3 + len(keys.btk.galois)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert np.array_equal(got[name], want[name]), name
    assert loaded.to_sparse.seed == keys.btk.to_sparse.seed
    assert loaded.to_bytes() == keys.data
    assert type(fg.serialize.loads(keys.data, keys.ctx)) is BootstrapKeys
    assert fg.serialize.peek(keys.data)["kind"] == "bootstrap keys"


def test_loaded_keys_bootstrap_to_the_same_bytes(keys):
    ctx = keys.ctx
    x = np.random.default_rng(5).uniform(-1, 1, ctx.slots) * 0.5
    ct = fg.Encryptor(ctx, keys.kg.public_key()).encrypt(fg.Encoder(ctx).encode(x, level=0))
    want = fc.Bootstrapper(ctx, keys.btk, keys.bp).bootstrap(ct)
    got = fc.Bootstrapper(ctx, keys.load(keys.data), keys.bp).bootstrap(ct)
    assert got.level == want.level and got.scale == want.scale
    assert np.array_equal(np.asarray(got.data), np.asarray(want.data))
    out = fg.Encoder(ctx).decode(fg.Decryptor(ctx, keys.kg.secret_key).decrypt(got))
    assert fg.precision_stats(x, out.reshape(-1)[: ctx.slots]).mean > 15


def test_wire_is_seeded_and_evaluation_keys_body_unchanged(keys):
    memory = sum(a.nbytes for a in keys.arrays(keys.btk).values())
    assert len(keys.data) < 0.6 * memory
    btk = keys.btk
    plain = fg.EvaluationKeys(keys.ctx, btk.relin, btk.galois, btk.key_id).to_bytes()
    start = BOOT_AT + BOOT_KEYS.size + 2 * keys.record_bytes
    assert keys.data[start:] == plain[HEADER.size:]
    assert keys.data[:KIND_AT] + keys.data[KIND_AT + 1:HEADER.size] == \
        plain[:KIND_AT] + plain[KIND_AT + 1:HEADER.size]
    assert (plain[KIND_AT], keys.data[KIND_AT]) == (5, 7)
    assert BOOT_KEYS.unpack_from(keys.data, BOOT_AT) == (32, 1)
    back = fg.EvaluationKeys.from_bytes(plain, keys.ctx)
    assert type(back) is fg.EvaluationKeys and back.to_bytes() == plain


def test_without_encapsulation_and_unseeded_keys(keys):
    btk, ctx = keys.btk, keys.ctx
    plain = BootstrapKeys(ctx, btk.relin, btk.galois, btk.key_id, raise_weight=192)
    back = keys.load(plain.to_bytes())
    assert back.raise_weight == 192 and not back.encapsulated and back.from_sparse is None
    full = fg.rlwe.SwitchingKey(btk.to_sparse.data, ctx, None)
    odd = BootstrapKeys(ctx, None, {}, btk.key_id, raise_weight=0, to_sparse=full,
                        from_sparse=btk.from_sparse)
    back = keys.load(odd.to_bytes())
    assert back.relin is None and back.galois == {} and back.to_sparse.seed is None
    assert np.array_equal(back.to_sparse.data, btk.to_sparse.data)
    assert np.array_equal(back.from_sparse.data, btk.from_sparse.data)


def test_inconsistent_keys_are_refused_on_write(keys):
    btk, ctx = keys.btk, keys.ctx
    half = BootstrapKeys(ctx, btk.relin, {}, btk.key_id, raise_weight=32,
                         to_sparse=btk.to_sparse)
    with pytest.raises(fg.SerializationError, match="both"):
        half.to_bytes()
    for weight in (-1, ctx.n + 1):
        bad = BootstrapKeys(ctx, btk.relin, {}, btk.key_id, raise_weight=weight)
        with pytest.raises(fg.SerializationError, match="raise_weight"):
            bad.to_bytes()


# ------------------------------------------------------------------ no secret
def _packed_rows(values, primes, n: int) -> list[bytes]:
    """Each limb of ``values`` (limbs, n) packed as the wire packs a polynomial row."""
    rows = []
    for i, q in enumerate(primes):
        w = Writer()
        w.put_polys(np.ascontiguousarray(values[i:i + 1], dtype=np.uint64), Layout((q,), n))
        rows.append(w.getvalue())
    return rows


def _secret_forms(keys, coeffs) -> list[bytes]:
    """Byte strings any leak of the ternary secret ``coeffs`` would put on the wire."""
    ctx = keys.ctx
    qp = ctx.q_primes + ctx.p_primes
    sk = fg.SecretKey(coeffs, ctx, keys.kg.key_id)
    ntt = np.asarray(ctx.backend.to_host(sk.ntt()))
    forms = [sk.to_bytes(secret=True)[HEADER.size + 1:],
             np.asarray(coeffs, dtype=np.int8).tobytes(), ntt[0].tobytes()]
    forms += _packed_rows(ntt, qp, ctx.n)[:4]
    forms += _packed_rows(to_rns(np.asarray(coeffs), qp), qp, ctx.n)[:2]
    return forms


def test_no_secret_on_the_wire(keys):
    assert len(keys.ephemeral) == 1
    eph = keys.ephemeral[0]
    assert np.count_nonzero(eph) == 32 and not np.array_equal(eph, keys.kg.secret_key.coeffs)
    assert all(key.context is keys.ctx for key in (keys.btk.to_sparse, keys.btk.from_sparse))
    assert not any(isinstance(v, fg.SecretKey) for v in vars(keys.btk).values())
    # positive control: a packed row of a key's b is found the same way
    ctx = keys.ctx
    b_row = np.asarray(ctx.backend.to_host(keys.btk.to_sparse.data[0, 0]))
    assert _packed_rows(b_row, ctx.q_primes + ctx.p_primes, ctx.n)[1] in keys.data
    for name, coeffs in (("main", keys.kg.secret_key.coeffs), ("ephemeral", eph)):
        for i, form in enumerate(_secret_forms(keys, coeffs)):
            assert len(form) >= ctx.n // 4
            assert form not in keys.data, f"{name} secret, form {i}"


# ------------------------------------------------------------------ malformed bytes
def test_truncated_and_extended_bytes_are_refused(keys):
    data = keys.data
    first = BOOT_AT + BOOT_KEYS.size
    cuts = [0, 3, KIND_AT, HEADER.size - 1, HEADER.size, BOOT_AT + 2, first,
            first + KEY_RECORD.size - 1, first + keys.record_bytes - 1,
            first + keys.record_bytes + 7, len(data) // 2, len(data) - SEED_BYTES,
            len(data) - 1]
    for cut in cuts:
        with pytest.raises(fg.SerializationError):
            keys.load(data[:cut])
        with pytest.raises(fg.SerializationError):
            fg.serialize.loads(data[:cut], keys.ctx)
    with pytest.raises(fg.SerializationError, match="declares"):
        keys.load(data + b"\x00")


def test_kind_byte_is_checked(keys):
    data = keys.data
    with pytest.raises(fg.SerializationError, match="EvaluationKeys.from_bytes"):
        keys.load(_patched(data, KIND_AT, "<B", 5))
    with pytest.raises(fg.SerializationError, match="BootstrapKeys.from_bytes"):
        fg.EvaluationKeys.from_bytes(data, keys.ctx)
    for kind in (0, 1, 3, 4, 6, 8, 0x87, 255):
        with pytest.raises(fg.SerializationError, match="holds"):
            keys.load(_patched(data, KIND_AT, "<B", kind))
    for kind in range(256):
        if kind != 7:
            with pytest.raises(fg.SerializationError):
                fg.serialize.loads(_patched(data, KIND_AT, "<B", kind), keys.ctx)
    with pytest.raises(fg.SerializationError, match="flags"):
        keys.load(_patched(data, KIND_AT + 1, "<B", 1))


def test_header_fields_are_checked(keys):
    data, ctx = keys.data, keys.ctx
    cases = [(BOOT_AT, "<I", ctx.n + 1, "raise weight"),
             (BOOT_AT, "<I", 2 ** 32 - 1, "raise weight"),
             (BOOT_AT + 4, "<B", 2, "encapsulation flag"),
             (BOOT_AT + 5, "<B", 3, "flags"),
             (BOOT_AT + 6, "<B", 11, "log_n"),
             (BOOT_AT + 7, "<H", 7, "digits"),
             (HEADER.size - 16, "<16s", bytes(16), "key id 0")]
    for offset, fmt, value, needle in cases:
        with pytest.raises(fg.SerializationError, match=needle):
            keys.load(_patched(data, offset, fmt, value))
    # encapsulated = 0 makes the two records read as the EvaluationKeys body: refused
    with pytest.raises(fg.SerializationError):
        keys.load(_patched(data, BOOT_AT + 4, "<B", 0))
    # the first coefficient of to_sparse's b set to all ones: at or above its modulus
    row = _patched(data, BOOT_AT + BOOT_KEYS.size + KEY_RECORD.size, "<Q", 2 ** 64 - 1)
    with pytest.raises(fg.SerializationError, match="not below its modulus"):
        keys.load(row)


def test_other_context_is_refused(keys):
    other = fg.Context(fc.BootstrapParameters.preset("toy-N11").params, backend="cpu")
    with pytest.raises(fg.ContextMismatchError, match="fingerprint"):
        keys.load(keys.data, other)
    with pytest.raises(fg.ContextMismatchError):
        fg.serialize.loads(keys.data, other)


def test_max_bytes_bounds_data_and_allocation(keys):
    ctx, data = keys.ctx, keys.data
    layout = Layout(ctx.q_primes + ctx.p_primes, ctx.n)
    count = 3 + len(keys.btk.galois)
    budget = count * digits(ctx) * 2 * layout.limbs * ctx.n * 8 + \
        expansion_scratch(digits(ctx), ctx.n) + FIXED_OVERHEAD
    tracemalloc.start()
    try:
        loaded = keys.load(data, max_bytes=budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert loaded.raise_weight == 32 and peak <= budget
    with pytest.raises(fg.SerializationError, match=f"would allocate {budget} bytes"):
        keys.load(data, max_bytes=budget - 1)
    with pytest.raises(fg.SerializationError, match="exceeds max_bytes"):
        keys.load(data, max_bytes=len(data) - 1)
    with pytest.raises(fg.SerializationError, match="max_bytes"):
        keys.load(data, max_bytes=0)


def test_random_header_mutations_raise_only_typed_errors(keys):
    rng, data = random.Random(7), keys.data
    # magic, version, kind, flags, then everything up to the first key's b (the
    # fingerprint is left out: ContextMismatchError would dominate), the second
    # record's header and the EvaluationKeys header with the relinearization record's
    first = BOOT_AT + BOOT_KEYS.size
    second, body = first + keys.record_bytes, first + 2 * keys.record_bytes
    spots = [*range(8), *range(HEADER.size - 16, first + KEY_RECORD.size),
             *range(second, second + KEY_RECORD.size),
             *range(body, body + EVAL_KEYS.size + KEY_RECORD.size)]
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(300):   # key id and low raise weight bits may still load: both valid
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.choice(spots)] ^= 1 << rng.randrange(8)
        if rng.random() < 0.3:
            out = out[:rng.randrange(len(out))]
        try:
            loaded = keys.load(bytes(out), max_bytes=1 << 26)
        except ALLOWED:
            outcomes["refused"] += 1
        else:
            assert isinstance(loaded, BootstrapKeys)
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 150, outcomes
