"""Fuzzing the wire format: mutated valid buffers of every kind (truncated, extended,
bit-flipped, random headers, huge declared lengths, wrong fingerprints, spliced) raise only
SerializationError or ContextMismatchError, within a per-case time limit, and never
allocate more than ``max_bytes`` while decoding (tracemalloc peak).

CI runs FHE_GPU_FUZZ_COUNT mutations (default 5,000); the slow test runs
FHE_GPU_FUZZ_LONG_COUNT (default 100,000): ``pytest -m slow tests/test_wire_fuzz.py -s``.
"""
from __future__ import annotations

import collections
import faulthandler
import logging
import os
import random
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable

import pytest

import fhe_gpu as fg
from conftest import make_world

COUNT = int(os.environ.get("FHE_GPU_FUZZ_COUNT", "5000"))
LONG_COUNT = int(os.environ.get("FHE_GPU_FUZZ_LONG_COUNT", "100000"))
CASE_LIMIT_S = 2.0
ALLOWED = (fg.SerializationError, fg.ContextMismatchError)
HEAD = 80       # the region holding the common and per-kind headers


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
        "public_key_full": fg.PublicKey(w.pk.data, ctx),
        "evaluation_keys": evk,
        "relin_full": fg.EvaluationKeys(ctx, fg.rlwe.SwitchingKey(evk.relin.data, ctx, None)),
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


def splice(rng, data, ctx):
    donor = rng.choice(ctx["samples"]).data
    cut = rng.randint(0, min(HEAD, len(donor)))
    return donor[:cut] + data[cut:]


def random_bytes(rng, data, ctx):
    body = rng.randbytes(rng.randint(0, 2 * len(data)))
    return (b"FHEG\x01\x00" + body) if rng.random() < 0.5 else body


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
            splice, random_bytes, saturate_coefficients, shift_slice]


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
