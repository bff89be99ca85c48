"""Building blocks of the wire format: constants, the common header, a bounded reader,
limb layouts and the writer. The layout itself is documented in :mod:`fhe_gpu.serialize`.
"""
from __future__ import annotations

import enum
import math
import os
import struct
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from ..errors import ContextMismatchError, SerializationError

try:
    from . import _codec
    _CODEC_IMPORT_ERROR = None
except ImportError as exc:
    _codec = None
    _CODEC_IMPORT_ERROR = str(exc)

MAGIC = b"FHEG"
VERSION = 2
SUPPORTED_VERSIONS = (2,)
#: default bound on len(data) and on the bytes a from_bytes call may allocate
DEFAULT_MAX_BYTES = 2 << 30
FLAG_SEEDED = 0x01
#: bytes of the key id field (fhe_gpu.rlwe.keys.KEY_ID_BYTES); all zeros = no / unknown
KEY_ID_BYTES = 16
NO_KEY_ID = bytes(KEY_ID_BYTES)

PREFIX = struct.Struct("<4sHBB")         # magic, version, kind, flags
HEADER = struct.Struct("<4sHBB32s16s")   # ... then fingerprint, key id
HEADER_TAIL = struct.Struct("<32s16s")


class KeyIdRule(enum.Enum):
    """What the key id field of a kind may hold."""

    NONE = "none"            # always zero (Parameters, Plaintext)
    OPTIONAL = "optional"    # zero = unknown (Ciphertext)
    REQUIRED = "required"    # nonzero (SecretKey, PublicKey, EvaluationKeys, BootstrapKeys)


class Kind(enum.IntEnum):
    """Object kind byte of the common header."""

    PARAMETERS = 1
    PLAINTEXT = 2
    CIPHERTEXT = 3
    PUBLIC_KEY = 4
    EVALUATION_KEYS = 5
    SECRET_KEY = 6
    BOOTSTRAP_KEYS = 7


def codec_module():
    """The compiled bit-packing codec, or SerializationError when it was not built."""
    if _codec is None:
        raise SerializationError(f"the compiled codec fhe_gpu.serialize._codec is not built "
                                 f"({_CODEC_IMPORT_ERROR}): run `pip install -e .`")
    return _codec


def check_max_bytes(max_bytes) -> int:
    """``max_bytes`` as a positive int (None -> DEFAULT_MAX_BYTES)."""
    if max_bytes is None:
        return DEFAULT_MAX_BYTES
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise SerializationError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
    return max_bytes


#: bytes every decode may allocate besides its arrays (objects, views, messages)
FIXED_OVERHEAD = 1 << 16


def check_alloc(nbytes: int, max_bytes: int, what: str) -> None:
    """SerializationError unless decoding ``what`` may allocate ``nbytes`` bytes of arrays
    (plus FIXED_OVERHEAD)."""
    nbytes += FIXED_OVERHEAD
    if nbytes > max_bytes:
        raise SerializationError(f"decoding {what} would allocate {nbytes} bytes, above "
                                 f"max_bytes={max_bytes}")


class Reader:
    """A cursor over ``data`` that never reads past its end (SerializationError instead)."""

    def __init__(self, data, max_bytes: int):
        if isinstance(data, str) or not _is_buffer(data):
            raise SerializationError(f"expected bytes-like data, got {type(data).__name__}")
        try:
            view = memoryview(data).cast("B")
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"data is not a contiguous byte buffer: {exc}") from None
        if view.nbytes > max_bytes:
            raise SerializationError(f"data of {view.nbytes} bytes exceeds "
                                     f"max_bytes={max_bytes}")
        self.view, self.pos = view, 0

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self.view) - self.pos

    def need(self, nbytes: int, what: str) -> None:
        """SerializationError unless ``nbytes`` more bytes are there."""
        if nbytes > self.remaining:
            raise SerializationError(f"truncated data: {what} needs {nbytes} bytes at offset "
                                     f"{self.pos}, but only {self.remaining} remain")

    def take(self, layout: struct.Struct, what: str) -> tuple:
        """The fields of ``layout`` at the cursor."""
        self.need(layout.size, what)
        fields = layout.unpack_from(self.view, self.pos)
        self.pos += layout.size
        return fields

    def take_bytes(self, nbytes: int, what: str) -> bytes:
        """The next ``nbytes`` bytes."""
        self.need(nbytes, what)
        out = bytes(self.view[self.pos:self.pos + nbytes])
        self.pos += nbytes
        return out

    def polys(self, out, layout: "Layout") -> None:
        """Unpack polynomials into the C-contiguous ``out`` (..., limbs, n), checking that
        every coefficient is below its modulus (in parallel threads for large blocks)."""
        if not out.flags.c_contiguous:
            raise SerializationError("internal error: unpack target is not C-contiguous")
        rows = out.reshape(-1, layout.n)
        self.need(layout.nbytes * (rows.shape[0] // layout.limbs), "the packed polynomials")
        unpack = codec_module().unpack_into
        run_chunks([(unpack, self.view, self.pos + off, widths, moduli, rows[r0:r1])
                    for r0, r1, off, widths, moduli in layout.chunks(rows.shape[0])])
        self.pos += layout.nbytes * (rows.shape[0] // layout.limbs)

    def expect_end(self, total: int) -> None:
        """SerializationError unless the data is exactly ``total`` bytes long."""
        if len(self.view) != total:
            raise SerializationError(f"data is {len(self.view)} bytes, but its header "
                                     f"declares {total} bytes")


def _is_buffer(data) -> bool:
    try:
        memoryview(data)
    except TypeError:
        return False
    return True


def read_prefix(reader: Reader) -> tuple[int, int, int]:
    """The magic-checked, version-checked start of the common header: (version, kind,
    flags). Version 1 (before key ids) is refused with its own message."""
    magic, version, kind, flags = reader.take(PREFIX, "the header")
    if magic != MAGIC:
        raise SerializationError(f"bad magic {magic!r}: expected {MAGIC!r} (not fhe_gpu data)")
    if version == 1:
        raise SerializationError(
            f"format version 1 is not read any more: this fhe_gpu reads version {VERSION} "
            f"only (fhe_gpu is pre-1.0 and keeps no old formats; version 2 added key ids "
            f"and noise / value bounds): re-serialize the object with this fhe_gpu")
    if version not in SUPPORTED_VERSIONS:
        raise SerializationError(f"format version {version} is not supported: this "
                                 f"fhe_gpu reads versions {list(SUPPORTED_VERSIONS)}")
    return version, kind, flags


def read_header(reader: Reader, kind: Kind, fingerprint: bytes | None,
                key_rule: KeyIdRule = KeyIdRule.NONE) -> tuple[int, bytes, bytes | None]:
    """Check the common header for ``kind`` (and ``fingerprint`` unless None) and its key
    id against ``key_rule``.

    Returns (flags, fingerprint as written, key id or None when the field is zero)."""
    _, got_kind, flags = read_prefix(reader)
    if got_kind != kind:
        raise SerializationError(f"data holds a {kind_name(got_kind)}, not a {kind_name(kind)}")
    fp, key_id = reader.take(HEADER_TAIL, "the header")
    if fingerprint is not None and fp != fingerprint:
        raise ContextMismatchError(
            f"data was written under parameter fingerprint {fp.hex()}, but this context has "
            f"fingerprint {fingerprint.hex()}: it was made under other parameters")
    if key_id == NO_KEY_ID:
        if key_rule is KeyIdRule.REQUIRED:
            raise SerializationError(f"{kind_name(kind)} has key id 0 (none): a key needs the "
                                     f"nonzero id of its key set")
        return flags, fp, None
    if key_rule is KeyIdRule.NONE:
        raise SerializationError(f"{kind_name(kind)} declares key id {key_id.hex()}: this "
                                 f"kind has none, the field must be 0")
    return flags, fp, key_id


def check_flags(flags: int, allowed: int, what: str) -> None:
    """SerializationError when ``flags`` sets a bit outside ``allowed``."""
    if flags & ~allowed:
        raise SerializationError(f"flags 0x{flags:02x} of {what} set unknown bits "
                                 f"(allowed: 0x{allowed:02x})")


def kind_name(kind: int) -> str:
    """A kind byte as a readable name."""
    try:
        return Kind(kind).name.lower().replace("_", " ")
    except ValueError:
        return f"unknown kind {kind}"


def header(kind: Kind, fingerprint: bytes, flags: int = 0, key_id=None,
           key_rule: KeyIdRule = KeyIdRule.NONE) -> bytes:
    """The common header of a ``kind`` object. ``key_id`` (16 bytes, or None for zeros)
    is written unless ``key_rule`` is NONE (zeros); REQUIRED refuses None and all zeros
    (SerializationError)."""
    if key_id is None or key_rule is KeyIdRule.NONE:
        if key_rule is KeyIdRule.REQUIRED:
            raise SerializationError(f"a {kind_name(kind)} needs a key id to be written")
        key_id = NO_KEY_ID
    if not isinstance(key_id, (bytes, bytearray)) or len(key_id) != KEY_ID_BYTES:
        raise SerializationError(f"key id of a {kind_name(kind)} must be {KEY_ID_BYTES} bytes, "
                                 f"got {key_id!r:.60}")
    if key_rule is KeyIdRule.REQUIRED and bytes(key_id) == NO_KEY_ID:
        raise SerializationError(f"key id of a {kind_name(kind)} is all zeros, which the "
                                 f"format reserves for 'no key set'")
    return HEADER.pack(MAGIC, VERSION, int(kind), flags, fingerprint, bytes(key_id))


def check_log_n(log_n: int, ctx, what: str) -> None:
    """SerializationError unless ``log_n`` is the context's."""
    want = ctx.n.bit_length() - 1
    if log_n != want:
        raise SerializationError(f"{what} declares log_n={log_n}, but the context has "
                                 f"log_n={want}")


class Layout:
    """Bit widths and moduli of one polynomial's packed rows (one per limb).

    A block of several polynomials over the same primes repeats the layout: the codec
    uses widths and moduli cyclically.
    """

    def __init__(self, primes, n: int):
        self.moduli = np.array([int(q) for q in primes], dtype=np.uint64)
        self.widths = np.array([max(1, (int(q) - 1).bit_length()) for q in primes],
                               dtype=np.uint8)
        self.n = int(n)
        row_bytes = [(self.n * int(w) + 7) // 8 for w in self.widths]
        #: byte offset of each row inside one packed polynomial
        self.row_offsets = np.concatenate([[0], np.cumsum(row_bytes)]).astype(np.int64)
        #: packed bytes of one polynomial
        self.nbytes = int(self.row_offsets[-1])

    @property
    def limbs(self) -> int:
        """Rows per polynomial."""
        return len(self.widths)

    def offset(self, row: int) -> int:
        """Byte offset of ``row`` in a block of polynomials with this layout."""
        return (row // self.limbs) * self.nbytes + int(self.row_offsets[row % self.limbs])

    def chunks(self, nrows: int):
        """(first row, end row, byte offset, widths, moduli) of about equal row ranges for
        the worker threads; widths and moduli rotated to start at the first row."""
        count = min(_threads(), nrows, nrows * self.n // PARALLEL_MIN_COEFFS)
        bounds = np.linspace(0, nrows, max(count, 1) + 1).astype(np.int64)
        out = []
        for r0, r1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            shift = -(r0 % self.limbs)
            out.append((r0, r1, self.offset(r0), np.roll(self.widths, shift),
                        np.roll(self.moduli, shift)))
        return out


#: smallest number of coefficients worth a thread of its own
PARALLEL_MIN_COEFFS = 1 << 18
_POOL: list = []


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


def run_chunks(calls) -> None:
    """Run codec calls (fn, *args) that release the GIL: inline when there is one,
    else on a shared thread pool, re-raising the first error after all finished."""
    if len(calls) == 1:
        fn, *args = calls[0]
        fn(*args)
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="fhe-wire"))
    futures = [_POOL[0].submit(*call) for call in calls]
    wait(futures)
    for fut in futures:
        fut.result()


class Writer:
    """Plans an encoding, then writes it into one ``bytes`` object allocated once.

    :meth:`put` and :meth:`put_polys` only record the parts (small header bytes, or arrays
    of polynomials with their layout) and add up their sizes; :meth:`getvalue` allocates
    the output (the codec's OutputBuffer: an uninitialized ``bytes`` handed out only once
    filled) and packs every array straight into it. A C-contiguous NumPy block is packed
    as it is, any other NumPy array one polynomial at a time (views, no copies of
    contiguous polynomials) and a device array one polynomial at a time through
    ``to_host``, so the memory used beyond the output is about one polynomial.
    """

    def __init__(self, to_host=None):
        self._parts: list = []
        self._to_host = to_host
        #: bytes of everything recorded so far
        self.size = 0

    def put(self, data: bytes) -> None:
        """Append raw bytes."""
        data = bytes(data)
        self._parts.append(data)
        self.size += len(data)

    def put_polys(self, polys, layout: Layout) -> None:
        """Append polynomials ``polys`` (..., limbs, n), in C order of the leading axes,
        packed as ``layout``."""
        shape = tuple(int(d) for d in polys.shape)
        if len(shape) < 2 or shape[-2:] != (layout.limbs, layout.n):
            raise SerializationError(f"polynomials of shape {shape} to write do not end in "
                                     f"({layout.limbs} limbs, {layout.n} coefficients)")
        count = math.prod(shape[:-2])
        self._parts.append((polys, layout))
        self.size += count * layout.nbytes

    def getvalue(self) -> bytes:
        """The bytes of everything appended."""
        out = codec_module().OutputBuffer(self.size)
        pos = 0
        for part in self._parts:
            if isinstance(part, bytes):
                pos = out.write(pos, part)
            else:
                for rows in self._blocks(*part):
                    pos = _pack_block(out, pos, rows, part[1])
        return out.finish(pos)

    def _blocks(self, polys, layout: Layout):
        """(rows, n) uint64 blocks of whole polynomials, in order."""
        n = layout.n
        if isinstance(polys, np.ndarray):
            if polys.dtype == np.uint64 and polys.flags.c_contiguous:
                yield polys.reshape(-1, n)
                return
            for index in np.ndindex(polys.shape[:-2]):
                yield np.ascontiguousarray(polys[index], dtype=np.uint64)
            return
        if self._to_host is None:
            raise SerializationError(f"cannot write a {type(polys).__name__}: no backend "
                                     f"given to copy it to the host")
        for index in np.ndindex(tuple(polys.shape[:-2])):
            yield np.ascontiguousarray(self._to_host(polys[index]), dtype=np.uint64)


def _pack_block(out, pos: int, rows, layout: Layout) -> int:
    """Pack ``rows`` (whole polynomials) into ``out`` at ``pos``; the offset past them."""
    if rows.shape[0] % layout.limbs:
        raise SerializationError(f"{rows.shape[0]} rows to write are not whole "
                                 f"polynomials of {layout.limbs} limbs")
    pack = codec_module().pack_into
    run_chunks([(pack, out, pos + off, rows[r0:r1], widths, moduli)
                for r0, r1, off, widths, moduli in layout.chunks(rows.shape[0])])
    return pos + layout.nbytes * (rows.shape[0] // layout.limbs)


def expansion_scratch(batch: int, n: int) -> int:
    """Bound on the temporary bytes used to expand one seeded (batch, 1 limb, n) block."""
    return 16 * max(batch, 1) * n + 64 * n


def to_host(ctx, data) -> np.ndarray:
    """A backend array of ``ctx`` (best a small slice) as a C-contiguous uint64 NumPy
    array."""
    return np.ascontiguousarray(ctx.backend.to_host(data), dtype=np.uint64)
