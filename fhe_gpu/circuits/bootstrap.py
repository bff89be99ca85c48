"""CKKS bootstrapping: a level-0 ciphertext back to ``output_level`` levels.

    bp = fc.BootstrapParameters.preset("N16")
    btk = fg.KeyGenerator(ctx).bootstrap_keys(bp)       # client side, public material
    ct = fc.Bootstrapper(ctx, btk, bp).bootstrap(ct)    # at bp.output_level, default scale

Pipeline (each stage an Evaluator call sequence, each with its cleartext twin):
1. ModRaise (with sparse-secret encapsulation): t = m + q0 I over the whole chain, read
   at scale q0 so the coefficients are x = I + m / q0. With sparse slots (n < N/2) the
   trace onto the subring Z[X^(N/2n)] follows: log2(N/2n) rotations by n, 2n, ... summed,
   which zero the coefficients off the subring and multiply the others by N/2n (divided
   out in CoeffsToSlots); the DFTs then work on n slots (period-n slot vectors).
2. CoeffsToSlots: the inverse special FFT in ``cts_budget`` sparse transforms, with 1 / (2K)
   folded in; conjugation splits the real and imaginary parts: two ciphertexts whose slots
   hold u = x / K for the N coefficients (bit-reversed order).
3. EvalMod on both: sin(2 pi x) = 2 pi m / q0 + O((m / q0)^3).
4. SlotsToCoeffs: re + i im, the forward special FFT in ``stc_budget`` transforms with
   q0 / (2 pi scale_in) folded in; the last lands exactly on the default scale.
Levels consumed: cts_budget + EvalMod depth + stc_budget (stated per preset).
"""
from __future__ import annotations

import math

import numpy as np

from ..ckks import Evaluator
from ..errors import KeyMissingError, LevelError, ParameterError
from .bootparams import BootstrapParameters
from .dft import DiagonalTransform, dft_factors
from .evalmod import EvalMod


class Bootstrapper:
    """Bootstraps ciphertexts of ``ctx`` with the keys ``keys`` (KeyGenerator.bootstrap_keys
    of the same preset ``bp``).

    ParameterError when the keys raise under a secret of another Hamming weight than the
    preset's EvalMod interval was sized for; KeyMissingError listing missing rotations.
    """

    def __init__(self, ctx, keys, bp: BootstrapParameters):
        if not isinstance(bp, BootstrapParameters):
            raise ParameterError(f"bp must be BootstrapParameters, got {type(bp).__name__}")
        if ctx.fingerprint != bp.params.fingerprint:
            raise ParameterError(f"preset {bp.name!r} is for other parameters than this "
                                 f"context ({ctx!r})")
        weight = getattr(keys, "raise_weight", None)
        if weight != bp.sparse_weight:
            raise ParameterError(
                f"preset {bp.name!r} sizes EvalMod's interval (K = {bp.K}) for a secret of "
                f"Hamming weight {bp.sparse_weight}, but these keys raise under weight "
                f"{weight}: generate them with KeyGenerator.bootstrap_keys(bp)")
        self.ctx, self.keys, self.bp = ctx, keys, bp
        n = self.slots = bp.slots
        #: the trace onto the sparse subring multiplies coefficients by this (1: full slots)
        self.trace_gain = ctx.slots // n
        cts = dft_factors(n, 4 * n, bp.cts_budget, inverse=True)
        cts[0] = {o: v / (2.0 * bp.K * self.trace_gain) for o, v in cts[0].items()}
        self.coeffs_to_slots = [DiagonalTransform(ctx, d, name=f"CoeffsToSlots {i}", period=n)
                                for i, d in enumerate(cts)]
        self._stc = dft_factors(n, 4 * n, bp.stc_budget, inverse=False)
        self._stc_cache: dict = {}
        self.evalmod = EvalMod(bp.K, bp.degree, bp.double_angle)
        self._check_keys()
        self._ev = Evaluator(ctx, keys)

    def _check_keys(self) -> None:
        ctx = self.ctx
        have = set(self.keys.galois)
        missing = [k for k in self.bp.rotations if ctx.galois_element(k) not in have]
        conj = "" if ctx.conjugation_element in have else " and conjugation"
        if missing or conj:
            raise KeyMissingError(f"bootstrapping keys lack rotations {missing[:8]}{conj}: "
                                  f"generate them with KeyGenerator.bootstrap_keys(bp)")

    def _slots_to_coeffs(self, factor: float) -> list[DiagonalTransform]:
        """SlotsToCoeffs with ``factor`` folded into its first transform (cached per
        factor: one per input scale)."""
        key = float(factor)
        if key not in self._stc_cache:
            first = {o: v * factor for o, v in self._stc[0].items()}
            self._stc_cache = {key: [DiagonalTransform(self.ctx, d, name=f"SlotsToCoeffs {i}",
                                                       period=self.slots)
                                     for i, d in enumerate([first] + self._stc[1:])]}
        return self._stc_cache[key]

    @property
    def output_level(self) -> int:
        """The level of a bootstrapped ciphertext."""
        return self.bp.output_level

    def bootstrap(self, ct, iterations: int = 1, assume_bounded: bool = False):
        """``ct`` refreshed to ``output_level`` at the default scale (iterations=1).

        ``iterations=k`` (Meta-BTS) then k - 1 times bootstraps the residual ct - out
        multiplied by 2^bp.residual_bits and adds it back divided by that (one level
        each): about twice the bits for k = 2, at output_level - (k - 1) and the input's
        scale (the residual is taken exactly at that scale). Inputs whose slot
        bound exceeds bp.message_bound are refused (scale them down first); a ciphertext of
        unknown bound (loaded from bytes) needs assume_bounded=True, the caller's promise.
        """
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) \
                or iterations < 1:
            raise ParameterError(f"iterations must be a positive integer, got {iterations!r}")
        ev = self._ev
        ct = self._input(ev, ct, assume_bounded)
        if iterations == 1:
            return self._once(ev, ct, self.ctx.default_scale)
        out = self._once(ev, ct, ct.scale)
        boost = 1 << self.bp.residual_bits
        for _ in range(int(iterations) - 1):
            # |residual| <= message_bound / boost: the preset's residual_bits are below the
            # worst-case bits of one pass (asserted by the tests of every preset)
            residual = ev.assume_bound(ev.sub(ct, ev.drop_level(out, 0)),
                                       self.bp.message_bound / boost)
            residual = ev.mul_int(residual, boost)
            fix = ev.mul_to_scale(self._once(ev, residual, ct.scale), 1.0 / boost, ct.scale)
            out = ev.add(ev.drop_level(out, fix.level), fix)
        return out

    def _input(self, ev, ct, assume_bounded: bool):
        bound = ct.value_bound
        if bound is None and not assume_bounded:
            raise ParameterError(
                "the ciphertext's slot bound is unknown (loaded from bytes?): bootstrapping "
                f"is correct only for |slot| <= {self.bp.message_bound}; pass "
                "assume_bounded=True to promise it")
        if bound is not None and bound > self.bp.message_bound * (1 + 1e-9):
            raise ParameterError(
                f"bootstrapping input bound {bound:.6g} exceeds the preset's message bound "
                f"{self.bp.message_bound}: multiply by {self.bp.message_bound / bound:.6g} "
                f"first (EvalMod's sine is accurate only for small coefficients)")
        if ct.level > 0:
            ct = ev.drop_level(ct, 0)
        return ct

    def _once(self, ev, ct, out_scale: float):
        ctx, bp = self.ctx, self.bp
        q0 = float(ctx.q_primes[0])
        raised = ev.mod_raise(ct)
        x = ev.assume_bound(ev.mul_by_scale(raised, raised.scale / q0),
                            ctx.slots * math.sqrt(2.0) * (bp.K + 1))
        for k in bp.subsum_steps:            # the trace: coefficients off the subring -> 0
            x = ev.add(x, ev.rotate(x, k))
        for lt in self.coeffs_to_slots:
            x = lt.apply(ev, x)
        conj = ev.conjugate(x)
        re = ev.assume_bound(ev.add(x, conj), 1.0)
        im = ev.assume_bound(ev.mul_by_i(ev.sub(x, conj), 3), 1.0)
        re, im = self.evalmod.apply(ev, re), self.evalmod.apply(ev, im)
        y = ev.add(re, ev.mul_by_i(im))
        stc = self._slots_to_coeffs(q0 * self.trace_gain / (2.0 * math.pi * ct.scale))
        for lt in stc[:-1]:
            y = lt.apply(ev, y)
        y = stc[-1].apply(ev, y, out_scale=out_scale)
        if y.level != bp.output_level:
            raise LevelError(f"bootstrapping ended at level {y.level}, preset {bp.name!r} "
                             f"states {bp.output_level}")
        return ev.assume_bound(y, bp.message_bound * (1 + 2.0 ** -8))

    def plain(self, z: np.ndarray, scale: float | None = None) -> np.ndarray:
        """The cleartext twin: the same trace, transforms, EvalMod polynomial and double
        angles on NumPy slots, without noise and with I = 0; returns ~z (~z summed with
        period ``slots`` for sparse slots; its distance to that is the approximation error
        of the pipeline)."""
        ctx = self.ctx
        q0 = float(ctx.q_primes[0])
        scale = ctx.default_scale if scale is None else scale
        x = np.asarray(z, dtype=np.complex128) * scale / q0
        x = x.reshape(x.shape[:-1] + (self.trace_gain, self.slots)).sum(axis=-2)
        for lt in self.coeffs_to_slots:
            x = lt.plain(x)
        re, im = 2 * x.real, 2 * x.imag
        y = self.evalmod.plain(re) + 1j * self.evalmod.plain(im)
        for lt in self._slots_to_coeffs(q0 * self.trace_gain / (2.0 * math.pi * scale)):
            y = lt.plain(y)
        return np.tile(y, self.trace_gain)

    def __repr__(self):
        return (f"Bootstrapper({self.bp.name}: {len(self.coeffs_to_slots)} + "
                f"{self.bp.stc_budget} DFT levels, {self.evalmod!r}, output level "
                f"{self.output_level})")
