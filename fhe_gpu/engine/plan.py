"""A :class:`~fhe_gpu.engine.model.Model` compiled for one Context: :class:`Plan`.

Slot layout (one request = one ciphertext row)
----------------------------------------------
A plan packs ``vectors`` = S vectors (a power of two) in each ciphertext row, in the
interleaved lanes of :class:`~fhe_gpu.circuits.LinearTransform`: lane t (0 <= t < S) owns
the D = slots / S positions j, at slot j*S + t. Every vector length along the model (input,
hidden, output) must fit in one lane (d <= D): one request is one ciphertext, never a list
of chunks.

* Input: the first Linear's ``"periodic"`` input layout (its ``input_slots``); element j of
  vector t at position j of lane t when the model has no Linear. A request of count <= S
  vectors fills the other lanes with copies of its vectors (lane t holds vector t mod
  count), so that every lane holds values the model author's intervals cover.
* After each Linear: element i at position i of its lane (zero beyond the output
  length); later Linears take that as their ``"padded"`` input. Element-wise layers act
  slot by slot and keep the layout.
* Output: element i of vector t at position i of lane t (:meth:`Plan.output_vectors`).

Levels and scales
-----------------
The input must be at level >= ``input_level`` (= ``depth``) and at ``input_scale`` (the
parameters' default scale); :meth:`Plan.apply` first drops it to ``input_level`` (the
cheapest level that still holds the model), so every step runs at a level and scale known
when the plan is built, and ``output_level`` is 0. Clients encrypt at ``input_level``
directly. Linear layers and activations keep the scale; Square makes it s^2 / q and
Scale(c) s / |c|. Every activation's polynomial is evaluated on [-1, 1] from an input at
exactly the scale of the prime its first product removes, so it costs ceil(log2(d + 1))
levels whatever the parameters' primes, plus the one level of the change of variable
when no Linear precedes it to fold it into.
"""
from __future__ import annotations

import threading

import numpy as np

from ..circuits import LinearTransform, evaluate
from ..ckks import CIPHERTEXT_TYPES, Ciphertext, Context, Encoder, Evaluator
from ..ckks.evaluator import SCALE_RTOL
from ..errors import KeyMissingError, LevelError, ParameterError, ScaleMismatchError
from ..rlwe import EvaluationKeys
from .layers import Activation, Bias, Linear, Scale, Square


class Plan:
    """A model compiled for a Context: its LinearTransforms (built once; their encoded
    diagonals cached and shared by every batch and tenant) and its steps.

    Made by :meth:`Model.compile <fhe_gpu.engine.model.Model.compile>` (cached per
    parameter set and backend). Attributes: ``model``, ``context``, ``depth`` (levels
    consumed), ``input_level`` (the level :meth:`apply` evaluates at; inputs above it are
    dropped to it), ``input_scale`` (the scale inputs must have: the parameters' default),
    ``output_level`` (0), ``rotations`` (the Galois steps :meth:`apply` needs),
    ``conjugation`` (False: no step conjugates), ``relinearization`` (whether a step
    multiplies ciphertexts), ``vectors`` (vectors per ciphertext row), ``block`` (positions
    per lane), ``input_dim``, ``output_dim``, ``transforms`` (the LinearTransforms in order).

    Raises LevelError when the model needs more levels than the parameters have,
    ParameterError when a vector length does not fit in a lane.
    """

    conjugation = False

    def __init__(self, model, ctx):
        if not isinstance(ctx, Context):
            raise ParameterError(f"a model compiles for a ckks Context, got "
                                 f"{type(ctx).__name__}")
        self.model, self.context = model, ctx
        self.vectors, self.depth = model.vectors, model.depth
        self.input_dim, self.output_dim = model.input_dim, model.output_dim
        if self.depth > ctx.max_level:
            raise LevelError(f"model {model.name!r} needs {self.depth} levels, parameters "
                             f"have {ctx.max_level}")
        if self.vectors > ctx.slots:
            raise ParameterError(f"model {model.name!r} packs {self.vectors} vectors per "
                                 f"ciphertext, the parameters have {ctx.slots} slots")
        self.block = ctx.slots // self.vectors
        longest = max(model.dims)
        if longest > self.block:
            raise ParameterError(
                f"model {model.name!r} has vectors of length {longest}, a lane holds "
                f"{self.block} ({ctx.slots} slots / {self.vectors} vectors per ciphertext): "
                f"use fewer vectors per ciphertext or larger parameters")
        self.input_level, self.output_level = self.depth, 0
        self.input_scale = float(ctx.default_scale)
        self._encoder = Encoder(ctx)
        self.transforms, self._levels, self._folds = self._transforms()
        self._steps = self._build()
        self.rotations = sorted({k for lt in self.transforms for k in lt.rotations})
        self.relinearization = any(isinstance(layer, Square) or (
            isinstance(layer, Activation) and layer.degree > 1) for layer in model.layers)

    # ------------------------------------------------------------------ building
    def _transforms(self):
        """The LinearTransforms of the model's Linear stages, the level each runs at and
        the factor g of each.

        A Linear followed by an Activation gets weights g*alpha*W and bias
        g*(alpha*b + beta), g = q / s (s the scale its input will have, q the prime at its
        output level): its output read at scale s*g = q (``mul_by_scale(1/g)``, no level)
        is the Activation's input in [-1, 1] at exactly the scale of the prime the first
        product removes, where the polynomial's own change of variable is free."""
        lts, levels, folds = [], [], []
        level, scale, first = self.input_level, self.input_scale, True
        primes = self.context.q_primes
        for (layer, act), depth in zip(self.model.stages, self.model.stage_depths):
            if isinstance(layer, Linear):
                g = 1.0 if act is None else float(primes[level - 1]) / scale
                W, b = (layer.W, layer.b) if act is None else \
                    layer.folded(g * act.polynomial.alpha, g * act.polynomial.beta)
                lts.append(LinearTransform(self.context, W, b, vectors=self.vectors,
                                           input="periodic" if first else "padded"))
                levels.append(level)
                folds.append(g)
                first = False
            elif isinstance(layer, Square):
                scale = scale * scale / float(primes[level])
            elif isinstance(layer, Scale):
                scale = scale / abs(layer.c)
            level -= depth
        return lts, levels, folds

    def _build(self) -> list:
        """One callable (ev, ct) -> ct per stage."""
        steps, lts = [], iter(zip(self.transforms, self._folds))
        before_linear = True
        for layer, act in self.model.stages:
            if isinstance(layer, Linear):
                lt, g = next(lts)
                steps.append(lt.apply if act is None else _folded(lt, g, act.polynomial))
                before_linear = False
            elif isinstance(layer, Activation):
                steps.append(_activation(layer.polynomial))
            elif isinstance(layer, Square):
                steps.append(lambda ev, ct: ev.mul(ct, ct))
            elif isinstance(layer, Scale):
                steps.append(lambda ev, ct, c=layer.c: ev.mul_by_scale(ct, c))
            elif isinstance(layer, Bias):
                steps.append(self._bias(layer, before_linear))
            else:
                raise ParameterError(f"cannot compile a layer of type {type(layer).__name__}")
        return steps

    def _bias(self, layer: Bias, before_linear: bool):
        """x + b: a scalar added to every slot, or b in every lane of the current layout
        (encoded once per level and scale)."""
        if not layer.b.ndim:
            return lambda ev, ct, c=float(layer.b): ev.add(ct, c)
        lanes = np.broadcast_to(layer.b, (self.vectors, layer.b.size))
        slots = self._slots(lanes, periodic=before_linear)
        cache, lock = {}, threading.Lock()

        def step(ev, ct):
            key = (ct.level, ct.scale)
            with lock:
                pt = cache.get(key)
                if pt is None:
                    pt = cache[key] = self._encoder.encode(slots, level=ct.level,
                                                           scale=ct.scale)
            return ev.add(ct, pt)
        return step

    # ------------------------------------------------------------------ layout
    def _slots(self, lanes: np.ndarray, periodic: bool) -> np.ndarray:
        """(S, d) lane vectors as one (slots,) vector: in the first transform's periodic
        input layout when ``periodic`` and the model has a Linear, else element j of lane t
        at slot j*S + t (zero beyond d)."""
        if periodic and self.transforms:
            return self.transforms[0].input_slots(lanes)[0]
        v = np.zeros((self.vectors, self.block), dtype=lanes.dtype)
        v[:, : lanes.shape[1]] = lanes
        return v.T.reshape(-1)

    def input_slots(self, x) -> np.ndarray:
        """The (slots,) vector one request carries for x of shape (count, input_dim) or
        (input_dim,), count <= ``vectors``; lanes past count repeat the vectors."""
        a = self.model.check_input(x)
        if a.shape[0] > self.vectors:
            raise ParameterError(f"one request holds at most {self.vectors} vectors (the "
                                 f"model's vectors per ciphertext), got {a.shape[0]}: split "
                                 f"larger inputs over several requests")
        return self._slots(a[np.arange(self.vectors) % a.shape[0]], periodic=True)

    def output_vectors(self, z, count: int | None = None) -> np.ndarray:
        """The (count, output_dim) real output vectors of decoded slots ``z`` ((slots,) or
        (batch, slots)); count defaults to every lane of every row (batch * vectors)."""
        a = np.atleast_2d(np.asarray(z))
        if a.ndim != 2 or a.shape[1] != self.context.slots:
            raise ParameterError(f"decoded slots must have shape ({self.context.slots},) or "
                                 f"(batch, {self.context.slots}), got {np.shape(z)}")
        lanes = a.reshape(-1, self.block, self.vectors).transpose(0, 2, 1)
        y = lanes[:, :, : self.output_dim].reshape(-1, self.output_dim).real
        if count is None:
            return y
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) \
                or not 1 <= count <= y.shape[0]:
            raise ParameterError(f"count must be an integer in [1, {y.shape[0]}] (the "
                                 f"vectors the slots hold), got {count!r:.40}")
        return y[: int(count)]

    # ------------------------------------------------------------------ evaluation
    def apply(self, ev: Evaluator, ct: Ciphertext) -> Ciphertext:
        """The model on every row of ``ct`` (batch, 2, limbs, n), with Evaluator calls
        only: the input dropped to ``input_level``, then each step; the result at
        ``output_level``. Raises LevelError for an input below ``input_level``,
        ScaleMismatchError for one not at ``input_scale``, ContextMismatchError for one of
        other parameters, KeyMissingError (before the work of a step) for missing
        evaluation keys."""
        if not isinstance(ct, CIPHERTEXT_TYPES):
            raise ParameterError(f"apply needs a Ciphertext, got {type(ct).__name__}")
        self.context.check(ct, "the model's input")
        if ct.level < self.input_level:
            raise LevelError(f"model {self.model.name!r} needs an input at level >= "
                             f"{self.input_level} (its depth), got level {ct.level}")
        if abs(ct.scale - self.input_scale) > SCALE_RTOL * self.input_scale:
            raise ScaleMismatchError(f"model {self.model.name!r} takes inputs at the "
                                     f"parameters' default scale {self.input_scale!r}, got "
                                     f"scale {ct.scale!r}")
        ct = ev.drop_level(ct, self.input_level)
        for step in self._steps:
            ct = step(ev, ct)
        return ct

    def check_keys(self, evk: EvaluationKeys) -> None:
        """KeyMissingError unless ``evk`` holds every key :meth:`apply` needs (the
        rotations, and relinearization when a step multiplies ciphertexts), naming the
        missing ones; ContextMismatchError for keys of other parameters."""
        if not isinstance(evk, EvaluationKeys):
            raise ParameterError(f"check_keys needs EvaluationKeys, got {type(evk).__name__}")
        self.context.check(evk, "evaluation keys")
        missing = [k for k in self.rotations
                   if self.context.galois_element(k) not in evk.galois]
        if missing:
            raise KeyMissingError(f"model {self.model.name!r} needs Galois keys for "
                                  f"rotations {missing} (missing), of {self.rotations} in all")
        if self.relinearization and evk.relin is None:
            raise KeyMissingError(f"model {self.model.name!r} multiplies ciphertexts and "
                                  f"needs a relinearization key, the keys hold none")

    def warm(self) -> int:
        """Encode every transform's diagonals at the level it runs at (within each
        transform's cache bound); returns the bytes the caches hold."""
        for lt, level in zip(self.transforms, self._levels):
            lt.warm(level)
        return self.cache_nbytes

    @property
    def cache_nbytes(self) -> int:
        """Bytes of encoded diagonals the transforms' caches hold."""
        return sum(lt.cache_nbytes for lt in self.transforms)

    def __repr__(self):
        return (f"Plan({self.model.name!r}, {self.input_dim} -> {self.output_dim}, depth "
                f"{self.depth}, {len(self.rotations)} rotations, {self.vectors} vectors per "
                f"ciphertext, backend {self.context.backend_name!r})")


def _folded(lt: LinearTransform, g: float, p):
    """The step of a Linear with Activation ``p`` folded in (see ``Plan._transforms``): the
    result at the input's scale."""
    unit = p.in_unit_coordinates()

    def step(ev, ct):
        y = ev.mul_by_scale(lt.apply(ev, ct), 1.0 / g)
        return evaluate(ev, y, unit, scale=ct.scale, assume_in_interval=True)
    return step


def _activation(p):
    """The step of an Activation not right after a Linear: the change of variable
    alpha*x + beta as one constant multiplication rescaled to exactly the next prime (one
    level), then the polynomial on [-1, 1] (free change of variable), back at the input's
    scale. The inputs lie in p's interval by the model author's promise (a ciphertext from
    bytes proves nothing)."""
    unit = p.in_unit_coordinates()

    def step(ev, ct):
        y = ev.mul_to_scale(ct, p.alpha, float(ev.context.q_primes[ct.level - 1]))
        y = ev.add(y, p.beta) if p.beta else y
        return evaluate(ev, y, unit, scale=ct.scale, assume_in_interval=True)
    return step
