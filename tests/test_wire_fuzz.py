"""Fuzzing the wire format: mutated valid buffers of every kind (truncated, extended,
bit-flipped, random headers, huge declared lengths, wrong fingerprints and key ids, old
versions, special floats in the scale / noise / bound fields, spliced) raise only
SerializationError or ContextMismatchError, within a per-case time limit, and never
allocate more than ``max_bytes`` while decoding (tracemalloc peak). Also the guards of the
compiled codec itself (bit packing, the output buffer).

CI runs FHE_GPU_FUZZ_COUNT mutations (default 5,000); the slow test runs
FHE_GPU_FUZZ_LONG_COUNT (default 100,000): ``pytest -m slow tests/test_wire_fuzz.py -s``.
"""
from __future__ import annotations

import collections
import faulthandler
import logging
import math
import os
import random
import struct
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import fhe_gpu as fg
from conftest import make_world
from fhe_gpu.serialize import _codec
from fhe_gpu.serialize.format import HEADER

COUNT = int(os.environ.get("FHE_GPU_FUZZ_COUNT", "5000"))
LONG_COUNT = int(os.environ.get("FHE_GPU_FUZZ_LONG_COUNT", "100000"))
CASE_LIMIT_S = 2.0
ALLOWED = (fg.SerializationError, fg.ContextMismatchError)
HEAD = 96       # the region holding the common and per-kind headers
TENSOR_AT = HEADER.size
SPECIAL_FLOATS = (math.nan, math.inf, -math.inf, -0.0, -1.0, 0.0, 5e-324, 1e-300, 0.5, 1.0,
                  2.0 ** 30, 2.0 ** 60, 2.0 ** 200, 1e300, 1.7976931348623157e308)


@dataclass
class Sample:
    name: str
    data: bytes
    load: Callable          # load(data, max_bytes)
    max_bytes: int = 0


def _smallest_budget(sample: Sample) -> int:
    """The smallest max_bytes with which the valid sample still loads."""
    lo, hi = 1, fg.serialize.DEFAULT_MAX_BYTES
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            sample.load(sample.data, mid)
            hi = mid
        except fg.SerializationError:
            lo = mid + 1
    return lo


@pytest.fixture(scope="module")
def corpus():
    logging.getLogger("fhe_gpu").setLevel(logging.ERROR)
    params = fg.Parameters(log_n=10, q_bits=[50, 30, 30], p_bits=[60], scale_bits=30,
                           security=None)
    w = make_world(params, "cpu")
    ctx, sk = w.ctx, w.sk
    sym = fg.Encryptor(ctx, sk).encrypt(w.encoder.encode(w.uniform(2, 4)))
    ct = w.encrypt(w.uniform())
    evk = w.kg.evaluation_keys(rotations=[1])
    objects = {
        "plaintext": w.encoder.encode(w.uniform(2, 4)),
        "ciphertext": ct,
        "symmetric": sym,
        "product": w.ev.mul(ct, ct, rescale=False),
        "public_key": w.pk,
        "public_key_full": fg.PublicKey(w.pk.data, ctx, key_id=w.pk.key_id),
        "evaluation_keys": evk,
        "relin_full": fg.EvaluationKeys(ctx, fg.rlwe.SwitchingKey(evk.relin.data, ctx, None),
                                        key_id=evk.key_id),
    }
    samples = []
    for i, (name, obj) in enumerate(objects.items()):
        cls = type(obj)
        load = (lambda d, m, cls=cls: cls.from_bytes(d, ctx, m)) if i % 2 else \
            (lambda d, m: fg.serialize.loads(d, ctx, m))
        samples.append(Sample(name, obj.to_bytes(), load))
    samples.append(Sample("secret_key", sk.to_bytes(secret=True),
                          lambda d, m: fg.SecretKey.from_bytes(d, ctx, m)))
    samples.append(Sample("parameters", params.to_bytes(),
                          lambda d, m: fg.Parameters.from_bytes(d, m)))
    for s in samples:
        s.max_bytes = _smallest_budget(s)
    other = fg.Parameters(log_n=6, q_bits=[50, 30], p_bits=[60], security=None).fingerprint
    return samples, other


# ------------------------------------------------------------------ mutators
def truncate(rng, data, ctx):
    return data[:rng.randrange(len(data))]


def extend(rng, data, ctx):
    return data + rng.randbytes(rng.randint(1, 100))


def flip_bits(rng, data, ctx):
    out = bytearray(data)
    region = HEAD if rng.random() < 0.5 else len(out)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(min(region, len(out)))] ^= 1 << rng.randrange(8)
    return bytes(out)


def random_header(rng, data, ctx):
    keep = 4 if rng.random() < 0.5 else 0
    cut = rng.randint(keep, min(HEAD, len(data)))
    return data[:keep] + rng.randbytes(cut - keep) + data[cut:]


def huge_field(rng, data, ctx):
    size = rng.choice((1, 2, 4, 8))
    value = rng.choice((2 ** (8 * size) - 1, 2 ** (8 * size - 1), 0, 1,
                        rng.getrandbits(8 * size)))
    region = HEAD if rng.random() < 0.7 else len(data)
    at = rng.randrange(max(1, min(region, len(data)) - size + 1))
    return data[:at] + value.to_bytes(size, "little") + data[at + size:]


def wrong_fingerprint(rng, data, ctx):
    fpr = ctx["other"] if rng.random() < 0.5 else rng.randbytes(32)
    return data[:8] + fpr + data[40:]


def wrong_key_id(rng, data, ctx):
    key_id = bytes(16) if rng.random() < 0.5 else rng.randbytes(16)
    return data[:40] + key_id + data[56:]


def old_version(rng, data, ctx):
    version = rng.choice((0, 1, 1, 3, 0xFFFF))
    return data[:4] + version.to_bytes(2, "little") + data[6:rng.choice((8, 40, len(data)))]


def float_fields(rng, data, ctx):
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = TENSOR_AT + rng.choice((2, 16, 24))         # scale, noise_var, value_bound
        if at + 8 <= len(out):
            value = rng.choice(SPECIAL_FLOATS)
            struct.pack_into("<d", out, at, value)
    return bytes(out)


def splice(rng, data, ctx):
    donor = rng.choice(ctx["samples"]).data
    cut = rng.randint(0, min(HEAD, len(donor)))
    return donor[:cut] + data[cut:]


def random_bytes(rng, data, ctx):
    body = rng.randbytes(rng.randint(0, 2 * len(data)))
    return (b"FHEG\x02\x00" + body) if rng.random() < 0.5 else body


def saturate_coefficients(rng, data, ctx):
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out))
        out[at:at + 8] = b"\xff" * len(out[at:at + 8])
    return bytes(out)


def shift_slice(rng, data, ctx):
    a = rng.randrange(len(data))
    b = rng.randint(a, min(len(data), a + 64))
    return data[:a] + data[a:b] * rng.randint(0, 3) + data[b:]


MUTATORS = [truncate, extend, flip_bits, random_header, huge_field, wrong_fingerprint,
            wrong_key_id, old_version, float_fields, splice, random_bytes,
            saturate_coefficients, shift_slice]


# ------------------------------------------------------------------ driver
def fuzz(corpus, count: int, seed: int) -> dict:
    samples, other = corpus
    rng = random.Random(seed)
    ctx = {"samples": samples, "other": other}
    outcomes, failures = collections.Counter(), []
    worst_time, worst_ratio = 0.0, 0.0
    faulthandler.dump_traceback_later(max(120.0, count * CASE_LIMIT_S / 100), exit=True)
    tracemalloc.start()
    try:
        for i in range(count):
            sample = samples[i % len(samples)]
            mutate = rng.choice(MUTATORS)
            data = mutate(rng, sample.data, ctx)
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            start = time.perf_counter()
            try:
                sample.load(data, sample.max_bytes)
                outcomes["loaded"] += 1
            except ALLOWED as exc:
                outcomes[type(exc).__name__] += 1
            except Exception as exc:     # noqa: BLE001 - the property under test
                failures.append(f"case {i} {sample.name}/{mutate.__name__}: {exc!r}")
            elapsed = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1] - before
            worst_time = max(worst_time, elapsed)
            worst_ratio = max(worst_ratio, peak / sample.max_bytes)
            assert elapsed < CASE_LIMIT_S, f"case {i} {sample.name}/{mutate.__name__}: {elapsed}s"
            assert peak <= sample.max_bytes, \
                f"case {i} {sample.name}/{mutate.__name__}: peak {peak} > {sample.max_bytes}"
    finally:
        tracemalloc.stop()
        faulthandler.cancel_dump_traceback_later()
    assert not failures, "\n".join(failures[:20])
    return {"outcomes": dict(outcomes), "worst_case_s": worst_time,
            "worst_peak_over_max_bytes": worst_ratio}


def test_corpus_is_valid_and_budgets_are_tight(corpus):
    samples, _ = corpus
    assert {s.name for s in samples} >= {"plaintext", "ciphertext", "symmetric", "public_key",
                                         "evaluation_keys", "secret_key", "parameters"}
    for s in samples:
        s.load(s.data, s.max_bytes)
        with pytest.raises(fg.SerializationError, match="max_bytes"):
            s.load(s.data, s.max_bytes - 1)


def test_fuzz_ci_sample(corpus):
    start = time.perf_counter()
    report = fuzz(corpus, COUNT, seed=2024)
    print(f"\nwire fuzz: {COUNT} mutations in {time.perf_counter() - start:.1f} s: {report}")
    assert sum(report["outcomes"].values()) == COUNT


@pytest.mark.slow
def test_fuzz_long(corpus):
    start = time.perf_counter()
    report = fuzz(corpus, LONG_COUNT, seed=7)
    print(f"\nwire fuzz (long): {LONG_COUNT} mutations in {time.perf_counter() - start:.1f} s: "
          f"{report}")
    assert sum(report["outcomes"].values()) == LONG_COUNT


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


def test_output_buffer_is_handed_out_only_when_filled():
    buf = _codec.OutputBuffer(8)
    buf.write(0, b"abcd")
    with pytest.raises(fg.SerializationError, match="4 of 8 output bytes"):
        buf.finish(4)
    buf = _codec.OutputBuffer(8)
    view = memoryview(buf)
    view[:] = b"12345678"
    with pytest.raises(fg.SerializationError, match="1 views"):
        buf.finish(8)
    view.release()
    buf = _codec.OutputBuffer(8)
    assert _codec.pack_into(buf, buf.write(0, b"1234"), np.array([[1, 2]], np.uint64),
                            np.array([16], np.uint8)) == 8
    out = buf.finish(8)
    assert type(out) is bytes and out == b"1234\x01\x00\x02\x00"
    assert sys.getrefcount(out) == 2
    with pytest.raises(fg.SerializationError, match="already handed out"):
        buf.finish(8)
    with pytest.raises(BufferError):
        memoryview(buf)
    with pytest.raises(fg.SerializationError, match="cannot hold 3 bytes at offset 2"):
        _codec.OutputBuffer(4).write(2, b"abc")
    with pytest.raises(fg.SerializationError, match="at least 1 byte"):
        _codec.OutputBuffer(0)
