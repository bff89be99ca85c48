"""Wire encoding of EvaluationKeys: an optional relinearization key and Galois keys, each a
key-switching record storing b and the 32-byte seed of a (layout: see the package
docstring). The writer packs every record straight from its key's array into the output
(no host copy of a NumPy key, one polynomial at a time of a device key); the loader scans
every record header before allocating any key."""
from __future__ import annotations

import struct

import numpy as np

from ..errors import SerializationError
from ..rlwe.keys import EvaluationKeys, SwitchingKey
from ..rlwe.sampling import SEED_BYTES
from .format import (FLAG_SEEDED, KeyIdRule, Kind, Layout, Reader, Writer, check_alloc,
                     check_flags, check_log_n, expansion_scratch, header, read_header,
                     to_host)
from .tensors import expand_into, log_n, seed_matches

EVAL_KEYS = struct.Struct("<BI")       # has_relin, number of Galois keys
KEY_RECORD = struct.Struct("<BBHH")    # flags, log_n, digits, limbs
GALOIS_ELT = struct.Struct("<Q")
LABEL_KSK = b"ksk"


def digits(ctx) -> int:
    """Number of key-switching digits of a key at full level (as KeyGenerator makes them)."""
    return -(-len(ctx.q_primes) // ctx.alpha)


def _key_layout(ctx) -> Layout:
    return Layout(ctx.q_primes + ctx.p_primes, ctx.n)


def _dump_record(w: Writer, key: SwitchingKey, ctx, layout: Layout) -> None:
    shape = tuple(key.data.shape)
    want = (digits(ctx), 2, layout.limbs, ctx.n)
    if shape != want:
        raise SerializationError(f"switching key of shape {shape} does not match the "
                                 f"context's {want}")
    seed = getattr(key, "seed", None)
    seeded = seed is not None and seed_matches(seed, LABEL_KSK, ctx.q_primes[0], ctx.n,
                                               to_host(ctx, key.data[0, 1, 0]))
    w.put(KEY_RECORD.pack(FLAG_SEEDED if seeded else 0, log_n(ctx), want[0], layout.limbs))
    if seeded:
        w.put_polys(key.data[:, 0], layout)
        w.put(bytes(seed))
    else:
        w.put_polys(key.data, layout)


def dump_evaluation_keys(evk: EvaluationKeys) -> bytes:
    """EvaluationKeys as bytes: relinearization key (if any), then Galois keys by element."""
    ctx = evk.context
    layout = _key_layout(ctx)
    w = Writer(ctx.backend.to_host)
    w.put(header(Kind.EVALUATION_KEYS, evk.fingerprint, 0, evk.key_id, KeyIdRule.REQUIRED))
    w.put(EVAL_KEYS.pack(evk.relin is not None, len(evk.galois)))
    if evk.relin is not None:
        _dump_record(w, evk.relin, ctx, layout)
    for elt in sorted(evk.galois):
        w.put(GALOIS_ELT.pack(int(elt)))
        _dump_record(w, evk.galois[elt], ctx, layout)
    return w.getvalue()


def _record_bytes(layout: Layout, ndigits: int, seeded: bool) -> int:
    return ndigits * layout.nbytes + SEED_BYTES if seeded else 2 * ndigits * layout.nbytes


def _scan_record(r: Reader, ctx, layout: Layout, what: str) -> tuple[int, bool]:
    """Validate one record header and skip its body: (body offset, seeded)."""
    flags, got_log_n, ndigits, limbs = r.take(KEY_RECORD, f"the header of {what}")
    check_flags(flags, FLAG_SEEDED, what)
    check_log_n(got_log_n, ctx, what)
    if ndigits != digits(ctx) or limbs != layout.limbs:
        raise SerializationError(f"{what} declares {ndigits} digits x {limbs} limbs, but the "
                                 f"context's keys have {digits(ctx)} x {layout.limbs}")
    seeded = bool(flags & FLAG_SEEDED)
    size = _record_bytes(layout, ndigits, seeded)
    r.need(size, what)
    start = r.pos
    r.pos += size
    return start, seeded


def _scan(r: Reader, ctx, layout: Layout) -> list[tuple]:
    """(galois element or None for relin, body offset, seeded) of every record."""
    has_relin, count = r.take(EVAL_KEYS, "the EvaluationKeys header")
    if has_relin > 1:
        raise SerializationError(f"relinearization flag is {has_relin}: needs 0 or 1")
    smallest = GALOIS_ELT.size + KEY_RECORD.size + _record_bytes(layout, digits(ctx), True)
    if count > ctx.n or count * smallest > r.remaining:
        raise SerializationError(f"EvaluationKeys declare {count} Galois keys, but at most "
                                 f"{min(ctx.n, r.remaining // smallest)} fit the context and "
                                 f"the {r.remaining} remaining bytes")
    records = [(None,) + _scan_record(r, ctx, layout, "the relinearization key")] \
        if has_relin else []
    seen = set()
    for i in range(count):
        (elt,) = r.take(GALOIS_ELT, f"the element of Galois key {i}")
        if elt % 2 == 0 or not 1 < elt < 2 * ctx.n or elt in seen:
            raise SerializationError(f"Galois element {elt} of key {i} is invalid: needs a "
                                     f"new odd value in (1, {2 * ctx.n})")
        seen.add(elt)
        records.append((elt,) + _scan_record(r, ctx, layout, f"Galois key {elt}"))
    r.expect_end(r.pos)
    return records


def _load_record(r: Reader, ctx, layout: Layout, offset: int, seeded: bool) -> SwitchingKey:
    r.pos = offset
    ndigits = digits(ctx)
    out = np.empty((ndigits, 2, layout.limbs, ctx.n), dtype=np.uint64)
    seed = None
    if seeded:
        for d in range(ndigits):
            r.polys(out[d, 0], layout)
        seed = r.take_bytes(SEED_BYTES, "the seed of a switching key")
        expand_into(out[:, 1], seed, LABEL_KSK, layout.moduli, ctx.n)
    else:
        r.polys(out, layout)
    return SwitchingKey(ctx.backend.to_device(out), ctx, seed)


def load_evaluation_keys(cls, data, ctx, max_bytes: int):
    """EvaluationKeys (``cls``) from bytes, validated against ``ctx``."""
    r = Reader(data, max_bytes)
    flags, _, key_id = read_header(r, Kind.EVALUATION_KEYS, ctx.fingerprint,
                                   KeyIdRule.REQUIRED)
    check_flags(flags, 0, "EvaluationKeys")
    layout = _key_layout(ctx)
    records = _scan(r, ctx, layout)
    key_bytes = digits(ctx) * 2 * layout.limbs * ctx.n * 8
    scratch = expansion_scratch(digits(ctx), ctx.n) if any(s for _, _, s in records) else 0
    check_alloc(len(records) * key_bytes + scratch, max_bytes,
                f"EvaluationKeys with {len(records)} keys")
    relin, galois = None, {}
    for elt, offset, seeded in records:
        key = _load_record(r, ctx, layout, offset, seeded)
        if elt is None:
            relin = key
        else:
            galois[elt] = key
    return cls(ctx, relin, galois, key_id=key_id)
