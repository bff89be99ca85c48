"""A model an Engine serves: an ordered list of layers, its cleartext twin, its file format.

``Model([Linear(W1, b1), Activation("gelu", interval=(-8, 8), degree=31), Linear(W2, b2)])``
validates the shapes at construction, knows its depth (levels), its cleartext twin
(:meth:`Model.forward_plain`) and a fingerprint of its content, and compiles into a
:class:`~fhe_gpu.engine.plan.Plan` per Context (:meth:`Model.compile`) that evaluates it on
batched ciphertexts with evaluation keys only.

Folding: an Activation right after a Linear has its change of variable y = alpha*x + beta
(onto [-1, 1]) folded into that Linear's weights (alpha*W, alpha*b + beta), so it costs
exactly ceil(log2(degree + 1)) levels; anywhere else it costs one more level (the change
of variable: a constant multiplication, rescaled). The depth depends on the layers only,
never on the parameters (see :mod:`fhe_gpu.engine.plan` for how scales are kept).

Slots that hold no vector element (zeros at the input, zero beyond a Linear's output) go
through the element-wise layers too: the model refuses an Activation those values would
reach outside its interval (the series diverges there and could overflow the modulus).

Model file (``.npz``, read with ``allow_pickle=False`` only)
    ``format`` str "fhe_gpu.engine.Model"; ``version`` int64 (1); ``name`` str; ``vectors``,
    ``input_dim``, ``layers`` (the count) int64; per layer i ``layer{i}.kind`` str
    ("linear", "activation", "square", "scale", "bias") and its arrays, float64:
    linear ``W`` (d_out, d_in) and optionally ``b`` (d_out,); activation ``name`` str,
    ``interval`` (2,), ``coeffs`` (Chebyshev coefficients on the interval), ``max_error``
    (scalar); scale ``c`` (scalar); bias ``b`` (scalar or vector); square none. A file of
    another format or version, with a missing, extra or mistyped array, or whose layers do
    not form a valid model raises SerializationError naming what is wrong.
"""
from __future__ import annotations

import hashlib
import os
import threading
import zipfile

import numpy as np

from ..ckks import Context, Parameters
from ..errors import ParameterError, SerializationError
from .layers import LAYERS, Activation, Bias, Layer, Linear, Scale, Square, check_vectors
from .plan import Plan

FORMAT = "fhe_gpu.engine.Model"
#: the model file version this code writes and reads
VERSION = 1
#: the most layers a model file may declare
MAX_LAYERS = 4096


class Model:
    """An ordered list of layers (:class:`Linear`, :class:`Activation`, :class:`Square`,
    :class:`Scale`, :class:`Bias`).

    Parameters
    ----------
    layers : the layers, applied in order (at least one).
    vectors : vectors per ciphertext row (rounded up to a power of two): one request holds
        up to this many input vectors (see :mod:`fhe_gpu.engine.plan` for the layout).
    input_dim : the input length; needed only when no layer fixes it (a model of
        element-wise layers only).
    name : a label (default "model-" + the first 12 hex digits of the fingerprint).

    Attributes: ``layers`` (tuple), ``vectors``, ``input_dim``, ``output_dim``, ``dims``
    (the vector length before each layer and after the last), ``depths`` (levels per
    layer), ``depth`` (their sum), ``stages`` ((layer, the Activation folded into it or
    None) pairs) and ``stage_depths``, ``fingerprint`` (SHA-256 of the content: layers,
    vectors, input length; not the name), ``name``. Raises ParameterError naming the layer
    and both lengths when a layer does not take its input's length.
    """

    def __init__(self, layers, *, vectors: int = 1, input_dim: int | None = None,
                 name: str | None = None):
        try:
            layers = tuple(layers)
        except TypeError:
            raise ParameterError(f"Model needs a list of layers, got "
                                 f"{type(layers).__name__}") from None
        bad = [type(x).__name__ for x in layers if not isinstance(x, Layer)]
        if not layers or bad:
            raise ParameterError(f"Model needs at least one layer, all of them engine layers; "
                                 f"got {len(layers)} with {bad[:3] or 'none'} not layers")
        self.layers = layers
        self.vectors = 1 << (_count("vectors", vectors) - 1).bit_length()
        self.dims = _dims(layers, input_dim)
        self.input_dim, self.output_dim = self.dims[0], self.dims[-1]
        self.stages = _stages(layers)
        self.stage_depths = [layer.depth + (act.polynomial.depth if act else 0)
                             for layer, act in self.stages]
        self.depths = [d for layer, act in self.stages
                       for d in ([layer.depth] if act is None
                                 else [layer.depth, act.polynomial.depth])]
        self.depth = sum(self.depths)
        _check_fillers(self.stages)
        self.fingerprint = _digest(self._arrays())
        if name is not None and not isinstance(name, str):
            raise ParameterError(f"name must be a string, got {type(name).__name__}")
        self.name = name or f"model-{self.fingerprint.hex()[:12]}"
        self._lock = threading.Lock()
        self._plans: dict = {}

    # ------------------------------------------------------------------ cleartext
    def check_input(self, x) -> np.ndarray:
        """x ((count, input_dim) or (input_dim,)) as a finite float64 (count, input_dim)
        array, or ParameterError."""
        return check_vectors(x, self.input_dim)

    def forward_plain(self, x) -> np.ndarray:
        """The cleartext twin: the layers' twins composed on x of shape (count, input_dim)
        (or (input_dim,), giving (output_dim,))."""
        y = self.check_input(x)
        for layer in self.layers:
            y = layer.forward_plain(y)
        return y[0] if np.ndim(x) == 1 else y

    # ------------------------------------------------------------------ compiling
    def compile(self, ctx: Context) -> Plan:
        """The :class:`~fhe_gpu.engine.plan.Plan` of this model for ``ctx``: built once per
        parameter set and backend, then cached (a plan serves every context of those, and
        its transforms' encoded diagonals every later batch). Raises LevelError when the
        parameters have fewer levels than ``depth``."""
        if not isinstance(ctx, Context):
            raise ParameterError(f"a model compiles for a ckks Context, got "
                                 f"{type(ctx).__name__}")
        key = (ctx.fingerprint, id(ctx.backend))   # the plan keeps the backend alive
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plans[key] = Plan(self, ctx)
        return plan

    def rotations(self, params: Parameters) -> list[int]:
        """The Galois steps a plan for ``params`` needs (what a client generates keys for),
        from a plan compiled on a key-less reference-backend context."""
        if not isinstance(params, Parameters):
            raise ParameterError(f"rotations needs a Parameters object, got "
                                 f"{type(params).__name__}")
        return list(self.compile(Context(params, backend="reference")).rotations)

    # ------------------------------------------------------------------ files
    def _arrays(self) -> dict:
        out = {"format": np.array(FORMAT), "version": np.array(VERSION, dtype=np.int64),
               "vectors": np.array(self.vectors, dtype=np.int64),
               "input_dim": np.array(self.input_dim, dtype=np.int64),
               "layers": np.array(len(self.layers), dtype=np.int64)}
        for i, layer in enumerate(self.layers):
            out[f"layer{i}.kind"] = np.array(layer.kind)
            out.update({f"layer{i}.{k}": v for k, v in layer.arrays().items()})
        return out

    def save(self, path) -> None:
        """Write the model to ``path`` (a path, used as given, or a binary file object) as
        an uncompressed ``.npz`` of plain arrays (see the module docstring)."""
        arrays = dict(self._arrays(), name=np.array(self.name))
        if isinstance(path, (str, os.PathLike)):
            with open(path, "wb") as f:
                np.savez(f, **arrays)
        else:
            np.savez(path, **arrays)

    @classmethod
    def load(cls, path) -> "Model":
        """A model read from a file :meth:`save` wrote (never unpickling anything).
        SerializationError names what is wrong with a bad file."""
        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise SerializationError(f"{path!s:.80} holds a single array, not an .npz "
                                         f"archive of a model")
            with z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            if isinstance(exc, SerializationError):
                raise
            raise SerializationError(f"cannot read a model from {path!s:.80}: "
                                     f"{type(exc).__name__}: {exc}") from None
        return cls.from_arrays(arrays)

    @classmethod
    def from_arrays(cls, arrays: dict) -> "Model":
        """A model from the arrays of a model file (validated as :meth:`load` does)."""
        r = _Reader(arrays)
        fmt = r.get("format", "str")
        if fmt != FORMAT:
            raise SerializationError(f"not a model file: format {fmt!r}, needs {FORMAT!r}")
        version = r.get("version", "int")
        if version != VERSION:
            raise SerializationError(f"model file version {version} is not supported: this "
                                     f"fhe_gpu reads version {VERSION}")
        count = r.get("layers", "int")
        if not 1 <= count <= MAX_LAYERS:
            raise SerializationError(f"a model file declares 1 to {MAX_LAYERS} layers, got "
                                     f"{count}")
        layers = [r.layer(i) for i in range(count)]
        options = {"vectors": r.get("vectors", "int"), "input_dim": r.get("input_dim", "int"),
                   "name": r.get("name", "str")}
        r.finish()
        try:
            return cls(layers, **options)
        except ParameterError as exc:
            raise SerializationError(f"the model file's layers do not form a model: "
                                     f"{exc}") from None

    # ------------------------------------------------------------------ misc
    def __getstate__(self):
        """Picklable (e.g. to ship to Ray Serve replicas): the compiled plans stay behind."""
        state = dict(self.__dict__, _plans={})
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.layers)

    def __eq__(self, other):
        return isinstance(other, Model) and other.fingerprint == self.fingerprint

    def __hash__(self):
        return hash(self.fingerprint)

    def __repr__(self):
        return (f"Model({self.name!r}: {' -> '.join(map(repr, self.layers))}; "
                f"{self.input_dim} -> {self.output_dim}, depth {self.depth}, "
                f"{self.vectors} vectors per ciphertext)")


def _count(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(f"{what} must be a positive integer, got {value!r:.40}")
    return int(value)


def _dims(layers, input_dim) -> list[int]:
    """The vector length before each layer and after the last."""
    fixed = [d for d in (x.input_dim() for x in layers) if d is not None]
    if input_dim is None and not fixed:
        raise ParameterError("no layer fixes the input length: give Model(..., input_dim=d)")
    d = _count("input_dim", input_dim) if input_dim is not None else fixed[0]
    dims = [d]
    for i, layer in enumerate(layers):
        try:
            d = layer.output_dim(d)
        except ParameterError as exc:
            raise ParameterError(f"layer {i} ({layer!r}): {exc}") from None
        dims.append(d)
    return dims


def _stages(layers) -> list[tuple]:
    """(layer, the Activation folded into it or None): an Activation right after a Linear
    is folded into it."""
    stages = []
    for layer in layers:
        if isinstance(layer, Activation) and stages and isinstance(stages[-1][0], Linear) \
                and stages[-1][1] is None:
            stages[-1] = (stages[-1][0], layer)
        else:
            stages.append((layer, None))
    return stages


def _check_fillers(stages) -> None:
    """ParameterError when the value held by the slots that carry no vector element
    reaches an Activation outside its interval."""
    filler = 0.0
    for layer, act in stages:
        if isinstance(layer, Activation):
            a, b = layer.interval
            if not a <= filler <= b:
                raise ParameterError(
                    f"{layer!r} would see {filler:.6g} in the slots that hold no vector "
                    f"element (zeros at the input, then their images), outside its interval "
                    f"[{a:g}, {b:g}]: place it right after a Linear or widen its interval")
            filler = float(layer.forward_plain(filler))
        elif isinstance(layer, Linear):
            filler = 0.0 if act is None else float(act.forward_plain(sum(act.interval) / 2))
        elif isinstance(layer, (Square, Scale)) or (isinstance(layer, Bias) and not
                                                    layer.b.ndim):
            filler = float(layer.forward_plain(filler))


def _digest(arrays: dict) -> bytes:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.digest()


class _Reader:
    """Typed access to the arrays of a model file; every failure a SerializationError."""

    _KINDS = {"float": ("f8", "float64"), "int": ("i8", "int64"), "str": ("U", "a string")}

    def __init__(self, arrays: dict):
        self.arrays, self.used = arrays, set()

    def get(self, key: str, kind: str, ndims=(0,), optional: bool = False):
        """The array ``key`` checked for kind and dimensions (a Python int or str for
        scalars of those kinds; a float64 array else)."""
        if key not in self.arrays:
            if optional:
                return None
            raise SerializationError(f"the model file lacks the array {key!r}")
        self.used.add(key)
        a = self.arrays[key]
        code, what = self._KINDS[kind]
        ok = a.dtype.kind == "U" if kind == "str" else a.dtype.str.lstrip("<=|") == code
        if not ok or a.ndim not in ndims:
            raise SerializationError(
                f"array {key!r} must be {what} with {' or '.join(map(str, ndims))} "
                f"dimension(s), got dtype {a.dtype} shape {a.shape}")
        if kind == "str":
            return str(a[()])
        return int(a[()]) if kind == "int" else a

    def layer(self, i: int) -> Layer:
        kind = self.get(f"layer{i}.kind", "str")
        if kind not in LAYERS:
            raise SerializationError(f"layer {i} has unknown kind {kind!r}: expected one of "
                                     f"{sorted(LAYERS)}")
        try:
            return LAYERS[kind].from_arrays(
                lambda name, k, ndims, optional=False: self.get(f"layer{i}.{name}", k, ndims,
                                                                optional))
        except ParameterError as exc:
            raise SerializationError(f"layer {i} ({kind}) is invalid: {exc}") from None

    def finish(self) -> None:
        extra = sorted(set(self.arrays) - self.used)
        if extra:
            raise SerializationError(f"the model file holds unexpected arrays {extra[:8]}")
