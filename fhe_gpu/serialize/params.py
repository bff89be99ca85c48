"""Wire encoding of CKKS Parameters: the constructor arguments, checked on load by
rebuilding the parameter set and comparing its fingerprint with the one written.

This module must not import fhe_gpu.ckks (serialize and ckks are sibling layers): the
Parameters class is handed in by ``Parameters.from_bytes`` through the wire hook.
"""
from __future__ import annotations

import struct

from ..errors import ContextMismatchError, FHEError, SerializationError
from .format import Kind, Reader, Writer, check_alloc, check_flags, header, read_header

PARAMS = struct.Struct("<BHHHHH")   # log_n, scale_bits, dnum, security, len(q), len(p)
#: most primes (Q and P together) a serialized parameter set may declare
MAX_PRIMES = 256
SECURITY_LEVELS = (128, 192, 256)


def dump_parameters(params) -> bytes:
    """Parameters as bytes (security None is written as 0)."""
    security = 0 if params.security is None else params.security
    if security not in (0,) + SECURITY_LEVELS:
        raise SerializationError(f"security={params.security!r} cannot be written: needs "
                                 f"None or one of {SECURITY_LEVELS}")
    bits = list(params.q_bits) + list(params.p_bits)
    w = Writer()
    w.put(header(Kind.PARAMETERS, params.fingerprint))
    w.put(PARAMS.pack(params.log_n, params.scale_bits, params.dnum, security,
                      len(params.q_bits), len(params.p_bits)))
    w.put(bytes(bits))
    return w.getvalue()


def load_parameters(cls, data, max_bytes: int):
    """``cls(...)`` rebuilt from bytes; the regenerated fingerprint must match the written one.

    Invalid or insecure fields raise SerializationError (wrapping the ParameterError or
    SecurityError of the constructor); a fingerprint that differs after rebuilding (another
    prime generator) raises ContextMismatchError naming both.
    """
    r = Reader(data, max_bytes)
    flags, written, _ = read_header(r, Kind.PARAMETERS, None)
    check_flags(flags, 0, "Parameters")
    log_n, scale_bits, dnum, security, nq, np_ = r.take(PARAMS, "the Parameters header")
    if not (1 <= nq and 1 <= np_ and nq + np_ <= MAX_PRIMES):
        raise SerializationError(f"Parameters declare {nq} + {np_} primes: needs at least one "
                                 f"of each and at most {MAX_PRIMES} in all")
    if security not in (0,) + SECURITY_LEVELS:
        raise SerializationError(f"Parameters declare security={security}: needs 0 (None) "
                                 f"or one of {SECURITY_LEVELS}")
    bits = r.take_bytes(nq + np_, "the prime bit sizes")
    r.expect_end(r.pos)
    check_alloc(0, max_bytes, "Parameters")
    try:
        params = cls(log_n, list(bits[:nq]), list(bits[nq:]), scale_bits, dnum,
                     security or None)
    except FHEError as exc:
        raise SerializationError(f"serialized parameters are invalid: {exc}") from exc
    if params.fingerprint != written:
        raise ContextMismatchError(
            f"parameters were written with fingerprint {written.hex()}, but rebuilding them "
            f"here gives {params.fingerprint.hex()}: the primes differ")
    return params
