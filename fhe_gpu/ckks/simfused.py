"""The Simulator's answers to the Evaluator's fused and exact operations
(``lincomb_to_scale``, ``rotate_sum``, ``mul_by_i``, ``mul_int``). Mixed into
:class:`fhe_gpu.ckks.Simulator`."""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError, ScaleMismatchError
from .simobjects import SimCiphertext


class SimFusedOps:
    """Same values, checks and (to the model's accuracy) errors as the Evaluator's."""

    def lincomb_to_scale(self, cts, coeffs, scale: float) -> SimCiphertext:
        """sum_i coeffs[i] * cts[i] rescaled once, at exactly ``scale``."""
        cts = [self._ct(c) for c in cts]
        coeffs = [float(c) for c in coeffs]
        if not cts or len(cts) != len(coeffs) or not all(np.isfinite(coeffs)):
            raise ParameterError(f"lincomb_to_scale needs as many finite constants as "
                                 f"ciphertexts (at least one), got {len(coeffs)} and {len(cts)}")
        level = cts[0].level
        if any(ct.level != level for ct in cts):
            raise ScaleMismatchError(f"lincomb_to_scale terms need one level, got "
                                     f"{sorted({ct.level for ct in cts})}")
        if level == 0:
            raise ParameterError("lincomb_to_scale needs a level to rescale, got level 0")
        q_l = self.context.q_primes[level]
        total = None
        for a, c in zip(cts, coeffs):
            k = round(c * scale * q_l / a.scale)
            self.counts["mul_scalar"] += 1
            bound = None if a.value_bound is None else a.value_bound * abs(c)
            wide = SimCiphertext(a.values * c, level, scale * q_l, self.context,
                                 self._gain_error(a, k * a.scale / (scale * q_l), c), bound,
                                 a.real, key_id=a.key_id, zero=a.zero or k == 0)
            total = wide if total is None else self.add(total, wide)
        return self.rescale(total)._like(scale=scale)

    def rotate_sum(self, cts, steps) -> SimCiphertext:
        """sum_i rotate(cts[i], steps[i])."""
        cts, steps = list(cts), list(steps)
        if not cts or len(cts) != len(steps):
            raise ParameterError(f"rotate_sum needs one step per ciphertext (at least one), "
                                 f"got {len(steps)} and {len(cts)}")
        out = None
        for ct, k in zip(cts, steps):
            r = self.rotate(ct, k)
            out = r if out is None else self.add(out, r)
        return out

    def mul_by_i(self, a, power: int = 1) -> SimCiphertext:
        """a * i**power, exactly."""
        a = self._ct(a)
        if isinstance(power, bool) or not isinstance(power, (int, np.integer)):
            raise ParameterError(f"power must be an integer, got {power!r}")
        g = 1j ** (int(power) % 4)
        return a._like(values=a.values * g, error=a.error.scaled(g),
                       real=a.real and int(power) % 2 == 0)

    def mul_int(self, a, k: int) -> SimCiphertext:
        """a * k for a nonzero integer k, exactly (same scale and level)."""
        a = self._ct(a)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k == 0:
            raise ParameterError(f"mul_int needs a nonzero integer, got {k!r}")
        bound = None if a.value_bound is None else a.value_bound * abs(int(k))
        self._fits(a.level, a.scale, bound, f"the ciphertext times {k}")
        return a._like(values=a.values * int(k), error=a.error.scaled(float(k)),
                       value_bound=bound)
