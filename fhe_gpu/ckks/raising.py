"""Evaluator operations of bootstrapping: ModRaise (with sparse-secret encapsulation) and
the exact multiplications by i and by integers. Mixed into :class:`fhe_gpu.ckks.Evaluator`."""
from __future__ import annotations

import numpy as np

from ..errors import LevelError, ParameterError
from ..rlwe import keyswitch
from ..rlwe.objects import Ciphertext


class RaiseOps:
    """ModRaise and exact multiplications (see the module docstring)."""

    def mul_by_i(self, a, power: int = 1) -> Ciphertext:
        """a * i**power, exactly: the polynomial times X^(N/2) (every slot times i), no
        level, no noise, no key."""
        a = self._ct(a)
        if isinstance(power, bool) or not isinstance(power, (int, np.integer)):
            raise ParameterError(f"power must be an integer, got {power!r}")
        power = int(power) % 4
        if power == 0:
            return a
        if power == 2:
            return self.negate(a)
        basis = self.context.q_basis(a.level)
        data = self.context.backend.mul(a.data, self._monomial(a.level)[None, None], basis)
        out = Ciphertext(data, a.level, a.scale, self.context, key_id=a.key_id,
                         noise_var=a.noise_var, value_bound=a.value_bound, real=False)
        return self.negate(out) if power == 3 else out

    def mul_int(self, a, k: int) -> Ciphertext:
        """a * k for an integer k, exactly: the same scale and level (the value and the
        error both grow k times). ModulusOverflowError when the value no longer fits."""
        a = self._ct(a)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k == 0:
            raise ParameterError(f"mul_int needs a nonzero integer, got {k!r}")
        k = int(k)
        bound = None if a.value_bound is None else a.value_bound * abs(k)
        var = None if a.noise_var is None else a.noise_var * k * k
        return self._out(self._mul_int(a, k), a.level, a.scale, a.key_id, var, bound,
                         f"the ciphertext times {k}", a.real)

    def _monomial(self, level: int):
        """X^(N/2) in evaluation form over Q_level (cached per level)."""
        cache = self.__dict__.setdefault("_monomials", {})
        if level not in cache:
            ctx = self.context
            basis = ctx.q_basis(level)
            coeffs = np.zeros((len(basis), ctx.n), dtype=np.uint64)
            coeffs[:, ctx.n // 2] = 1
            cache[level] = ctx.backend.ntt(ctx.backend.to_device(coeffs), basis)
        return cache[level]

    def mod_raise(self, a, to_level: int | None = None) -> Ciphertext:
        """A level-0 ciphertext lifted to ``to_level`` (default: the top): it decrypts to
        t = m + q0 * I, m the level-0 plaintext, I a small integer polynomial.

        With BootstrapKeys that encapsulate, the ciphertext is switched to the ephemeral
        sparse secret first and back to the main secret after the lift (I then bounded by
        that secret's weight). The result keeps a's scale; its slot values are unknown
        (value_bound None) until CoeffsToSlots and EvalMod remove q0 * I.
        """
        a = self._ct(a)
        ctx = self.context
        top = ctx.max_level if to_level is None else to_level
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) \
                or not 0 < top <= ctx.max_level:
            raise LevelError(f"mod_raise needs 0 < to_level <= {ctx.max_level}, got {top!r}")
        if a.level != 0:
            raise LevelError(f"mod_raise needs a ciphertext at level 0, got level {a.level}: "
                             f"drop_level(ct, 0) first")
        to_sparse = getattr(self.evk, "to_sparse", None)
        data = a.data
        if to_sparse is not None:
            data = self._switch(data, to_sparse, 0)
        be = ctx.backend
        data = be.mod_raise(data, ctx.q_basis(0), ctx.q_basis(int(top)))
        if to_sparse is not None:
            data = self._switch(data, self.evk.from_sparse, int(top))
        return Ciphertext(data, int(top), a.scale, ctx, key_id=a.key_id)

    def _switch(self, data, key, level: int):
        """(c0, c1) under s_from to (c0 + k0, k1) under s_to: one key switch."""
        be, basis = self.context.backend, self.context.q_basis(level)
        k = keyswitch.key_switch(self.context, data[..., 1, :, :], key, level)
        be.add(k[..., 0, :, :], data[..., 0, :, :], basis, out=k[..., 0, :, :])
        return k
