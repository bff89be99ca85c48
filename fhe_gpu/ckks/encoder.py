"""The canonical embedding: complex vectors <-> plaintext polynomials.

Slot j holds the value of the polynomial at zeta^(5^j), zeta = exp(i*pi/N); the other N/2
roots carry the conjugates, so the polynomial is real. With w_i = m_i * zeta^i, the values
at the odd powers zeta^(2t+1) are N * ifft(w)[t]: encoding and decoding are one FFT each,
vectorized over the batch.

A Plaintext the Encoder makes keeps the slot values it encoded (:func:`encoded_values`) so
that the Simulator reads them instead of decoding: compactly, one value per run when the
vector repeats each value r times (a LinearTransform's diagonals repeat each position over
the ``vectors`` lanes), and only when they take at most a quarter of the Plaintext's own
bytes (a transform's diagonal at level l with v vectors per ciphertext: 1/(2v(l+1)) of
them; the demo model's 655 diagonals: 5.4 MB beside 423 MB, 1.3 %). Keeping them costs an
encoding about 30 us (2 % at N = 2^14); copies, slices, stacks and loaded Plaintexts keep
nothing (the Simulator decodes those).
"""
from __future__ import annotations

import numpy as np

from ..errors import LevelError, ParameterError
from ..ring.numbers import crt_compose
from ..rlwe.keys import check_context
from ..rlwe.objects import Plaintext, check_fits
from ..rlwe.resources import check_memory

_INT64_SAFE = float(2 ** 62)


class Encoder:
    """Encodes (batch of) real or complex vectors into Plaintexts and decodes them back."""

    def __init__(self, context):
        self.context = check_context(context, "Encoder")
        n = context.n
        g = np.array([pow(5, j, 2 * n) for j in range(n // 2)], dtype=np.int64)
        self._slot_pos = (g - 1) // 2
        self._conj_pos = (2 * n - g - 1) // 2
        self._twist = np.exp(1j * np.pi * np.arange(n) / n)

    # ---------------------------------------------------------------- encode
    def encode(self, values, level: int | None = None, scale: float | None = None,
               keep_values: bool = True) -> Plaintext:
        """Encode ``values`` of shape (k,) or (batch, k), 1 <= k <= slots (zero-padded).

        ``keep_values``: the plaintext keeps a compact copy of the values (at most a quarter
        of its bytes) for the Simulator's fast path; False for plaintexts only ever
        multiplied encrypted (bootstrapping's DFT diagonals: 160 MB at N = 2^16).

        Raises ParameterError for no values, too many values or non-finite ones,
        LevelError for a level outside [0, max_level], ModulusOverflowError when
        max|value| * scale does not fit Q_level (see rlwe.objects.check_fits: one bit for
        the sign and one of headroom), ResourceError for a batch larger than memory.
        """
        ctx = self.context
        level = ctx.max_level if level is None else self._level(level)
        scale = ctx.default_scale if scale is None else _scale(scale)
        z = self._values(values)
        check_memory(z.shape[0] * ctx.n * (48 + 16 * (level + 1)),
                     f"encoding a batch of {z.shape[0]} vectors")
        bound = float(np.max(np.abs(z)))
        check_fits(ctx, level, scale, bound, what="the encoded values")
        v = np.zeros((z.shape[0], ctx.n), dtype=np.complex128)
        v[:, self._slot_pos[: z.shape[1]]] = z
        v[:, self._conj_pos[: z.shape[1]]] = np.conj(z)
        m = (np.fft.fft(v, axis=-1) / ctx.n * np.conj(self._twist)).real * scale
        basis = ctx.q_basis(level)
        be = ctx.backend
        res = be.to_device(_residues(np.round(m), basis.primes, scale))
        real = not np.any(z.imag)
        pt = Plaintext(be.ntt(res, basis), level, scale, ctx, value_bound=bound, real=real)
        kept = EncodedValues.of(z.real if real else z) if keep_values else None
        if kept is not None and kept.nbytes * 4 <= pt.nbytes:
            pt._encoded_values = kept
        return pt

    def _level(self, level) -> int:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= self.context.max_level:
            raise LevelError(f"level {level!r} is outside [0, {self.context.max_level}]")
        return int(level)

    def _values(self, values) -> np.ndarray:
        try:
            z = np.asarray(values)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"values must be a numeric array: {exc}") from None
        if z.dtype.kind not in "biufc":
            raise ParameterError(f"values must be real or complex numbers, got dtype {z.dtype}")
        if z.ndim not in (1, 2):
            raise ParameterError(f"values must have shape (k,) or (batch, k), got {z.shape}")
        z = np.atleast_2d(z).astype(np.complex128)
        if z.shape[1] == 0:
            raise ParameterError(f"values hold no numbers (shape {z.shape}): needs 1 to "
                                 f"{self.context.slots} values per vector")
        if z.shape[1] > self.context.slots:
            raise ParameterError(f"{z.shape[1]} values do not fit: the slot count is "
                                 f"{self.context.slots}")
        if z.shape[0] == 0:
            raise ParameterError("values hold an empty batch (shape (0, k))")
        bad = ~np.isfinite(z)
        if bad.any():
            raise ParameterError(f"values must be finite, got {z[bad].flat[0]} at index "
                                 f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
        return z

    # ---------------------------------------------------------------- decode
    def decode(self, pt: Plaintext) -> np.ndarray:
        """complex128 slot values: shape (slots,) for a batch of one, else (batch, slots)."""
        if not isinstance(pt, Plaintext):
            raise ParameterError(f"decode needs a Plaintext, got {type(pt).__name__}")
        ctx = self.context
        ctx.check(pt, "plaintext")
        basis = ctx.q_basis(pt.level)
        coeffs = ctx.backend.to_host(ctx.backend.intt(pt.data, basis))
        m = crt_compose(coeffs, basis.primes, pt.scale)
        z = np.fft.ifft(m * self._twist, axis=-1)[:, self._slot_pos] * ctx.n
        return z[0] if z.shape[0] == 1 else z


class EncodedValues:
    """The slot values (batch, k) a Plaintext encodes, as ``compact`` (batch, k / repeat):
    slot i holds compact[:, i // repeat] for i < k, zero beyond. For one real vector,
    ``row`` is :func:`support_row` of (compact[0], repeat) (else None)."""

    def __init__(self, compact: np.ndarray, repeat: int, count: int):
        self.compact, self.repeat, self.count = compact, repeat, count
        compact.setflags(write=False)
        self.row = None
        if compact.shape[0] == 1 and compact.dtype == np.float64:
            self.row = support_row(compact[0], repeat)

    @classmethod
    def of(cls, z: np.ndarray) -> "EncodedValues":
        """The values z (batch, k), each run of equal values kept once (runs of the
        largest power of two that divides k)."""
        c, repeat = z, 1
        while c.shape[1] % 2 == 0 and np.array_equal(c[:, 0::2], c[:, 1::2]):
            c, repeat = c[:, 0::2], repeat * 2
        return cls(np.ascontiguousarray(c), repeat, z.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return int(self.compact.nbytes)

    def full(self, slots: int) -> np.ndarray:
        """The values of every slot, (batch, slots)."""
        out = np.zeros((self.compact.shape[0], slots), dtype=self.compact.dtype)
        out[:, : self.count] = np.repeat(self.compact, self.repeat, axis=1)
        return out


def cyclic_support(row: np.ndarray) -> tuple[int, int]:
    """(start, length) of the shortest cyclic run of ``row`` holding all its nonzeros
    (length 0 when there are none)."""
    nz = np.flatnonzero(row)
    if nz.size in (0, row.size):
        return 0, int(nz.size)
    gaps = np.diff(nz, append=nz[0] + row.size)
    i = int(np.argmax(gaps))
    return int(nz[(i + 1) % nz.size]), int(row.size - gaps[i] + 1)


def support_row(values: np.ndarray, repeat: int) -> tuple:
    """(values, repeat, start, length, the values of the run): the shortest cyclic run
    of ``values`` (start, length) holding all its nonzeros, as the Simulator sums them."""
    start, length = cyclic_support(values)
    end = start + length
    run = values[start:end] if end <= values.size else \
        np.concatenate((values[start:], values[:end - values.size]))
    return values, repeat, start, length, run


def encoded_values(pt) -> EncodedValues | None:
    """The values an Encoder encoded into ``pt`` (None for Plaintexts made otherwise:
    copies, slices, stacks, loaded bytes, or values too large to keep)."""
    return pt.__dict__.get("_encoded_values")


def _scale(scale) -> float:
    """A user-given scale as a float, or ParameterError."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ParameterError(f"scale must be a real number, got {scale!r}")
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ParameterError(f"scale must be a positive finite number, got {scale}")
    return scale


def _residues(m: np.ndarray, primes, scale: float) -> np.ndarray:
    """Rounded real coefficients (batch, n) as RNS residues (batch, limbs, n)."""
    peak = float(np.max(np.abs(m))) if m.size else 0.0
    if not np.isfinite(peak):
        raise ParameterError(f"values times scale {scale} overflow to {peak}")
    if peak < _INT64_SAFE:
        x = m.astype(np.int64)[:, None, :]
        return (x % np.array(primes, dtype=np.int64)[:, None]).astype(np.uint64)
    big = np.vectorize(int, otypes=[object])(m)[:, None, :]
    q = np.array([int(p) for p in primes], dtype=object)[:, None]
    return (big % q).astype(np.uint64)
