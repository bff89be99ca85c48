"""Tenants' evaluation keys: a key store (the source of truth) and a device key cache.

The cache is a :class:`~fhe_gpu.rlwe.KeySlab`: one device array per Galois element (and
one for relinearization) with ``capacity`` tenant slots, so that a batch whose rows belong
to different tenants key-switches every row with its own key through a per-row slot index,
without copying keys per batch. ``capacity`` is ``key_cache_bytes // slot_bytes``. Slots
are evicted least recently used; a tenant whose keys were evicted is reloaded from the key
store on its next request (a miss). Slots used by a batch in flight are pinned and never
evicted under it.

Key stores map a tenant id to the wire bytes of its EvaluationKeys: :class:`MemoryKeyStore`
(default; keys survive eviction) and :class:`DirectoryKeyStore` (one file per tenant, so
keys also survive restarts). Any object with ``get(tenant) -> bytes | None``,
``put(tenant, data)`` and ``delete(tenant)`` works.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict

from ..errors import FHEError, KeyMissingError, ParameterError, ResourceError
from ..rlwe import EvaluationKeys, KeySlab
from ..rlwe.resources import available_bytes

#: tenants the key cache holds when no key_cache_bytes is given (fewer when a quarter of
#: the available memory holds fewer)
DEFAULT_TENANTS = 64


class MemoryKeyStore:
    """Key bytes in a dict (thread-safe): survives cache eviction, not restarts."""

    def __init__(self):
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str):
        with self._lock:
            return self._data.get(tenant)

    def put(self, tenant: str, data: bytes) -> None:
        with self._lock:
            self._data[tenant] = bytes(data)

    def delete(self, tenant: str) -> None:
        with self._lock:
            self._data.pop(tenant, None)


class DirectoryKeyStore:
    """Key bytes in files under ``path`` (one per tenant, named by a hash of its id,
    written atomically): survives eviction and restarts."""

    def __init__(self, path):
        self.path = os.fspath(path)
        os.makedirs(self.path, exist_ok=True)

    def _file(self, tenant: str) -> str:
        name = hashlib.sha256(tenant.encode("utf-8")).hexdigest()
        return os.path.join(self.path, name + ".evk")

    def get(self, tenant: str):
        try:
            with open(self._file(tenant), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def put(self, tenant: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._file(tenant))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def delete(self, tenant: str) -> None:
        try:
            os.unlink(self._file(tenant))
        except FileNotFoundError:
            pass


def switching_key_bytes(ctx) -> int:
    """Bytes of one switching key: digits x 2 x (L + 1 + K) limbs x N words."""
    digits = -(-len(ctx.q_primes) // ctx.alpha)
    return digits * 2 * len(ctx.full_qp) * ctx.n * 8


class KeyCache:
    """Tenants' keys resident in a device key slab, LRU-evicted, reloaded from ``store``.

    ``acquire(tenants)`` returns each tenant's slot (loading it on a miss) and pins it
    until ``release(tenants)``; ``view(index)`` is the slab's per-row key view.
    """

    def __init__(self, ctx, galois_elements, capacity_bytes, store, metrics=None,
                 relinearization: bool = True, max_key_bytes=None):
        self.ctx = ctx
        self.store = store
        self.metrics = metrics
        self.max_key_bytes = max_key_bytes
        elements = sorted(set(int(g) for g in galois_elements))
        slot_bytes = (len(elements) + int(relinearization)) * switching_key_bytes(ctx)
        if slot_bytes == 0:
            raise ParameterError(
                "the models need no evaluation keys (no rotation, no relinearization): the "
                "Engine batches key-switching models; evaluate this one with "
                "ckks.Evaluator(ctx) directly")
        if capacity_bytes is None:
            capacity = max(1, min(DEFAULT_TENANTS, available_bytes() // 4 // slot_bytes))
        else:
            capacity = int(capacity_bytes) // slot_bytes
        if capacity < 1:
            raise ParameterError(
                f"key_cache_bytes={capacity_bytes} cannot hold one tenant's keys: one "
                f"tenant needs {slot_bytes} bytes ({len(elements)} Galois keys"
                f"{' + relinearization' if relinearization else ''})")
        self.slab = KeySlab(ctx, capacity, elements, relinearization=relinearization)
        self.capacity = capacity
        self._slots: OrderedDict[str, int] = OrderedDict()   # least recently used first
        self._pins: dict[int, int] = {}                     # slot -> batches reading it
        self._orphans: set[int] = set()                     # dropped while pinned
        self._free = list(range(capacity - 1, -1, -1))
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0
        self._report()

    @property
    def slot_bytes(self) -> int:
        """Device bytes one tenant's keys occupy."""
        return self.slab.slot_bytes

    @property
    def resident(self) -> list[str]:
        """Tenants whose keys are on the device now, least recently used first."""
        with self._lock:
            return list(self._slots)

    def insert(self, tenant: str, evk: EvaluationKeys) -> None:
        """Put already decoded keys of ``tenant`` in the cache (at registration)."""
        with self._lock:
            self.drop_locked(tenant)
            slot = self._take_slot()
            self._fill(slot, evk)
            self._slots[tenant] = slot
            self._slots.move_to_end(tenant)
            self._report()

    def acquire(self, tenants) -> dict:
        """Slots of ``tenants`` (distinct), pinned; a tenant whose keys cannot be had maps
        to the FHEError saying why (KeyMissingError when the store has none)."""
        out = {}
        with self._lock:
            for tenant in tenants:
                try:
                    slot = out[tenant] = self._slot(tenant)
                    self._pins[slot] = self._pins.get(slot, 0) + 1
                except FHEError as exc:
                    out[tenant] = exc
            self._report()
        return out

    def release(self, slots) -> None:
        """Unpin the slots :meth:`acquire` returned; a slot whose tenant was dropped
        meanwhile becomes free once its last batch releases it."""
        with self._lock:
            for slot in slots:
                n = self._pins.get(slot, 0) - 1
                if n > 0:
                    self._pins[slot] = n
                    continue
                self._pins.pop(slot, None)
                if slot in self._orphans:
                    self._orphans.discard(slot)
                    self._free.append(slot)

    def drop(self, tenant: str) -> None:
        """Forget ``tenant``'s resident keys (the store is not touched). A slot a batch in
        flight still reads is freed when that batch releases it."""
        with self._lock:
            self.drop_locked(tenant)
            self._report()

    def drop_locked(self, tenant: str) -> None:
        """:meth:`drop` with the lock held."""
        slot = self._slots.pop(tenant, None)
        if slot is not None:
            if slot in self._pins:
                self._orphans.add(slot)
            else:
                self._free.append(slot)

    def view(self, index):
        """The slab's EvaluationKeys view selecting row b's key from slot index[b]."""
        return self.slab.view(index)

    def _slot(self, tenant: str) -> int:
        slot = self._slots.get(tenant)
        if slot is not None:
            self.hits += 1
            self._count("hits")
            self._slots.move_to_end(tenant)
            return slot
        self.misses += 1
        self._count("misses")
        data = self.store.get(tenant)
        if data is None:
            raise KeyMissingError(f"tenant {tenant!r} is not registered: no evaluation keys "
                                  f"in the key store")
        evk = EvaluationKeys.from_bytes(data, self.ctx, max_bytes=self.max_key_bytes)
        slot = self._take_slot()
        self._fill(slot, evk)
        self._slots[tenant] = slot
        return slot

    def _fill(self, slot: int, evk) -> None:
        """Copy keys into a slot taken from the free list; the slot goes back on failure."""
        try:
            self.slab.put(slot, evk)
        except BaseException:
            self._free.append(slot)
            raise

    def _take_slot(self) -> int:
        if self._free:
            return self._free.pop()
        for victim, slot in self._slots.items():
            if slot not in self._pins:
                self.evictions += 1
                self._count("evictions")
                return self._slots.pop(victim)
        raise ResourceError(
            f"key cache full: all {self.capacity} slots hold keys of batches in flight; "
            f"raise key_cache_bytes (one tenant needs {self.slot_bytes} bytes)")

    def _count(self, what: str) -> None:
        if self.metrics is not None:
            self.metrics.key_cache_event(what)

    def _report(self) -> None:
        if self.metrics is not None:
            self.metrics.key_cache_state(len(self._slots) * self.slot_bytes,
                                         self.capacity * self.slot_bytes, len(self._slots))
