"""The cuda backend (kernels/*.cu) against reference.py (the spec) and the cpu backend.

On a machine without a GPU the kernels run on the CPU emulator (FHE_GPU_CUDA_EMULATE=1 is
set by the fixture below); with a GPU and CuPy they run on the device. Every verb must give
the same bits as the reference and the cpu backend, over n in {16, ..., 4096}, primes of 30
to 61 bits in any order, broadcast batch axes and out=. Some tests also rebuild the backend
with other block sizes so that the NTT kernels run with one thread per block, several
threads and several blocks per limb, and a single block per limb.
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhe_gpu.errors import BackendUnavailableError
from fhe_gpu.ring import backend as backend_mod
from fhe_gpu.ring import get_backend, reference as ref, tables

pytestmark = pytest.mark.cuda_emu

NS = [16, 64, 256, 1024, 4096]
BITS = [30, 40, 60, 61]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])


def _gpu_present() -> bool:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.fixture(scope="module")
def cuda():
    """get_backend("cuda"): on the GPU when there is one, else on the emulator."""
    had = "cuda" in backend_mod._INSTANCES
    with pytest.MonkeyPatch.context() as mp:
        if not _gpu_present():
            mp.setenv("FHE_GPU_CUDA_EMULATE", "1")
        try:
            be = get_backend("cuda")
        except BackendUnavailableError as exc:
            pytest.skip(f"neither a GPU nor the CUDA emulator: {exc}")
        yield be
    if not had:  # leave "auto" for the other test modules as it was
        backend_mod._INSTANCES.pop("cuda", None)


@pytest.fixture(scope="module")
def cpu():
    return get_backend("cpu")


@pytest.fixture(scope="module")
def geometries(cuda):
    """The backend with 1, 4 (emulation default) and 64 target threads per block."""
    from fhe_gpu.ring.cuda import CudaBackend
    return [CudaBackend(emulate=cuda.emulate, block_threads=t) for t in (1, 4, 64)]


# ----------------------------------------------------------------------------- data


@lru_cache(maxsize=None)
def universe(n: int) -> tables.PrimeSet:
    """Two primes of every size in BITS, all = 1 mod 2n."""
    primes = []
    for bits in BITS:
        primes += ref.generate_primes(n, bits, 2, exclude=primes)
    return tables.prime_set(n, tuple(primes))


def basis_of(n, idx) -> tables.Basis:
    return tables.basis(universe(n), tuple(int(i) for i in idx))


def random_poly(rng, shape, basis) -> np.ndarray:
    """uint64 array of shape (*shape, limbs, n), limb l uniform in [0, q_l)."""
    limbs = [rng.integers(0, q, size=tuple(shape) + (basis.n,), dtype=np.uint64)
             for q in basis.primes]
    return np.stack(limbs, axis=-2)


@st.composite
def a_basis(draw, n, max_limbs=4):
    """A basis of 1..max_limbs distinct primes of universe(n), in any order."""
    count = draw(st.integers(1, max_limbs))
    idx = draw(st.permutations(range(len(universe(n).primes))))[:count]
    return basis_of(n, idx)


def rng_from(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def batch_for(n, draw, max_rows=3):
    """A batch shape; a single row at n = 4096 to keep the reference affordable."""
    if n >= 4096:
        return ()
    return tuple(draw(st.lists(st.integers(1, max_rows), max_size=2)))


def check(got, *expected):
    for want in expected:
        assert got.dtype == np.uint64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def host(be, x):
    return be.to_host(x)


# ----------------------------------------------------------------------------- NTT


@pytest.mark.parametrize("n", NS)
@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_ntt_intt_match_reference_and_cpu(cuda, cpu, n, data):
    basis = data.draw(a_basis(n, max_limbs=2 if n >= 1024 else 4))
    rng = rng_from(data.draw)
    a = random_poly(rng, batch_for(n, data.draw), basis)
    fwd = host(cuda, cuda.ntt(cuda.to_device(a), basis))
    check(fwd, ref.ntt(a, basis.primes), cpu.ntt(a, basis))
    inv = host(cuda, cuda.intt(cuda.to_device(a), basis))
    check(inv, ref.intt(a, basis.primes), cpu.intt(a, basis))


@pytest.mark.parametrize("n", [16, 64, 256])
def test_ntt_product_is_negacyclic_convolution(cuda, n):
    rng = np.random.default_rng(n)
    basis = basis_of(n, [7, 0, 4])
    a, b = random_poly(rng, (), basis), random_poly(rng, (), basis)
    fa, fb = cuda.ntt(cuda.to_device(a), basis), cuda.ntt(cuda.to_device(b), basis)
    prod = host(cuda, cuda.intt(cuda.mul(fa, fb, basis), basis))
    for l, q in enumerate(basis.primes):
        want = ref.negacyclic_convolution([int(x) for x in a[l]], [int(x) for x in b[l]], q)
        assert [int(x) for x in prod[l]] == want


def test_ntt_geometries_and_in_place(cuda, cpu, geometries):
    rng = np.random.default_rng(3)
    for n in NS:
        basis = basis_of(n, [1, 6, 3])
        a = random_poly(rng, (2,), basis)
        want_f, want_i = cpu.ntt(a, basis), cpu.intt(a, basis)
        for be in geometries:
            x = be.to_device(a.copy())
            assert be.ntt(x, basis, out=x) is x
            check(host(be, x), want_f)
            assert be.intt(x, basis, out=x) is x
            check(host(be, x), a)
            check(host(be, be.intt(be.to_device(a), basis)), want_i)


def test_emulated_ntt_runs_several_threads_and_blocks_per_limb(cuda):
    if not cuda.emulate:
        pytest.skip("geometry check of the emulated block sizes")
    for n in (256, 1024, 4096):
        _, col, chunk = cuda._ntt_geometry(n)
        for blocks, threads, _, _ in (col, chunk):
            assert blocks >= 4 and threads >= 2, (n, col, chunk)


# ----------------------------------------------------------------------------- pointwise

SHAPE_PAIRS = [((), ()), ((3,), ()), ((), (2,)), ((2, 3), (2, 1)), ((1, 3), (2, 1)),
               ((2, 1, 3), (1, 4, 1)), ((2, 1, 2, 2), (2, 2, 1, 1))]


@pytest.mark.parametrize("n", NS)
@settings(max_examples=5, **SETTINGS)
@given(data=st.data())
def test_pointwise_verbs_broadcast(cuda, cpu, n, data):
    basis = data.draw(a_basis(n))
    rng = rng_from(data.draw)
    sa, sb = data.draw(st.sampled_from(SHAPE_PAIRS if n < 4096 else SHAPE_PAIRS[:3]))
    sc = data.draw(st.sampled_from([sa, sb, ()]))
    a, b, c = (random_poly(rng, s, basis) for s in (sa, sb, sc))
    da, db, dc = (cuda.to_device(x) for x in (a, b, c))
    for verb, args in (("add", (a, b)), ("sub", (a, b)), ("mul", (a, b)), ("neg", (a,)),
                       ("mul_add", (a, b, c))):
        dev = {"add": (da, db), "sub": (da, db), "mul": (da, db), "neg": (da,),
               "mul_add": (da, db, dc)}[verb]
        got = host(cuda, getattr(cuda, verb)(*dev, basis))
        check(got, getattr(ref, verb)(*args, basis.primes), getattr(cpu, verb)(*args, basis))


@pytest.mark.parametrize("n", NS)
@settings(max_examples=4, **SETTINGS)
@given(data=st.data())
def test_mul_scalar_and_automorphism(cuda, cpu, n, data):
    basis = data.draw(a_basis(n))
    rng = rng_from(data.draw)
    a = random_poly(rng, batch_for(n, data.draw), basis)
    scalars = np.array([data.draw(st.integers(0, q - 1)) for q in basis.primes], dtype=np.uint64)
    got = host(cuda, cuda.mul_scalar(cuda.to_device(a), scalars, basis))
    check(got, ref.mul_scalar(a, scalars, basis.primes), cpu.mul_scalar(a, scalars, basis))
    g = data.draw(st.integers(0, n - 1)) * 2 + 1
    got = host(cuda, cuda.automorphism(cuda.to_device(a), g, basis))
    check(got, ref.automorphism(a, g, basis.primes), cpu.automorphism(a, g, basis))


def test_out_argument_direct_aliased_and_copied(cuda, cpu):
    n, rng = 64, np.random.default_rng(5)
    basis = basis_of(n, [2, 5])
    a, b = random_poly(rng, (2,), basis), random_poly(rng, (2,), basis)
    want = cpu.add(a, b, basis)
    out = cuda.empty(a.shape)
    assert cuda.add(cuda.to_device(a), cuda.to_device(b), basis, out=out) is out
    check(host(cuda, out), want)
    da = cuda.to_device(a.copy())  # to_device may return a itself
    assert cuda.add(da, cuda.to_device(b), basis, out=da) is da  # out aliases an input
    check(host(cuda, da), want)
    wide = cuda.zeros((2, 2, 2 * n))
    view = wide[..., ::2]  # not contiguous: computed aside, then copied in
    assert cuda.mul(cuda.to_device(a), cuda.to_device(b), basis, out=view) is view
    check(host(cuda, view), cpu.mul(a, b, basis))
    da = cuda.to_device(a.copy())  # to_device may return a itself
    assert cuda.automorphism(da, 5, basis, out=da) is da  # a permutation cannot run in place
    check(host(cuda, da), cpu.automorphism(a, 5, basis))
    da = cuda.to_device(a.copy())  # to_device may return a itself
    assert cuda.mul_scalar(da, [3, 4], basis, out=da) is da
    check(host(cuda, da), cpu.mul_scalar(a, np.array([3, 4], np.uint64), basis))
    with pytest.raises(ValueError):
        cuda.add(cuda.to_device(a), cuda.to_device(b), basis, out=cuda.empty((2, 2, n + 1)))


# ----------------------------------------------------------------------------- basis change


@st.composite
def q_and_p(draw, n, max_q=5, max_p=3):
    """Disjoint (q_basis, p_basis) of universe(n), each in any order."""
    perm = draw(st.permutations(range(len(universe(n).primes))))
    lq = draw(st.integers(1, max_q))
    kp = draw(st.integers(1, max_p))
    return basis_of(n, perm[:lq]), basis_of(n, perm[lq:lq + kp])


@pytest.mark.parametrize("n", NS)
@settings(max_examples=5, **SETTINGS)
@given(data=st.data())
def test_mod_up_key_switch_mod_down(cuda, cpu, n, data):
    big = n >= 1024
    qb, pb = data.draw(q_and_p(n, max_q=3 if big else 5, max_p=2 if big else 3))
    alpha = data.draw(st.integers(1, 3))
    rng = rng_from(data.draw)
    a = random_poly(rng, batch_for(n, data.draw, max_rows=2), qb)
    up = host(cuda, cuda.mod_up(cuda.to_device(a), qb, pb, alpha))
    check(up, ref.mod_up(a, qb.primes, pb.primes, alpha), cpu.mod_up(a, qb, pb, alpha))
    full = qb + pb
    key_basis = basis_of(n, list(reversed(full.idx)))  # key limbs in another order
    digits = up.shape[-3]
    key = random_poly(rng, (digits + 1, 2), key_basis)  # more key digits than ext digits
    ks = host(cuda, cuda.key_switch_inner(cuda.to_device(up), cuda.to_device(key), full,
                                          key_basis))
    check(ks, ref.key_switch_inner(up, key, full.primes, key_basis.primes),
          cpu.key_switch_inner(up, key, full, key_basis))
    down = host(cuda, cuda.mod_down(cuda.to_device(ks), qb, pb))
    check(down, ref.mod_down(ks, qb.primes, pb.primes), cpu.mod_down(ks, qb, pb))


@pytest.mark.parametrize("n", [16, 256, 1024])
@settings(max_examples=4, **SETTINGS)
@given(data=st.data())
def test_key_switch_inner_with_key_index(cuda, cpu, n, data):
    """A slab of T keys, row b against slot key_index[b] (repeats), galois_elt fused or not."""
    qb, pb = data.draw(q_and_p(n, max_q=3, max_p=2))
    rng = rng_from(data.draw)
    full = qb + pb
    key_basis = basis_of(n, list(reversed(full.idx)))
    rows, slots = data.draw(st.sampled_from([1, 3, 6])), data.draw(st.sampled_from([1, 2, 5]))
    digits = data.draw(st.integers(1, 3))
    ext = random_poly(rng, (rows, digits), full)
    slab = random_poly(rng, (slots, digits + 1, 2), key_basis)
    index = rng.integers(0, slots, size=rows)
    g = data.draw(st.sampled_from([None, 5, 2 * n - 1]))
    got = host(cuda, cuda.key_switch_inner(cuda.to_device(ext), cuda.to_device(slab), full,
                                           key_basis, galois_elt=g, key_index=index))
    check(got, ref.key_switch_inner(ext, slab, full.primes, key_basis.primes, galois_elt=g,
                                    key_index=index),
          cpu.key_switch_inner(ext, slab, full, key_basis, galois_elt=g, key_index=index))


def test_key_index_geometries_out_and_errors(cuda, cpu, geometries):
    rng, n = np.random.default_rng(9), 64
    full = basis_of(n, [0, 3, 5])
    ext, slab = random_poly(rng, (4, 2), full), random_poly(rng, (3, 2, 2), full)
    index = np.array([2, 0, 2, 1])
    want = cpu.key_switch_inner(ext, slab, full, full, galois_elt=9, key_index=index)
    for be in geometries:
        out = be.empty(want.shape)
        got = be.key_switch_inner(be.to_device(ext), be.to_device(slab), full, full, out=out,
                                  galois_elt=9, key_index=index)
        assert got is out
        check(host(be, out), want)
    dext, dslab = cuda.to_device(ext), cuda.to_device(slab)
    for bad in ([0, 1, 2, 3], [0, 1, 2], [0, -1, 0, 0]):
        with pytest.raises(ValueError):
            cuda.key_switch_inner(dext, dslab, full, full, key_index=np.array(bad))
    with pytest.raises(ValueError, match="not odd"):
        cuda.key_switch_inner(dext, dslab, full, full, galois_elt=4, key_index=index)


@pytest.mark.parametrize("n", NS)
@settings(max_examples=4, **SETTINGS)
@given(data=st.data())
def test_rescale(cuda, cpu, n, data):
    basis = data.draw(a_basis(n, max_limbs=3 if n >= 1024 else 5).filter(lambda b: len(b) > 1))
    rng = rng_from(data.draw)
    a = random_poly(rng, batch_for(n, data.draw), basis)
    got = host(cuda, cuda.rescale(cuda.to_device(a), basis))
    check(got, ref.rescale(a, basis.primes), cpu.rescale(a, basis))


def test_basis_change_geometries(cuda, cpu, geometries):
    rng = np.random.default_rng(11)
    for n in (16, 1024):
        qb, pb = basis_of(n, [0, 3, 5, 2]), basis_of(n, [7, 4])
        a = random_poly(rng, (2,), qb)
        for alpha in (1, 3):
            up = cpu.mod_up(a, qb, pb, alpha)
            down = cpu.mod_down(up[:, 0], qb, pb)
            for be in geometries:
                check(host(be, be.mod_up(be.to_device(a), qb, pb, alpha)), up)
                check(host(be, be.mod_down(be.to_device(up[:, 0]), qb, pb)), down)
                check(host(be, be.rescale(be.to_device(a), qb)), cpu.rescale(a, qb))


def test_bad_arguments_raise_value_error(cuda):
    n = 16
    qb, pb = basis_of(n, [0, 1]), basis_of(n, [2])
    a = cuda.zeros((2, n))
    with pytest.raises(ValueError):
        cuda.ntt(cuda.zeros((3, n)), qb)
    with pytest.raises(ValueError):
        cuda.mod_up(a, qb, pb, 0)
    with pytest.raises(ValueError):
        cuda.rescale(cuda.zeros((1, n)), qb[:1])
    with pytest.raises(ValueError):
        cuda.key_switch_inner(cuda.zeros((1, 3, n)), cuda.zeros((1, 2, 2, n)), qb + pb, qb)
    with pytest.raises(ValueError):
        cuda.mul_scalar(a, [1, 2, 3], qb)


# ----------------------------------------------------------------------------- emulator


@pytest.fixture(scope="module")
def emu(cuda):
    if not cuda.emulate:
        pytest.skip("emulator-only checks")
    from fhe_gpu.ring import _cuda_emu
    return _cuda_emu


def test_every_kernel_is_registered_in_the_emulator(emu):
    from fhe_gpu.ring._cuda_loader import kernel_files
    pattern = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)')
    declared = {m for f in kernel_files() for m in pattern.findall(f.read_text())}
    assert declared and declared == set(emu.kernel_names()) - {"emu_selftest_barrier"}


def test_emulator_barrier_and_divergence(emu):
    f = emu.get_function("emu_selftest_barrier")
    for threads, blocks in ((1, 1), (4, 1), (32, 5), (1024, 2)):
        out = np.full(threads * blocks, -1, np.int64)
        f((blocks,), (threads,), (out, -1), shared_mem=8 * threads)
        t = np.arange(threads)
        want = np.tile((t + 1) % threads + 1 + 1000 * ((t + 2) % threads + 1), blocks)
        np.testing.assert_array_equal(out, want)
    for exits in (0, 1, 3):  # thread 0 skips the barrier (no fibers) or a later thread does
        with pytest.raises(RuntimeError, match="divergence"):
            f((3,), (4,), (np.zeros(12, np.int64), exits), shared_mem=32)


def test_emulator_rejects_bad_launches(emu):
    f = emu.get_function("ew_neg")
    assert f.num_args == 6
    a = np.zeros((1, 16), np.uint64)
    idx, q = np.zeros(1, np.int64), np.array([17], np.uint64)
    f((1, 1), (4,), (a, a.copy(), 1, 4, idx, q))  # a valid launch
    bad = [((1, 1), (4,), (a, a, 1, 4, idx), 0),                       # too few args
           ((1, 1), (4,), (a, a.astype(np.uint32), 1, 4, idx, q), 0),  # wrong item size
           ((1, 1), (4,), (a, a[:, ::2], 1, 4, idx, q), 0),            # not contiguous
           ((1, 1), (4,), (a, a, 1.5, 4, idx, q), 0),                  # float for an int
           ((1, 1), (2048,), (a, a, 1, 4, idx, q), 0),                 # block too large
           ((1, 1), (4,), (a, a, 1, 4, idx, q), emu.MAX_SHARED_BYTES + 8)]
    for grid, block, args, shared in bad:
        with pytest.raises((TypeError, ValueError)):
            f(grid, block, args, shared_mem=shared)
    ro = a.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        f((1, 1), (4,), (a, ro, 1, 4, idx, q))
    with pytest.raises(KeyError):
        emu.get_function("no_such_kernel")
