"""Key slabs: the evaluation keys of many key sets (tenants) side by side on the device, so
that one batched ciphertext whose rows belong to different tenants is evaluated once.

A :class:`KeySlab` holds, per key (the relinearization key and each Galois element), one
array (capacity, digits, 2, limbs(QP), n) on the backend's device; :meth:`KeySlab.put`
copies a tenant's :class:`~fhe_gpu.rlwe.keys.EvaluationKeys` into a slot. A view
(:meth:`KeySlab.view`) names the slot of every batch row and behaves as EvaluationKeys for
the Evaluator: its keys carry the slab array and the per-row index, and key switching passes
the index to the RingBackend verb (``key_switch_inner(..., key_index=...)``), which selects
each row's key inside one kernel call. Everything keyless runs once for the whole batch.

Typical use (an Engine)::

    slab = KeySlab(ctx, capacity=64, galois_elements=[ctx.galois_element(k) for k in steps])
    slab.put(0, alice_evk); slab.put(1, bob_evk)
    keys = slab.view([0, 0, 1])                    # rows 0-1: alice, row 2: bob
    ct = stack_rows([alice_ct, bob_ct], keys.key_id)   # batch 2 + 1, the view's key id
    out = Evaluator(ctx, keys).rotate(ct, 1)
    alice_out, bob_out = split_rows(out, [2, 1], [alice_evk.key_id, bob_evk.key_id])

Each result row is bit-identical to evaluating that row alone with its tenant's keys.
"""
from __future__ import annotations

import secrets

import numpy as np

from ..errors import BatchIndexError, KeyMissingError, ParameterError
from .keys import KEY_ID_BYTES, EvaluationKeys, _key_id, check_context
from .objects import Ciphertext
from .resources import check_memory


def _int(x, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise ParameterError(f"{what} must be an integer, got {x!r:.60}")
    return int(x)


class SlabKey:
    """One key of a slab view: ``data`` is the slab array (capacity, digits, 2, limbs, n),
    ``key_index`` (int64, shape (B,), read-only) the slot of each batch row."""

    def __init__(self, data, key_index: np.ndarray, context):
        self.data = data
        self.key_index = key_index
        self.context = context
        self.fingerprint = context.fingerprint


class SlabKeys:
    """The keys of a KeySlab for one batch: row b uses slot ``index[b]``.

    Answers ``relin_key()`` and ``galois_key(g, what)`` like EvaluationKeys (``relin`` and
    ``galois`` as attributes too) with :class:`SlabKey` objects. ``key_id`` is a fresh
    16-byte id naming this batch: the stacked ciphertext carries it (:func:`stack_rows`).
    ``row_key_ids`` are the key ids held by each row's slot when the view was made.
    """

    def __init__(self, slab: KeySlab, index: np.ndarray):
        self.slab = slab
        self.context = slab.context
        self.fingerprint = slab.context.fingerprint
        self.index = index
        self.key_id = secrets.token_bytes(KEY_ID_BYTES)
        self.row_key_ids = tuple(slab.key_ids[s] for s in index)
        self.relin = None if slab.relin is None else SlabKey(slab.relin, index, self.context)
        self.galois = {g: SlabKey(a, index, self.context) for g, a in slab.galois.items()}

    @property
    def batch_size(self) -> int:
        """Rows of the ciphertexts this view switches."""
        return int(self.index.shape[0])

    def relin_key(self) -> SlabKey:
        """The relinearization key slab with this view's index, or KeyMissingError."""
        if self.relin is None:
            raise KeyMissingError("no relinearization key: this key slab was made with "
                                  "relinearization=False")
        return self.relin

    def galois_key(self, galois_elt: int, what: str) -> SlabKey:
        """The slab of a Galois element with this view's index, or KeyMissingError."""
        if galois_elt not in self.galois:
            raise KeyMissingError(f"no Galois key for {what} (Galois element {galois_elt}) "
                                  f"in this key slab; it holds elements {sorted(self.galois)}")
        return self.galois[galois_elt]

    def __repr__(self):
        return f"SlabKeys(rows={self.batch_size}, slots={sorted(set(self.index.tolist()))})"


class KeySlab:
    """Device-resident evaluation keys of up to ``capacity`` key sets.

    One array (capacity, digits, 2, limbs(QP), n) per Galois element of
    ``galois_elements`` and, when ``relinearization``, one for the relinearization key,
    allocated once (ResourceError when it cannot fit). Slots are filled by :meth:`put` and
    read through :meth:`view`. Writing a slot that a running evaluation reads changes its
    result: the caller schedules puts between evaluations.
    """

    def __init__(self, context, capacity: int, galois_elements, relinearization: bool = True):
        self.context = check_context(context, "KeySlab")
        self.capacity = _int(capacity, "capacity")
        if self.capacity < 1:
            raise ParameterError(f"capacity must be at least 1 slot, got {self.capacity}")
        elements = self._elements(galois_elements)
        if not elements and not relinearization:
            raise ParameterError("a KeySlab needs at least one key: relinearization=True or "
                                 "some Galois elements")
        digits = -(-len(context.q_primes) // context.alpha)
        self.key_shape = (digits, 2, len(context.full_qp), context.n)
        count = len(elements) + bool(relinearization)
        self.slot_bytes = count * int(np.prod(self.key_shape)) * 8
        check_memory(self.nbytes, f"a key slab of {self.capacity} slots x {count} keys")
        be, shape = context.backend, (self.capacity,) + self.key_shape
        # not the backend's pooled empty: a slab lives as long as its Engine, and on the
        # host its pages are only touched (committed) when a slot is filled
        self.relin = be.empty_lasting(shape) if relinearization else None
        self.galois = {g: be.empty_lasting(shape) for g in elements}
        #: the key id of the key set in each slot (None: empty)
        self.key_ids: list[bytes | None] = [None] * self.capacity

    def _elements(self, galois_elements) -> list[int]:
        try:
            items = list(galois_elements)
        except TypeError:
            raise ParameterError(f"galois_elements must be a list of integers, got "
                                 f"{galois_elements!r:.60}") from None
        two_n = 2 * self.context.n
        out = sorted({_int(g, "a Galois element") for g in items})
        bad = [g for g in out if not (0 < g < two_n and g % 2)]
        if bad:
            raise ParameterError(f"Galois elements {bad[:4]} are not odd numbers in [1, "
                                 f"{two_n}): use context.galois_element(steps)")
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of every slot of every key."""
        return self.capacity * self.slot_bytes

    def _slot(self, slot) -> int:
        slot = _int(slot, "slot")
        if not 0 <= slot < self.capacity:
            raise BatchIndexError(f"slot {slot} out of range for a key slab of "
                                  f"{self.capacity} slots: needs 0 <= slot < {self.capacity}")
        return slot

    def put(self, slot: int, evk: EvaluationKeys) -> None:
        """Copy the keys of ``evk`` that this slab holds into ``slot`` (evk may hold more).

        KeyMissingError names what evk lacks; nothing is written then.
        """
        slot = self._slot(slot)
        if not isinstance(evk, EvaluationKeys):
            raise ParameterError(f"put needs EvaluationKeys, got {type(evk).__name__}")
        self.context.check(evk, "evaluation keys")
        missing = [g for g in self.galois if g not in evk.galois]
        need_relin = self.relin is not None and evk.relin is None
        if missing or need_relin:
            what = (["the relinearization key"] if need_relin else []) + \
                ([f"Galois elements {missing}"] if missing else [])
            raise KeyMissingError(f"evaluation keys of key set {evk.key_id.hex()} lack "
                                  f"{' and '.join(what)}, which this key slab holds")
        pairs = [(self.relin, evk.relin)] if self.relin is not None else []
        pairs += [(arr, evk.galois[g]) for g, arr in self.galois.items()]
        for _, key in pairs:
            if tuple(key.data.shape) != self.key_shape:
                raise ParameterError(f"a key of shape {tuple(key.data.shape)} does not fit "
                                     f"this key slab's {self.key_shape}")
        self.key_ids[slot] = None
        for arr, key in pairs:
            arr[slot] = self._device(key)
        self.key_ids[slot] = evk.key_id

    def _device(self, key):
        """key.data on this slab's backend (a host round trip when evk lives on another)."""
        be, src = self.context.backend, key.context.backend
        return key.data if src is be else be.to_device(src.to_host(key.data))

    def clear(self, slot: int) -> None:
        """Mark ``slot`` empty: views can no longer name it until the next put."""
        self.key_ids[self._slot(slot)] = None

    def view(self, index) -> SlabKeys:
        """Keys for a batch whose row b uses slot ``index[b]`` (slots may repeat).

        BatchIndexError for a slot outside the slab, KeyMissingError for an empty one.
        """
        try:
            idx = np.array([_int(s, "a slot index") for s in index], dtype=np.int64)
        except TypeError:
            raise ParameterError(f"index must be a list of slot numbers, got "
                                 f"{index!r:.60}") from None
        if idx.size == 0:
            raise BatchIndexError("index is empty: a view needs one slot per batch row")
        for s in idx:
            if self.key_ids[self._slot(s)] is None:
                raise KeyMissingError(f"slot {int(s)} of the key slab holds no keys: put() a "
                                      f"key set there first")
        idx.flags.writeable = False
        return SlabKeys(self, idx)

    def __repr__(self):
        used = sum(k is not None for k in self.key_ids)
        return (f"KeySlab({used}/{self.capacity} slots, relinearization="
                f"{self.relin is not None}, galois={sorted(self.galois)})")


def stack_rows(cts, key_id: bytes) -> Ciphertext:
    """The rows of several ciphertexts (one level and scale, any key sets) as one batch
    that carries ``key_id`` (a slab view's): noise_var and value_bound are the largest of
    the parts (None when one is unknown), real when every part is."""
    key_id = _key_id(key_id)
    try:
        items = list(cts)
    except TypeError:
        raise ParameterError(f"stack_rows needs a list of Ciphertexts, got "
                             f"{type(cts).__name__}") from None
    for ct in items:
        if not isinstance(ct, Ciphertext):
            raise ParameterError(f"stack_rows needs Ciphertexts, got {type(ct).__name__}")
    return Ciphertext.stack([Ciphertext(ct.data, ct.level, ct.scale, ct.context,
                                        key_id=key_id, noise_var=ct.noise_var,
                                        value_bound=ct.value_bound, real=ct.real)
                             for ct in items])


def split_rows(ct: Ciphertext, counts, key_ids) -> list[Ciphertext]:
    """The inverse of :func:`stack_rows`: consecutive groups of ``counts[i]`` rows as
    ciphertexts of key set ``key_ids[i]`` (views of ct.data; each keeps ct's level, scale,
    noise_var, value_bound and real)."""
    if not isinstance(ct, Ciphertext):
        raise ParameterError(f"split_rows needs a Ciphertext, got {type(ct).__name__}")
    try:
        counts, key_ids = [_int(c, "a row count") for c in counts], list(key_ids)
    except TypeError:
        raise ParameterError("split_rows needs a list of row counts and a list of key "
                             "ids") from None
    if len(counts) != len(key_ids) or any(c < 1 for c in counts):
        raise ParameterError(f"split_rows needs one key id per group and groups of at least "
                             f"one row, got counts {counts} and {len(key_ids)} key ids")
    if sum(counts) != ct.batch_size:
        raise BatchIndexError(f"row counts {counts} sum to {sum(counts)}, but the ciphertext "
                              f"has {ct.batch_size} rows")
    out, start = [], 0
    for c, kid in zip(counts, key_ids):
        out.append(Ciphertext(ct.data[start:start + c], ct.level, ct.scale, ct.context,
                              key_id=_key_id(kid), noise_var=ct.noise_var,
                              value_bound=ct.value_bound, real=ct.real))
        start += c
    return out
