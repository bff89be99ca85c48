// modarith.h — the ONE modular-arithmetic header of fhe_gpu.
//
// Compiles as host C++ (g++/clang++, the CUDA emulator) and as CUDA (nvcc, NVRTC through
// CuPy's RawModule). Every function works on 64-bit words; moduli are NTT primes
// q < 2^61 in fhe_gpu, and each function states the bound it actually needs.
//
// Lazy reduction: shoup_mul returns a value in [0, 2q) instead of [0, q). Keeping values
// in [0, 2q) (or [0, 4q) inside Harvey butterflies) is exact modular arithmetic as long as
// the ranges documented on each line are respected; reduce_2q / reduce_4q bring a lazy value
// back into [0, q) once, at the end.
#pragma once

// NVRTC has no <cstdint>: the fixed-width types are declared here as NVRTC toolchains
// (libcu++, jitify) do. A kernel that gets them elsewhere defines FHE_NO_STDINT_TYPEDEFS.
#if defined(__CUDACC_RTC__) && !defined(FHE_NO_STDINT_TYPEDEFS)
typedef unsigned long long uint64_t;
typedef unsigned int uint32_t;
#elif !defined(__CUDACC_RTC__)
#include <cstdint>
#endif

#ifdef __CUDACC__
#define FHE_HD __host__ __device__ __forceinline__
#else
#define FHE_HD inline
#endif

// High 64 bits of the 128-bit product a·b; a, b in [0, 2^64), out in [0, 2^64).
FHE_HD uint64_t mul_hi64(uint64_t a, uint64_t b) {
#ifdef __CUDA_ARCH__
    return __umul64hi(a, b);  // out = floor(a·b / 2^64)
#else
    return (uint64_t)(((unsigned __int128)a * b) >> 64);  // out = floor(a·b / 2^64)
#endif
}

// Exact a·b mod q; a, b in [0, 2^64), out in [0, q). q in [1, 2^64) on the host,
// q in [1, 2^63) on the device. Host: one 128-by-64 division. Device: shift-and-subtract (table building only, not hot
// loops — kernels use shoup_mul with precomputed constants).
FHE_HD uint64_t mul_mod(uint64_t a, uint64_t b, uint64_t q) {
#ifdef __CUDA_ARCH__
    uint64_t hi = __umul64hi(a, b);  // hi = floor(a·b / 2^64)
    uint64_t lo = a * b;             // lo = a·b mod 2^64
    uint64_t r = hi % q;             // r = hi mod q, r in [0, q)
    for (int bit = 63; bit >= 0; --bit) {
        r = (r << 1) | ((lo >> bit) & 1u);  // r = 2r + bit, r in [0, 2q) since q < 2^63
        r = r >= q ? r - q : r;             // r in [0, q)
    }
    return r;  // r = (hi·2^64 + lo) mod q
#else
    return (uint64_t)(((unsigned __int128)a * b) % q);  // out = a·b mod q, in [0, q)
#endif
}

// Shoup's lazy product: out ≡ a·w (mod q) with out in [0, 2q).
// Needs w in [0, q), w_shoup = floor(w·2^64 / q), q in [1, 2^63); a may be any 64-bit value
// (in particular a lazy value in [0, 2q) or [0, 4q)). Error analysis (Harvey 2014):
// a·w - floor(a·w_shoup / 2^64)·q lies in [0, 2q).
FHE_HD uint64_t shoup_mul(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q) {
    uint64_t quot = mul_hi64(a, w_shoup);  // quot = floor(a·w_shoup / 2^64), in [0, a]
    return a * w - quot * q;               // out = a·w - quot·q (exact mod 2^64), in [0, 2q)
}

// Shoup's product fully reduced: out = a·w mod q, in [0, q). Same preconditions as shoup_mul.
FHE_HD uint64_t shoup_mul_reduced(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q) {
    uint64_t r = shoup_mul(a, w, w_shoup, q);  // r ≡ a·w (mod q), r in [0, 2q)
    return r >= q ? r - q : r;                 // out in [0, q)
}

// One conditional subtraction: a in [0, 2q), q in [1, 2^63), out = a mod q in [0, q).
FHE_HD uint64_t reduce_2q(uint64_t a, uint64_t q) {
    return a >= q ? a - q : a;  // out = a - q·[a >= q], in [0, q)
}

// Two conditional subtractions: a in [0, 4q), q in [1, 2^62), out = a mod q in [0, q).
FHE_HD uint64_t reduce_4q(uint64_t a, uint64_t q) {
    uint64_t two_q = q << 1;                // two_q = 2q < 2^63
    a = a >= two_q ? a - two_q : a;         // a in [0, 2q)
    return a >= q ? a - q : a;              // out in [0, q)
}

// out = (a + b) mod q; a, b in [0, q), q in [1, 2^63), out in [0, q).
FHE_HD uint64_t add_mod(uint64_t a, uint64_t b, uint64_t q) {
    uint64_t s = a + b;         // s in [0, 2q), no overflow since 2q < 2^64
    return s >= q ? s - q : s;  // out in [0, q)
}

// out = (a - b) mod q; a, b in [0, q), q in [1, 2^64), out in [0, q).
FHE_HD uint64_t sub_mod(uint64_t a, uint64_t b, uint64_t q) {
    return a >= b ? a - b : a + (q - b);  // out = a - b or a - b + q, in [0, q)
}

// out = a^e mod q by square-and-multiply; a in [0, 2^64), q as for mul_mod, out in [0, q).
FHE_HD uint64_t pow_mod(uint64_t a, uint64_t e, uint64_t q) {
    uint64_t result = 1 % q;  // result = 1 mod q (0 when q = 1)
    uint64_t base = a % q;    // base in [0, q)
    while (e) {
        if (e & 1u) result = mul_mod(result, base, q);  // result in [0, q)
        base = mul_mod(base, base, q);                  // base = base^2 mod q, in [0, q)
        e >>= 1;
    }
    return result;  // result = a^e mod q
}

// 128-bit accumulator (hi, lo) += a·b; a, b in [0, 2^64). The caller bounds the sum below
// 2^128 (e.g. at most 64 products of values below 2^61, each product below 2^122).
FHE_HD void mac_128(uint64_t& hi, uint64_t& lo, uint64_t a, uint64_t b) {
    uint64_t p_lo = a * b;              // p_lo = a·b mod 2^64
    uint64_t p_hi = mul_hi64(a, b);     // p_hi = floor(a·b / 2^64)
    lo += p_lo;                         // lo = (lo + p_lo) mod 2^64, carry = [lo < p_lo]
    hi += p_hi + (lo < p_lo ? 1u : 0u); // hi·2^64 + lo = old sum + a·b, below 2^128
}

// Barrett reduction of x = hi·2^64 + lo, any x in [0, 2^128), with ratio = floor(2^128 / q)
// given as two words (ratio_hi, ratio_lo); q in [2, 2^63); out = x mod q in [0, q).
// The quotient estimate floor(x·ratio / 2^128) (only its value mod 2^64 is needed) is at
// most one below floor(x / q), so x - est·q lies in [0, 2q).
FHE_HD uint64_t barrett_reduce_128(uint64_t hi, uint64_t lo, uint64_t q, uint64_t ratio_hi,
                                   uint64_t ratio_lo) {
    uint64_t c0 = mul_hi64(lo, ratio_lo);          // word 1 of lo·ratio_lo, in [0, 2^64)
    uint64_t a_lo = lo * ratio_hi;                 // word 1 of lo·ratio_hi
    uint64_t a_hi = mul_hi64(lo, ratio_hi);        // word 2 of lo·ratio_hi
    uint64_t t1 = a_lo + c0;                       // word 1 partial sum, carry = [t1 < a_lo]
    uint64_t t3 = a_hi + (t1 < a_lo ? 1u : 0u);    // word 2 partial, below 2^64
    uint64_t b_lo = hi * ratio_lo;                 // word 1 of hi·ratio_lo
    uint64_t b_hi = mul_hi64(hi, ratio_lo);        // word 2 of hi·ratio_lo
    uint64_t t1b = t1 + b_lo;                      // word 1 complete, carry = [t1b < t1]
    uint64_t est = hi * ratio_hi + t3 + b_hi + (t1b < t1 ? 1u : 0u);  // quotient mod 2^64
    uint64_t r = lo - est * q;                     // r = x - est·q (exact mod 2^64), in [0, 2q)
    return r >= q ? r - q : r;                     // out in [0, q)
}
