"""Numba kernels of the CPU backend: one kernel per verb, run by the thread team.

Every kernel claims work items (a row of the flattened batch x limbs of C-contiguous
``uint64`` arrays, or a block of coefficients of one) with :func:`~.team.claim` until
they run out; :func:`~.team.launch` runs it on several threads at once. Its last argument
``ctr`` is the shared item counter. Loop indices within a row are uint64 so that Numba
emits no negative-index wraparound. Numba's on-disk cache checks only the timestamp of
the file defining a cached kernel: after editing a helper module (_numba_arith, team),
touch this file.
Tables are the stacked per-prime arrays of a :class:`~fhe_gpu.ring.tables.PrimeSet`
(indexed through the basis index vector) or small per-limb constant vectors prepared by
``cpu.py``. Shapes are documented per kernel; R is the flattened batch size.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._numba_arith import (HALF, ONE, TWO, ZERO, add_mod, barrett_reduce_128, inner,
                           mul_hi64, mul_mod_wide, mul_wide, reduce_2q, reduce_wide, shoup_mul,
                           shoup_mul_reduced, shoup_quotient, sub_mod)
from .team import claim

# ----------------------------------------------------------------------------- rows

OP_ADD, OP_SUB, OP_MUL, OP_NEG, OP_MUL_ADD = 0, 1, 2, 3, 4
#: columns of the per-prime reduction constants ``red`` (U, 4): Barrett ratio words, then
#: mu and sh of reduce_wide
RED_HI, RED_LO, RED_MU, RED_SH = 0, 1, 2, 3


@inner
def reduce_acc(hi, lo, q, red, fast):
    """A 128-bit sum mod q: reduce_wide when ``fast`` (the caller checked the sum is below
    2^(k+63)), else Barrett. red: the prime's (ratio_hi, ratio_lo, mu, sh)."""
    if fast:
        return reduce_wide(hi, lo, q, red[RED_MU], red[RED_SH])  # [0, q)
    return barrett_reduce_128(hi, lo, q, red[RED_HI], red[RED_LO])  # [0, q)


@inner
def ntt_row(src, dst, psi, psi_s, q, lazy, m_stop):
    """Forward negacyclic NTT (Cooley-Tukey, Harvey butterflies) of src into dst: the stages
    m = 1, 2, 4, ... below m_stop (n for the full transform, n/2 to leave the last one).

    src in [0, q) (may be dst itself); dst in [0, 4q) if lazy else [0, q); n >= 2.
    ``lazy`` is a literal at every call: Numba compiles one version per value.
    """
    n = np.uint64(dst.shape[0])
    two_q = q + q
    t = n >> ONE
    w, ws = psi[1], psi_s[1]
    for j in range(t):
        u = src[j]  # u in [0, q)
        v = shoup_mul(src[j + t], w, ws, q)  # v = a*w mod q in [0, 2q)
        dst[j] = u + v  # [0, 3q)
        dst[j + t] = u - v + two_q  # (0, 3q)
    ntt_stages(dst, psi, psi_s, q, m_stop)
    if not lazy:
        for j in range(n):
            x = dst[j]
            x = min(x, x - two_q)  # [0, 4q) -> [0, 2q)
            dst[j] = min(x, x - q)  # [0, 2q) -> [0, q)


@inner
def ntt_stages(dst, psi, psi_s, q, m_stop):
    """The Cooley-Tukey stages m = 2, 4, ... below m_stop in place, after the first stage
    (span n/2): dst in [0, 4q) -> [0, 4q)."""
    two_q = q + q
    t = np.uint64(dst.shape[0]) >> ONE
    m = TWO
    while m < m_stop:
        t >>= ONE
        for i in range(m):
            w, ws = psi[m + i], psi_s[m + i]
            j1 = (i + i) * t
            for j in range(j1, j1 + t):
                u = dst[j]
                u = min(u, u - two_q)  # u in [0, 4q) -> [0, 2q)
                v = shoup_mul(dst[j + t], w, ws, q)  # v = a*w mod q; a in [0, 4q), v in [0, 2q)
                dst[j] = u + v  # [0, 4q)
                dst[j + t] = u - v + two_q  # (0, 4q)
        m += m


@inner
def ntt_last_combine(dst, a, psi, psi_s, q, p_inv, p_inv_s):
    """The last NTT stage (span 1) fused with mod_down's combine, in place:
    dst = (a - ntt_last(dst)) * p_inv mod q; dst in [0, 4q), a in [0, q) -> dst in [0, q)."""
    m = np.uint64(dst.shape[0]) >> ONE
    two_q = q + q
    four_q = two_q + two_q
    for i in range(m):
        j = i + i
        u = dst[j]
        u = min(u, u - two_q)  # [0, 4q) -> [0, 2q)
        v = shoup_mul(dst[j + ONE], psi[m + i], psi_s[m + i], q)  # [0, 2q)
        y0 = u + v  # [0, 4q)
        y1 = u - v + two_q  # (0, 4q)
        dst[j] = shoup_mul_reduced(a[j] + four_q - y0, p_inv, p_inv_s, q)  # (0, 5q) -> [0, q)
        dst[j + ONE] = shoup_mul_reduced(a[j + ONE] + four_q - y1, p_inv, p_inv_s, q)  # [0, q)


@inner
def lift(x, recip_hi, recip_lo, s_neg, q, ratio):
    """exact_convert(x -> q) for one source prime s: (x - v*s) mod q, v = rounded_quotient(x)
    in {0, 1}; s_neg = -s mod q, ratio = floor(2^64 / q)."""
    t = x * recip_hi + mul_hi64(x, recip_lo)  # ~ 2^64 x / s, < 2^64 (x in [0, s))
    y = x + (t >> np.uint64(63)) * s_neg  # v = (t + 2^63) >> 64; y < 2^61 + 2^61
    r = y - mul_hi64(y, ratio) * q  # y mod q up to one q: [0, 2q)
    return min(r, r - q)  # [0, q)


@inner
def intt_last(cur, dst, t, q, c0, c0s, c1, c1s, addc):
    """Last Gentleman-Sande stage (t = n/2) with the final constants folded in."""
    two_q = q + q
    for j in range(t):
        u = cur[j]
        v = cur[j + t]
        x0 = shoup_mul_reduced(u + v, c0, c0s, q)  # (u+v)*n^-1*e; u+v in [0, 4q), x0 in [0, q)
        x1 = shoup_mul_reduced(u - v + two_q, c1, c1s, q)  # (u-v)*w*n^-1*e in [0, q)
        dst[j] = add_mod(x0, addc, q)  # [0, q)
        dst[j + t] = add_mod(x1, addc, q)  # [0, q)


@inner
def intt_row(src, dst, ipsi, ipsi_s, q, c0, c0s, c1, c1s, addc):
    """Inverse NTT (Gentleman-Sande, Harvey) of src into dst, times a constant, plus addc.

    dst = intt(src) * e + addc (mod q) with c0 = n^-1 * e, c1 = ipsi[1] * n^-1 * e (mod q)
    folded into the last stage. src in [0, q) (may be dst itself); dst in [0, q); n >= 2.
    """
    n = np.uint64(dst.shape[0])
    if n == TWO:
        intt_last(src, dst, ONE, q, c0, c0s, c1, c1s, addc)
        return
    two_q = q + q
    h = n >> ONE
    for i in range(h):
        j = i + i
        u = src[j]
        v = src[j + ONE]
        s = u + v  # u, v in [0, q): s in [0, 2q)
        dst[j] = min(s, s - two_q)  # [0, 2q)
        dst[j + ONE] = shoup_mul(u - v + two_q, ipsi[h + i], ipsi_s[h + i], q)  # [0, 2q)
    t = TWO
    m = h
    while m > TWO:
        h = m >> ONE
        for i in range(h):
            w, ws = ipsi[h + i], ipsi_s[h + i]
            j1 = (i + i) * t
            for j in range(j1, j1 + t):
                u = dst[j]
                v = dst[j + t]
                s = u + v  # u, v in [0, 2q): s in [0, 4q)
                dst[j] = min(s, s - two_q)  # [0, 2q)
                dst[j + t] = shoup_mul(u - v + two_q, w, ws, q)  # (u-v)*w; (0, 4q) -> [0, 2q)
        t += t
        m = h
    intt_last(dst, dst, t, q, c0, c0s, c1, c1s, addc)


@inner
def conv_block(y, s0, s1, h, q, red, fast, dst, k0, k1):
    """dst[k] = sum_{i < s1-s0} y[s0+i, k] * h[i] (mod q) for k in [k0, k1).

    128-bit sums: y < 2^61 and h < 2^61 give products < 2^122, so up to 64 terms fit.
    Two coefficients per iteration (k1 - k0 even) for two independent carry chains.
    """
    for k in range(k0, k1, TWO):
        hi0, lo0, hi1, lo1 = ZERO, ZERO, ZERO, ZERO
        for i in range(s1 - s0):
            w = h[i]
            p_hi, p_lo = mul_wide(y[s0 + i, k], w)  # product < 2^122
            lo0 += p_lo  # 128-bit sum < 2^128, carry below
            hi0 += p_hi + (ONE if lo0 < p_lo else ZERO)
            p_hi, p_lo = mul_wide(y[s0 + i, k + ONE], w)  # product < 2^122
            lo1 += p_lo  # 128-bit sum < 2^128, carry below
            hi1 += p_hi + (ONE if lo1 < p_lo else ZERO)
        dst[k] = reduce_acc(hi0, lo0, q, red, fast)  # [0, q)
        dst[k + ONE] = reduce_acc(hi1, lo1, q, red, fast)  # [0, q)


@inner
def key_switch_row(ext, key, i, ki, q, red, fast, perm, z0, z1):
    """z_c = sum_j ext[j, i, src(k)] * key[j, c, ki, k] mod q for c = 0, 1 (128-bit sums,
    j < 64), src(k) = perm[k] when perm is not empty (a fused automorphism), else k.

    Both components share each load of ext.
    """
    permuted = perm.shape[0] != 0
    for k in range(np.uint64(z0.shape[0])):
        hi0, lo0, hi1, lo1 = ZERO, ZERO, ZERO, ZERO
        src = np.uint64(perm[k]) if permuted else k
        for j in range(np.uint64(ext.shape[0])):
            x = ext[j, i, src]
            p_hi, p_lo = mul_wide(x, key[j, 0, ki, k])  # product < 2^122
            lo0 += p_lo  # 128-bit sum < 2^128, carry below
            hi0 += p_hi + (ONE if lo0 < p_lo else ZERO)
            p_hi, p_lo = mul_wide(x, key[j, 1, ki, k])  # product < 2^122
            lo1 += p_lo  # 128-bit sum < 2^128, carry below
            hi1 += p_hi + (ONE if lo1 < p_lo else ZERO)
        z0[k] = reduce_acc(hi0, lo0, q, red, fast)  # [0, q)
        z1[k] = reduce_acc(hi1, lo1, q, red, fast)  # [0, q)


# ----------------------------------------------------------------------------- kernels

#: serial kernels (no ``parallel=True``: see team) that release the GIL (nogil): the
#: calling thread and the team's helpers run one call together, and Engine workers on
#: independent batches overlap. Each kernel loops over the items it claims. The per-item
#: code sits in the kernel itself unless several kernels share it (every row function
#: costs a compilation of its own, 0.1-0.3 s), except intt_row, conv_block and
#: key_switch_row: merged into their kernels, the INTT and the base conversion ran 3-5%
#: slower at n = 2^16.
KERNEL = njit(cache=True, nogil=True, error_model="numpy")


@KERNEL
def ntt_kernel(a, out, idx, psi, psi_s, qs, ctr):
    """out[r, l] = ntt(a[r, l]) over prime idx[l]; a, out: (R, L, n), a may be out.
    Items: the R * L rows."""
    nl, n = out.shape[1], np.uint64(out.shape[2])
    items = out.shape[0] * nl
    row = claim(ctr)
    while row < items:
        r, l = row // nl, row % nl
        u = idx[l]
        ntt_row(a[r, l], out[r, l], psi[u], psi_s[u], qs[u], False, n)
        row = claim(ctr)


@KERNEL
def intt_kernel(a, off, out, idx, ipsi, ipsi_s, qs, c0, c0s, c1, c1s, addc, ctr):
    """out[r, l] = intt(a[r, off + l]) * e_l + addc_l over prime idx[l] (see intt_row).

    a: (R, off + L + ..., n); out: (R, L + ..., n); idx and the constants have length L.
    Items: the R * L rows.
    """
    nl = idx.shape[0]
    items = out.shape[0] * nl
    row = claim(ctr)
    while row < items:
        r, l = row // nl, row % nl
        u = idx[l]
        intt_row(a[r, off + l], out[r, l], ipsi[u], ipsi_s[u], qs[u],
                 c0[l], c0s[l], c1[l], c1s[l], addc[l])
        row = claim(ctr)


@KERNEL
def pointwise_kernel(op, a, b, c, out, qs, mus, shs, ctr):
    """out = a (op) b mod q_l, or a*b + c for OP_MUL_ADD (OP_NEG ignores b, only OP_MUL_ADD
    reads c); a, b, c: (A0, A1, L, n) in [0, q) with A_k in {1, O_k} (broadcast);
    out: (O0, O1, L, n), may be an operand of the same shape (each element is read before
    it is written). Items: the O0 * O1 * L rows, limb slowest: the rows sharing a
    broadcast operand's limb (a plaintext times every row of a batch) run one after the
    other, while that limb is still in cache."""
    o0, o1, nl, n = out.shape[0], out.shape[1], out.shape[2], np.uint64(out.shape[3])
    items = o0 * o1 * nl
    row = claim(ctr)
    while row < items:
        l, i0, i1 = row // (o0 * o1), (row // o1) % o0, row % o1
        x = a[min(i0, a.shape[0] - 1), min(i1, a.shape[1] - 1), l]
        y = b[min(i0, b.shape[0] - 1), min(i1, b.shape[1] - 1), l]
        v = c[min(i0, c.shape[0] - 1), min(i1, c.shape[1] - 1), l]
        z, q, mu, sh = out[i0, i1, l], qs[l], mus[l], shs[l]
        if op == OP_ADD:
            for k in range(n):
                z[k] = add_mod(x[k], y[k], q)  # [0, q)
        elif op == OP_SUB:
            for k in range(n):
                z[k] = sub_mod(x[k], y[k], q)  # [0, q)
        elif op == OP_MUL:
            for k in range(n):
                z[k] = mul_mod_wide(x[k], y[k], ZERO, q, mu, sh)  # [0, q)
        elif op == OP_MUL_ADD:
            for k in range(n):
                z[k] = mul_mod_wide(x[k], y[k], v[k], q, mu, sh)  # [0, q)
        else:
            for k in range(n):
                z[k] = reduce_2q(q - x[k], q)  # q - x in (0, q] -> [0, q)
        row = claim(ctr)


@KERNEL
def mul_scalar_kernel(a, out, scalars, qs, ratio_hi, ratio_lo, ctr):
    """out[r, l] = a[r, l] * s_l mod q_l by Shoup (s_l reduced mod q_l first); a, out:
    (R, L, n); scalars: (L,). Items: the R * L rows."""
    nl, n = out.shape[1], np.uint64(out.shape[2])
    items = out.shape[0] * nl
    row = claim(ctr)
    while row < items:
        r, l = row // nl, row % nl
        x, z, q = a[r, l], out[r, l], qs[l]
        w = scalars[l] % q  # w in [0, q)
        ws = shoup_quotient(w, q, ratio_hi[l], ratio_lo[l])
        for k in range(n):
            z[k] = shoup_mul_reduced(x[k], w, ws, q)  # [0, q)
        row = claim(ctr)


@KERNEL
def permute_kernel(a, out, perm, ctr):
    """out[r, j] = a[r, perm[j]]; a, out: (rows, n), distinct arrays. Items: the rows."""
    n = np.uint64(out.shape[1])
    r = claim(ctr)
    while r < out.shape[0]:
        x, z = a[r], out[r]
        for j in range(n):
            z[j] = x[np.uint64(perm[j])]
        r = claim(ctr)


@KERNEL
def base_conv_kernel(y, out, starts, stops, skip_own, hmod, dst_idx, qs, red, fast, block,
                     ctr):
    """Fast base conversion of digits, blocked over coefficients so y stays in cache.

    out[r, j, t, k] = sum_{i in digit j} y[r, i, k] * hmod[j, t, i - s_j] (mod q_t),
    q_t = qs[dst_idx[t]], digit j = rows [s_j, e_j) = [starts[j], stops[j]) of y (R, Ly, n);
    out: (R, D, M, n); hmod: (D, M, alpha); rows t inside digit j are left untouched
    when skip_own. red: (U, 4) reduction constants; fast: every sum < 2^(k_t+63) (see
    conv_block). block: coefficients per work item (even, divides n).
    Items: R * D * (n / block).
    """
    nd, nt, n = out.shape[1], np.uint64(out.shape[2]), out.shape[3]
    nb = n // block
    items = out.shape[0] * nd * nb
    item = claim(ctr)
    while item < items:
        r, j, b = item // (nd * nb), (item // nb) % nd, item % nb
        k0 = np.uint64(b * block)
        s0, s1, yr = np.uint64(starts[j]), np.uint64(stops[j]), y[r]
        for t in range(nt):
            if not (skip_own and s0 <= t < s1):
                u = dst_idx[t]
                conv_block(yr, s0, s1, hmod[j, t], qs[u], red[u], fast, out[r, j, t], k0,
                           k0 + np.uint64(block))
        item = claim(ctr)


@KERNEL
def rounded_quotient_kernel(x, nk, recip_hi, recip_lo, block, ctr):
    """x[r, nk, k] = round(sum_{i < nk} x[r, i, k] / s_i) (reference.rounded_quotient).

    Term i is x_i * hi_i + floor(x_i * lo_i / 2^64) < 2^64 with floor(2^128 / s_i) =
    hi_i * 2^64 + lo_i; the 128-bit sum plus 2^63, shifted right by 64.
    x: (R, nk + 1, n); block divides n. Items: R * (n / block).
    """
    nb, m = x.shape[2] // block, np.uint64(nk)
    items = x.shape[0] * nb
    item = claim(ctr)
    while item < items:
        r, b = item // nb, item % nb
        k0, xr = np.uint64(b * block), x[r]
        for k in range(k0, k0 + np.uint64(block)):
            hi, lo = ZERO, HALF  # 128-bit accumulator, starts at 2^63 (rounding)
            for i in range(m):
                xi = xr[i, k]
                t = xi * recip_hi[i] + mul_hi64(xi, recip_lo[i])  # t ~ 2^64 x_i / s_i < 2^64
                lo += t  # 128-bit sum, carry below
                hi += ONE if lo < t else ZERO
            xr[m, k] = hi  # v = (sum + 2^63) >> 64 in [0, nk]
        item = claim(ctr)


@KERNEL
def mod_up_ntt_kernel(a, out, work, own, ext_idx, psi, psi_s, qs, ctr):
    """Finish mod_up: the converted limbs NTT'd, digit j's own limbs copied from a.

    a: (R, Lq, n) evaluation form; out: (R, D, M, n) holding base_conv_kernel's output;
    work: (W, 2) rows (j, t) to transform, own: (C, 2) rows (j, t) to copy. Items: the
    R * W transforms first, then the R * C copies.
    """
    nw, nc, n = work.shape[0], own.shape[0], np.uint64(out.shape[3])
    ntts = out.shape[0] * nw
    items = ntts + out.shape[0] * nc
    item = claim(ctr)
    while item < items:
        if item < ntts:
            r, w = item // nw, item % nw
            j, t = work[w, 0], work[w, 1]
            u = ext_idx[t]
            ntt_row(out[r, j, t], out[r, j, t], psi[u], psi_s[u], qs[u], False, n)
        else:
            r, c = (item - ntts) // nc, (item - ntts) % nc
            x, z = a[r, own[c, 1]], out[r, own[c, 0], own[c, 1]]
            for k in range(n):
                z[k] = x[k]
        item = claim(ctr)


@KERNEL
def key_switch_kernel(ext, key, out, slots, per, key_idx, q_idx, qs, red, fast, perm, ctr):
    """out[r, c, i] = sum_j ext[r, j, i] * key[s, j, c, key_idx[i]] mod q (128-bit sums),
    s = slots[r // per]: the slab slot of row r.

    ext: (R, D, M, n); key: (T, D_key >= D, 2, M_key, n), a slab of T keys; slots: int64 in
    [0, T), one per ``per`` consecutive rows; out: (R, 2, M, n); D <= 64; red: (U, 4)
    reduction constants; fast: every sum < 2^(k+63); perm: (n,) to read ext through an
    automorphism (ext[..., perm[k]]), or (0,) for none. Items: the R * M rows.
    """
    nm = ext.shape[2]
    items = ext.shape[0] * nm
    row = claim(ctr)
    while row < items:
        r, i = row // nm, row % nm
        u = q_idx[i]
        key_switch_row(ext[r], key[slots[r // per]], i, key_idx[i], qs[u], red[u], fast, perm,
                       out[r, 0, i], out[r, 1, i])
        row = claim(ctr)


@KERNEL
def mod_down_kernel(a, out, q_idx, p_inv, p_inv_s, psi, psi_s, qs, ctr):
    """Finish mod_down: out_t = (a_t - ntt(out_t)) * P^-1 mod q_t (evaluation form).

    a: (R, Lq + K, n); out: (R, Lq, n) holding the centered conversion of a_P (coefficient
    form, from base_conv_kernel), not overlapping a; p_inv, p_inv_s: (Lq,).
    Items: the R * Lq rows.
    """
    nq, n = out.shape[1], np.uint64(out.shape[2])
    items = out.shape[0] * nq
    row = claim(ctr)
    while row < items:
        r, t = row // nq, row % nq
        u = q_idx[t]
        if n > TWO:
            ntt_row(out[r, t], out[r, t], psi[u], psi_s[u], qs[u], True, n >> ONE)  # [0, 4q)
        ntt_last_combine(out[r, t], a[r, t], psi[u], psi_s[u], qs[u], p_inv[t], p_inv_s[t])
        row = claim(ctr)


@KERNEL
def rescale_kernel(a, x, out, q_idx, lift_c, p_inv, p_inv_s, psi, psi_s, qs, ctr):
    """mod_down by one prime s, fused: out_t = (a_t - ntt(lift_t(x))) * s^-1 mod q_t, the
    lift fused into the first NTT stage, the combine into the last.

    a: (R, Lq + 1, n); x: (R, 1, n) = intt(a[:, Lq]) (coefficient form); out: (R, Lq, n),
    not overlapping a; lift_c: (Lq, 4) rows (recip_hi, recip_lo, -s mod q_t,
    floor(2^64 / q_t)) of lift; p_inv, p_inv_s: (Lq,); n >= 2. Items: the R * Lq rows.
    """
    nq, n = out.shape[1], np.uint64(out.shape[2])
    items = out.shape[0] * nq
    row = claim(ctr)
    while row < items:
        r, t = row // nq, row % nq
        u, xr, dst = q_idx[t], x[r, 0], out[r, t]
        q, rh, rl, s_neg, ratio = qs[u], lift_c[t, 0], lift_c[t, 1], lift_c[t, 2], lift_c[t, 3]
        if n == TWO:
            for j in range(n):
                dst[j] = lift(xr[j], rh, rl, s_neg, q, ratio)  # [0, q)
        else:
            two_q, h = q + q, n >> ONE
            w, ws = psi[u, 1], psi_s[u, 1]
            for j in range(h):
                y0 = lift(xr[j], rh, rl, s_neg, q, ratio)  # [0, q)
                y1 = shoup_mul(lift(xr[j + h], rh, rl, s_neg, q, ratio), w, ws, q)  # [0, 2q)
                dst[j] = y0 + y1  # [0, 3q)
                dst[j + h] = y0 - y1 + two_q  # (0, 3q)
            ntt_stages(dst, psi[u], psi_s[u], q, h)
        ntt_last_combine(dst, a[r, t], psi[u], psi_s[u], q, p_inv[t], p_inv_s[t])
        row = claim(ctr)
