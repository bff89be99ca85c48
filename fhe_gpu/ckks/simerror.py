"""Slot errors of simulated ciphertexts: tracked as variances, or sampled.

A :class:`~fhe_gpu.ckks.simulator.Simulator` ciphertext holds the exact slot values of the
computation and an error object describing decrypt(ct) - values slot by slot (value units,
batch x slots, broadcast from a scalar while the error is the same in every slot). Every
noise term is a complex Gaussian per slot, independent across slots (as the values of an
error polynomial at the roots are), of the variance the noise model gives.

* :class:`SampledError` carries one draw of the error: every term is sampled and goes
  through the same arithmetic as the values, so every correlation between the errors of
  operands is exact (T_3 = 2 T_2 T_1 - T_1 shares T_1's error along two paths) and the
  prediction is one run's outcome.
* :class:`VarianceError` tracks each slot's variance with the errors of different origin
  counted as independent (an operation on one object with itself, x*x or x + x, is exact),
  and carries a draw alongside, as SampledError does. The draw measures what independence
  misses: its ratio to the tracked variance, averaged over the slots (thousands of
  independent samples), scales the tracked profile, which keeps what one draw cannot give
  precisely: which slots are noisier (the key-switching peak near slot 0, the values the
  errors multiply, the secret's spectrum). ``slot_var`` and the predicted maximum use the
  scaled profile.

Both answer the same calls: ``fresh``, ``exact``, ``combine`` (ga*a + gb*b), ``product``
(the error of a product of two erroneous values), ``scaled``, ``rolled`` (rotation),
``conj``, ``rows``, ``slot_var``, ``draw`` and ``max_error``.
"""
from __future__ import annotations

import numpy as np

from . import noise


#: the fewest slots over which a correlation factor is averaged (its error: 1/sqrt of it)
GROUP_SLOTS = 64


def _abs2(g):
    """|g|^2 of a scalar or an array."""
    if isinstance(g, (int, float)):
        return g * g
    return g.real * g.real + g.imag * g.imag if np.iscomplexobj(g) else g * g


def _unit(g) -> bool:
    return isinstance(g, (int, float)) and (g == 1.0 or g == -1.0)


class NormalPool:
    """Standard complex normals (E|z|^2 = 1) served as slices of a shared table (four
    times the largest draw, drawn once per process from a fixed seed) at offsets drawn
    from ``rng``: a draw costs a slice, not a call to the generator, and a seeded ``rng``
    reproduces its draws. Draws at different offsets are independent but for shifted
    overlaps, which only a rotation by exactly that shift would line up."""

    _tables: dict = {}

    def __init__(self, rng, size: int):
        self.rng = rng
        self.size = int(size)

    @classmethod
    def _table(cls, size: int) -> np.ndarray:
        """The shared table of ``size`` normals (small enough to stay in cache)."""
        table = cls._tables.get(size)
        if table is None:
            pairs = np.random.default_rng(size).standard_normal((size, 2)) * np.sqrt(0.5)
            table = cls._tables[size] = pairs.view(np.complex128).ravel()
            table.setflags(write=False)
        return table

    def normal(self, shape) -> np.ndarray:
        """A read-only array of ``shape`` of standard complex normals."""
        count = int(np.prod(shape))
        table = self._table(max(self.size, 4 * count))
        start = int(self.rng.integers(0, table.size - count + 1))
        return table[start:start + count].reshape(shape)


class SampledError:
    """One draw ``state`` of the error (complex, broadcasting to batch x slots)."""

    sampled = True

    def __init__(self, state):
        self.state = state

    @classmethod
    def fresh(cls, var, shape, pool: NormalPool, sd=None) -> "SampledError":
        """A draw of an independent error of per-slot variance ``var`` (``sd`` its square
        root, when known)."""
        return cls((np.sqrt(var) if sd is None else sd) * pool.normal(shape))

    @classmethod
    def exact(cls, d) -> "SampledError":
        """A known error ``d``."""
        return cls(d)

    @classmethod
    def quiet(cls, var) -> "SampledError":
        """An error too small to draw (a plaintext's encoding rounding, 2^-scale of its
        values): zero here, its variance ``var`` in VarianceError."""
        return cls(0.0)

    def plain_product(self, a, pt) -> "SampledError":
        """The error of a * pt for a ciphertext ``a`` (this its error) and a plaintext
        ``pt`` (values, abs2, a quiet error): pt's values times this error."""
        return SampledError(pt.values * self.state)

    @classmethod
    def plain_sum(cls, pairs):
        """(values, error) of sum_i a_i * pt_i for pairs (ciphertext a_i, plaintext pt_i),
        accumulated in place in one pass."""
        return _plain_sum(cls, list(pairs), with_var=False)

    def combine(self, ga, other, gb) -> "SampledError":
        """ga*self + gb*other."""
        if _unit(ga) and _unit(gb):
            return SampledError(self.state + other.state if gb > 0 else
                                self.state - other.state)
        return SampledError(ga * self.state + gb * other.state)

    def product(self, a, other, b) -> "SampledError":
        """The error of a product of the operands ``a`` (values a.values + self) and ``b``
        (b.values + other), less a.values * b.values: b*self + a*other + self*other."""
        return SampledError(b.values * self.state + a.values * other.state
                            + self.state * other.state)

    def scaled(self, g) -> "SampledError":
        """g*self."""
        return SampledError(g * self.state)

    def rolled(self, k: int) -> "SampledError":
        """The error after a rotation by k: slot i holds slot i + k's."""
        return SampledError(np.roll(self.state, -k, axis=-1))

    def conj(self) -> "SampledError":
        """The error of the conjugated slots."""
        return SampledError(np.conj(self.state))

    def rows(self, i: slice, batch: int) -> "SampledError":
        """Batch rows ``i`` of an error of ``batch`` rows."""
        return SampledError(_rows(self.state, i, batch))

    def slot_var(self, shape) -> np.ndarray:
        """|e|^2 per slot (the one-draw estimate of the variance)."""
        return np.broadcast_to(_abs2(np.asarray(self.state)), shape)

    def draw(self, shape) -> np.ndarray:
        """The tracked draw (what a decryption of this ciphertext gives)."""
        return np.broadcast_to(self.state, shape)

    def max_error(self, shape, part: str, where=None) -> float:
        """The largest error of the draw (its real part with part="real")."""
        e = np.broadcast_to(self.state, shape)
        e = e if where is None else e[..., where]
        return float(np.max(np.abs(e.real if part == "real" else e)))


class VarianceError(SampledError):
    """The per-slot variance ``var`` (independent errors) and a draw ``state`` (exact
    correlations) of the error; see the module docstring."""

    sampled = False

    def __init__(self, var, state):
        super().__init__(state)
        self.var = var

    @classmethod
    def fresh(cls, var, shape, pool: NormalPool, sd=None) -> "VarianceError":
        """An independent error of per-slot variance ``var`` (``sd`` its square root)."""
        return cls(var, (np.sqrt(var) if sd is None else sd) * pool.normal(shape))

    @classmethod
    def exact(cls, d) -> "VarianceError":
        """A known error ``d`` (a rounding of a constant), counted as its square."""
        return cls(_abs2(d), d)

    @classmethod
    def quiet(cls, var) -> "VarianceError":
        """An error counted by its variance ``var`` only (not drawn: 2^-scale of the
        values, a plaintext's encoding rounding)."""
        return cls(var, 0.0)

    def plain_product(self, a, pt) -> "VarianceError":
        """The error of a * pt: |pt|^2 times this variance plus |a|^2 times pt's own
        (quiet) variance, and pt's values times the draw."""
        return VarianceError(pt.abs2 * self.var + a.abs2 * pt.error.var,
                             pt.values * self.state)

    @classmethod
    def plain_sum(cls, pairs):
        """(values, error) of sum_i a_i * pt_i, accumulated in place in one pass (the
        plaintexts' encoding roundings, 2^-scale of their values, counted for the first
        term only: summed over the terms they stay far below the ciphertexts' errors)."""
        return _plain_sum(cls, list(pairs), with_var=True)

    def combine(self, ga, other, gb) -> "VarianceError":
        """ga*self + gb*other."""
        if _unit(ga) and _unit(gb):
            drawn = self.state + other.state if gb > 0 else self.state - other.state
            if other is self:
                return VarianceError((4.0 if gb > 0 else 0.0) * self.var, drawn)
            return VarianceError(self.var + other.var, drawn)
        drawn = ga * self.state + gb * other.state
        if other is self:
            return VarianceError(_abs2(ga + gb) * self.var, drawn)
        return VarianceError(_abs2(ga) * self.var + _abs2(gb) * other.var, drawn)

    def product(self, a, other, b) -> "VarianceError":
        """The error of a product (see SampledError.product); ``a.abs2`` and ``b.abs2``
        are |values|^2."""
        drawn = b.values * self.state + a.values * other.state + self.state * other.state
        if other is self:
            return VarianceError(4.0 * a.abs2 * self.var + 2.0 * self.var * self.var, drawn)
        return VarianceError(b.abs2 * self.var + a.abs2 * other.var + self.var * other.var,
                             drawn)

    def scaled(self, g) -> "VarianceError":
        """g*self."""
        if _unit(g) and g > 0:
            return self
        return VarianceError(_abs2(g) * self.var, g * self.state)

    def rolled(self, k: int) -> "VarianceError":
        """The error after a rotation by k."""
        var = self.var if np.ndim(self.var) == 0 else np.roll(self.var, -k, axis=-1)
        return VarianceError(var, np.roll(self.state, -k, axis=-1))

    def conj(self) -> "VarianceError":
        """The error of the conjugated slots (same variances)."""
        return VarianceError(self.var, np.conj(self.state))

    def rows(self, i: slice, batch: int) -> "VarianceError":
        """Batch rows ``i``."""
        return VarianceError(_rows(self.var, i, batch), _rows(self.state, i, batch))

    def correlation(self, shape) -> np.ndarray:
        """Per slot, the draw's mean ratio |e|^2 / var over the slots of its group: 1 for
        independent errors, more (or less) where the operands' errors were correlated.
        Groups gather slots of similar tracked variance (1-bit bins from the largest,
        merged until each holds at least GROUP_SLOTS slots): slots the circuit treats
        alike (the outputs of a transform, the lanes it leaves empty) share a factor."""
        var = np.broadcast_to(np.asarray(self.var, dtype=np.float64), shape).ravel()
        drawn = np.broadcast_to(_abs2(np.asarray(self.state)), shape).ravel()
        out = np.ones(var.size)
        ok = var > 0
        if not ok.any():
            return out.reshape(shape)
        logs = np.log2(var[ok])
        bins = np.floor(logs.max() - logs).astype(np.int64)
        counts = np.bincount(bins)
        group, members, g = np.empty(counts.size, dtype=np.int64), 0, 0
        for b, c in enumerate(counts):
            group[b] = g
            members += c
            if members >= GROUP_SLOTS:
                g, members = g + 1, 0
        if members and g:
            group[group == g] = g - 1
        slot_group = group[bins]
        sums = np.bincount(slot_group, weights=drawn[ok] / var[ok])
        sizes = np.bincount(slot_group)
        out[ok] = (sums / np.maximum(sizes, 1))[slot_group]
        return out.reshape(shape)

    def slot_var(self, shape) -> np.ndarray:
        """Per-slot variances: the tracked profile times :meth:`correlation`."""
        var = np.broadcast_to(np.asarray(self.var, dtype=np.float64), shape)
        return var * self.correlation(shape)

    def max_error(self, shape, part: str, where=None) -> float:
        """The largest slot error to expect: 2^E[log2 max] over the scaled variances
        (:func:`noise.max_error`)."""
        v = self.slot_var(shape)
        return noise.max_error(v if where is None else v[..., where], part)


def _plain_sum(cls, pairs, with_var: bool):
    """The loop of plain_sum: values, draw and (``with_var``) variance accumulated."""
    a, pt = pairs[0]
    first = a.error.plain_product(a, pt)
    shape = np.broadcast_shapes(*[x.values.shape for x, _ in pairs],
                                *[p.values.shape for _, p in pairs])
    vals = np.array(np.broadcast_to(a.values * pt.values, shape),
                    dtype=np.result_type(*[x.values for x, _ in pairs],
                                         *[p.values for _, p in pairs]))
    draw = np.array(np.broadcast_to(first.state, shape), dtype=np.complex128)
    tv, tmp = np.empty_like(vals), np.empty_like(draw)
    var = np.array(np.broadcast_to(first.var, shape), dtype=np.float64) if with_var else None
    tvar = np.empty_like(var) if with_var else None
    for a, pt in pairs[1:]:
        np.multiply(a.values, pt.values, out=tv)
        vals += tv
        np.multiply(pt.cvalues, a.error.state, out=tmp)
        draw += tmp
        if with_var:
            np.multiply(pt.abs2, a.error.var, out=tvar)
            var += tvar
    return vals, (cls(var, draw) if with_var else cls(draw))


def concat(errors, shapes):
    """The errors of objects of ``shapes`` stacked along the batch axis."""
    state = np.concatenate([np.broadcast_to(e.state, sh) for e, sh in zip(errors, shapes)])
    if all(isinstance(e, VarianceError) for e in errors):
        var = np.concatenate([np.broadcast_to(np.asarray(e.var, dtype=np.float64), sh)
                              for e, sh in zip(errors, shapes)])
        return VarianceError(var, state)
    return SampledError(state)


def _rows(x, i: slice, batch: int):
    """Rows ``i`` of an array broadcasting to (batch, slots)."""
    if np.ndim(x) == 2 and np.shape(x)[0] == batch and batch > 1:
        return x[i]
    return x
