"""Wire encoding of EvaluationKeys and BootstrapKeys: an optional relinearization key and
Galois keys, each a key-switching record storing b and the 32-byte seed of a, and for
BootstrapKeys a raise weight and the two encapsulation keys ahead of them (layout: see the
package docstring). The writer packs every record straight from its key's array into the
output (no host copy of a NumPy key, one polynomial at a time of a device key); the loader
scans every record header before allocating any key."""
from __future__ import annotations

import struct

import numpy as np

from ..errors import SerializationError
from ..rlwe.bootkeys import BootstrapKeys
from ..rlwe.keys import EvaluationKeys, SwitchingKey
from ..rlwe.sampling import SEED_BYTES
from .format import (FLAG_SEEDED, KeyIdRule, Kind, Layout, Reader, Writer, check_alloc,
                     check_flags, check_log_n, expansion_scratch, header, kind_name,
                     read_header, read_prefix, to_host)
from .tensors import expand_into, log_n, seed_matches

EVAL_KEYS = struct.Struct("<BI")       # has_relin, number of Galois keys
KEY_RECORD = struct.Struct("<BBHH")    # flags, log_n, digits, limbs
GALOIS_ELT = struct.Struct("<Q")
BOOT_KEYS = struct.Struct("<IB")       # raise_weight, encapsulated (0/1)
LABEL_KSK = b"ksk"
#: what BootstrapKeys' encapsulation records are called in messages, in wire order
ENCAPSULATION = ("the key to the sparse secret", "the key from the sparse secret")


def digits(ctx) -> int:
    """Number of key-switching digits of a key at full level (as KeyGenerator makes them)."""
    return -(-len(ctx.q_primes) // ctx.alpha)


def _key_layout(ctx) -> Layout:
    return Layout(ctx.q_primes + ctx.p_primes, ctx.n)


def _dump_record(w: Writer, key: SwitchingKey, ctx, layout: Layout) -> None:
    data = key.data                   # a seeded key expands its a here, once
    shape = tuple(data.shape)
    want = (digits(ctx), 2, layout.limbs, ctx.n)
    if shape != want:
        raise SerializationError(f"switching key of shape {shape} does not match the "
                                 f"context's {want}")
    seed = getattr(key, "seed", None)
    seeded = seed is not None and seed_matches(seed, LABEL_KSK, ctx.q_primes[0], ctx.n,
                                               to_host(ctx, data[0, 1, 0]))
    w.put(KEY_RECORD.pack(FLAG_SEEDED if seeded else 0, log_n(ctx), want[0], layout.limbs))
    if seeded:
        w.put_polys(data[:, 0], layout)
        w.put(bytes(seed))
    else:
        w.put_polys(data, layout)


def _dump_body(w: Writer, evk: EvaluationKeys, ctx, layout: Layout) -> None:
    """The EvaluationKeys body: relinearization key (if any), then Galois keys by element."""
    w.put(EVAL_KEYS.pack(evk.relin is not None, len(evk.galois)))
    if evk.relin is not None:
        _dump_record(w, evk.relin, ctx, layout)
    for elt in sorted(evk.galois):
        w.put(GALOIS_ELT.pack(int(elt)))
        _dump_record(w, evk.galois[elt], ctx, layout)


def dump_evaluation_keys(evk: EvaluationKeys) -> bytes:
    """EvaluationKeys as bytes: relinearization key (if any), then Galois keys by element.
    BootstrapKeys are written as their own kind (:func:`dump_bootstrap_keys`)."""
    if isinstance(evk, BootstrapKeys):
        return dump_bootstrap_keys(evk)
    ctx = evk.context
    w = Writer(ctx.backend.to_host)
    w.put(header(Kind.EVALUATION_KEYS, evk.fingerprint, 0, evk.key_id, KeyIdRule.REQUIRED))
    _dump_body(w, evk, ctx, _key_layout(ctx))
    return w.getvalue()


def _encapsulation(btk: BootstrapKeys) -> tuple:
    """(to_sparse, from_sparse), or () without encapsulation; SerializationError for one
    without the other or a raise weight outside [0, n]."""
    ctx = btk.context
    weight = getattr(btk, "raise_weight", None)
    if isinstance(weight, bool) or not isinstance(weight, (int, np.integer)) \
            or not 0 <= weight <= ctx.n:
        raise SerializationError(f"BootstrapKeys have raise_weight={weight!r}: needs an int "
                                 f"in [0, n={ctx.n}]")
    pair = (btk.to_sparse, btk.from_sparse)
    if (pair[0] is None) != (pair[1] is None):
        raise SerializationError("BootstrapKeys hold only one of to_sparse / from_sparse: "
                                 "encapsulation needs both (or neither)")
    return () if pair[0] is None else pair


def dump_bootstrap_keys(btk: BootstrapKeys) -> bytes:
    """BootstrapKeys as bytes: raise weight and encapsulation keys, then the EvaluationKeys
    body (relinearization key, Galois keys by element)."""
    ctx = btk.context
    layout = _key_layout(ctx)
    pair = _encapsulation(btk)
    w = Writer(ctx.backend.to_host)
    w.put(header(Kind.BOOTSTRAP_KEYS, btk.fingerprint, 0, btk.key_id, KeyIdRule.REQUIRED))
    w.put(BOOT_KEYS.pack(int(btk.raise_weight), len(pair) // 2))
    for key in pair:
        _dump_record(w, key, ctx, layout)
    _dump_body(w, btk, ctx, layout)
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


def _load_records(r: Reader, ctx, layout: Layout, records, max_bytes: int,
                  what: str) -> list[SwitchingKey]:
    """The keys of ``records`` ((name, body offset, seeded), all scanned), once their
    total allocation is checked against ``max_bytes``."""
    key_bytes = digits(ctx) * 2 * layout.limbs * ctx.n * 8
    scratch = expansion_scratch(digits(ctx), ctx.n) if any(s for _, _, s in records) else 0
    check_alloc(len(records) * key_bytes + scratch, max_bytes,
                f"{what} with {len(records)} keys")
    return [_load_record(r, ctx, layout, offset, seeded) for _, offset, seeded in records]


def _open(data, ctx, max_bytes: int, kind: Kind, what: str) -> tuple[Reader, bytes]:
    """A Reader past the checked common header of ``kind``, and the key id. The other key
    kind (EvaluationKeys / BootstrapKeys) is refused with a message naming the right
    loader."""
    r = Reader(data, max_bytes)
    got = read_prefix(r)[1]
    other = {Kind.EVALUATION_KEYS: (Kind.BOOTSTRAP_KEYS, "BootstrapKeys.from_bytes"),
             Kind.BOOTSTRAP_KEYS: (Kind.EVALUATION_KEYS, "EvaluationKeys.from_bytes")}[kind]
    if got == other[0]:
        raise SerializationError(f"data holds {kind_name(got)}, not {kind_name(kind)}: load "
                                 f"it with {other[1]} (or fhe_gpu.serialize.loads)")
    r.pos = 0
    flags, _, key_id = read_header(r, kind, ctx.fingerprint, KeyIdRule.REQUIRED)
    check_flags(flags, 0, what)
    return r, key_id


def load_evaluation_keys(cls, data, ctx, max_bytes: int):
    """EvaluationKeys (``cls``) from bytes, validated against ``ctx``. BootstrapKeys data is
    refused (SerializationError naming BootstrapKeys.from_bytes): it is never loaded with
    its encapsulation keys silently dropped."""
    r, key_id = _open(data, ctx, max_bytes, Kind.EVALUATION_KEYS, "EvaluationKeys")
    layout = _key_layout(ctx)
    records = _scan(r, ctx, layout)
    keys = _load_records(r, ctx, layout, records, max_bytes, "EvaluationKeys")
    relin = next((k for (elt, _, _), k in zip(records, keys) if elt is None), None)
    galois = {elt: k for (elt, _, _), k in zip(records, keys) if elt is not None}
    return cls(ctx, relin, galois, key_id=key_id)


def load_bootstrap_keys(cls, data, ctx, max_bytes: int):
    """BootstrapKeys (``cls``) from bytes, validated against ``ctx``."""
    r, key_id = _open(data, ctx, max_bytes, Kind.BOOTSTRAP_KEYS, "BootstrapKeys")
    weight, encapsulated = r.take(BOOT_KEYS, "the BootstrapKeys header")
    if weight > ctx.n:
        raise SerializationError(f"BootstrapKeys declare raise weight {weight}, above the "
                                 f"ring degree n={ctx.n}")
    if encapsulated > 1:
        raise SerializationError(f"encapsulation flag is {encapsulated}: needs 0 or 1")
    layout = _key_layout(ctx)
    pair = [(name,) + _scan_record(r, ctx, layout, name)
            for name in (ENCAPSULATION if encapsulated else ())]
    records = pair + _scan(r, ctx, layout)
    keys = _load_records(r, ctx, layout, records, max_bytes, "BootstrapKeys")
    to_sparse, from_sparse = keys[:2] if encapsulated else (None, None)
    rest = list(zip(records, keys))[len(pair):]
    relin = next((k for (elt, _, _), k in rest if elt is None), None)
    galois = {elt: k for (elt, _, _), k in rest if elt is not None}
    return cls(ctx, relin, galois, key_id=key_id, raise_weight=weight,
               to_sparse=to_sparse, from_sparse=from_sparse)
