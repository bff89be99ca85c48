# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Bit-packing of RNS limbs: the compiled half of the fhe_gpu wire format.

A *row* is one limb of one polynomial: ``n`` uint64 coefficients. Rows are described by
``k`` bit widths (and moduli) used cyclically: row ``r`` is written at ``widths[r % k]``
bits per coefficient (1..64), least significant bit first, little-endian bytes, and padded
with zero bits to a byte boundary, so it takes ``row_bytes(n, widths[r % k])`` bytes. Rows
follow each other without gaps. A batch of polynomials over one basis thus needs the
basis' widths only once.

Every loop runs with the GIL released. Input lengths are checked before any byte is read
or written; :func:`unpack_into` also checks each coefficient against its row's modulus.

:class:`OutputBuffer` lets a writer fill a ``bytes`` object in place: the object is
allocated once, uninitialized, and handed out only when every byte has been written.
"""
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

import numpy as np

from fhe_gpu.errors import SerializationError


cdef inline Py_ssize_t _row_bytes(Py_ssize_t n, int width) noexcept nogil:
    return (n * width + 7) >> 3


def row_bytes(Py_ssize_t n, int width):
    """Bytes of one packed row of ``n`` coefficients at ``width`` bits."""
    return _row_bytes(n, width)


cdef Py_ssize_t _checked_total(const uint8_t[::1] widths, Py_ssize_t nrows,
                               Py_ssize_t n) except -1:
    cdef Py_ssize_t r, k = widths.shape[0], block = 0, part = 0
    if n < 0 or nrows < 0:
        raise SerializationError(f"row count and length must be >= 0, got {nrows} x {n}")
    if k == 0:
        raise SerializationError("at least one bit width is needed")
    for r in range(k):
        if widths[r] < 1 or widths[r] > 64:
            raise SerializationError(f"bit width of row {r} is {widths[r]}: needs 1..64")
        block += _row_bytes(n, widths[r])
        if r < nrows % k:
            part += _row_bytes(n, widths[r])
    return block * (nrows // k) + part


def packed_size(const uint8_t[::1] widths, Py_ssize_t nrows, Py_ssize_t n):
    """Total bytes of ``nrows`` packed rows of ``n`` coefficients (widths used cyclically)."""
    return _checked_total(widths, nrows, n)


cdef inline void _store(uint8_t* p, uint64_t v, int nbytes) noexcept nogil:
    cdef int k
    for k in range(nbytes):
        p[k] = <uint8_t>(v >> (8 * k))


cdef inline uint64_t _load(const uint8_t* p, Py_ssize_t avail) noexcept nogil:
    cdef uint64_t v = 0
    cdef int k
    if avail >= 8:
        return (<uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16)
                | (<uint64_t>p[3] << 24) | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40)
                | (<uint64_t>p[6] << 48) | (<uint64_t>p[7] << 56))
    for k in range(avail):
        v |= <uint64_t>p[k] << (8 * k)
    return v


cdef Py_ssize_t _pack_row(const uint64_t* src, Py_ssize_t n, int w, uint64_t top,
                          uint8_t* dst) noexcept nogil:
    """Pack one row; returns the index of the first coefficient above ``top``, or -1."""
    cdef uint64_t acc = 0, v
    cdef uint64_t limit = (<uint64_t>0xFFFFFFFFFFFFFFFF) >> (64 - w)
    cdef int nbits = 0
    cdef Py_ssize_t i, pos = 0, bad = -1
    if top > limit:
        top = limit
    for i in range(n):
        v = src[i]
        if v > top and bad < 0:
            bad = i
        v &= limit
        acc |= v << nbits
        nbits += w
        if nbits >= 64:
            _store(dst + pos, acc, 8)
            pos += 8
            nbits -= 64
            acc = v >> (w - nbits) if nbits > 0 else 0
    if nbits > 0:
        _store(dst + pos, acc, (nbits + 7) >> 3)
    return bad


def pack_into(uint8_t[::1] out, Py_ssize_t offset, const uint64_t[:, ::1] rows,
              const uint8_t[::1] widths, const uint64_t[::1] moduli=None):
    """Pack ``rows`` (R, n) at ``widths`` (k,, cyclic) into ``out[offset:]``.

    Returns the offset just past the rows. Raises SerializationError when ``out`` is too
    short or a coefficient does not fit its width or, when ``moduli`` (k,) are given, is
    not below its modulus (so that the reader would accept it).
    """
    cdef Py_ssize_t r, n = rows.shape[1], nrows = rows.shape[0], pos = offset, bad = -1
    cdef Py_ssize_t bad_row = -1, k = widths.shape[0]
    cdef Py_ssize_t total = _checked_total(widths, nrows, n)
    cdef bint checked = moduli is not None
    if checked and moduli.shape[0] != k:
        raise SerializationError(f"{k} bit widths but {moduli.shape[0]} moduli")
    if offset < 0 or offset > out.shape[0] or out.shape[0] - offset < total:
        raise SerializationError(f"output buffer of {out.shape[0]} bytes cannot hold "
                                 f"{total} bytes at offset {offset}")
    if nrows == 0 or n == 0:
        return pos
    with nogil:
        for r in range(nrows):
            bad = _pack_row(&rows[r, 0], n, widths[r % k],
                            moduli[r % k] - 1 if checked else 0xFFFFFFFFFFFFFFFF, &out[pos])
            if bad >= 0:
                bad_row = r
                break
            pos += _row_bytes(n, widths[r % k])
    if bad_row >= 0:
        bound = (f"not below its modulus {moduli[bad_row % k]}" if checked
                 else f"wider than {widths[bad_row % k]} bits")
        raise SerializationError(f"cannot write coefficient {bad} of row {bad_row}: "
                                 f"{rows[bad_row, bad]} is {bound}")
    return pos


cdef void _unpack_tail(const uint8_t* src, Py_ssize_t nbytes, Py_ssize_t start,
                       Py_ssize_t n, int w, uint64_t* dst) noexcept nogil:
    """Unpack coefficients start..n-1 with a bit accumulator (any width, row end safe)."""
    cdef uint64_t acc = 0, word
    cdef uint64_t mask = (<uint64_t>0xFFFFFFFFFFFFFFFF) >> (64 - w)
    cdef int nbits = 0, used, got, skip
    cdef Py_ssize_t i, pos = (start * w) >> 3
    skip = <int>((start * w) & 7)
    if skip:
        acc = <uint64_t>src[pos] >> skip
        nbits = 8 - skip
        pos += 1
    for i in range(start, n):
        if nbits >= w:
            dst[i] = acc & mask
            acc = acc >> w if w < 64 else 0
            nbits -= w
        else:
            got = 8 if nbytes - pos >= 8 else <int>(nbytes - pos)
            word = _load(src + pos, got)
            pos += got
            dst[i] = (acc | (word << nbits)) & mask
            used = w - nbits
            acc = word >> used if used < 64 else 0
            nbits = 8 * got - used


cdef Py_ssize_t _unpack_row(const uint8_t* src, Py_ssize_t nbytes, Py_ssize_t n, int w,
                            uint64_t modulus, uint64_t* dst) noexcept nogil:
    """Unpack one row; returns the index of the first coefficient >= modulus, or -1.

    Widths up to 57 bits take one unaligned 8-byte load per coefficient while 8 bytes
    remain in the row; the rest of the row goes through the accumulator."""
    cdef uint64_t mask = (<uint64_t>0xFFFFFFFFFFFFFFFF) >> (64 - w)
    cdef uint64_t nbad = 0, v
    cdef Py_ssize_t i, bit, fast = 0
    if w <= 57 and nbytes >= 8:
        fast = ((nbytes - 7) * 8 - 1) // w + 1
        if fast > n:
            fast = n
    for i in range(fast):
        bit = i * w
        v = (_load(src + (bit >> 3), 8) >> (bit & 7)) & mask
        dst[i] = v
        nbad += v >= modulus
    _unpack_tail(src, nbytes, fast, n, w, dst)
    for i in range(fast, n):
        nbad += dst[i] >= modulus
    if nbad == 0:
        return -1
    for i in range(n):
        if dst[i] >= modulus:
            return i
    return -1


def unpack_into(const uint8_t[::1] data, Py_ssize_t offset, const uint8_t[::1] widths,
                const uint64_t[::1] moduli, uint64_t[:, ::1] out):
    """Unpack ``out.shape[0]`` rows from ``data[offset:]`` into ``out`` (R, n).

    Row r is read at ``widths[r % k]`` bits and every value must be below
    ``moduli[r % k]`` (k = len(widths) = len(moduli)). Returns the offset just past the
    rows. Raises SerializationError when the data is too short, a width is not 1..64 or
    a coefficient is not below its modulus.
    """
    cdef Py_ssize_t r, n = out.shape[1], nrows = out.shape[0], pos = offset, rb
    cdef Py_ssize_t bad = -1, bad_row = -1, k = widths.shape[0]
    if moduli.shape[0] != k:
        raise SerializationError(f"{k} bit widths but {moduli.shape[0]} moduli")
    cdef Py_ssize_t total = _checked_total(widths, nrows, n)
    if offset < 0 or offset > data.shape[0] or data.shape[0] - offset < total:
        raise SerializationError(f"truncated data: {nrows} rows need {total} bytes at "
                                 f"offset {offset}, but only {data.shape[0] - offset} remain")
    if nrows == 0 or n == 0:
        return pos
    with nogil:
        for r in range(nrows):
            rb = _row_bytes(n, widths[r % k])
            bad = _unpack_row(&data[pos], rb, n, widths[r % k], moduli[r % k], &out[r, 0])
            if bad >= 0:
                bad_row = r
                break
            pos += rb
    if bad_row >= 0:
        raise SerializationError(f"coefficient {bad} of row {bad_row} is {out[bad_row, bad]}, "
                                 f"not below its modulus {moduli[bad_row % k]}")
    return pos


def pack(const uint64_t[:, ::1] rows, const uint8_t[::1] widths):
    """``rows`` (R, n) packed at ``widths`` (used cyclically) as a new bytes object."""
    cdef Py_ssize_t total = _checked_total(widths, rows.shape[0], rows.shape[1])
    if total == 0:
        return b""
    buf = OutputBuffer(total)
    return buf.finish(pack_into(buf, 0, rows, widths))


cdef char* _FORMAT_U8 = b"B"


cdef class OutputBuffer:
    """A ``bytes`` object of ``size`` (>= 1) bytes, filled in place, then returned by
    :meth:`finish`.

    The object is created uninitialized by ``PyBytes_FromStringAndSize(NULL, size)`` and
    only this buffer references it until :meth:`finish`: writers reach its memory through
    this object's writable buffer protocol (``pack_into(buf, offset, ...)``) or
    :meth:`write`. :meth:`finish` hands it out (the caller then holds its only reference)
    only when the writer declares it filled to the end and no view of it is still held,
    so no uninitialized byte and no mutable alias ever escape.
    """

    cdef object _out
    cdef char* _base
    cdef Py_ssize_t _size
    cdef Py_ssize_t _shape[1]
    cdef Py_ssize_t _strides[1]
    cdef Py_ssize_t _exports

    def __cinit__(self, Py_ssize_t size):
        if size <= 0:
            raise SerializationError(f"an output buffer needs at least 1 byte, got {size}")
        self._out = PyBytes_FromStringAndSize(NULL, size)
        self._base = PyBytes_AS_STRING(self._out)
        self._size = size
        self._shape[0] = size
        self._strides[0] = 1
        self._exports = 0

    @property
    def size(self):
        """Bytes of the output."""
        return self._size

    def __getbuffer__(self, Py_buffer* view, int flags):
        if self._out is None:
            raise BufferError("the output buffer was already handed out by finish()")
        view.buf = self._base
        view.obj = self
        view.len = self._size
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = _FORMAT_U8
        view.ndim = 1
        view.shape = NULL
        view.strides = NULL
        if flags & PyBUF_ND:
            view.shape = self._shape
        if flags & PyBUF_STRIDES == PyBUF_STRIDES:
            view.strides = self._strides
        view.suboffsets = NULL
        view.internal = NULL
        self._exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self._exports -= 1

    def write(self, Py_ssize_t offset, const uint8_t[::1] data):
        """Copy ``data`` to ``offset``; returns the offset just past it."""
        cdef Py_ssize_t n = data.shape[0]
        if self._out is None:
            raise SerializationError("the output buffer was already handed out by finish()")
        if offset < 0 or offset > self._size or self._size - offset < n:
            raise SerializationError(f"output buffer of {self._size} bytes cannot hold "
                                     f"{n} bytes at offset {offset}")
        if n:
            memcpy(self._base + offset, &data[0], n)
        return offset + n

    def finish(self, Py_ssize_t filled):
        """The filled ``bytes`` object; ``filled`` is the writer's end offset, which must be
        the size (else SerializationError, and the unfilled object is dropped)."""
        if self._out is None:
            raise SerializationError("the output buffer was already handed out by finish()")
        if filled != self._size:
            self._out = None
            raise SerializationError(f"internal error: {filled} of {self._size} output bytes "
                                     f"were written")
        if self._exports:
            self._out = None
            raise SerializationError(f"internal error: {self._exports} views of the output "
                                     f"are still held")
        out, self._out = self._out, None
        return out


def unpack(const uint8_t[::1] data, const uint8_t[::1] widths, const uint64_t[::1] moduli,
           Py_ssize_t nrows, Py_ssize_t n):
    """The (nrows, n) uint64 array packed in ``data``, which must have exactly the packed
    size (checked before allocating); every value is checked against its modulus."""
    cdef Py_ssize_t total = _checked_total(widths, nrows, n)
    if data.shape[0] != total:
        raise SerializationError(f"{nrows} rows of {n} coefficients pack into {total} bytes, "
                                 f"got {data.shape[0]}")
    out = np.empty((nrows, n), dtype=np.uint64)
    unpack_into(data, 0, widths, moduli, out)
    return out
