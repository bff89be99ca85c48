"""Key slabs (fhe_gpu.rlwe.slab): rows of different tenants evaluated as one batch.

Four tenants' ciphertexts are stacked into one batch, multiplied (relinearization), rotated
and rotated hoisted (rotate_many) with a slab view as the Evaluator's keys, then split:
every tenant's part must be bit-identical to evaluating it alone with its own
EvaluationKeys and decrypt under its own secret key. On cpu and on the CUDA backend (the
emulator without a GPU), at N = 2^10; the CUDA key switch must be one launch whatever the
batch. Error cases: index length, slots out of range, empty slots, missing keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from unittest import mock

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu.errors import (BatchIndexError, KeyMismatchError, KeyMissingError, ParameterError,
                            ResourceError)
from fhe_gpu.rlwe import KeySlab, SlabKeys, keyswitch, split_rows, stack_rows
from conftest import BACKENDS, backend_for

STEPS = [1, 2, 3]
ROWS = [1, 2, 1, 3]  # rows per tenant
SLOTS = [3, 0, 5, 1]  # the slab slot of each tenant
CI_BACKENDS = [pytest.param(b, marks=pytest.mark.cuda_emu) if b == "cuda" else b
               for b in BACKENDS if b != "reference"]


def params():
    """N = 2^10, insecure on purpose; two digits of two primes each."""
    return fg.Parameters(log_n=10, q_bits=[50, 30, 30, 30], p_bits=[60, 60], scale_bits=30,
                         dnum=2, security=None)


@dataclass
class Tenant:
    kg: fg.KeyGenerator
    evk: fg.EvaluationKeys
    ct: fg.Ciphertext
    x: np.ndarray


@dataclass
class Setup:
    ctx: fg.Context
    tenants: list
    slab: KeySlab


@lru_cache(maxsize=None)
def setup(backend: str) -> Setup:
    """Four tenants (own keys, own ciphertexts of ROWS[i] rows) and a slab holding them."""
    ctx = fg.Context(params(), backend=backend_for(backend))
    enc, rng = fg.Encoder(ctx), np.random.default_rng(5)
    tenants = []
    for i, rows in enumerate(ROWS):
        kg = fg.KeyGenerator(ctx, seed=bytes([i + 1]) * 32)
        evk = kg.evaluation_keys(rotations=STEPS + [7], conjugation=True)  # more than needed
        x = rng.uniform(-1, 1, (rows, ctx.n // 2))
        ct = fg.Encryptor(ctx, kg.public_key(), seed=bytes([i + 9]) * 32).encrypt(enc.encode(x))
        tenants.append(Tenant(kg, evk, ct, x))
    slab = KeySlab(ctx, 6, [ctx.galois_element(k) for k in STEPS] + [ctx.conjugation_element])
    for t, slot in zip(tenants, SLOTS):
        slab.put(slot, t.evk)
    return Setup(ctx, tenants, slab)


def slab_view(s: Setup) -> SlabKeys:
    return s.slab.view([slot for slot, rows in zip(SLOTS, ROWS) for _ in range(rows)])


def circuit(ev: fg.Evaluator, ct: fg.Ciphertext) -> list:
    """x*x (relinearized), its rotation by 1, the hoisted rotations by 2 and 3, conjugate."""
    sq = ev.mul(ct, ct)
    return [sq, ev.rotate(sq, 1), *ev.rotate_many(sq, [2, 0, 3]), ev.conjugate(ct)]


def host(ctx, ct) -> np.ndarray:
    return ctx.backend.to_host(ct.data)


# ---------------------------------------------------------------- end to end


@pytest.mark.parametrize("backend", CI_BACKENDS)
def test_stacked_tenants_match_each_tenant_alone(backend):
    s = setup(backend)
    keys = slab_view(s)
    assert keys.row_key_ids == tuple(t.evk.key_id for t in s.tenants for _ in range(len(t.x)))
    stacked = stack_rows([t.ct for t in s.tenants], keys.key_id)
    assert stacked.key_id == keys.key_id and stacked.batch_size == sum(ROWS)
    batched = circuit(fg.Evaluator(s.ctx, keys), stacked)
    enc = fg.Encoder(s.ctx)
    for got in batched:
        parts = split_rows(got, ROWS, [t.evk.key_id for t in s.tenants])
        for t, part in zip(s.tenants, parts):
            assert part.key_id == t.evk.key_id and part.level == got.level
    for i, t in enumerate(s.tenants):
        alone = circuit(fg.Evaluator(s.ctx, t.evk), t.ct)
        dec = fg.Decryptor(s.ctx, t.kg.secret_key)
        sq = t.x * t.x
        wants = [sq, np.roll(sq, -1, axis=1), np.roll(sq, -2, axis=1), sq,
                 np.roll(sq, -3, axis=1), t.x]
        for got, ref, want in zip(batched, alone, wants):
            part = split_rows(got, ROWS, [x.evk.key_id for x in s.tenants])[i]
            np.testing.assert_array_equal(host(s.ctx, part), host(s.ctx, ref))
            assert np.max(np.abs(enc.decode(dec.decrypt(part)) - want)) < 1e-3


@pytest.mark.parametrize("backend", CI_BACKENDS)
def test_one_key_switch_call_per_operation_whatever_the_batch(backend):
    s = setup(backend)
    keys = slab_view(s)
    stacked = stack_rows([t.ct for t in s.tenants], keys.key_id)
    be = s.ctx.backend
    with mock.patch.object(be, "key_switch_inner", wraps=be.key_switch_inner) as ks:
        fg.Evaluator(s.ctx, keys).rotate_many(stacked, STEPS)
    assert ks.call_count == len(STEPS)
    for call in ks.call_args_list:
        np.testing.assert_array_equal(call.kwargs["key_index"], keys.index)


@pytest.mark.cuda_emu
@pytest.mark.skipif("cuda" not in BACKENDS, reason="no CUDA backend (GPU or emulator)")
def test_cuda_launches_of_a_slab_key_switch_do_not_grow_with_batch():
    s = setup("cuda")
    be = s.ctx.backend
    counts = []
    for rows in (1, 7):
        keys = s.slab.view([SLOTS[i % 4] for i in range(rows)])
        cts = [s.tenants[i % 4].ct[0] for i in range(rows)]
        stacked = stack_rows(cts, keys.key_id)
        ev = fg.Evaluator(s.ctx, keys)
        ev.rotate(stacked, 1)  # warms tables and plans
        with mock.patch.object(be, "_launch", wraps=be._launch) as launch:
            ev.mul(stacked, stacked, rescale=False)
            ev.rotate(stacked, 1)
        names = [c.args[0] for c in launch.call_args_list]
        assert names.count("key_switch_inner") == 2
        counts.append(len(names))
    assert counts[0] == counts[1] > 0


# ---------------------------------------------------------------- helpers


def test_stack_and_split_rows_keep_metadata():
    s = setup("cpu")
    a, b = s.tenants[0].ct, s.tenants[3].ct
    kid = b"\x07" * 16
    st = stack_rows([a, b], kid)
    assert st.batch_size == len(a) + len(b) and st.key_id == kid and st.real
    assert st.noise_var == max(a.noise_var, b.noise_var)
    assert st.value_bound == max(a.value_bound, b.value_bound)
    pa, pb = split_rows(st, [len(a), len(b)], [a.key_id, b.key_id])
    np.testing.assert_array_equal(pa.data, a.data)
    np.testing.assert_array_equal(pb.data, b.data)
    assert (pa.key_id, pb.key_id) == (a.key_id, b.key_id) and pb.noise_var == st.noise_var


def test_slab_sizes_and_view_ids():
    s = setup("cpu")
    ctx, slab = s.ctx, s.slab
    key_bytes = s.tenants[0].evk.key_bytes()
    assert slab.slot_bytes == 5 * key_bytes and slab.nbytes == 6 * 5 * key_bytes
    assert slab.relin.shape == (6,) + slab.key_shape == (6, 2, 2, 6, ctx.n)
    v1, v2 = slab.view([0, 0]), slab.view([0, 0])
    assert len(v1.key_id) == 16 and v1.key_id != v2.key_id
    assert v1.relin_key().data is slab.relin and v1.batch_size == 2
    g = ctx.galois_element(1)
    assert v1.galois_key(g, "rotation 1").data is slab.galois[g]
    np.testing.assert_array_equal(v1.relin_key().key_index, [0, 0])
    with pytest.raises(ValueError):
        v1.index[0] = 1  # read-only


def test_cpu_slab_pages_are_small_and_uncommitted_until_written():
    """A host slab is an anonymous mapping outside the buffer pool, with transparent huge
    pages off (first writes of huge pages of a mostly empty slab stall on compaction)."""
    be = fg.Context(params(), backend="cpu").backend
    a = be.empty_lasting((3, 2, 5))
    assert a.shape == (3, 2, 5) and a.dtype == np.uint64 and a.flags.writeable
    assert a.flags.c_contiguous and not np.shares_memory(a, be.empty_lasting((3, 2, 5)))
    a[1] = 7
    assert int(a[1].sum()) == 70
    assert be.empty_lasting((0, 4)).shape == (0, 4)


# ---------------------------------------------------------------- errors


def test_index_length_must_match_the_batch():
    s = setup("cpu")
    keys = s.slab.view([0, 3])
    ct = stack_rows([s.tenants[1].ct, s.tenants[0].ct], keys.key_id)  # 3 rows, 2 indices
    ev = fg.Evaluator(s.ctx, keys)
    with pytest.raises(BatchIndexError, match="2 rows.*3"):
        ev.rotate(ct, 1)
    with pytest.raises(BatchIndexError):
        ev.mul(ct, ct)


def test_view_slots_out_of_range_or_empty():
    s = setup("cpu")
    with pytest.raises(BatchIndexError, match="slot 6 out of range"):
        s.slab.view([0, 6])
    with pytest.raises(BatchIndexError, match="slot -1"):
        s.slab.view([-1])
    with pytest.raises(KeyMissingError, match="slot 2"):
        s.slab.view([0, 2])
    with pytest.raises(BatchIndexError):
        s.slab.view([])
    with pytest.raises(ParameterError):
        s.slab.view([0.5])


def test_slab_lacking_a_key():
    s = setup("cpu")
    keys = slab_view(s)
    ev = fg.Evaluator(s.ctx, keys)
    ct = stack_rows([t.ct for t in s.tenants], keys.key_id)
    with pytest.raises(KeyMissingError, match="rotation 7"):
        ev.rotate(ct, 7)  # the tenants have the key, the slab does not
    no_relin = KeySlab(s.ctx, 1, [s.ctx.galois_element(1)], relinearization=False)
    no_relin.put(0, s.tenants[0].evk)
    view = no_relin.view([0])
    one = stack_rows([s.tenants[0].ct], view.key_id)
    with pytest.raises(KeyMissingError, match="relinearization"):
        fg.Evaluator(s.ctx, view).mul(one, one)


def test_put_refuses_evaluation_keys_without_a_needed_key():
    s = setup("cpu")
    kg = s.tenants[0].kg
    slab = KeySlab(s.ctx, 2, [s.ctx.galois_element(k) for k in (1, 5)])
    with pytest.raises(KeyMissingError, match=r"Galois elements \[.*\]"):
        slab.put(0, kg.evaluation_keys(rotations=[1]))
    with pytest.raises(KeyMissingError, match="relinearization"):
        slab.put(0, kg.evaluation_keys(rotations=[1, 5], relinearization=False))
    assert slab.key_ids == [None, None]
    with pytest.raises(BatchIndexError):
        slab.put(2, s.tenants[0].evk)
    with pytest.raises(ParameterError):
        slab.put(0, "keys")


def test_bad_slab_arguments():
    ctx = setup("cpu").ctx
    with pytest.raises(ParameterError, match="capacity"):
        KeySlab(ctx, 0, [5])
    with pytest.raises(ParameterError, match="not odd"):
        KeySlab(ctx, 1, [4])
    with pytest.raises(ParameterError, match="at least one key"):
        KeySlab(ctx, 1, [], relinearization=False)
    with pytest.raises(ParameterError):
        KeySlab("ctx", 1, [5])


def test_slab_larger_than_memory_is_refused(monkeypatch):
    ctx = setup("cpu").ctx
    monkeypatch.setenv("FHE_GPU_MAX_BYTES", str(1 << 20))
    with pytest.raises(ResourceError, match="key slab of 64 slots"):
        KeySlab(ctx, 64, [5])


def test_mixing_a_view_with_a_tenant_ciphertext_is_refused():
    s = setup("cpu")
    ev = fg.Evaluator(s.ctx, slab_view(s))
    with pytest.raises(KeyMismatchError):
        ev.rotate(s.tenants[0].ct, 1)
    with pytest.raises(KeyMismatchError):
        fg.Ciphertext.stack([t.ct for t in s.tenants])


def test_stack_and_split_errors():
    s = setup("cpu")
    a = s.tenants[0].ct
    ev = fg.Evaluator(s.ctx, s.tenants[0].evk)
    with pytest.raises(ParameterError, match="level"):
        stack_rows([a, ev.rescale(ev.mul(a, 0.5, rescale=False))], b"\x01" * 16)
    with pytest.raises(ParameterError, match="16 bytes"):
        stack_rows([a], b"short")
    with pytest.raises(ParameterError):
        stack_rows([a, "ct"], b"\x01" * 16)
    with pytest.raises(BatchIndexError, match="sum to 2"):
        split_rows(a, [1, 1], [a.key_id, a.key_id])
    with pytest.raises(ParameterError):
        split_rows(a, [1], [])
    with pytest.raises(ParameterError):
        split_rows(a, [0, 1], [a.key_id, a.key_id])


def test_apply_key_with_a_view_of_another_batch_raises_before_the_verb():
    s = setup("cpu")
    keys = s.slab.view([0])
    ext = keyswitch.decompose(s.ctx, s.tenants[3].ct.data[:, 1], s.ctx.max_level)
    with pytest.raises(BatchIndexError):
        keyswitch.apply_key(s.ctx, ext, keys.relin_key(), s.ctx.max_level)
