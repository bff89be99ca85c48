"""The specification of the ring layer: exact, Python ints, textbook algorithms.

Every RingBackend verb is defined here and every backend (cpu, cuda) must produce
bit-identical outputs for the same inputs. Nothing here is fast; it is written to be
read and checked by hand.

Conventions
-----------
* An RNS polynomial tensor is an integer array of shape ``(..., limbs, n)``; limb ``i``
  holds values in ``[0, q_i)`` for the ``i``-th prime of the basis. Leading axes are
  batch axes and broadcast like NumPy.
* The negacyclic NTT uses ``psi``, the primitive 2n-th root of unity defined by
  :func:`find_psi`. Its output is in bit-reversed order:
  ``ntt(a)[j] = sum_i a[i] * psi**(i * (2*brv(j) + 1)) mod q`` where ``brv`` reverses
  ``log2(n)`` bits. Ciphertexts and keys live in this (evaluation) form.
* Fast base conversion (``conv``) from basis ``S`` to modulus ``t`` is
  ``sum_i [x_i * (S/s_i)^-1]_{s_i} * (S/s_i) mod t``: it returns ``x + u*S`` for a small
  ``u in [0, len(S))`` and is the approximate conversion of ModUp (the ``u*S`` term
  vanishes against the key-switching gadget). ModDown and rescale use the exact, centered
  conversion (:func:`exact_convert`): a biased ``u`` there would multiply the secret and
  cost precision.

Arrays in and out are NumPy arrays of dtype ``uint64`` (inputs may also be ``object``);
internally everything is converted to Python ints.
"""
from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- numbers


def is_prime(q: int) -> bool:
    """Deterministic Miller-Rabin for q < 3.3e24 (bases: the first 13 primes)."""
    if q < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    for p in small:
        if q % p == 0:
            return q == p
    d, r = q - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in small:
        x = pow(a, d, q)
        if x in (1, q - 1):
            continue
        for _ in range(r - 1):
            x = x * x % q
            if x == q - 1:
                break
        else:
            return False
    return True


def generate_primes(n: int, bits: int, count: int, exclude=()) -> list[int]:
    """The first ``count`` primes q = 1 (mod 2n), q < 2^61, nearest to 2^bits.

    Candidates are ``c = 2^bits + 1`` then ``c - 2n, c + 2n, c - 4n, c + 4n, ...``
    (below before above at equal distance); primes in ``exclude`` are skipped.
    """
    step, c = 2 * n, (1 << bits) + 1
    out, k, excluded = [], 0, set(exclude)
    while len(out) < count:
        cands = (c,) if k == 0 else (c - k * step, c + k * step)
        for q in cands:
            if 2 * n < q < (1 << 61) and q not in excluded and is_prime(q):
                out.append(q)
                if len(out) == count:
                    break
        k += 1
        if c - k * step <= 2 * n and c + k * step >= (1 << 61):
            raise ValueError(f"not enough {bits}-bit NTT primes for n={n}: need {count}")
    return out


def find_psi(q: int, n: int) -> int:
    """psi = c^((q-1)/2n) for the smallest c >= 2 making psi a primitive 2n-th root."""
    if (q - 1) % (2 * n):
        raise ValueError(f"q={q} is not 1 mod 2n={2 * n}")
    c = 2
    while True:
        psi = pow(c, (q - 1) // (2 * n), q)
        if pow(psi, n, q) == q - 1:
            return psi
        c += 1


def bit_reverse(i: int, log_n: int) -> int:
    """Reverse the low ``log_n`` bits of ``i``."""
    return int(format(i, f"0{log_n}b")[::-1], 2) if log_n else 0


def shoup(w: int, q: int) -> int:
    """Shoup's precomputed quotient floor(w * 2^64 / q) for a constant w < q."""
    return (w << 64) // q


def ntt_tables(q: int, n: int) -> dict:
    """Twiddles in bit-reversed order: psi_rev[i] = psi^brv(i), ipsi_rev[i] = psi^-brv(i)."""
    log_n = n.bit_length() - 1
    psi = find_psi(q, n)
    ipsi = pow(psi, -1, q)
    psi_rev = [pow(psi, bit_reverse(i, log_n), q) for i in range(n)]
    ipsi_rev = [pow(ipsi, bit_reverse(i, log_n), q) for i in range(n)]
    return {"psi": psi, "psi_rev": psi_rev, "ipsi_rev": ipsi_rev, "n_inv": pow(n, -1, q)}


def galois_permutation(galois_elt: int, n: int) -> list[int]:
    """perm with automorphism(a)[j] = a[perm[j]] in bit-reversed NTT order.

    Slot j evaluates at psi^e_j, e_j = 2*brv(j)+1; a(X^g) there is a at psi^(g*e_j).
    """
    log_n = n.bit_length() - 1
    perm = []
    for j in range(n):
        e = (galois_elt * (2 * bit_reverse(j, log_n) + 1)) % (2 * n)
        perm.append(bit_reverse((e - 1) // 2, log_n))
    return perm


# ----------------------------------------------------------------------------- helpers


def _ints(a) -> np.ndarray:
    """An object array of Python ints (copy)."""
    return np.array(a, dtype=object, order="C")


def _out(x, out):
    res = np.array(x, dtype=object).astype(np.uint64)
    if out is not None:
        out[...] = res
        return out
    return res


def _q(primes, ndim_tail=1) -> np.ndarray:
    """Primes as an object column broadcasting over (limbs, n)."""
    return np.array([int(p) for p in primes], dtype=object).reshape((-1,) + (1,) * ndim_tail)


def _check(a, primes, n=None):
    a = np.asarray(a)
    if a.ndim < 2 or a.shape[-2] != len(primes) or (n is not None and a.shape[-1] != n):
        raise ValueError(f"array of shape {a.shape} does not match {len(primes)} limbs")
    return a


# ----------------------------------------------------------------------------- NTT


def ntt_limb(a: list[int], q: int, tables: dict) -> list[int]:
    """Forward negacyclic NTT of one limb (Cooley-Tukey, Longa-Naehrig Alg. 1)."""
    a, n = list(a), len(a)
    psi_rev, t, m = tables["psi_rev"], n, 1
    while m < n:
        t //= 2
        for i in range(m):
            j1, w = 2 * i * t, psi_rev[m + i]
            for j in range(j1, j1 + t):
                u, v = a[j], a[j + t] * w % q
                a[j], a[j + t] = (u + v) % q, (u - v) % q
        m *= 2
    return a


def intt_limb(a: list[int], q: int, tables: dict) -> list[int]:
    """Inverse negacyclic NTT of one limb (Gentleman-Sande, Longa-Naehrig Alg. 2)."""
    a, n = list(a), len(a)
    ipsi_rev, t, m = tables["ipsi_rev"], 1, n
    while m > 1:
        h, j1 = m // 2, 0
        for i in range(h):
            w = ipsi_rev[h + i]
            for j in range(j1, j1 + t):
                u, v = a[j], a[j + t]
                a[j], a[j + t] = (u + v) % q, (u - v) * w % q
            j1 += 2 * t
        t *= 2
        m = h
    return [x * tables["n_inv"] % q for x in a]


def _per_limb(fn, a, primes, out):
    a = _check(a, primes)
    n = a.shape[-1]
    res = _ints(a)
    flat = res.reshape(-1, len(primes), n)
    for r in range(flat.shape[0]):
        for i, q in enumerate(primes):
            flat[r, i] = fn([int(x) for x in flat[r, i]], int(q), ntt_tables(int(q), n))
    return _out(res, out)


def ntt(a, primes, out=None):
    """Forward NTT of every limb: coefficient form -> evaluation form."""
    return _per_limb(ntt_limb, a, primes, out)


def intt(a, primes, out=None):
    """Inverse NTT of every limb: evaluation form -> coefficient form."""
    return _per_limb(intt_limb, a, primes, out)


def negacyclic_convolution(a: list[int], b: list[int], q: int) -> list[int]:
    """O(n^2) product in Z_q[X]/(X^n + 1): the definition NTT products are tested against."""
    n = len(a)
    c = [0] * n
    for i in range(n):
        for j in range(n):
            k = i + j
            if k < n:
                c[k] += a[i] * b[j]
            else:
                c[k - n] -= a[i] * b[j]
    return [x % q for x in c]


# ----------------------------------------------------------------------------- pointwise


def add(a, b, primes, out=None):
    """(a + b) mod q per limb."""
    return _out((_ints(a) + _ints(b)) % _q(primes), out)


def sub(a, b, primes, out=None):
    """(a - b) mod q per limb."""
    return _out((_ints(a) - _ints(b)) % _q(primes), out)


def neg(a, primes, out=None):
    """(-a) mod q per limb."""
    return _out((-_ints(a)) % _q(primes), out)


def mul(a, b, primes, out=None):
    """(a * b) mod q per limb, pointwise."""
    return _out((_ints(a) * _ints(b)) % _q(primes), out)


def mul_add(a, b, c, primes, out=None):
    """(a * b + c) mod q per limb, pointwise."""
    return _out((_ints(a) * _ints(b) + _ints(c)) % _q(primes), out)


def mul_scalar(a, scalars, primes, out=None):
    """a * s_i mod q_i: one constant per limb (``scalars`` has shape (limbs,), s_i < q_i)."""
    s = np.array([int(x) for x in scalars], dtype=object).reshape(-1, 1)
    return _out((_ints(a) * s) % _q(primes), out)


def automorphism(a, galois_elt, primes, out=None):
    """X -> X^g on evaluation-form limbs: a permutation of the NTT slots."""
    a = _check(a, primes)
    perm = galois_permutation(int(galois_elt), a.shape[-1])
    return _out(_ints(a)[..., perm], out)


# ----------------------------------------------------------------------------- basis change


def base_convert(x, src, dst):
    """Fast base conversion of coefficient-form limbs x over ``src`` to the moduli ``dst``."""
    x = _ints(x)
    big = 1
    for s in src:
        big *= int(s)
    acc = 0
    for i, s in enumerate(src):
        s = int(s)
        hat = big // s
        y = (x[..., i, :] * pow(hat % s, -1, s)) % s
        acc = acc + y[..., None, :] * np.array([hat % int(t) for t in dst], dtype=object)[:, None]
    return acc % _q(dst)


def digits(level_limbs: int, alpha: int) -> list[range]:
    """Limb index ranges of the key-switching digits at a level with ``level_limbs`` limbs."""
    return [range(s, min(s + alpha, level_limbs)) for s in range(0, level_limbs, alpha)]


def mod_up(a, q_primes, p_primes, alpha, out=None):
    """Decompose evaluation-form a over Q_l into digits, each extended to Q_l u P.

    Digit j holds the limbs ``digits(len(q_primes), alpha)[j]``. Output shape
    ``(..., d, len(q)+len(p), n)`` in evaluation form over ``q_primes + p_primes``: the
    digit's own limbs are copied from ``a``; every other limb is
    ``ntt(conv(intt(a)[digit] -> that modulus))``.
    """
    q_primes, p_primes = [int(x) for x in q_primes], [int(x) for x in p_primes]
    a = _check(a, q_primes)
    coeff = intt(a, q_primes).astype(object)
    all_primes = q_primes + p_primes
    parts = []
    for dig in digits(len(q_primes), alpha):
        src = [q_primes[i] for i in dig]
        rest = [i for i in range(len(all_primes)) if i not in dig]
        ext = np.empty(a.shape[:-2] + (len(all_primes), a.shape[-1]), dtype=object)
        ext[..., list(dig), :] = _ints(a[..., list(dig), :])
        conv = base_convert(coeff[..., list(dig), :], src, [all_primes[i] for i in rest])
        ext[..., rest, :] = ntt(conv, [all_primes[i] for i in rest]).astype(object)
        parts.append(ext)
    return _out(np.stack(parts, axis=-3), out)


def mod_raise(a, q0: int, primes, out=None):
    """ModRaise of bootstrapping: evaluation-form a (..., 1, n) over the single prime q0 to
    evaluation form over ``primes``, through the centered representative.

    ``intt(a)`` holds x in [0, q0); every output limb is ``ntt(c mod q_i)`` with
    c = x - q0 when x > q0 // 2, else x: the coefficient in (-q0/2, q0/2]. A ciphertext
    decrypting to m mod q0 then decrypts to m + q0 * I over the larger modulus, I a small
    integer polynomial (|I| below the secret's Hamming weight + 1).
    """
    q0, primes = int(q0), [int(x) for x in primes]
    a = _check(a, [q0])
    x = intt(a, [q0]).astype(object)[..., 0, :]
    c = np.where(x > q0 // 2, x - q0, x)
    lifted = np.stack([c % q for q in primes], axis=-2)
    return _out(ntt(lifted, primes), out)


def check_key_index(key_index, batch: int, slots: int) -> np.ndarray:
    """``key_index`` as int64 of shape (batch,) with every entry in [0, slots), else ValueError.

    The per-row key index of :func:`key_switch_inner`: row b of the batch uses key slot
    ``key_index[b]`` of a slab of ``slots`` keys.
    """
    idx = np.asarray(key_index)
    if idx.ndim != 1 or idx.shape[0] != batch or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError(f"key_index of shape {idx.shape} and dtype {idx.dtype} does not fit "
                         f"a batch of {batch}: needs {batch} integers")
    bad = idx[(idx < 0) | (idx >= slots)] if idx.size else idx
    if bad.size:
        raise ValueError(f"key_index {int(bad[0])} out of range for a slab of {slots} keys: "
                         f"needs 0 <= index < {slots}")
    return idx.astype(np.int64)


def key_switch_inner(ext, key, primes, key_primes, out=None, galois_elt=None, key_index=None):
    """Inner product of mod-up digits with a key-switching key, both in evaluation form.

    ``ext``: (..., d, m, n) over ``primes``; ``key``: (d_key >= d, 2, m_key, n) over
    ``key_primes`` (a superset of ``primes``). Returns (..., 2, m, n):
    ``out[c, i] = sum_j ext[j, i] * key[j, c, index_of(primes[i])] mod primes[i]``.
    With ``galois_elt`` the digits are first mapped by :func:`automorphism`.

    With ``key_index`` (integers, shape (B,)) ``key`` is a slab of T keys (T, d_key, 2,
    m_key, n) and ``ext`` is (B, ..., d, m, n): row b is multiplied by key[key_index[b]]
    (ValueError unless 0 <= key_index[b] < T).
    """
    if galois_elt is not None:
        ext = automorphism(ext, galois_elt, primes)
    if key_index is not None:
        ext, key = np.asarray(ext), np.asarray(key)
        if ext.ndim < 4 or key.ndim != 5:
            raise ValueError(f"key_index needs ext (B, ..., d, m, n) and a key slab (T, d, 2, "
                             f"m, n), got shapes {ext.shape} and {key.shape}")
        idx = check_key_index(key_index, ext.shape[0], key.shape[0])
        res = np.zeros(ext.shape[:-3] + (2,) + ext.shape[-2:], dtype=np.uint64)
        for b, slot in enumerate(idx):
            res[b] = key_switch_inner(ext[b], key[slot], primes, key_primes)
        return _out(res, out)
    ext, key = _ints(ext), _ints(key)
    key_primes = [int(x) for x in key_primes]
    idx = [key_primes.index(int(p)) for p in primes]
    d = ext.shape[-3]
    acc = 0
    for j in range(d):
        acc = acc + ext[..., j, None, :, :] * key[j][:, idx, :]
    return _out(acc % _q(primes), out)


def rounded_quotient(x, src) -> np.ndarray:
    """v = round(sum_k x_k / s_k) in fixed point with 2^-64 resolution (integers only).

    With R_k = floor(2^128 / s_k) = hi_k * 2^64 + lo_k, each term is
    t_k = x_k * hi_k + floor(x_k * lo_k / 2^64) ~ 2^64 * x_k / s_k (error < 2 units; x_k *
    hi_k < 2^64 since x_k < s_k), and v = (sum_k t_k + 2^63) >> 64. Every backend computes
    the same bits; v differs from the exact rounding only within ~2^-62 of a tie, where
    either value gives a valid representative. ``x`` is (..., len(src), n).
    """
    x = _ints(x)
    acc = 0
    for k, s in enumerate(src):
        r = (1 << 128) // int(s)
        acc = acc + x[..., k, :] * (r >> 64) + ((x[..., k, :] * (r & ((1 << 64) - 1))) >> 64)
    return (acc + (1 << 63)) >> 64


def exact_convert(y, src, dst):
    """Centered exact base conversion: [y]_S in (-S/2, S/2] reduced mod every d_t.

    conv_t = sum_k x_k * (S/s_k mod d_t) - v * (S mod d_t), x and v as in
    :func:`rounded_quotient` (v may differ from the exact rounding only within 2^-60 of a
    tie, which still gives a valid representative).
    """
    src, dst = [int(s) for s in src], [int(t) for t in dst]
    big = 1
    for s in src:
        big *= s
    y = _ints(y)
    x = np.stack([(y[..., k, :] * pow((big // s) % s, -1, s)) % s for k, s in enumerate(src)],
                 axis=-2)
    v = rounded_quotient(x, src)
    acc = 0
    for k, s in enumerate(src):
        acc = acc + x[..., k, None, :] * np.array([(big // s) % t for t in dst], dtype=object)[:, None]
    acc = acc - v[..., None, :] * np.array([big % t for t in dst], dtype=object)[:, None]
    return acc % _q(dst)


def mod_down(a, q_primes, p_primes, out=None):
    """round(a / P) for evaluation-form a over Q u P, returned over Q (evaluation form).

    y = intt(a_P), c_i = exact_convert(y -> q_i) (the centered [a]_P), then
    out_i = (a_i - ntt(c)_i) * P^-1 mod q_i: a - [a]_P is the multiple of P nearest a.
    """
    q_primes, p_primes = [int(x) for x in q_primes], [int(x) for x in p_primes]
    a = _check(a, q_primes + p_primes)
    nq = len(q_primes)
    big_p = 1
    for p in p_primes:
        big_p *= p
    y = intt(a[..., nq:, :], p_primes).astype(object)
    conv = ntt(exact_convert(y, p_primes, q_primes), q_primes).astype(object)
    p_inv = _q([pow(big_p % q, -1, q) for q in q_primes])
    res = (_ints(a[..., :nq, :]) - conv) * p_inv
    return _out(res % _q(q_primes), out)


def rescale(a, primes, out=None):
    """round(a / q_last) in evaluation form: mod_down with P = the last prime."""
    primes = [int(x) for x in primes]
    if len(primes) < 2:
        raise ValueError("rescale needs at least two limbs")
    return mod_down(a, primes[:-1], primes[-1:], out=out)


# ----------------------------------------------------------------------------- CRT


def crt_compose(residues, primes) -> np.ndarray:
    """Centered representatives in (-Q/2, Q/2] of coefficient-form residues (object ints)."""
    primes = [int(p) for p in primes]
    big = 1
    for p in primes:
        big *= p
    acc = 0
    r = _ints(residues)
    for i, p in enumerate(primes):
        hat = big // p
        acc = acc + (r[..., i, :] * pow(hat % p, -1, p) % p) * hat
    acc = acc % big
    return np.where(acc > big // 2, acc - big, acc)
