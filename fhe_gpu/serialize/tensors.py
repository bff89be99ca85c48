"""Wire encoding of Plaintext, Ciphertext, PublicKey and SecretKey (layout: see the package
docstring). Every ``load_*`` bounds all declared sizes before allocating anything."""
from __future__ import annotations

import math
import struct

import numpy as np

from ..errors import ModulusOverflowError, SerializationError
from ..rlwe.keys import PublicKey, SecretKey
from ..rlwe.objects import Ciphertext, Plaintext, check_fits
from ..rlwe.sampling import SEED_BYTES, uniform_poly
from .format import (FLAG_SEEDED, KeyIdRule, Kind, Layout, Reader, Writer, check_alloc,
                     check_flags, check_log_n, expansion_scratch, header, read_header,
                     to_host)

#: level, scale, batch, components, log_n, noise_var, value_bound (NaN = None)
TENSOR = struct.Struct("<HdIBBdd")
PUBLIC_KEY = struct.Struct("<BH")   # log_n, limbs
SECRET_KEY = struct.Struct("<B")    # log_n
#: components of a ciphertext (c0, c1): the only shape this version reads or writes
CT_COMPONENTS = 2

#: labels of the seeded uniform parts (see fhe_gpu.rlwe.sampling.uniform_poly)
LABEL_CT, LABEL_PK = b"ct", b"pk"


def log_n(ctx) -> int:
    """log2 of the context's ring degree."""
    return ctx.n.bit_length() - 1


def seed_matches(seed, label: bytes, prime: int, n: int, row) -> bool:
    """Whether ``row`` (n,) is the expansion of ``seed`` for batch item 0 over ``prime``.

    A cheap sanity check (one limb) before a writer drops a seeded part."""
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_BYTES:
        return False
    return bool(np.array_equal(uniform_poly(seed, label, (prime,), n, batch=1)[0, 0], row))


def expand_into(out, seed: bytes, label: bytes, primes, n: int) -> None:
    """Fill ``out`` (batch, limbs, n) with uniform_poly(seed, label, primes, n, batch),
    one limb at a time (the expansion of a limb depends only on seed, label and prime)."""
    batch = out.shape[0]
    for i, q in enumerate(primes):
        out[:, i] = uniform_poly(seed, label, (int(q),), n, batch=batch)[:, 0]


# ------------------------------------------------------------------ Plaintext, Ciphertext
def _optional_f64(value, name: str, what: str) -> float:
    """``value`` (None or a finite float >= 0) as written: None -> NaN."""
    if value is None:
        return math.nan
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise SerializationError(f"{what} has {name}={value!r}: needs None or a finite "
                                 f"value >= 0")
    return value


def _read_f64(value: float, name: str, what: str):
    """A wire f64 of ``name`` as None (NaN) or a finite value >= 0."""
    if math.isnan(value):
        return None
    if not math.isfinite(value) or value < 0:
        raise SerializationError(f"{what} declares {name}={value!r}: needs NaN (none) or a "
                                 f"finite value >= 0")
    return value


def _check_fit(ctx, level: int, scale: float, bound, what: str) -> None:
    """SerializationError unless scale (and bound * scale) fit the modulus of ``level``."""
    try:
        check_fits(ctx, level, scale, bound=bound, what=what)
    except ModulusOverflowError as exc:
        raise SerializationError(f"{what} has scale {scale!r} with value bound "
                                 f"{bound!r}, which level {level} cannot hold: {exc}") from None


def dump_tensor(obj) -> bytes:
    """Plaintext or Ciphertext as bytes; a seeded ciphertext stores c0 and its seed."""
    ctx, is_ct, what = obj.context, isinstance(obj, Ciphertext), type(obj).__name__
    shape = tuple(obj.data.shape)
    bound = _optional_f64(obj.value_bound, "value_bound", what)
    noise = _optional_f64(obj.noise_var if is_ct else None, "noise_var", what)
    _check_fit(ctx, obj.level, obj.scale, obj.value_bound, what)
    comps = shape[1] if is_ct else 1
    if is_ct and comps != CT_COMPONENTS:
        raise SerializationError(f"ciphertext has {comps} components: only "
                                 f"{CT_COMPONENTS}-component ciphertexts can be written")
    primes = ctx.q_primes[: obj.level + 1]
    layout = Layout(primes, ctx.n)
    seed = getattr(obj, "seed", None) if is_ct else None
    seeded = shape[0] > 0 and seed is not None and seed_matches(
        seed, LABEL_CT, primes[0], ctx.n, to_host(ctx, obj.data[0, 1, 0]))
    w = Writer(ctx.backend.to_host)
    w.put(header(Kind.CIPHERTEXT if is_ct else Kind.PLAINTEXT, obj.fingerprint,
                 FLAG_SEEDED if seeded else 0, getattr(obj, "key_id", None),
                 KeyIdRule.OPTIONAL if is_ct else KeyIdRule.NONE))
    w.put(TENSOR.pack(obj.level, obj.scale, shape[0], comps, log_n(ctx), noise, bound))
    if seeded:
        w.put_polys(obj.data[:, 0], layout)
        w.put(bytes(seed))
    else:
        w.put_polys(obj.data, layout)
    return w.getvalue()


def _read_tensor_header(r: Reader, ctx, is_ct: bool, what: str) -> tuple:
    """(level, scale, batch, comps, noise_var, value_bound) of a checked tensor header."""
    level, scale, batch, comps, got_log_n, noise, bound = r.take(TENSOR, f"the {what} header")
    check_log_n(got_log_n, ctx, what)
    if level > ctx.max_level:
        raise SerializationError(f"{what} declares level {level}, above the context's "
                                 f"max_level {ctx.max_level}")
    if comps != (CT_COMPONENTS if is_ct else 1):
        raise SerializationError(f"{what} declares {comps} components: needs "
                                 f"{CT_COMPONENTS if is_ct else 1}")
    noise = _read_f64(noise, "noise_var", what)
    if noise is not None and not is_ct:
        raise SerializationError(f"{what} declares noise_var={noise!r}: a plaintext has none "
                                 f"(needs NaN)")
    bound = _read_f64(bound, "value_bound", what)
    _check_fit(ctx, level, scale, bound, what)
    return level, scale, batch, comps, noise, bound


def load_tensor(cls, data, ctx, max_bytes: int):
    """A Plaintext or Ciphertext (``cls``) from bytes, validated against ``ctx``."""
    is_ct = issubclass(cls, Ciphertext)
    what = cls.__name__
    r = Reader(data, max_bytes)
    flags, _, key_id = read_header(r, Kind.CIPHERTEXT if is_ct else Kind.PLAINTEXT,
                                   ctx.fingerprint,
                                   KeyIdRule.OPTIONAL if is_ct else KeyIdRule.NONE)
    check_flags(flags, FLAG_SEEDED if is_ct else 0, what)
    level, scale, batch, comps, noise, bound = _read_tensor_header(r, ctx, is_ct, what)
    seeded = bool(flags & FLAG_SEEDED)
    if seeded and batch == 0:
        raise SerializationError(f"{what} declares a seed but batch 0")
    layout, n = Layout(ctx.q_primes[: level + 1], ctx.n), ctx.n
    stored = comps - 1 if seeded else comps
    r.expect_end(r.pos + batch * stored * layout.nbytes + (SEED_BYTES if seeded else 0))
    alloc = batch * comps * layout.limbs * n * 8
    check_alloc(alloc + (expansion_scratch(batch, n) if seeded else 0), max_bytes,
                f"a {what} of batch {batch}")
    if not is_ct:
        out = np.empty((batch, layout.limbs, n), dtype=np.uint64)
        r.polys(out, layout)
        return cls(ctx.backend.to_device(out), level, scale, ctx, value_bound=bound)
    out = np.empty((batch, comps, layout.limbs, n), dtype=np.uint64)
    seed = None
    if seeded:
        for b in range(batch):
            r.polys(out[b, 0], layout)
        seed = r.take_bytes(SEED_BYTES, "the seed")
        expand_into(out[:, 1], seed, LABEL_CT, layout.moduli, n)
    else:
        r.polys(out, layout)
    return cls(ctx.backend.to_device(out), level, scale, ctx, seed=seed, key_id=key_id,
               noise_var=noise, value_bound=bound)


# ------------------------------------------------------------------ PublicKey
def dump_public_key(pk: PublicKey) -> bytes:
    """PublicKey as bytes; with a seed, only b and the seed are stored."""
    ctx = pk.context
    primes = ctx.q_primes + ctx.p_primes
    layout = Layout(primes, ctx.n)
    shape = tuple(pk.data.shape)
    if shape != (2, layout.limbs, ctx.n):
        raise SerializationError(f"public key of shape {shape} does not match the "
                                 f"context's (2, {layout.limbs}, {ctx.n})")
    seed = getattr(pk, "seed", None)
    seeded = seed is not None and seed_matches(seed, LABEL_PK, primes[0], ctx.n,
                                               to_host(ctx, pk.data[1, 0]))
    w = Writer(ctx.backend.to_host)
    w.put(header(Kind.PUBLIC_KEY, pk.fingerprint, FLAG_SEEDED if seeded else 0, pk.key_id,
                 KeyIdRule.REQUIRED))
    w.put(PUBLIC_KEY.pack(log_n(ctx), layout.limbs))
    w.put_polys(pk.data[:1] if seeded else pk.data, layout)
    if seeded:
        w.put(bytes(seed))
    return w.getvalue()


def load_public_key(cls, data, ctx, max_bytes: int):
    """A PublicKey from bytes, validated against ``ctx``."""
    r = Reader(data, max_bytes)
    flags, _, key_id = read_header(r, Kind.PUBLIC_KEY, ctx.fingerprint, KeyIdRule.REQUIRED)
    check_flags(flags, FLAG_SEEDED, "PublicKey")
    got_log_n, limbs = r.take(PUBLIC_KEY, "the PublicKey header")
    check_log_n(got_log_n, ctx, "PublicKey")
    primes = ctx.q_primes + ctx.p_primes
    layout, n, seeded = Layout(primes, ctx.n), ctx.n, bool(flags & FLAG_SEEDED)
    if limbs != layout.limbs:
        raise SerializationError(f"PublicKey declares {limbs} limbs, but the context's "
                                 f"Q u P basis has {layout.limbs}")
    r.expect_end(r.pos + (layout.nbytes + SEED_BYTES if seeded else 2 * layout.nbytes))
    check_alloc(2 * limbs * n * 8 + (expansion_scratch(1, n) if seeded else 0), max_bytes,
                "a PublicKey")
    out = np.empty((2, limbs, n), dtype=np.uint64)
    seed = None
    if seeded:
        r.polys(out[0], layout)
        seed = r.take_bytes(SEED_BYTES, "the seed")
        expand_into(out[1:], seed, LABEL_PK, layout.moduli, n)
    else:
        r.polys(out, layout)
    return cls(ctx.backend.to_device(out), ctx, seed=seed, key_id=key_id)


# ------------------------------------------------------------------ SecretKey
def dump_secret_key(sk: SecretKey) -> bytes:
    """SecretKey as bytes: n coefficients s_i + 1 in {0, 1, 2} at 2 bits each."""
    ctx = sk.context
    coeffs = np.asarray(sk.coeffs).reshape(-1)
    if coeffs.shape != (ctx.n,) or np.any(np.abs(coeffs.astype(np.int64)) > 1):
        raise SerializationError(f"secret key must hold {ctx.n} ternary coefficients, got "
                                 f"shape {coeffs.shape}")
    w = Writer()
    w.put(header(Kind.SECRET_KEY, sk.fingerprint, 0, sk.key_id, KeyIdRule.REQUIRED))
    w.put(SECRET_KEY.pack(log_n(ctx)))
    w.put_polys((coeffs.astype(np.int64) + 1).astype(np.uint64)[None], Layout((3,), ctx.n))
    return w.getvalue()


def load_secret_key(cls, data, ctx, max_bytes: int):
    """A SecretKey from bytes, validated against ``ctx``."""
    r = Reader(data, max_bytes)
    flags, _, key_id = read_header(r, Kind.SECRET_KEY, ctx.fingerprint, KeyIdRule.REQUIRED)
    check_flags(flags, 0, "SecretKey")
    (got_log_n,) = r.take(SECRET_KEY, "the SecretKey header")
    check_log_n(got_log_n, ctx, "SecretKey")
    layout = Layout((3,), ctx.n)
    r.expect_end(r.pos + layout.nbytes)
    check_alloc(10 * ctx.n, max_bytes, "a SecretKey")
    out = np.empty((1, ctx.n), dtype=np.uint64)
    r.polys(out, layout)
    return cls(out[0].astype(np.int8) - np.int8(1), ctx, key_id)
