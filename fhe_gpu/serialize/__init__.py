"""fhe_gpu.serialize: the wire format of fhe_gpu objects (version 2).

Compact, versioned and safe to parse from untrusted peers: no pickle, no eval, every
declared size is bounded before anything is allocated, every coefficient is checked to be
below its modulus, and objects made under other parameters are refused. Use the methods
of the objects (this package registers itself with ``fhe_gpu.rlwe.wire_hook``)::

    data = ct.to_bytes();   ct = fg.Ciphertext.from_bytes(data, ctx, max_bytes=None)
    # also Plaintext, PublicKey, EvaluationKeys, BootstrapKeys; sk.to_bytes(secret=True) /
    # SecretKey.from_bytes(data, ctx); params.to_bytes() / Parameters.from_bytes(data)

or :func:`dumps` / :func:`loads` (kind taken from the header) and :func:`peek`.

Versions
    Version 2 (this one) added the key id to the common header and ``noise_var`` /
    ``value_bound`` to the Plaintext / Ciphertext header. fhe_gpu is pre-1.0 and keeps no
    reader for older versions: version 1 data is refused with a SerializationError that
    names version 1 (re-serialize such objects with the current fhe_gpu). Any other
    version is refused likewise. Kind 7 (BootstrapKeys) was added within version 2: it
    changes no other kind, so existing version-2 data reads as before, and readers from
    before it refuse kind 7 data as an unknown kind (SerializationError).

Common header (56 bytes, little-endian, struct ``<4sHBB32s16s``)
    ========  =====  ==========================================================
    magic     4s     ``b"FHEG"``
    version   u16    2 (readers refuse versions they do not know)
    kind      u8     1 Parameters, 2 Plaintext, 3 Ciphertext, 4 PublicKey,
                     5 EvaluationKeys, 6 SecretKey, 7 BootstrapKeys
    flags     u8     bit 0 SEEDED (Ciphertext, PublicKey); other bits must be 0
    fpr       32s    parameter fingerprint (``Parameters.fingerprint``); must equal
                     the reading context's, else ContextMismatchError
    key_id    16s    id of the key set (``keys.KEY_ID_BYTES``); all zeros = none /
                     unknown. SecretKey, PublicKey, EvaluationKeys, BootstrapKeys:
                     nonzero (the object's ``key_id``; a zero id is refused on write
                     and on load).
                     Ciphertext: its ``key_id``, zeros for None (loaded as None).
                     Parameters, Plaintext: zeros (anything else is refused).
    ========  =====  ==========================================================

    Magic and version are checked before anything after them is read, so data of
    another version is reported as such even when shorter than this header.

Packed polynomials
    A polynomial over primes q_0..q_{k-1} is k rows, one per limb, in limb order; row i
    holds the n coefficients (evaluation form, each < q_i) at w_i = bit_length(q_i - 1)
    bits, least significant bit first, little-endian bytes, zero-padded to a byte
    boundary: ceil(n * w_i / 8) bytes. A tensor of polynomials is written in C order of
    its leading axes (batch, then component). Packing and unpacking are done by the
    Cython module ``fhe_gpu.serialize._codec`` with the GIL released, large blocks split
    by rows over a thread pool. A writer computes the total size first and packs every
    array straight into one ``bytes`` object allocated once (``_codec.OutputBuffer``),
    so writing needs about the output size in extra memory.

Seeded uniform parts
    A part ``a`` expanded from a 32-byte seed is not stored: the seed is, and the reader
    re-expands it with ``fhe_gpu.rlwe.sampling.uniform_poly(seed, label, primes, n,
    batch)``, label b"ct" (fresh symmetric ciphertext: c1), b"pk" (public key: a) or
    b"ksk" (key-switching key: a_j of every digit j, batch = digits). A writer drops a
    part only if the object carries a seed that reproduces its first limb.

Per kind, after the common header (Q_l = q_0..q_level, QP = q_0..q_L, p_0..p_{K-1})
    Parameters (1)  ``<BHHHHH`` log_n, scale_bits, dnum, security (0 = None), len(q_bits),
        len(p_bits), then one u8 per q bit size and per p bit size (at most 256 in all). The
        reader rebuilds the parameters and compares the fingerprint (ContextMismatchError).
    Plaintext (2)  ``<HdIBBdd`` (32 bytes) level (<= max_level), scale (f64), batch,
        components (= 1), log_n, noise_var (f64), value_bound (f64); then batch
        polynomials over Q_level. noise_var and value_bound are NaN for None, else finite
        and >= 0 (negative or infinite values are refused; any NaN reads as None); a
        Plaintext's noise_var is always NaN. The scale must fit the level, as
        ``fhe_gpu.rlwe.objects.check_fits(ctx, level, scale, bound=value_bound)`` decides:
        1 <= scale and max(value_bound, 1) * scale <= Q_level / 2^(1 + FIT_MARGIN_BITS)
        (Q_level / 4 today); a scale such as 1e300 (overflows later) or 5e-324 (decodes to
        NaN), or a value bound the level cannot hold, is refused on write and on load.
    Ciphertext (3)  same header, components = 2 (the field leaves room for later
        versions); noise_var is the predicted error variance (NaN = None). Not seeded:
        batch x (c0, c1) polynomials over Q_level. SEEDED: batch c0 polynomials over
        Q_level, then the 32-byte seed of c1 (label b"ct", batch = the ciphertext's
        batch, >= 1).
    PublicKey (4)  ``<BH`` log_n, limbs (= L+1+K); then b and a over QP, or SEEDED: b and
        the 32-byte seed of a (label b"pk").
    EvaluationKeys (5)  ``<BI`` has_relin (0/1), number of Galois keys G (<= n); then the
        relinearization record if has_relin; then G times: ``<Q`` Galois element (odd, in
        (1, 2n), distinct; written in increasing order) and its record. Record: ``<BBHH``
        flags (bit 0 SEEDED), log_n, digits (= ceil((L+1)/alpha)), limbs (= L+1+K); then
        digits x (b, a) polynomials over QP, or SEEDED: digits b polynomials then the
        32-byte seed of all a_j (label b"ksk").
    BootstrapKeys (7)  ``<IB`` raise_weight (<= n; 0 = not stated), encapsulated (0/1);
        then, if encapsulated, the record of ``to_sparse`` (s -> s') and the record of
        ``from_sparse`` (s' -> s), each as an EvaluationKeys record (seeded likewise, label
        b"ksk"); then the EvaluationKeys body (everything after kind 5's common header).
        No secret is written: the ephemeral secret s' is never part of the keys.
        ``EvaluationKeys.from_bytes`` refuses kind 7 data (SerializationError naming
        ``BootstrapKeys.from_bytes``) rather than drop the encapsulation keys silently, and
        ``BootstrapKeys.from_bytes`` refuses kind 5 data (no raise weight); ``loads``
        returns whichever the kind byte says.
    SecretKey (6)  ``<B`` log_n; then one row of n coefficients s_i + 1 in {0, 1, 2} at 2
        bits. Written only by ``sk.to_bytes(secret=True)``.

The data must end exactly where the header says; trailing bytes are an error.

Validation and limits
    ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 2 GiB) bounds ``len(data)`` and the
    bytes decoding may allocate: the decoded arrays, the scratch of seed expansion and a
    fixed 64 KiB for everything else (checked with tracemalloc by the fuzz tests); for
    BootstrapKeys the arrays are all their switching keys, encapsulation keys included. All
    counts, levels, shapes and the total length are checked against the context and the
    data length before the first array is allocated. Every failure raises
    SerializationError (with the offending and the expected values), or
    ContextMismatchError for another parameter set; no other exception type escapes (a
    ``ctx`` that is not a Context is a programming error: ParameterError).
"""
from __future__ import annotations

import struct

from ..errors import ContextMismatchError, ParameterError, SerializationError
from ..rlwe import wire_hook
from ..rlwe.bootkeys import BootstrapKeys
from ..rlwe.context import Context
from ..rlwe.keys import EvaluationKeys, PublicKey, SecretKey
from ..rlwe.objects import Ciphertext, Plaintext
from . import keys, params, tensors
from .format import (DEFAULT_MAX_BYTES, HEADER_TAIL, MAGIC, NO_KEY_ID, SUPPORTED_VERSIONS,
                     VERSION, Kind, Reader, check_max_bytes, kind_name, read_prefix)

# subclasses before their bases: the first entry whose class matches is taken
_DUMP = [(Ciphertext, tensors.dump_tensor), (Plaintext, tensors.dump_tensor),
         (PublicKey, tensors.dump_public_key), (BootstrapKeys, keys.dump_bootstrap_keys),
         (EvaluationKeys, keys.dump_evaluation_keys), (SecretKey, tensors.dump_secret_key)]
_LOAD = {Kind.PLAINTEXT: (Plaintext, tensors.load_tensor),
         Kind.CIPHERTEXT: (Ciphertext, tensors.load_tensor),
         Kind.PUBLIC_KEY: (PublicKey, tensors.load_public_key),
         Kind.BOOTSTRAP_KEYS: (BootstrapKeys, keys.load_bootstrap_keys),
         Kind.EVALUATION_KEYS: (EvaluationKeys, keys.load_evaluation_keys),
         Kind.SECRET_KEY: (SecretKey, tensors.load_secret_key)}
_DATA_ERRORS = (struct.error, ValueError, TypeError, OverflowError, IndexError, KeyError,
                MemoryError)


def _guarded(fn, *args):
    """fn(*args) with every data-dependent failure turned into SerializationError."""
    try:
        return fn(*args)
    except (SerializationError, ContextMismatchError):
        raise
    except _DATA_ERRORS as exc:
        raise SerializationError(f"malformed data: {type(exc).__name__}: {exc}") from exc


class WireCodec:
    """The codec registered with :mod:`fhe_gpu.rlwe.wire_hook` (see its docstring)."""

    def dump(self, obj) -> bytes:
        """The wire bytes of a Plaintext, Ciphertext, PublicKey, EvaluationKeys,
        BootstrapKeys or SecretKey."""
        for cls, fn in _DUMP:
            if isinstance(obj, cls):
                return _guarded(fn, obj)
        raise SerializationError(f"cannot serialize a {type(obj).__name__}")

    def load(self, cls, data, ctx, max_bytes=None):
        """A ``cls`` object from wire bytes, validated against the context ``ctx``."""
        if not isinstance(ctx, Context):
            raise ParameterError(f"from_bytes needs a Context, got {type(ctx).__name__}")
        max_bytes = check_max_bytes(max_bytes)
        for base, fn in _LOAD.values():
            if isinstance(cls, type) and issubclass(cls, base):
                return _guarded(fn, cls, data, ctx, max_bytes)
        raise SerializationError(f"cannot deserialize into {cls!r}")

    def dump_parameters(self, p) -> bytes:
        """The wire bytes of a Parameters object."""
        return _guarded(params.dump_parameters, p)

    def load_parameters(self, cls, data, max_bytes=None):
        """``cls`` (the Parameters class) rebuilt from wire bytes."""
        return _guarded(params.load_parameters, cls, data, check_max_bytes(max_bytes))


CODEC = WireCodec()
wire_hook.register(CODEC)


def dumps(obj) -> bytes:
    """Wire bytes of any serializable object (Parameters included)."""
    if hasattr(obj, "fingerprint") and hasattr(obj, "q_bits"):
        return CODEC.dump_parameters(obj)
    return CODEC.dump(obj)


def peek(data) -> dict:
    """The common header of ``data``: kind (name), version, flags, fingerprint and key id
    (None when zero). Magic and version are checked (SerializationError), nothing else."""
    r = _guarded(Reader, data, DEFAULT_MAX_BYTES)
    version, kind, flags = _guarded(read_prefix, r)
    fpr, key_id = _guarded(r.take, HEADER_TAIL, "the header")
    return {"kind": kind_name(kind), "version": version, "flags": flags, "fingerprint": fpr,
            "key_id": None if key_id == NO_KEY_ID else key_id}


def loads(data, ctx, max_bytes=None):
    """The object held by ``data`` (any kind but Parameters), validated against ``ctx``."""
    kind = _guarded(read_prefix, _guarded(Reader, data, check_max_bytes(max_bytes)))[1]
    if kind == Kind.PARAMETERS:
        raise SerializationError("loads cannot read Parameters: use Parameters.from_bytes")
    if kind not in _LOAD:
        raise SerializationError(f"data holds an {kind_name(kind)}")
    return CODEC.load(_LOAD[kind][0], data, ctx, max_bytes)


__all__ = ["dumps", "loads", "peek", "WireCodec", "Kind", "MAGIC", "VERSION",
           "SUPPORTED_VERSIONS", "DEFAULT_MAX_BYTES"]
