"""The Simulator's fast paths: the per-slot work of its operations in Numba kernels
(:mod:`fhe_gpu.ring._numba_slots`: the ring layer is the one that imports Numba), and sums
of plaintext products over rotations of one ciphertext (a LinearTransform's giant step,
sum_t pt_t * rotate(x, k_t), then rotated by the giant step).

Run term by term, such a sum costs a pass over every slot per term for the values, the
error's draw and its variance, plus a key switch's noise per rotation: the demo model's
655 diagonals took 20 ms that way, their 69 rotations 5 ms more, decoding the plaintexts
1-2 s on first sight. Here the plaintexts' values are those the Encoder kept
(:func:`~fhe_gpu.ckks.encoder.encoded_values`), the rotations stay pending
(:meth:`Simulator.rotate_many`), the sum reads x itself and stays pending too
(:class:`PendingSum`): rotating it (by a multiple of its run length) and adding another
such sum over rotations of x are bookkeeping, so that a transform's giant steps, rotated
and added, are evaluated at once when first read (its rescale), in one kernel
(``plain_sum_kernel``, once per transform):

* values: sum_t P_t * roll(x, k_t). When every plaintext repeats each value over runs of
  r slots and every k_t is a multiple of r (a transform's lanes), P_t is one value per
  run, and only the cyclic run of positions holding its nonzero values is visited;
* variance: the same sum with weights P_t^2 over x's per-slot variance, its correlation
  factor included (``slot_var``), plus each rotation's key-switching variance (the
  rounding's per-slot profile, the centred digits, the digit mean's peak moved with
  k_t), the giant steps' key switches, and the plaintexts' encoding rounding;
* draw: a fresh Gaussian draw of that variance. The terms' errors are independent (one
  slot of x's error reaches an output slot through one term only; the rotations' noises
  are independent; a transform's diagonals reach x at distinct offsets), so the sum's
  error is Gaussian of that variance. What the draw no longer carries is its correlation
  with the errors of other ciphertexts (x's, or those of a rotation or a partial sum also
  read elsewhere), which only a later combination of the sum with those would need.

Used in variance mode when every operand is x or a pending rotation of x by the same
Simulator and every plaintext is one real vector; otherwise the Simulator evaluates the
rotations and sums term by term. The other kernels fuse what the Simulator does per slot
for a rotation, a product of ciphertexts and an added noise (variance mode). Every kernel
keeps one Numba signature (its inputs made C-contiguous and writable, the normals
read-only), loaded by :func:`warm` when a Simulator is made: about 20 ms once per process
from Numba's on-disk cache.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..ring._numba_slots import (noise_kernel, plain_sum_kernel, product_kernel,
                                 rotate_kernel)
from .encoder import support_row


def _full(v, shape, dtype=np.float64) -> np.ndarray:
    """``v`` broadcast to ``shape`` as a writable C-contiguous array of ``dtype`` (copied
    unless it is one): the kernels' inputs keep one Numba signature each."""
    if isinstance(v, np.ndarray) and v.shape == shape and v.dtype == dtype \
            and v.flags.c_contiguous and v.flags.writeable:
        return v
    return np.array(np.broadcast_to(v, shape), dtype=dtype, order="C")


def _normal(sim, shape) -> np.ndarray:
    """Standard complex normals of ``shape`` as float pairs (read-only)."""
    return sim.pool.normal(shape).view(np.float64)


def rotated(sim, ct, k: int, switch):
    """(values, error) of ``ct`` (variance mode) rotated by k with the key-switching
    noise of per-slot variance and deviation ``switch`` (None: a ciphertext that is all
    zeros rotates without noise)."""
    shape = ct.values.shape
    slots = shape[1]
    var = _full(ct.error.var, shape)
    state = _full(ct.error.state, shape, np.complex128)
    sw, sd = switch if switch is not None else (np.zeros(slots), np.zeros(slots))
    values = _full(ct.values, shape, ct.values.dtype)
    out_values, out_var = np.empty_like(values), np.empty(shape)
    out_state = np.empty(shape, dtype=np.complex128)
    flat = (lambda a: a.view(np.float64)) if np.iscomplexobj(values) else (lambda a: a)
    rotate_kernel(flat(values), var, state.view(np.float64), k % slots, sw, sd,
                  _normal(sim, shape), flat(out_values), out_var,
                  out_state.view(np.float64))
    return out_values, sim._err(out_var, out_state)


def product(sim, a, b, switch):
    """(values, error) of a * b relinearized (variance mode), ``switch`` the key switch's
    per-slot (variance, deviation) (None: no noise, an all-zero product)."""
    shape = np.broadcast_shapes(a.values.shape, b.values.shape)
    dtype = np.result_type(a.values, b.values)
    x, y = _full(a.values, shape, dtype), _full(b.values, shape, dtype)
    if switch is None:
        switch = (np.zeros(shape[1]), np.zeros(shape[1]))
    out, out_var = np.empty(shape, dtype=dtype), np.empty(shape)
    out_state = np.empty(shape, dtype=np.complex128)
    product_kernel(x, y, _full(a.error.var, shape), _full(b.error.var, shape),
                   _full(a.error.state, shape, np.complex128),
                   _full(b.error.state, shape, np.complex128), a.error is b.error,
                   switch[0], switch[1], sim.pool.normal(shape), out, out_var, out_state)
    return out, sim._err(out_var, out_state)


def noisy(sim, err, shape, noise):
    """The error ``err`` (variance mode, of objects of ``shape``) plus an independent
    noise of per-slot (variance, deviation) ``noise``."""
    var, state = _full(err.var, shape), _full(err.state, shape, np.complex128)
    out_var, out_state = np.empty(shape), np.empty(shape, dtype=np.complex128)
    noise_kernel(var, state.view(np.float64), noise[0], noise[1], _normal(sim, shape),
                 out_var, out_state.view(np.float64))
    return sim._err(out_var, out_state)


def warm() -> None:
    """Load (or compile) the kernels, with the argument types the Simulator passes (the
    first call of a cached kernel in a process takes milliseconds)."""
    def normal(shape):
        z = np.ones(shape, dtype=np.complex128)
        z.flags.writeable = False
        return z

    zero, one, row = np.zeros(1, dtype=np.int64), np.ones((1, 1, 1)), np.ones((1, 1))
    cplx = np.ones((1, 1), dtype=np.complex128)
    pairs = normal((1, 1)).view(np.float64)
    plain_sum_kernel(np.ones(1), np.array([0, 1]), zero, zero, zero, one, one, one, row,
                     row, False, 0.0, pairs.reshape(1, 1, 2), np.empty_like(one),
                     np.empty_like(one), np.empty((1, 1, 2)))
    rotate_kernel(row, row, np.ones((1, 2)), 0, row[0], row[0], pairs, np.empty_like(row),
                  np.empty_like(row), np.empty((1, 2)))
    for values in (row, cplx):
        product_kernel(values, values, row, row, cplx, cplx, False, row[0], row[0],
                       normal((1, 1)), np.empty_like(values), np.empty_like(row),
                       np.empty_like(cplx))
    noise_kernel(row, np.ones((1, 2)), row[0], row[0], pairs, np.empty_like(row),
                 np.empty((1, 2)))


def fast_terms(sim, cts, pts, plain_types, level: int):
    """The terms of a sum of ``cts[t] * pts[t]`` when every ciphertext is x or a pending
    rotation of x by ``sim`` (shift 0 for x itself) and every plaintext (of
    ``plain_types``) one real vector at pts[0]'s scale and a level >= ``level``, of sim's
    parameters; else None (the Simulator then checks and sums term by term). The terms:
    (x, shifts, rows), rows the :func:`~fhe_gpu.ckks.encoder.support_row` of each
    plaintext's values, compact when the Encoder kept them."""
    src, shifts, rows = None, [], []
    slots, fp, p_scale = sim.context.slots, sim.context.fingerprint, pts[0].scale
    for ct, pt in zip(cts, pts):
        pending = ct.__dict__.get("_pending")
        if pending is None or pending[3] is not None:
            base, k = ct, 0
        elif pending[0] is sim:
            base, k = pending[1], pending[2] % slots
        else:
            return None
        if src is None:
            src = base
        elif base is not src:
            return None
        if not isinstance(pt, plain_types) or pt.fingerprint != fp or pt.scale != p_scale \
                or pt.level < level:
            return None
        kept = pt.__dict__.get("_encoded_values")
        row = kept.row if kept is not None and kept.count == slots else _row(sim, pt)
        if row is None:
            return None
        shifts.append(k)
        rows.append(row)
    return src, shifts, rows


def _row(sim, pt):
    """The support_row of a plaintext holding one real vector (else None)."""
    if pt.batch_size != 1 or not pt.real:
        return None
    return support_row(sim._plaintext(pt).values[0], 1)


def _run_length(rows, shifts) -> int:
    """The longest run length common to every plaintext's values and every shift."""
    r = min(row[1] for row in rows)
    while r > 1 and any(k % r for k in shifts):
        r //= 2
    return r


def _group_terms(rows, shifts, r: int):
    """The terms of one sum at run length r, those of one shift merged: (rows, shifts)."""
    if len(set(shifts)) == len(shifts) and all(row[1] == r for row in rows):
        return rows, shifts
    merged: dict = {}
    for row, k in zip(rows, shifts):
        values = np.repeat(row[0], row[1] // r)
        merged[k] = merged[k] + values if k in merged else values
    return [support_row(merged[k], r) for k in sorted(merged)], sorted(merged)


class PendingSum:
    """A sum over rotations of ``src`` not evaluated yet: ``groups``, each the sum of
    its terms (plaintext values times ``src`` rotated, terms of one shift merged) rotated
    by its out_shift, as (weight runs, their lengths, starts and shifts in runs of r
    slots, out_shift in slots); r the run length common to all; ``floor`` the plaintexts'
    encoding variance; ``extra`` the per-slot variance of the key switches of the
    rotations applied to the sum (None: none)."""

    __slots__ = ("src", "r", "groups", "floor", "extra")

    def __init__(self, src, r: int, groups, floor: float, extra=None):
        self.src, self.r, self.groups, self.floor, self.extra = src, r, groups, floor, extra

    @classmethod
    def of(cls, src, shifts, rows, encoding_var: float) -> "PendingSum":
        """sum_t rows_t * rotate(src, shifts_t) (rows: support_rows); ``encoding_var``:
        the first plaintext's encoding rounding (per-slot variance), counted against
        src's value bound as the term-by-term sum counts it."""
        bound = src.value_bound if src.value_bound is not None else \
            float(np.sqrt(np.max(src.abs2)))
        r = _run_length(rows, shifts)
        rows, shifts = _group_terms(rows, shifts, r)
        group = ([row[4] for row in rows], [row[3] for row in rows],
                 [row[2] for row in rows], [k // r for k in shifts], 0)
        return cls(src, r, [group], bound * bound * encoding_var)

    def rotated(self, sim, k: int, scale: float) -> "PendingSum":
        """This sum (at ``scale``) rotated by k slots, a multiple of r: its key switch's
        variance joins ``extra``."""
        switch = sim.terms.switch(self.src.level, scale, k)[0]
        extra = switch if self.extra is None else np.roll(self.extra, -k) + switch
        groups = [group[:4] + (group[4] + k,) for group in self.groups]
        return PendingSum(self.src, self.r, groups, self.floor, extra)

    def plus(self, other: "PendingSum") -> "PendingSum":
        """The sum of two sums over rotations of one ciphertext at one run length."""
        extra = self.extra if other.extra is None else other.extra \
            if self.extra is None else self.extra + other.extra
        return PendingSum(self.src, self.r, self.groups + other.groups,
                          self.floor + other.floor, extra)

    def kernel_terms(self, slots: int):
        """(weights, offsets, shifts, starts, out_shifts) of plain_sum_kernel, in runs."""
        chain = itertools.chain.from_iterable
        groups = self.groups
        lengths = list(chain(g[1] for g in groups))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        outs = list(chain([(g[4] % slots) // self.r] * len(g[1]) for g in groups))
        return (np.concatenate(list(chain(g[0] for g in groups))), offsets,
                np.array(list(chain(g[3] for g in groups)), dtype=np.int64),
                np.array(list(chain(g[2] for g in groups)), dtype=np.int64),
                np.array(outs, dtype=np.int64))


def pending_sum(sim, first, pts, terms):
    """The pending SimCiphertext of a sum of plaintext products whose ``terms``
    :func:`fast_terms` found (``first``: the first ciphertext): every ciphertext has x's
    value bound, every plaintext is real."""
    src, p0 = terms[0], pts[0]
    p_bounds = [p.value_bound for p in pts]
    bound = None if src.value_bound is None or None in p_bounds else \
        src.value_bound * sum(p_bounds)
    p_bound = p_bounds[0] if p_bounds[0] is not None else \
        float(np.max(np.abs(terms[2][0][0])))
    spec = PendingSum.of(*terms, sim.terms.encoding(p_bound, p0.scale))
    scale = first.scale * p0.scale
    sim._fits(first.level, scale, bound, "the sum of products")
    return src._deferred(sim, src, 0, spec, scale=scale, value_bound=bound, real=src.real,
                         zero=False, key_id=sim.key_id)


def merged(sim, a, b):
    """a + b as one pending sum when both are pending sums of ``sim`` over rotations of
    one ciphertext at one run length (else None)."""
    pa, pb = a.__dict__.get("_pending"), b.__dict__.get("_pending")
    if pa is None or pb is None or pa[3] is None or pb[3] is None or pa[0] is not sim \
            or pb[0] is not sim or pa[1] is not pb[1] or pa[3].r != pb[3].r:
        return None
    bound = None if a.value_bound is None or b.value_bound is None else \
        a.value_bound + b.value_bound
    return a._deferred(sim, pa[1], 0, pa[3].plus(pb[3]), value_bound=bound,
                       real=a.real and b.real)


def evaluate_sum(sim, spec: PendingSum):
    """(values, error) of a pending sum: one kernel over every term of every group, the
    error a fresh draw of the summed variance (see the module docstring)."""
    src, r = spec.src, spec.r
    shape = src.values.shape
    runs = (shape[0], shape[1] // r, -1)
    var_in = src.__dict__.get("_slot_var_cache")
    if var_in is None:
        var_in = src.__dict__["_slot_var_cache"] = _full(src.slot_var, shape)
    var_rot, switch_var = var_in, np.zeros(shape[1])
    if not src.zero:
        switch_var, _, peak, profile = sim.terms.switch_parts(src.level, src.scale)
        if peak:
            var_rot = var_in + peak * profile
    extra = switch_var if spec.extra is None else spec.extra
    x = _full(src.values, shape, src.values.dtype)
    values, var = np.empty_like(x), np.empty(shape)
    state = np.empty(shape, dtype=np.complex128)
    flat = (lambda a: a.view(np.float64)) if np.iscomplexobj(x) else (lambda a: a)
    plain_sum_kernel(*spec.kernel_terms(shape[1]), flat(x).reshape(runs),
                     var_in.reshape(runs), var_rot.reshape(runs),
                     switch_var.reshape(runs[1:]), extra.reshape(runs[1:]),
                     spec.extra is not None, spec.floor, _normal(sim, shape).reshape(runs),
                     flat(values).reshape(runs), var.reshape(runs),
                     state.view(np.float64).reshape(runs))
    return values, sim._err(var, state)
