"""Fused Evaluator operations: a linear combination with one rescale, and a sum of
rotations with one ModDown. Mixed into :class:`fhe_gpu.ckks.Evaluator`."""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError, ScaleMismatchError
from ..rlwe import keyswitch
from ..rlwe.objects import Ciphertext, check_same_keys
from . import noise


def _same(cts, what: str):
    first = cts[0]
    for ct in cts[1:]:
        check_same_keys(ct.key_id, first.key_id, f"a {what} term", "the first")
        if ct.level != first.level or ct.batch_size != first.batch_size:
            raise ScaleMismatchError(f"{what} terms differ: level {ct.level} batch "
                                     f"{ct.batch_size}, needs level {first.level} batch "
                                     f"{first.batch_size}")
    return first


class FusedOps:
    """lincomb_to_scale and rotate_sum (see the module docstring)."""

    def lincomb_to_scale(self, cts, coeffs, scale: float) -> Ciphertext:
        """sum_i coeffs[i] * cts[i] (real constants), rescaled once, at exactly ``scale``.

        Each constant is the integer round(c_i * scale * q_l / scale_i), so terms of
        different scales meet at scale * q_l before the one rescale (``mul_to_scale`` of
        each term then ``add`` gives the same value with one rescale per term)."""
        cts = [self._ct(c) for c in cts]
        coeffs = [float(c) for c in coeffs]
        if not cts or len(cts) != len(coeffs) or not all(np.isfinite(coeffs)):
            raise ParameterError(f"lincomb_to_scale needs as many finite constants as "
                                 f"ciphertexts (at least one), got {len(coeffs)} and {len(cts)}")
        first = _same(cts, "lincomb_to_scale")
        if first.level == 0:
            raise ParameterError("lincomb_to_scale needs a level to rescale, got level 0")
        ctx = self.context
        q_l = ctx.q_primes[first.level]
        be, basis = ctx.backend, ctx.q_basis(first.level)
        acc, var, bound = None, 0.0, 0.0
        for ct, c in zip(cts, coeffs):
            k = int(round(c * scale * q_l / ct.scale))
            term = self._mul_int(ct, k)
            acc = term if acc is None else be.add(acc, term, basis, out=acc)
            var = None if var is None or ct.noise_var is None or ct.value_bound is None else \
                var + noise.scalar_variance(ct.noise_var, k, ct.scale, ct.value_bound)
            bound = None if bound is None or ct.value_bound is None else \
                bound + abs(c) * ct.value_bound
        pre = self._out(acc, first.level, scale * q_l, first.key_id, var, bound,
                        "lincomb_to_scale's sum", all(ct.real for ct in cts))
        out = self.rescale(pre)
        return out._like(out.data, scale=scale)

    def rotate_sum(self, cts, steps) -> Ciphertext:
        """sum_i rotate(cts[i], steps[i]) with one ModDown for all the key switches (the
        inner products accumulate over Q u P): ciphertexts of one level, scale and key set."""
        cts = [self._ct(c) for c in cts]
        steps = [self._step(k) for k in steps]
        if not cts or len(cts) != len(steps):
            raise ParameterError(f"rotate_sum needs one step per ciphertext (at least one), "
                                 f"got {len(steps)} and {len(cts)}")
        first = _same(cts, "rotate_sum")
        if any(ct.scale != first.scale for ct in cts):
            raise ScaleMismatchError("rotate_sum terms need one scale, got "
                                     f"{sorted({ct.scale for ct in cts})}")
        ctx, slots = self.context, self.context.slots
        items, plain = [], []
        for ct, k in zip(cts, steps):
            if k % slots == 0:
                plain.append(ct)
                continue
            g = ctx.galois_element(k)
            items.append((ct.data, g, self._galois_key(g, f"rotation {k}")))
        bound = None if any(ct.value_bound is None for ct in cts) else \
            sum(ct.value_bound for ct in cts)
        var = None if any(ct.noise_var is None for ct in cts) else \
            sum(ct.noise_var for ct in cts) + \
            len(items) * noise.key_switch_variance(ctx, first.level)
        data = keyswitch.automorph_sum(ctx, items, first.level) if items else None
        be, basis = ctx.backend, ctx.q_basis(first.level)
        for ct in plain:
            data = ct.data.copy() if data is None else be.add(data, ct.data, basis, out=data)
        return self._out(data, first.level, first.scale, first.key_id, var, bound,
                         "rotate_sum's sum", all(ct.real for ct in cts))
