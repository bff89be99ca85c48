"""The homomorphic DFT of bootstrapping: CoeffsToSlots and SlotsToCoeffs as a few sparse
linear transforms over the slots (a level budget), each applied by baby-step giant-step
over its nonzero diagonals.

The math. Slot j of a plaintext m(X) holds z_j = m(zeta_j), zeta_j = exp(i pi 5^j / N)
(j < n = N/2). With w_k = m_k + i m_{k+n} (two real coefficients per complex number),
zeta_j^n = i gives z = V w, V[j, k] = zeta_j^k. V factors as S_logn ... S_1 P, P the
bit-reversal permutation and S_s the radix-2 butterfly stage of length 2^s (3 nonzero
diagonals: offsets 0 and +-2^(s-1)). So

* SlotsToCoeffs (w in bit-reversed order in the slots -> z): S_logn ... S_1;
* CoeffsToSlots (z -> bit-reversed w): S_1^-1 ... S_logn^-1.

EvalMod works slot by slot, so the bit-reversed order is never undone. A level budget b
groups the log2(n) stages into b products: fewer levels, more diagonals per product
(2^(k+1) - 1 for k merged stages). A diagonal of M at offset o is d_o[p] = M[p, p + o]:
(M x)[p] = sum_o d_o[p] x[p + o], i.e. M x = sum_o d_o * rot_o(x).
"""
from __future__ import annotations

import math

import numpy as np

from ..ckks.encoder import Encoder
from ..errors import ParameterError


def _pow5(n: int, m: int) -> np.ndarray:
    out = np.empty(n, dtype=np.int64)
    acc = 1
    for j in range(n):
        out[j] = acc
        acc = acc * 5 % m
    return out


def _stage(n: int, m: int, length: int, pow5: np.ndarray, inverse: bool) -> dict:
    """Butterfly stage of ``length`` (or its inverse) as {offset mod n: diagonal}.

    Forward, for p = i + j (j < h = length/2) and q = p + h: out[p] = x[p] + xi_j x[q],
    out[q] = x[p] - xi_j x[q], xi_j = exp(2 pi i (5^j mod 4 length) m / (4 length) / m).
    Inverse: out[p] = (x[p] + x[q]) / 2, out[q] = conj(xi_j) (x[p] - x[q]) / 2."""
    h, quarter = length // 2, length * 4
    pos = np.arange(n) % length
    first = pos < h
    j = np.where(first, pos, pos - h)
    xi = np.exp(2j * np.pi * ((pow5[j] % quarter) * (m // quarter)) / m)
    if inverse:
        parts = [(0, np.where(first, 0.5, -np.conj(xi) / 2)), (h, np.where(first, 0.5, 0)),
                 (-h, np.where(first, 0, np.conj(xi) / 2))]
    else:
        parts = [(0, np.where(first, 1.0, -xi)), (h, np.where(first, xi, 0)),
                 (-h, np.where(first, 0, 1.0))]
    out: dict = {}
    for o, v in parts:
        o %= n
        out[o] = out.get(o, 0) + v.astype(np.complex128)
    return out


def compose(a: dict, b: dict, n: int) -> dict:
    """The diagonals of A B (B applied first): d[(x + y) mod n] += a_x * rot_x(b_y)."""
    out: dict = {}
    for x, ax in a.items():
        for y, by in b.items():
            o = (x + y) % n
            out[o] = out.get(o, 0) + ax * np.roll(by, -x)
    return {o: v for o, v in out.items() if np.any(np.abs(v) > 1e-15)}


def apply_plain(diagonals: dict, z: np.ndarray) -> np.ndarray:
    """M z on cleartext slots (..., n): the twin of :class:`DiagonalTransform`."""
    return sum(v * np.roll(z, -o, axis=-1) for o, v in diagonals.items())


def split_budget(stages: int, budget: int) -> list[int]:
    """Stages per product, the larger products first: 15 stages in 3 -> [5, 5, 5]."""
    if not 1 <= budget <= stages:
        raise ParameterError(f"a level budget must be in [1, {stages}] for {stages} "
                             f"butterfly stages, got {budget}")
    base, extra = divmod(stages, budget)
    return [base + (i < extra) for i in range(budget)]


def dft_factors(n: int, m: int, budget: int, inverse: bool) -> list[dict]:
    """The products of the special FFT's stages, in the order they are applied.

    ``inverse=False`` (SlotsToCoeffs): S_1 first; ``True`` (CoeffsToSlots): S_logn^-1
    first. ``m`` = 2N (4n for full slots)."""
    logn = int(math.log2(n))
    pow5 = _pow5(n, m)
    lengths = [2 << s for s in range(logn)]
    if inverse:
        lengths = lengths[::-1]
    stages = [_stage(n, m, ln, pow5, inverse) for ln in lengths]
    out, at = [], 0
    for k in split_budget(logn, budget):
        prod = stages[at]
        for st in stages[at + 1: at + k]:
            prod = compose(st, prod, n)
        out.append(prod)
        at += k
    return out


def _signed(o: int, n: int) -> int:
    return o - n if o > n // 2 else o


def bsgs_split(offsets, n: int, baby: int | None = None):
    """(stride, baby, groups): offsets o = G + b, b = stride * (o / stride mod baby), the
    giant G a multiple of baby * stride; groups maps G to its [(b, o mod n)]. ``baby``
    defaults to the power of two of least cost (:func:`_bsgs_cost`)."""
    signed = sorted(_signed(int(o) % n, n) for o in offsets)
    stride = math.gcd(*signed) if any(signed) else 1

    def split(b):
        groups: dict[int, list[tuple[int, int]]] = {}
        for o in signed:
            g, r = divmod(o // stride, b)
            groups.setdefault(g * b * stride, []).append((r * stride, o % n))
        return groups

    if baby:
        return stride, int(baby), split(int(baby))
    best = min((_bsgs_cost(split(1 << e)), 1 << e) for e in range(0, 8))
    return stride, best[1], split(best[1])


def _bsgs_cost(groups: dict) -> float:
    """Relative cost of a split: a hoisted baby rotation is an inner product and a ModDown
    (~1), a giant one a ModUp and an inner product sharing one ModDown (~1.1)."""
    babies = {b for terms in groups.values() for b, _ in terms if b}
    giants = [g for g in groups if g]
    return len(babies) + 1.1 * len(giants)


def bsgs_rotations(groups: dict, n: int) -> list[int]:
    """The nonzero rotations (mod n) of a baby-step giant-step split."""
    steps = {b for terms in groups.values() for b, _ in terms} | set(groups)
    return sorted(s % n for s in steps if s % n)


class DiagonalTransform:
    """x -> M x on the slots, M given by its nonzero diagonals, depth 1.

    Baby-step giant-step: offsets o = G + b with b a multiple of the diagonals' common
    stride below ``baby * stride``; the baby rotations rot_b(x) are hoisted (one
    decomposition), each giant sum  sum_b rot_-G(d_{G+b}) * rot_b(x)  is one fused
    multiply-add chain, the giants rotated by G and summed with one ModDown
    (``rotate_sum``), and the sum rescaled once. Plaintexts are encoded
    on first use per level at scale q_level (the result keeps the input's scale) or, with
    ``out_scale``, at out_scale * q_level / input scale.

    ``period`` n < slots: M acts on slot vectors of period n (diagonals of length n, tiled
    over the slots; a rotation by o equals one by o mod n on such vectors).
    """

    def __init__(self, ctx, diagonals: dict, baby: int | None = None, name: str = "M",
                 period: int | None = None):
        self.ctx, self.name = ctx, name
        self.n = ctx.slots if period is None else int(period)
        if self.n < 1 or ctx.slots % self.n:
            raise ParameterError(f"period must divide the {ctx.slots} slots, got {period!r}")
        self.diagonals = {int(o) % self.n: np.asarray(v, dtype=np.complex128)
                          for o, v in diagonals.items()}
        self.stride, self.baby, self.groups = bsgs_split(self.diagonals, self.n, baby)
        self._plain: dict = {}
        self._encoder = Encoder(ctx)

    @property
    def rotations(self) -> list[int]:
        """The slot rotations apply() uses (babies and giants, nonzero)."""
        return bsgs_rotations(self.groups, self.n)

    @property
    def depth(self) -> int:
        """Levels consumed: 1."""
        return 1

    def plain(self, z: np.ndarray) -> np.ndarray:
        """The cleartext twin: M z (z of length ``period``)."""
        return apply_plain(self.diagonals, z)

    def _pts(self, level: int, scale: float):
        key = (level, scale)
        if key not in self._plain:
            enc, reps = self._encoder, self.ctx.slots // self.n
            self._plain = {k: v for k, v in self._plain.items() if k[0] != level}
            self._plain[key] = {
                g: [enc.encode(np.tile(np.roll(self.diagonals[o], g), reps), level=level,
                               scale=scale, keep_values=False)
                    for _, o in terms] for g, terms in self.groups.items()}
        return self._plain[key]

    def apply(self, ev, ct, out_scale: float | None = None):
        """M applied to the slots of ``ct`` (one level; the input's scale, or out_scale)."""
        q_l = self.ctx.q_primes[ct.level]
        pt_scale = float(q_l) if out_scale is None else out_scale * q_l / ct.scale
        pts = self._pts(ct.level, pt_scale)
        babies = sorted({b for terms in self.groups.values() for b, _ in terms})
        rot = dict(zip(babies, ev.rotate_many(ct, babies)))
        parts = (ev.mul_plain_sum([rot[b] for b, _ in terms], pts[g])
                 for g, terms in self.groups.items())
        out = ev.rescale(ev.rotate_sum(parts, [g % self.n for g in self.groups]))
        return out if out_scale is None else ev.mul_by_scale(out, out.scale / out_scale)

    def __repr__(self):
        return (f"DiagonalTransform({self.name}: {len(self.diagonals)} diagonals, baby "
                f"{self.baby} x stride {self.stride}, {len(self.groups)} giants)")
