"""Fused Evaluator operations: a linear combination with one rescale, and a sum of
rotations with one ModDown. Mixed into :class:`fhe_gpu.ckks.Evaluator`."""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import ParameterError, ScaleMismatchError
from ..rlwe import keyswitch
from ..rlwe.objects import Ciphertext, check_same_keys
from . import noise


def _check_like(ct, first, what: str, scale: bool = True) -> None:
    """KeyMismatchError / ScaleMismatchError unless ct matches first's key set, level,
    batch and (when ``scale``) scale."""
    check_same_keys(ct.key_id, first.key_id, f"a {what} term", "the first")
    if ct.level != first.level or ct.batch_size != first.batch_size or \
            (scale and ct.scale != first.scale):
        raise ScaleMismatchError(f"{what} terms differ: level {ct.level} batch "
                                 f"{ct.batch_size} scale {ct.scale!r}, needs level "
                                 f"{first.level} batch {first.batch_size}"
                                 f"{f' scale {first.scale!r}' if scale else ''}")


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
        first = cts[0]
        for ct in cts[1:]:
            _check_like(ct, first, "lincomb_to_scale", scale=False)
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
        inner products accumulate over Q u P): ciphertexts of one level, scale and key set.

        ``cts`` may be a generator: each term is consumed (and can be freed) before the
        next is made, so a baby-step giant-step transform holds one giant sum at a time."""
        steps = [self._step(k) for k in steps]
        it = iter(cts)
        first = next(it, None)
        if first is None or not steps:
            raise ParameterError("rotate_sum needs at least one ciphertext and one step")
        first = self._ct(first)
        ctx, slots = self.context, self.context.slots
        acc = {"bound": 0.0, "var": 0.0, "real": True, "count": 0, "switched": 0}
        plain: list = []

        def terms():
            for ct, k in zip(itertools.chain([first], it), steps):
                ct = self._ct(ct)
                _check_like(ct, first, "rotate_sum")
                acc["count"] += 1
                acc["bound"] = None if None in (acc["bound"], ct.value_bound) else \
                    acc["bound"] + ct.value_bound
                acc["var"] = None if None in (acc["var"], ct.noise_var) else \
                    acc["var"] + ct.noise_var
                acc["real"] = acc["real"] and ct.real
                if k % slots == 0:
                    plain.append(ct.data)
                    continue
                acc["switched"] += 1
                g = ctx.galois_element(k)
                yield ct.data, g, self._galois_key(g, f"rotation {k}")

        data = keyswitch.automorph_sum(ctx, terms(), first.level)
        if acc["count"] != len(steps):
            raise ParameterError(f"rotate_sum needs one step per ciphertext, got "
                                 f"{len(steps)} steps and {acc['count']} ciphertexts")
        be, basis = ctx.backend, ctx.q_basis(first.level)
        for d in plain:
            data = d.copy() if data is None else be.add(data, d, basis, out=data)
        var = None if acc["var"] is None else \
            acc["var"] + acc["switched"] * noise.key_switch_variance(ctx, first.level)
        return self._out(data, first.level, first.scale, first.key_id, var, acc["bound"],
                         "rotate_sum's sum", acc["real"])
