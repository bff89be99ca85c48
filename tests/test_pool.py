"""The CPU backend's buffer pool reuses large buffers only once no array uses them."""
import gc

import numpy as np

from fhe_gpu.ring.pool import BufferPool


def test_released_buffers_are_reused():
    pool = BufferPool(min_bytes=1 << 10, idle_limit=1 << 20)
    a = pool.empty((4, 64))
    a[...] = 7
    address = a.__array_interface__["data"][0]
    del a
    gc.collect()
    assert pool.idle_bytes == 4 * 64 * 8
    b = pool.empty((8, 32))
    assert b.__array_interface__["data"][0] == address and pool.idle_bytes == 0


def test_a_view_keeps_its_buffer_out_of_the_pool():
    pool = BufferPool(min_bytes=1 << 10, idle_limit=1 << 20)
    a = pool.empty((4, 64))
    view = a[1:3, ::2]
    view[...] = 5
    del a
    gc.collect()
    assert pool.idle_bytes == 0
    b = pool.empty((4, 64))
    b[...] = 9
    assert not np.shares_memory(b, view) and np.all(view == 5)
    del view
    gc.collect()
    assert pool.idle_bytes == 4 * 64 * 8


def test_idle_memory_is_bounded_and_small_arrays_bypass():
    pool = BufferPool(min_bytes=1 << 10, idle_limit=3 * 4096)
    arrays = [pool.empty((512,)) for _ in range(5)]
    del arrays
    gc.collect()
    assert pool.idle_bytes == 3 * 4096
    small = pool.empty((8,))
    assert small.flags.owndata and pool.idle_bytes == 3 * 4096
