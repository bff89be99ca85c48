"""Plaintext matrices times encrypted vectors: :class:`LinearTransform`.

Slot layout (interleaved lanes)
-------------------------------
A transform packs S = ``stride`` vectors per ciphertext (the ``vectors`` argument rounded up
to a power of two); each vector owns a lane of D = slots / S positions, element j of the
vector in lane t sitting at slot j*S + t. A rotation by k*S moves the positions of every
lane cyclically by k (mod D), all lanes at once, so one diagonal method serves all packed
vectors (e.g. 32 tokens x 768 at N = 2^16: S = 32, D = 1024). S = 1 is the plain layout,
element j at slot j. The batch axis of a ciphertext holds further groups of S vectors:
vector v of a batch goes to batch row v // S, lane v % S.

``complex_packing=True`` (real vectors only) puts two vectors in each lane, as the real and
the imaginary part of its slots (W and the bias being real, W (u + iv) + (1 + i) b =
(W u + b) + i (W v + b)): S = ceil(vectors / 2) rounded up to a power of two, vector v of
a batch in row v // (2S), lane v % S, imaginary part when (v // S) is odd. Same work per
ciphertext for twice the vectors, or lanes twice as long for as many (32 x 768 at
N = 2^16: D = 2048, 768 diagonals instead of 1024). Its output is only good for linear
steps and decryption: a polynomial of the slots would mix the two vectors.

Vectors longer than D are split into chunks of D elements (the last one shorter), chunk c
in its own ciphertext: the input spans c_in = ceil(d_in / D) ciphertexts, the output
c_out = ceil(d_out / D), and W is cut into c_out x c_in blocks (lists of ciphertexts in and
out; a single Ciphertext when there is one chunk).

Input chunk c (m elements, columns c0 .. c0+m-1 of W), one of two modes:

* ``input="periodic"`` (default): position j holds x[c0 + (j mod p)] (zero where
  j mod p >= m), with period p = m when the positions read (j < m + R - 1, R the largest
  output chunk) fit in D even after replication by doubling (m * 2^r <= D), else p = the
  next power of two >= m (then p divides D and the lane is truly periodic). A block uses p
  diagonals: d for a d x d transform that fits.
* ``input="padded"``: position j holds x[c0 + j] for j < m; positions j >= m are never
  read (every diagonal is zero there), so they may hold anything: zeros, or what a
  polynomial activation made of a previous output's zeros. A block uses min(D, m + R - 1)
  diagonals (offsets -(R-1) .. m-1, or all of 0 .. D-1).

Output chunk r (R elements, rows r0 .. r0+R-1): position i holds y[r0 + i] for i < R and
zero beyond, in every lane (lanes that carried no vector hold the bias).

Chaining: an output (or any function of it computed slot by slot) is a valid ``"padded"``
input of a next transform with the same ``vectors``. A ``"periodic"`` next transform needs
its input's positions >= m to be zero (a transform's output before any non-linear step):
``replicate_input`` then copies it into the periodic layout (log2 rotations, no level,
:func:`~.sums.replicate`; ``input_rotations`` lists its steps).

Method
------
output_r = sum_{c,k} diag_{r,c,k} * rot(x_c, k*S), diag_{r,c,k}[i] = W[r0+i, c0+col(i+k)]
(col(j) = j mod D mod p, or j mod D in padded mode; zero where col >= m or i >= R). Baby-step
giant-step with k = g*n1 + b, 0 <= b < n1: the baby rotations rot(x_c, b*S) of every b
used are hoisted (one ModUp per input ciphertext, ``Evaluator.rotate_many``); for each
giant step g of output r one ``Evaluator.mul_plain_sum`` over its terms (c, b), with the
diagonals pre-rotated by -g*n1*S, then one rotation by g*n1*S; the giant sums are added and
rescaled once. Key switches per call, whatever the batch: sum_c (babies of c other than 0) +
sum_r (giants of r other than 0), at most (n1 - 1) + (n2 - 1) <= 2*ceil(sqrt(d)) - 2 for a
d x d transform in one ciphertext. ``baby`` sets n1; by default n1 minimizes that count.
All-zero diagonals are skipped. Depth 1: the diagonals are encoded at the scale q_l of the
prime the rescale removes, so the output keeps the input's scale (up to a float ulp).

Cache
-----
Encoded diagonals are cached per level (least recently used levels evicted first) up to
``cache_bytes``; those that do not fit are encoded on the fly at each call (one giant
step's worth alive at a time). W and the bias stay the source of truth.
"""
from __future__ import annotations

import math
import numbers
import threading
from collections import OrderedDict

import numpy as np

from ..ckks import CIPHERTEXT_TYPES, EVALUATOR_TYPES, Context, Encoder, Evaluator
from ..errors import ContextMismatchError, LevelError, ParameterError, ScaleMismatchError
from .sums import check_galois_keys, replicate, replicate_rotations

#: the default memory bound on encoded diagonals per transform (bytes)
DEFAULT_CACHE_BYTES = 1 << 30
_GATHER_ELEMENTS = 1 << 22
_INPUT_MODES = ("periodic", "padded")


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _signed(k: int, slots: int) -> int:
    """The representative of k mod slots in (-slots/2, slots/2]."""
    k %= slots
    return k - slots if k > slots // 2 else k


def _int_arg(what: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo \
            or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ParameterError(f"{what} must be an integer {span}, got {value!r:.40}")
    return int(value)


def _finite_real(what: str, value, shape=None) -> np.ndarray:
    """``value`` as a finite float64 array (of ``shape`` when given), or ParameterError."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what} must be a real array, got {type(value).__name__} "
                             f"({exc})") from None
    if a.dtype.kind not in "biuf":
        raise ParameterError(f"{what} must hold real numbers, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ParameterError(f"{what} must have shape {shape}, got {a.shape}")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ParameterError(f"{what} must be finite, got {a[at]} at index {at}")
    return a


def _matrix(W) -> np.ndarray:
    try:
        shape = np.shape(W)
    except (TypeError, ValueError):
        shape = None
    if shape is None or len(shape) != 2 or 0 in shape:
        raise ParameterError(f"W must be a (d_out, d_in) matrix with d_out, d_in >= 1, got "
                             f"shape {shape}")
    return _finite_real("W", W)


def _chunks(d: int, block: int) -> list[tuple[int, int]]:
    """(start, size) of the chunks of a d-vector over lanes of ``block`` positions."""
    return [(s, min(block, d - s)) for s in range(0, d, block)]


def _period(m: int, rows: int, block: int) -> int:
    """The input period of a chunk of m elements read by outputs of ``rows`` rows."""
    need, covered = m + rows - 1, m
    while covered < need:
        covered *= 2
    return m if need <= block and covered <= block else _next_pow2(m)


class _Cache:
    """Encoded plaintexts by level and key: at most ``limit`` bytes, least recently used
    levels evicted first; what does not fit is not stored."""

    def __init__(self, limit: int):
        self.limit = limit
        self.nbytes = 0
        self._levels: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, level: int, key, make):
        with self._lock:
            entries = self._levels.get(level)
            if entries is not None:
                self._levels.move_to_end(level)
                if key in entries:
                    return entries[key]
        pt = make()
        with self._lock:
            self._put(level, key, pt)
        return pt

    def _put(self, level: int, key, pt) -> None:
        size = int(pt.nbytes)
        for old in [lv for lv in self._levels if lv != level]:
            if self.nbytes + size <= self.limit:
                break
            self.nbytes -= sum(int(p.nbytes) for p in self._levels.pop(old).values())
        entries = self._levels.setdefault(level, {})
        self._levels.move_to_end(level)
        if key not in entries and self.nbytes + size <= self.limit:
            entries[key] = pt
            self.nbytes += size

    def holds(self, level: int, key) -> bool:
        with self._lock:
            return key in self._levels.get(level, {})

    def clear(self) -> None:
        with self._lock:
            self._levels.clear()
            self.nbytes = 0


class LinearTransform:
    """y = W x + b for plaintext W (d_out x d_in, any sizes) and encrypted vectors x.

    Parameters
    ----------
    ctx : the ckks Context.
    W : real (d_out, d_in) array (finite). The transform keeps a float64 copy.
    bias : None or a real (d_out,) array.
    level : when given, the diagonals for inputs at this level are encoded now (within
        ``cache_bytes``); apply accepts inputs at any level >= 1 regardless.
    vectors : how many vectors one ciphertext packs (lanes; rounded up to a power of two).
    input : "periodic" (fewest diagonals) or "padded" (positions beyond the vector ignored:
        takes a previous transform's output as it is), see the module docstring.
    baby : the baby-step count n1 (None: the one that minimizes key switches).
    complex_packing : two real vectors per lane (real and imaginary parts).
    cache_bytes : memory bound on the encoded diagonals kept (default 1 GiB).

    ``lt.rotations`` lists the Galois steps ``apply`` needs, ``lt.depth`` == 1,
    ``lt.key_switches`` the key switches per call, ``lt.diagonals`` the plaintext products
    per call. Raises ParameterError for malformed W, bias or options and for more vectors
    than slots.
    """

    depth = 1

    def __init__(self, ctx, W, bias=None, level=None, *, vectors=1, input="periodic",
                 baby=None, complex_packing=False, cache_bytes=DEFAULT_CACHE_BYTES):
        if not isinstance(ctx, Context):
            raise ParameterError(f"LinearTransform needs a ckks Context, got "
                                 f"{type(ctx).__name__}")
        self.context = ctx
        self.W = _matrix(W)
        self.W.setflags(write=False)
        self.d_out, self.d_in = self.W.shape
        self.bias = None if bias is None else _finite_real("bias", bias, (self.d_out,))
        self.slots = ctx.slots
        self.pack = 2 if complex_packing else 1
        vectors = _int_arg("vectors", vectors, 1, self.slots * self.pack)
        self.stride = _next_pow2(-(-vectors // self.pack))
        self.block = self.slots // self.stride
        if input not in _INPUT_MODES:
            raise ParameterError(f"input must be one of {_INPUT_MODES}, got {input!r:.40}")
        self.input_mode = input
        self.input_chunks = _chunks(self.d_in, self.block)
        self.output_chunks = _chunks(self.d_out, self.block)
        rows = max(size for _, size in self.output_chunks)
        self.periods = [_period(m, rows, self.block) if input == "periodic" else None
                        for _, m in self.input_chunks]
        self._offsets = {(r, c): self._nonzero_offsets(r, c)
                         for r in range(len(self.output_chunks))
                         for c in range(len(self.input_chunks))}
        self.baby = self._choose_baby(baby)
        self._plan()
        self._encoder = Encoder(ctx)
        self._cache = _Cache(_int_arg("cache_bytes", cache_bytes, 0))
        if level is not None:
            self.warm(level)

    # ------------------------------------------------------------------ planning
    def _block_matrix(self, r: int, c: int) -> np.ndarray:
        (r0, rows), (c0, m) = self.output_chunks[r], self.input_chunks[c]
        return self.W[r0:r0 + rows, c0:c0 + m]

    def _candidate_offsets(self, r: int, c: int) -> np.ndarray:
        rows, m, p = self.output_chunks[r][1], self.input_chunks[c][1], self.periods[c]
        if p is not None:
            return np.arange(p)
        if m + rows - 1 <= self.block:
            return np.arange(-(rows - 1), m)
        return np.arange(self.block)

    def _columns(self, c: int, rows: int, ks: np.ndarray):
        """Column of W (within chunk c) read at row i by offset k, and whether it exists:
        arrays of shape (len(ks), rows)."""
        pos = (np.arange(rows)[None, :] + ks[:, None]) % self.block
        col = pos % self.periods[c] if self.periods[c] is not None else pos
        return col, col < self.input_chunks[c][1]

    def _diagonal_values(self, r: int, c: int, ks) -> np.ndarray:
        """diag_{r,c,k}[i] for i < R, shape (len(ks), R)."""
        w = self._block_matrix(r, c)
        ks = np.atleast_1d(np.asarray(ks, dtype=np.int64))
        col, ok = self._columns(c, w.shape[0], ks)
        return np.where(ok, w[np.arange(w.shape[0])[None, :], np.where(ok, col, 0)], 0.0)

    def _nonzero_offsets(self, r: int, c: int) -> np.ndarray:
        ks = self._candidate_offsets(r, c)
        step = max(1, _GATHER_ELEMENTS // self.output_chunks[r][1])
        keep = [ks[s:s + step][np.any(self._diagonal_values(r, c, ks[s:s + step]) != 0,
                                      axis=1)] for s in range(0, len(ks), step)]
        return np.concatenate(keep)

    def _switch_count(self, n1: int) -> int:
        babies = [set() for _ in self.input_chunks]
        giants = [set() for _ in self.output_chunks]
        for (r, c), ks in self._offsets.items():
            babies[c].update(np.unique(ks % n1).tolist())
            giants[r].update(np.unique(ks // n1).tolist())
        return sum(len(s - {0}) for s in babies) + sum(len(s - {0}) for s in giants)

    def _choose_baby(self, baby) -> int:
        if baby is not None:
            return _int_arg("baby", baby, 1, self.block)
        spans = [int(ks.max() - ks.min() + 1) for ks in self._offsets.values() if ks.size]
        span = max(spans, default=1)
        centre = math.sqrt(span * len(self.output_chunks) / len(self.input_chunks))
        lo, hi = max(1, min(span, int(centre / 2))), min(span, int(2 * centre) + 1)
        return min(range(lo, max(lo, hi) + 1), key=lambda n1: (self._switch_count(n1), -n1))

    def _plan(self) -> None:
        """Baby steps per input chunk, and per output chunk the terms of each giant step."""
        n1 = self.baby
        babies = [set() for _ in self.input_chunks]
        giants: list[dict] = [{} for _ in self.output_chunks]
        for (r, c), ks in self._offsets.items():
            for k in ks.tolist():
                babies[c].add(k % n1)
                giants[r].setdefault(k // n1, []).append((c, k % n1, k))
        self._babies = [sorted(b) for b in babies]
        self._giants = [sorted(g.items()) for g in giants]
        steps = {b * self.stride for bs in self._babies for b in bs}
        steps |= {g * n1 * self.stride for gs in self._giants for g, _ in gs}
        self.rotations = sorted({_signed(k, self.slots) for k in steps} - {0})
        self.key_switches = sum(len(set(b) - {0}) for b in self._babies) \
            + sum(len([g for g, _ in gs if g]) for gs in self._giants)
        self.diagonals = sum(int(ks.size) for ks in self._offsets.values())

    # ------------------------------------------------------------------ encoding
    def _lanes(self, positions: np.ndarray) -> np.ndarray:
        """Position vectors (..., D) laid out in slots (..., slots): every lane alike."""
        return np.repeat(positions, self.stride, axis=-1)

    def _diagonal(self, r: int, c: int, k: int, level: int):
        """The plaintext of diag_{r,c,k} pre-rotated by its giant step, at scale q_level."""
        def make():
            v = np.zeros(self.block)
            v[: self.output_chunks[r][1]] = self._diagonal_values(r, c, k)[0]
            v = np.roll(v, (k // self.baby) * self.baby)
            return self._encoder.encode(self._lanes(v), level=level,
                                        scale=float(self.context.q_primes[level]))
        return self._cache.get(level, ("diag", r, c, k), make)

    def _bias(self, r: int, level: int, scale: float):
        def make():
            (r0, rows) = self.output_chunks[r]
            v = np.zeros(self.block)
            v[:rows] = self.bias[r0:r0 + rows]
            v = v * (1 + 1j) if self.pack == 2 else v
            return self._encoder.encode(self._lanes(v), level=level, scale=scale)
        return self._cache.get(level, ("bias", r, scale), make)

    def warm(self, level) -> int:
        """Encode the diagonals for inputs at ``level`` into the cache (as many as
        ``cache_bytes`` holds, stopping at the first that does not fit); returns the
        cache's size in bytes."""
        level = self._level(level)
        for r, gs in enumerate(self._giants):
            for c, _, k in (t for _, terms in gs for t in terms):
                self._diagonal(r, c, k, level)
                if not self._cache.holds(level, ("diag", r, c, k)):
                    return self.cache_nbytes
        return self.cache_nbytes

    def _level(self, level) -> int:
        top = self.context.max_level
        if isinstance(level, bool) or not isinstance(level, numbers.Integral) \
                or not 1 <= level <= top:
            raise LevelError(f"a LinearTransform input needs a level in [1, {top}] (it "
                             f"rescales once), got {level!r:.40}")
        return int(level)

    @property
    def cache_nbytes(self) -> int:
        """Bytes of encoded plaintexts the cache holds now."""
        return self._cache.nbytes

    def diagonal_nbytes(self, level: int) -> int:
        """Bytes all diagonals of one call take encoded at ``level``."""
        return self.diagonals * (int(level) + 1) * self.context.n * 8

    def clear_cache(self) -> None:
        """Drop every cached plaintext."""
        self._cache.clear()

    # ------------------------------------------------------------------ apply
    def _inputs(self, ev: Evaluator, ct) -> list:
        """The input ciphertexts, checked (chunks, context, level, scale, batch, keys)."""
        if not isinstance(ev, EVALUATOR_TYPES):
            raise ParameterError(f"apply needs an Evaluator, got {type(ev).__name__}")
        cts = [ct] if isinstance(ct, CIPHERTEXT_TYPES) else ct
        if not isinstance(cts, (list, tuple)) or len(cts) != len(self.input_chunks):
            got = f"{len(cts)} ciphertexts" if isinstance(cts, (list, tuple)) else \
                type(ct).__name__
            raise ParameterError(
                f"this transform takes {len(self.input_chunks)} input ciphertext(s) (d_in = "
                f"{self.d_in} over lanes of {self.block} positions), got {got}")
        if ev.context.backend is not self.context.backend:
            raise ContextMismatchError(f"the Evaluator runs on backend {ev.context.backend!r}, "
                                       f"this transform on {self.context.backend!r}")
        for i, x in enumerate(cts):
            if not isinstance(x, CIPHERTEXT_TYPES):
                raise ParameterError(f"input {i} must be a Ciphertext, got {type(x).__name__}")
            ev.context.check(x, f"LinearTransform input {i}")
            self.context.check(x, f"LinearTransform input {i}")
        first = cts[0]
        for x in cts[1:]:
            if (x.level, x.batch_size) != (first.level, first.batch_size):
                raise ParameterError(f"input chunks differ: level {x.level} batch "
                                     f"{x.batch_size} vs level {first.level} batch "
                                     f"{first.batch_size}")
            if abs(x.scale - first.scale) > 1e-9 * first.scale:
                raise ScaleMismatchError(f"input chunks have scales {x.scale!r} and "
                                         f"{first.scale!r}")
        if first.level < 1:
            raise LevelError(f"LinearTransform needs one level (it rescales once), the input "
                             f"is at level {first.level}")
        check_galois_keys(ev, self.rotations, f"LinearTransform {self.d_out}x{self.d_in}")
        return list(cts)

    def apply(self, ev: Evaluator, ct):
        """W x + b for every vector of ``ct`` (a Ciphertext, or a list of input chunks),
        batched. Returns a Ciphertext (a list of output chunks when d_out spans several),
        one level below the input, at its scale. Checks chunks, levels, scales and Galois
        keys (KeyMissingError listing the missing steps) before any homomorphic work."""
        cts = self._inputs(ev, ct)
        level = cts[0].level
        babies = [dict(zip(bs, ev.rotate_many(x, [b * self.stride for b in bs])))
                  for x, bs in zip(cts, self._babies)]
        bound = max((x.value_bound for x in cts), default=None) \
            if all(x.value_bound is not None for x in cts) else None
        outs = [self._output(ev, r, babies, level, cts[0], bound)
                for r in range(len(self.output_chunks))]
        return outs[0] if len(outs) == 1 else outs

    def _output(self, ev: Evaluator, r: int, babies, level: int, x0, x_bound):
        giants = self._giants[r]
        # one giant sum alive at a time; the giant rotations share one ModDown
        inners = (ev.mul_plain_sum([babies[c][b] for c, b, _ in terms],
                                   [self._diagonal(r, c, k, level) for c, _, k in terms])
                  for _, terms in giants)
        steps = [g * self.baby * self.stride for g, _ in giants]
        y = ev.mul(x0, 0.0) if not giants else ev.rescale(ev.rotate_sum(inners, steps))
        if self.bias is not None:
            y = ev.add(y, self._bias(r, y.level, y.scale))
        return self._tighten(ev, y, r, x_bound)

    def _tighten(self, ev: Evaluator, y, r: int, x_bound):
        """y with its value bound set to max_i sum_j |W_ij| * |x| + |b_i| over chunk r's
        rows, when that is tighter than what interval arithmetic tracked."""
        if x_bound is None:
            return y
        r0, rows = self.output_chunks[r]
        bound = np.abs(self.W[r0:r0 + rows]).sum(axis=1) * x_bound
        if self.bias is not None:
            bound = bound + np.abs(self.bias[r0:r0 + rows]) * math.sqrt(self.pack)
        b = float(bound.max())
        if b > 0 and (y.value_bound is None or b < y.value_bound):
            return ev.assume_bound(y, b)
        return y

    # ------------------------------------------------------------------ layouts
    def _vectors(self, x) -> np.ndarray:
        try:
            a = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"x must be a numeric array, got {type(x).__name__} "
                                 f"({exc})") from None
        if a.dtype.kind not in "biufc" or a.ndim not in (1, 2) or a.shape[-1] != self.d_in \
                or a.size == 0:
            raise ParameterError(f"x must have shape ({self.d_in},) or (B, {self.d_in}) "
                                 f"(d_in = {self.d_in}), got shape {a.shape} dtype {a.dtype}")
        a = np.atleast_2d(a)
        if self.pack == 2 and a.dtype.kind == "c":
            raise ParameterError(f"complex_packing needs real vectors, got dtype {a.dtype}")
        if not np.isfinite(a).all():
            at = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise ParameterError(f"x must be finite, got {a[at]} at index {at}")
        return a

    def input_slots(self, x) -> list[np.ndarray]:
        """The slot vectors holding x ((d_in,) or (B, d_in)) in this transform's input
        layout: one (ceil(B / vectors_per_ciphertext), slots) array per input chunk."""
        a = self._vectors(x)
        per = self.vectors_per_ciphertext
        rows = -(-a.shape[0] // per) * per
        out = []
        for (c0, m), p in zip(self.input_chunks, self.periods):
            v = np.zeros((rows, self.block), dtype=a.dtype)
            j = np.arange(self.block) % (p or self.block)
            ok = j < m
            v[: a.shape[0], ok] = a[:, c0 + j[ok]]
            if self.pack == 2:
                v = v.reshape(-1, 2, self.stride, self.block)
                v = v[:, 0] + 1j * v[:, 1]
            lanes = v.reshape(-1, self.stride, self.block).transpose(0, 2, 1)
            out.append(lanes.reshape(-1, self.slots))
        return out

    def encode_input(self, x, level=None, scale=None):
        """x ((d_in,) or (B, d_in)) encoded in the input layout: a Plaintext of batch
        ceil(B / vectors_per_ciphertext), or a list of them (one per input chunk)."""
        pts = [self._encoder.encode(s, level=level, scale=scale) for s in self.input_slots(x)]
        return pts[0] if len(pts) == 1 else pts

    def decode_output(self, z, count=None, real: bool = True) -> np.ndarray:
        """(count, d_out) output vectors from decoded slots ``z``: an array (slots,) or
        (batch, slots), or a list of them (one per output chunk). ``count`` defaults to
        every vector the slots hold (batch * vectors_per_ciphertext); ``real`` returns the
        real parts (complex packing always does)."""
        zs = list(z) if isinstance(z, (list, tuple)) else [z]
        if len(zs) != len(self.output_chunks):
            raise ParameterError(f"decode_output needs {len(self.output_chunks)} slot "
                                 f"array(s) (one per output chunk), got {len(zs)}")
        parts = []
        for (_, rows), part in zip(self.output_chunks, zs):
            a = np.atleast_2d(np.asarray(part))
            if a.ndim != 2 or a.shape[1] != self.slots or a.shape[0] != \
                    np.atleast_2d(np.asarray(zs[0])).shape[0]:
                raise ParameterError(f"decoded slots must have shape ({self.slots},) or "
                                     f"(batch, {self.slots}), one batch for all chunks; "
                                     f"got {np.shape(part)}")
            lanes = a.reshape(-1, self.block, self.stride).transpose(0, 2, 1)[:, :, :rows]
            if self.pack == 2:
                lanes = np.stack([lanes.real, lanes.imag], axis=1)
            parts.append(lanes.reshape(-1, rows))
        y = np.concatenate(parts, axis=1)
        if count is not None:
            y = y[: _int_arg("count", count, 1, y.shape[0])]
        return y.real if real else y

    @property
    def vectors_per_ciphertext(self) -> int:
        """How many vectors one ciphertext (one batch row) holds: stride * (2 with complex
        packing, else 1)."""
        return self.stride * self.pack

    def forward_plain(self, x) -> np.ndarray:
        """The cleartext twin: x @ W.T + b for x of shape (d_in,) or (B, d_in)."""
        a = self._vectors(x)
        y = a @ self.W.T + (0.0 if self.bias is None else self.bias)
        return y[0] if np.ndim(x) == 1 else y

    # ------------------------------------------------------------------ chaining
    def _replicate_plan(self) -> list[tuple[int, int, int]]:
        """Per input chunk (n, m, length) of its replication, length 0 when none."""
        rows = max(size for _, size in self.output_chunks)
        plan = []
        for (_, m), p in zip(self.input_chunks, self.periods):
            length = 0 if p is None or p == self.block else min(self.block, p + rows - 1)
            plan.append((self.block, p or m, length))
        return plan

    @property
    def input_rotations(self) -> list[int]:
        """The Galois steps :meth:`replicate_input` needs."""
        steps = {_signed(k, self.slots) for n, m, length in self._replicate_plan() if length
                 for k in replicate_rotations(n, m, self.stride, length)}
        return sorted(steps - {0})

    def replicate_input(self, ev: Evaluator, ct):
        """A zero-padded input (positions >= m zero in every lane: the output of a transform
        with the same ``vectors``, before any non-linear step) in this transform's periodic
        input layout: no level, log2 rotations per chunk (see ``input_rotations``); the
        input itself in "padded" mode."""
        cts = [ct] if isinstance(ct, CIPHERTEXT_TYPES) else list(ct)
        if len(cts) != len(self.input_chunks):
            raise ParameterError(f"replicate_input needs {len(self.input_chunks)} "
                                 f"ciphertext(s), got {len(cts)}")
        check_galois_keys(ev, self.input_rotations, "replicate_input")
        out = [replicate(ev, x, n, m, self.stride, length) if length else x
               for x, (n, m, length) in zip(cts, self._replicate_plan())]
        return out[0] if len(out) == 1 else out

    def __repr__(self):
        return (f"LinearTransform({self.d_out}x{self.d_in}, vectors="
                f"{self.vectors_per_ciphertext}{' (complex packing)' if self.pack == 2 else ''}, "
                f"block={self.block}, input={self.input_mode!r}, chunks "
                f"{len(self.output_chunks)}x{len(self.input_chunks)}, diagonals="
                f"{self.diagonals}, baby={self.baby}, key_switches={self.key_switches})")
