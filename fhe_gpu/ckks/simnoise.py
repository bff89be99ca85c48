"""The per-slot noise terms of a simulated key set: what one rounding, one key switch or
one encoding adds to a ciphertext's error, as a variance per slot (value units at a
scale) and its square root, cached per level and scale (see :mod:`fhe_gpu.ckks.noise`
for the model: the secret's spectrum over the slots, the key-switching digits and the
digit mean concentrated near slot 0)."""
from __future__ import annotations

import numpy as np

from ..rlwe.encryptor import encoding_variance
from . import noise as model

#: a key-switching mean term below this fraction of the uniform one is counted as uniform
PROFILE_FLOOR = 1e-3
#: entries kept per cache (scales and levels a circuit visits: a handful)
_CACHE_SIZE = 64


class NoiseTerms:
    """Noise terms for ``context`` and the secret's per-slot power ``key_power``
    (:func:`fhe_gpu.ckks.noise.key_power`): ``rounding``, ``switch``, ``encoding``."""

    def __init__(self, context, key_power: np.ndarray):
        self.context = context
        self.round = model.rounding_slot_variance(context.n, key_power, 1.0)
        self.round_sd = np.sqrt(self.round)
        self._levels: dict = {}
        self._switch: dict = {}
        self._rounding: dict = {}

    def slot_var(self, coef_var: float, scale: float) -> float:
        """The slot variance of error coefficients of variance ``coef_var``."""
        return model.slot_variance(self.context.n, coef_var, scale)

    def rounding(self, scale: float):
        """(variance, deviation) per slot of a rounding r0 + r1*s read at ``scale``."""
        out = self._rounding.get(scale)
        if out is None:
            if len(self._rounding) >= _CACHE_SIZE:
                self._rounding.clear()
            out = self._rounding[scale] = (self.round * (1.0 / (scale * scale)),
                                           self.round_sd * (1.0 / scale))
        return out

    def switch_parts(self, level: int, scale: float):
        """(variance, deviation, peak, profile) of one key switch at ``level`` read at
        ``scale``: per slot, the ModDown rounding and the centred digits; the digit
        mean's variance is ``peak`` times ``profile`` (slot 0 nearest X = 1; peak 0.0
        and profile None when negligible)."""
        key = (level, scale)
        out = self._switch.get(key)
        if out is None:
            if level not in self._levels:
                self._levels[level] = model.key_switch_terms(self.context, level)
            centred, peak = self._levels[level]
            if not peak > PROFILE_FLOOR * (centred + self.context.n / 18.0):
                peak = 0.0
            var = self.round * (1.0 / (scale * scale)) + self.slot_var(centred, scale)
            if len(self._switch) >= _CACHE_SIZE:
                self._switch.clear()
            profile = model.mean_profile(self.context.n) if peak else None
            out = self._switch[key] = (var, np.sqrt(var), self.slot_var(peak, scale),
                                       profile)
        return out

    def switch(self, level: int, scale: float, shift: int):
        """(variance, deviation) per slot of one key switch at ``level`` read at
        ``scale``, its digit mean moved by ``shift`` slots with the hoisted digits."""
        var, sd, peak, profile = self.switch_parts(level, scale)
        if peak:
            var = var + peak * np.roll(profile, -shift)
            sd = np.sqrt(var)
        return var, sd

    def encoding(self, bound, scale: float) -> float:
        """The per-slot variance of a plaintext's encoding rounding."""
        return self.slot_var(encoding_variance(self.context.n, scale, bound), scale)
