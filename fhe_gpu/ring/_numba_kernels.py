"""Numba kernels of the CPU backend: one parallel kernel per verb.

Every kernel runs ``prange`` over the flattened rows (batch x limbs) of C-contiguous
``uint64`` arrays; the per-row work (one limb of n coefficients) is a plain loop.
Tables are the stacked per-prime arrays of a :class:`~fhe_gpu.ring.tables.PrimeSet`
(indexed through the basis index vector) or small per-limb constant vectors prepared by
``cpu.py``. Shapes are documented per kernel; R is the flattened batch size.
"""
from __future__ import annotations

from numba import njit, prange

from ._numba_arith import (ONE, ZERO, add_mod, barrett_reduce_128, mul_add_mod, mul_mod,
                           shoup_mul_reduced, shoup_mul, mul_wide, reduce_2q, shoup_quotient,
                           sub_mod)

# ----------------------------------------------------------------------------- rows


@njit
def ntt_row(src, dst, psi, psi_s, q, lazy):
    """Forward negacyclic NTT (Cooley-Tukey, Harvey butterflies) of src into dst.

    src in [0, q) (may be dst itself); dst in [0, 4q) if lazy else [0, q).
    """
    n = dst.shape[0]
    two_q = q + q
    cur = src
    t = n
    m = 1
    while m < n:
        t >>= 1
        for i in range(m):
            w = psi[m + i]
            ws = psi_s[m + i]
            j1 = 2 * i * t
            for j in range(j1, j1 + t):
                u = cur[j]
                u = min(u, u - two_q)  # u in [0, 4q) -> [0, 2q)
                v = shoup_mul(cur[j + t], w, ws, q)  # v = a*w mod q in [0, 2q)
                dst[j] = u + v  # [0, 4q)
                dst[j + t] = u - v + two_q  # (0, 4q)
        cur = dst
        m <<= 1
    if not lazy:
        for j in range(n):
            x = dst[j]
            x = min(x, x - two_q)  # [0, 4q) -> [0, 2q)
            dst[j] = min(x, x - q)  # [0, 2q) -> [0, q)


@njit
def intt_row(src, dst, ipsi, ipsi_s, q, c0, c0s, c1, c1s, addc):
    """Inverse NTT (Gentleman-Sande, Harvey) of src into dst, times a constant, plus addc.

    dst = intt(src) * e + addc (mod q) with c0 = n^-1 * e, c1 = ipsi[1] * n^-1 * e (mod q)
    folded into the last stage. src in [0, q) (may be dst itself); dst in [0, q).
    """
    n = dst.shape[0]
    two_q = q + q
    cur = src
    t = 1
    m = n
    while m > 2:
        h = m >> 1
        for i in range(h):
            w = ipsi[h + i]
            ws = ipsi_s[h + i]
            j1 = 2 * i * t
            for j in range(j1, j1 + t):
                u = cur[j]
                v = cur[j + t]
                s = u + v  # u, v in [0, 2q): s in [0, 4q)
                dst[j] = min(s, s - two_q)  # [0, 2q)
                dst[j + t] = shoup_mul(u - v + two_q, w, ws, q)  # (u-v)*w in [0, 2q)
        cur = dst
        t <<= 1
        m = h
    for j in range(t):
        u = cur[j]
        v = cur[j + t]
        x0 = shoup_mul_reduced(u + v, c0, c0s, q)  # (u+v)*n^-1*e; u+v in [0, 4q), x0 in [0, q)
        x1 = shoup_mul_reduced(u - v + two_q, c1, c1s, q)  # (u-v)*w*n^-1*e in [0, q)
        dst[j] = add_mod(x0, addc, q)  # [0, q)
        dst[j + t] = add_mod(x1, addc, q)  # [0, q)


@njit
def conv_row(y, s0, s1, h, q, ratio_hi, ratio_lo, sub_c, dst):
    """dst[k] = sum_{i in [s0, s1)} y[i, k] * h[i - s0] - sub_c (mod q), 128-bit sums.

    y: (limbs, n) with y[i] < 2^61, h < 2^61: each product < 2^122, at most 64 terms.
    """
    n = dst.shape[0]
    for k in range(n):
        hi = ZERO
        lo = ZERO
        for i in range(s0, s1):
            p_hi, p_lo = mul_wide(y[i, k], h[i - s0])  # product < 2^122
            lo += p_lo  # 128-bit sum < 2^128, carry below
            hi += p_hi + (ONE if lo < p_lo else ZERO)
        r = barrett_reduce_128(hi, lo, q, ratio_hi, ratio_lo)  # r in [0, q)
        dst[k] = sub_mod(r, sub_c, q)  # r - sub_c in [0, q)


# ----------------------------------------------------------------------------- transforms


@njit(cache=True, parallel=True)
def ntt_kernel(a, out, idx, psi, psi_s, qs):
    """out[r, l] = ntt(a[r, l]) over prime idx[l]; a, out: (R, L, n), a may be out."""
    rows, nl = out.shape[0], out.shape[1]
    for row in prange(rows * nl):
        r, l = row // nl, row % nl
        u = idx[l]
        ntt_row(a[r, l], out[r, l], psi[u], psi_s[u], qs[u], False)


@njit(cache=True, parallel=True)
def intt_kernel(a, off, out, idx, ipsi, ipsi_s, qs, c0, c0s, c1, c1s, addc):
    """out[r, l] = intt(a[r, off + l]) * e_l + addc_l over prime idx[l] (see intt_row).

    a: (R, off + L + ..., n); out: (R, L, n); per-limb constants of length L.
    """
    rows, nl = out.shape[0], out.shape[1]
    for row in prange(rows * nl):
        r, l = row // nl, row % nl
        u = idx[l]
        intt_row(a[r, off + l], out[r, l], ipsi[u], ipsi_s[u], qs[u],
                 c0[l], c0s[l], c1[l], c1s[l], addc[l])


# ----------------------------------------------------------------------------- pointwise

OP_ADD, OP_SUB, OP_MUL, OP_NEG = 0, 1, 2, 3


@njit(cache=True, parallel=True)
def binary_kernel(op, a, b, out, qs, ratio_hi, ratio_lo):
    """out = a (op) b mod q_l; a, b: (A0, A1, L, n) with A_k in {1, O_k}; out: (O0, O1, L, n).

    op: OP_ADD, OP_SUB, OP_MUL or OP_NEG (b ignored). out may be a or b (same shape).
    """
    o0, o1, nl, n = out.shape
    for row in prange(o0 * o1 * nl):
        i0, i1, l = row // (o1 * nl), (row // nl) % o1, row % nl
        x = a[i0 if a.shape[0] > 1 else 0, i1 if a.shape[1] > 1 else 0, l]
        y = b[i0 if b.shape[0] > 1 else 0, i1 if b.shape[1] > 1 else 0, l]
        z = out[i0, i1, l]
        q = qs[l]
        if op == OP_ADD:
            for k in range(n):
                z[k] = add_mod(x[k], y[k], q)  # [0, q)
        elif op == OP_SUB:
            for k in range(n):
                z[k] = sub_mod(x[k], y[k], q)  # [0, q)
        elif op == OP_MUL:
            rh, rl = ratio_hi[l], ratio_lo[l]
            for k in range(n):
                z[k] = mul_mod(x[k], y[k], q, rh, rl)  # [0, q)
        else:
            for k in range(n):
                z[k] = reduce_2q(q - x[k], q)  # q - x in (0, q] -> [0, q)


@njit(cache=True, parallel=True)
def mul_add_kernel(a, b, c, out, qs, ratio_hi, ratio_lo):
    """out = a*b + c mod q_l; operands (A0, A1, L, n) broadcast as in binary_kernel."""
    o0, o1, nl, n = out.shape
    for row in prange(o0 * o1 * nl):
        i0, i1, l = row // (o1 * nl), (row // nl) % o1, row % nl
        x = a[i0 if a.shape[0] > 1 else 0, i1 if a.shape[1] > 1 else 0, l]
        y = b[i0 if b.shape[0] > 1 else 0, i1 if b.shape[1] > 1 else 0, l]
        v = c[i0 if c.shape[0] > 1 else 0, i1 if c.shape[1] > 1 else 0, l]
        z = out[i0, i1, l]
        q, rh, rl = qs[l], ratio_hi[l], ratio_lo[l]
        for k in range(n):
            z[k] = mul_add_mod(x[k], y[k], v[k], q, rh, rl)  # [0, q)


@njit(cache=True, parallel=True)
def mul_scalar_kernel(a, out, scalars, qs, ratio_hi, ratio_lo):
    """out[r, l] = a[r, l] * s_l mod q_l (Shoup); a, out: (R, L, n); scalars: (L,)."""
    rows, nl, n = out.shape
    for row in prange(rows * nl):
        r, l = row // nl, row % nl
        q = qs[l]
        w = scalars[l] % q  # w in [0, q)
        ws = shoup_quotient(w, q, ratio_hi[l], ratio_lo[l])
        x = a[r, l]
        z = out[r, l]
        for k in range(n):
            z[k] = shoup_mul_reduced(x[k], w, ws, q)  # [0, q)


@njit(cache=True, parallel=True)
def permute_kernel(a, out, perm):
    """out[r, j] = a[r, perm[j]]; a, out: (rows, n), distinct arrays."""
    rows, n = out.shape
    for r in prange(rows):
        x = a[r]
        z = out[r]
        for j in range(n):
            z[j] = x[perm[j]]


# ----------------------------------------------------------------------------- basis change


@njit(cache=True, parallel=True)
def mod_up_kernel(a, y, out, starts, stops, hmod, ext_idx, psi, psi_s, qs, ratio_hi, ratio_lo):
    """Digits of a extended to the basis ext_idx (evaluation form).

    a: (R, Lq, n) evaluation form; y: (R, Lq, n) with y_i = intt(a)_i * hat_inv_i (the
    digit's own hat inverse); out: (R, D, M, n); digit j covers limbs [starts[j], stops[j]);
    hmod: (D, M, alpha) hat values of digit j's primes mod prime ext_idx[t].
    """
    rows, nd, nm, n = out.shape
    for row in prange(rows * nd * nm):
        r, j, t = row // (nd * nm), (row // nm) % nd, row % nm
        s0, s1 = starts[j], stops[j]
        z = out[r, j, t]
        if s0 <= t < s1:
            x = a[r, t]
            for k in range(n):
                z[k] = x[k]
        else:
            u = ext_idx[t]
            conv_row(y[r], s0, s1, hmod[j, t], qs[u], ratio_hi[u], ratio_lo[u], ZERO, z)
            ntt_row(z, z, psi[u], psi_s[u], qs[u], False)


@njit(cache=True, parallel=True)
def key_switch_kernel(ext, key, out, key_idx, q_idx, qs, ratio_hi, ratio_lo):
    """out[r, c, i] = sum_j ext[r, j, i] * key[j, c, key_idx[i]] mod q (128-bit sums).

    ext: (R, D, M, n); key: (D_key >= D, 2, M_key, n); out: (R, 2, M, n); D <= 64.
    """
    rows, nd, nm, n = ext.shape
    for row in prange(rows * 2 * nm):
        r, c, i = row // (2 * nm), (row // nm) % 2, row % nm
        ki = key_idx[i]
        u = q_idx[i]
        q, rh, rl = qs[u], ratio_hi[u], ratio_lo[u]
        z = out[r, c, i]
        for k in range(n):
            hi = ZERO
            lo = ZERO
            for j in range(nd):
                p_hi, p_lo = mul_wide(ext[r, j, i, k], key[j, c, ki, k])  # < 2^122
                lo += p_lo  # 128-bit sum < 2^128, carry below
                hi += p_hi + (ONE if lo < p_lo else ZERO)
            z[k] = barrett_reduce_128(hi, lo, q, rh, rl)  # [0, q)


@njit(cache=True, parallel=True)
def mod_down_kernel(a, z, out, q_idx, hmod, half_q, p_inv, p_inv_s, psi, psi_s, qs,
                    ratio_hi, ratio_lo):
    """out_t = (a_t - ntt(conv(z -> q_t) - h_t)) * P^-1 mod q_t (evaluation form).

    a: (R, Lq + K, n); z: (R, K, n) with z_i = (intt(a_P)_i + h) * hat_inv_i mod p_i;
    out: (R, Lq, n), not overlapping a; hmod: (Lq, K); half_q, p_inv, p_inv_s: (Lq,).
    """
    rows, nq, n = out.shape
    nk = z.shape[1]
    for row in prange(rows * nq):
        r, t = row // nq, row % nq
        u = q_idx[t]
        q = qs[u]
        dst = out[r, t]
        conv_row(z[r], 0, nk, hmod[t], q, ratio_hi[u], ratio_lo[u], half_q[t], dst)
        ntt_row(dst, dst, psi[u], psi_s[u], q, True)  # dst in [0, 4q)
        x = a[r, t]
        four_q = q + q + q + q
        w, ws = p_inv[t], p_inv_s[t]
        for k in range(n):
            dst[k] = shoup_mul_reduced(x[k] + four_q - dst[k], w, ws, q)  # (0, 5q) -> [0, q)
