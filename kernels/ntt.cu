// ntt.cu — batched negacyclic NTT and INTT (two launches per transform) and the fused
// base-conversion + NTT kernels of ModUp and ModDown.
//
// Layout. A limb of n = n1·n2 coefficients (n1 = 2^ceil(log2(n)/2)) is viewed as n2
// columns of n1 coefficients (column c holds c, c + n2, c + 2·n2, ...) and as n1 chunks of
// n2 contiguous coefficients. The forward transform (Cooley-Tukey, output in bit-reversed
// order, reference.ntt_limb) runs its first log2(n1) stages inside columns (the *_col
// kernels) and its last log2(n2) stages inside chunks (the *_chunk kernels); the inverse
// (Gentleman-Sande, reference.intt_limb) runs the chunk stages first, then the column ones.
//
// Twiddles. A stage of half-distance t inside a column or chunk of len points has
// m = len / 2t butterfly groups; group g uses table entry m·base + g with base = 1 for a
// column and base = n1 + chunk for a chunk: the entry psi_rev[n/2t + global group] (or
// ipsi_rev[...]) of the textbook loop. Tables are stacked per prime, shape (primes, n), and
// a limb finds its prime through the basis index vector idx.
//
// Blocks. A block holds `subs` columns (or chunks) of len points in dynamic shared memory
// and has max(1, subs·len/8) threads. It loads them coalesced, runs the stages in passes of
// up to three stages, each thread holding 8 points in registers (one radix-8 set, two
// radix-4 sets or four radix-2 butterflies), with __syncthreads() between passes, and
// stores them. grid.x = (blocks per limb) × rows, grid.y = limbs of the output; a row is one
// entry of the flattened leading (batch) axes.
//
// Ranges (Harvey's lazy butterflies; every q < 2^61): forward values stay in [0, 4q),
// inverse values in [0, 2q) between passes and between the two kernels; the last kernel of
// each transform brings them to [0, q).
#include "modarith.h"

extern __shared__ uint64_t smem[];

// Sizes are powers of two, so index arithmetic is shifts and masks (no 64-bit division in
// the hot loops). Indices inside a limb are ints (n <= 2^30); row offsets are long long.
struct Geometry {
    long long n;    // coefficients per limb
    int log_n2;     // log2(chunk length n2) = log2(column count)
    int n1;         // column length
    int log_len;    // log2 of the points per column (or chunk) handled by this kernel
    int log_subs;   // log2 of the columns (or chunks) per block
    int first;      // first column (or chunk) of this block
    long long row;  // batch row of this block
};

// The geometry of the current block of a *_col (column = true) or *_chunk kernel.
__device__ __forceinline__ Geometry block_geometry(long long log_n, long long log_subs,
                                                   bool column) {
    Geometry g;
    int log_n1 = (int)((log_n + 1) / 2);
    g.n = 1LL << log_n;
    g.n1 = 1 << log_n1;
    g.log_n2 = (int)log_n - log_n1;
    g.log_len = column ? log_n1 : g.log_n2;
    g.log_subs = (int)log_subs;
    int log_per_limb = (column ? g.log_n2 : log_n1) - g.log_subs;  // log2(blocks per limb)
    g.row = blockIdx.x >> log_per_limb;
    g.first = (int)(blockIdx.x & ((1u << log_per_limb) - 1)) << g.log_subs;
    return g;
}

// Coefficient index (within the limb) of point pos of the block's column or chunk sub.
template <bool kColumn>
__device__ __forceinline__ int coeff_index(const Geometry& g, int sub, int pos) {
    return kColumn ? (g.first + sub) + (pos << g.log_n2) : ((g.first + sub) << g.log_n2) + pos;
}

// Runs f(smem slot, coefficient index) over the block's points, consecutive threads on
// consecutive coefficients (coalesced global access).
template <bool kColumn, class F>
__device__ __forceinline__ void for_block_points(const Geometry& g, F f) {
    int total = 1 << (g.log_subs + g.log_len);
    for (int e = threadIdx.x; e < total; e += blockDim.x) {
        int sub = kColumn ? e & ((1 << g.log_subs) - 1) : e >> g.log_len;
        int pos = kColumn ? e >> g.log_subs : e & ((1 << g.log_len) - 1);
        f((sub << g.log_len) + pos, coeff_index<kColumn>(g, sub, pos));
    }
}

// Cooley-Tukey butterfly (Harvey): x, y in [0, 4q) -> x + w·y, x - w·y, both in [0, 4q).
__device__ __forceinline__ void ct_butterfly(uint64_t& x, uint64_t& y, uint64_t w, uint64_t w_s,
                                             uint64_t q) {
    uint64_t two_q = q << 1;                  // 2q < 2^62
    uint64_t u = x >= two_q ? x - two_q : x;  // u ≡ x, in [0, 2q)
    uint64_t v = shoup_mul(y, w, w_s, q);     // v = y·w mod q; y in [0, 4q), v in [0, 2q)
    x = u + v;                                // x ≡ u + v, in [0, 4q)
    y = u - v + two_q;                        // y ≡ u - v, in (0, 4q)
}

// Gentleman-Sande butterfly (Harvey): x, y in [0, 2q) -> x + y, (x - y)·w, both in [0, 2q).
__device__ __forceinline__ void gs_butterfly(uint64_t& x, uint64_t& y, uint64_t w, uint64_t w_s,
                                             uint64_t q) {
    uint64_t two_q = q << 1;                  // 2q < 2^62
    uint64_t s = x + y;                       // s ≡ x + y, in [0, 4q)
    uint64_t dif = x - y + two_q;             // dif ≡ x - y, in (0, 4q)
    x = s >= two_q ? s - two_q : s;           // x ≡ s, in [0, 2q)
    y = shoup_mul(dif, w, w_s, q);            // y = dif·w mod q; dif in (0, 4q), y in [0, 2q)
}

// One pass of R stages over the block's shared memory. The points of a set are
// pos0 + i·d (i < 2^R, d = 2^log_d) inside one column or chunk; d is the smallest
// half-distance of the pass (forward: stages d·2^(R-1) down to d; inverse: d up to
// d·2^(R-1)). The stage of half-distance t = 2^log_t has 2^(log_len - log_t - 1) groups.
template <bool kInverse, bool kColumn, int R>
__device__ __forceinline__ void ntt_pass(const Geometry& g, int log_d, const uint64_t* tw,
                                         const uint64_t* tw_s, uint64_t q) {
    int log_sets_per_sub = g.log_len - R;
    int sets = 1 << (g.log_subs + log_sets_per_sub);
    for (int s = threadIdx.x; s < sets; s += blockDim.x) {
        int sub = s >> log_sets_per_sub, in = s & ((1 << log_sets_per_sub) - 1);
        int pos0 = ((in >> log_d) << (log_d + R)) + (in & ((1 << log_d) - 1));  // first point
        int base = kColumn ? 1 : g.n1 + g.first + sub;
        uint64_t* x = smem + (sub << g.log_len) + pos0;
        uint64_t v[1 << R];
#pragma unroll
        for (int i = 0; i < (1 << R); ++i) v[i] = x[i << log_d];
#pragma unroll
        for (int k = 0; k < R; ++k) {
            int log_h = kInverse ? k : R - 1 - k;  // log2 of the register distance of the stage
            int log_t = log_d + log_h;             // log2 of the half-distance of the stage
#pragma unroll
            for (int i = 0; i < (1 << R); ++i) {
                if (i & (1 << log_h)) continue;
                int group = (pos0 + (i << log_d)) >> (log_t + 1);
                int w = (base << (g.log_len - log_t - 1)) + group;  // twiddle table entry
                if (kInverse) gs_butterfly(v[i], v[i + (1 << log_h)], tw[w], tw_s[w], q);
                else ct_butterfly(v[i], v[i + (1 << log_h)], tw[w], tw_s[w], q);
            }
        }
#pragma unroll
        for (int i = 0; i < (1 << R); ++i) x[i << log_d] = v[i];
    }
}

// The whole kernel body: load(coefficient) -> smem, every stage of this kernel,
// store(coefficient, lazy value). Forward loads accept [0, 4q), inverse loads [0, 2q).
template <bool kInverse, bool kColumn, class Load, class Store>
__device__ __forceinline__ void ntt_block(const Geometry& g, const uint64_t* tw,
                                          const uint64_t* tw_s, uint64_t q, Load load,
                                          Store store) {
    for_block_points<kColumn>(g, [&](int slot, int k) { smem[slot] = load(k); });
    __syncthreads();
    for (int done = 0; done < g.log_len;) {
        int r = g.log_len - done < 3 ? g.log_len - done : 3;
        int log_d = kInverse ? done : g.log_len - done - r;
        if (r == 3) ntt_pass<kInverse, kColumn, 3>(g, log_d, tw, tw_s, q);
        else if (r == 2) ntt_pass<kInverse, kColumn, 2>(g, log_d, tw, tw_s, q);
        else ntt_pass<kInverse, kColumn, 1>(g, log_d, tw, tw_s, q);
        __syncthreads();
        done += r;
    }
    for_block_points<kColumn>(g, [&](int slot, int k) { store(k, smem[slot]); });
}

// ----------------------------------------------------------------------------- NTT, INTT

// Forward, first kernel: out row = column stages of in row. in: (rows, in_limbs, n), limbs
// [in_off, in_off + gridDim.y) in [0, q); out: (rows, gridDim.y, n), values in [0, 4q).
extern "C" __global__ void ntt_fwd_col(const uint64_t* in, uint64_t* out, long long in_limbs,
                                       long long in_off, const long long* idx,
                                       const uint64_t* q_all, const uint64_t* psi,
                                       const uint64_t* psi_s, long long log_n,
                                       long long log_subs) {
    Geometry g = block_geometry(log_n, log_subs, true);
    long long limb = blockIdx.y, u = idx[limb];
    const uint64_t* src = in + (g.row * in_limbs + in_off + limb) * g.n;
    uint64_t* dst = out + (g.row * gridDim.y + limb) * g.n;
    ntt_block<false, true>(
        g, psi + u * g.n, psi_s + u * g.n, q_all[u], [&](int k) { return src[k]; },
        [&](int k, uint64_t v) { dst[k] = v; });  // v in [0, 4q)
}

// Forward, second kernel, in place: out (rows, gridDim.y, n) from [0, 4q) to [0, q).
extern "C" __global__ void ntt_fwd_chunk(uint64_t* out, const long long* idx,
                                         const uint64_t* q_all, const uint64_t* psi,
                                         const uint64_t* psi_s, long long log_n,
                                         long long log_subs) {
    Geometry g = block_geometry(log_n, log_subs, false);
    long long limb = blockIdx.y, u = idx[limb];
    uint64_t q = q_all[u];
    uint64_t* dst = out + (g.row * gridDim.y + limb) * g.n;
    ntt_block<false, false>(
        g, psi + u * g.n, psi_s + u * g.n, q, [&](int k) { return dst[k]; },
        [&](int k, uint64_t v) { dst[k] = reduce_4q(v, q); });  // v in [0, 4q) -> [0, q)
}

// Inverse, first kernel: chunk stages. in as for ntt_fwd_col ([0, q)); out values in [0, 2q).
extern "C" __global__ void intt_chunk(const uint64_t* in, uint64_t* out, long long in_limbs,
                                      long long in_off, const long long* idx,
                                      const uint64_t* q_all, const uint64_t* ipsi,
                                      const uint64_t* ipsi_s, long long log_n, long long log_subs) {
    Geometry g = block_geometry(log_n, log_subs, false);
    long long limb = blockIdx.y, u = idx[limb];
    const uint64_t* src = in + (g.row * in_limbs + in_off + limb) * g.n;
    uint64_t* dst = out + (g.row * gridDim.y + limb) * g.n;
    ntt_block<true, false>(
        g, ipsi + u * g.n, ipsi_s + u * g.n, q_all[u], [&](int k) { return src[k]; },
        [&](int k, uint64_t v) { dst[k] = v; });  // v in [0, 2q)
}

// Inverse, second kernel, in place: column stages, then x -> x·e_l mod q with the
// per-limb constants post = [e (with n^-1 folded in), e_shoup], shape (2, gridDim.y).
// out from [0, 2q) to [0, q).
extern "C" __global__ void intt_col(uint64_t* out, const long long* idx, const uint64_t* q_all,
                                    const uint64_t* ipsi, const uint64_t* ipsi_s,
                                    const uint64_t* post, long long log_n, long long log_subs) {
    Geometry g = block_geometry(log_n, log_subs, true);
    long long limb = blockIdx.y, limbs = gridDim.y, u = idx[limb];
    uint64_t q = q_all[u], e = post[limb], e_s = post[limbs + limb];
    uint64_t* dst = out + (g.row * limbs + limb) * g.n;
    ntt_block<true, true>(
        g, ipsi + u * g.n, ipsi_s + u * g.n, q, [&](int k) { return dst[k]; },
        [&](int k, uint64_t v) {
            dst[k] = shoup_mul_reduced(v, e, e_s, q);  // v·e mod q; v in [0, 2q), out in [0, q)
        });
}

// ----------------------------------------------------------------------------- ModUp

// Copies the block's points of src to dst (a digit's own limbs need no transform).
template <bool kColumn>
__device__ __forceinline__ void copy_block(const Geometry& g, const uint64_t* src, uint64_t* dst) {
    for_block_points<kColumn>(g, [&](int, int k) { dst[k] = src[k]; });
}

// ModUp, first kernel. a: (R, lq, n) evaluation form; y: (R, lq, n) with
// y_i = intt(a)_i · hat_inv_i mod q_i (hat_inv of limb i's digit); out: (R, D, M, n) with
// M = gridDim.y limbs over ext_idx; digit j covers limbs [j·alpha, min((j+1)·alpha, lq)).
// Own limbs of the digit are copied from a; every other limb t gets the column stages of
// conv_t = sum_i y_i · hmod[j, t, i] mod q_t (values in [0, 4q)). hmod: (D, M, alpha).
extern "C" __global__ void mod_up_col(const uint64_t* a, const uint64_t* y, uint64_t* out,
                                      long long alpha, long long lq, const long long* ext_idx,
                                      const uint64_t* q_all, const uint64_t* psi,
                                      const uint64_t* psi_s, const uint64_t* hmod,
                                      const uint64_t* ratio_hi, const uint64_t* ratio_lo,
                                      long long log_n, long long log_subs) {
    Geometry g = block_geometry(log_n, log_subs, true);
    long long digits = (lq + alpha - 1) / alpha, m = gridDim.y;
    long long r = g.row / digits, j = g.row % digits, t = blockIdx.y, u = ext_idx[t];
    long long s0 = j * alpha, s1 = s0 + alpha < lq ? s0 + alpha : lq;
    uint64_t* dst = out + (g.row * m + t) * g.n;
    if (s0 <= t && t < s1) {
        copy_block<true>(g, a + (r * lq + t) * g.n, dst);
        return;
    }
    uint64_t q = q_all[u], rh = ratio_hi[u], rl = ratio_lo[u];
    const uint64_t* ys = y + (r * lq + s0) * g.n;
    const uint64_t* h = hmod + (j * m + t) * alpha;
    ntt_block<false, true>(
        g, psi + u * g.n, psi_s + u * g.n, q,
        [&](int k) {
            uint64_t hi = 0, lo = 0;  // sum of at most 64 products below 2^122: below 2^128
            for (long long i = 0; i < s1 - s0; ++i) mac_128(hi, lo, ys[i * g.n + k], h[i]);
            return barrett_reduce_128(hi, lo, q, rh, rl);  // conv_t in [0, q)
        },
        [&](int k, uint64_t v) { dst[k] = v; });  // v in [0, 4q)
}

// ModUp, second kernel, in place on out: chunk stages of every limb that is not the
// digit's own ([0, 4q) -> [0, q)). Same grid rows as mod_up_col.
extern "C" __global__ void mod_up_chunk(uint64_t* out, long long alpha, long long lq,
                                        const long long* ext_idx, const uint64_t* q_all,
                                        const uint64_t* psi, const uint64_t* psi_s,
                                        long long log_n, long long log_subs) {
    Geometry g = block_geometry(log_n, log_subs, false);
    long long digits = (lq + alpha - 1) / alpha, j = g.row % digits, t = blockIdx.y;
    if (j * alpha <= t && t < j * alpha + alpha && t < lq) return;  // own limb: copied
    long long u = ext_idx[t];
    uint64_t q = q_all[u];
    uint64_t* dst = out + (g.row * gridDim.y + t) * g.n;
    ntt_block<false, false>(
        g, psi + u * g.n, psi_s + u * g.n, q, [&](int k) { return dst[k]; },
        [&](int k, uint64_t v) { dst[k] = reduce_4q(v, q); });  // v in [0, 4q) -> [0, q)
}

// ----------------------------------------------------------------------------- ModDown

// ModDown, first kernel: the centered exact conversion of reference.exact_convert fused
// into the column stages. z: (R, kp, n) with x_i = z_i = intt(a_P)_i · hat_inv_i mod p_i;
// v = floor((2^63 + sum_i floor(x_i · R_i / 2^64)) / 2^64) with R_i = floor(2^128 / p_i) =
// recip[i]·2^64 + recip[kp + i] (v in [0, kp]: x/P rounded, in 2^-64 fixed point);
// c_t = sum_i x_i · hmod[t, i] + v · neg_p[t] mod q_t with neg_p[t] = -P mod q_t.
// out: (R, gridDim.y, n) over q_idx gets the column stages of c_t (values in [0, 4q)).
// hmod: (lq, kp); kp <= 63.
extern "C" __global__ void mod_down_col(const uint64_t* z, uint64_t* out, long long kp,
                                        const long long* q_idx, const uint64_t* q_all,
                                        const uint64_t* psi, const uint64_t* psi_s,
                                        const uint64_t* hmod, const uint64_t* neg_p,
                                        const uint64_t* recip, const uint64_t* ratio_hi,
                                        const uint64_t* ratio_lo, long long log_n,
                                        long long log_subs) {
    Geometry g = block_geometry(log_n, log_subs, true);
    long long t = blockIdx.y, u = q_idx[t];
    uint64_t q = q_all[u], rh = ratio_hi[u], rl = ratio_lo[u], neg = neg_p[t];
    const uint64_t* zs = z + g.row * kp * g.n;
    const uint64_t* h = hmod + t * kp;
    uint64_t* dst = out + (g.row * gridDim.y + t) * g.n;
    ntt_block<false, true>(
        g, psi + u * g.n, psi_s + u * g.n, q,
        [&](int k) {
            uint64_t v_hi = 0, v_lo = 1ull << 63;  // 2^63 + sum of terms, below 2^70
            uint64_t hi = 0, lo = 0;  // kp + 1 <= 64 products below 2^122: below 2^128
            for (long long i = 0; i < kp; ++i) {
                uint64_t x = zs[i * g.n + k];                        // x in [0, p_i)
                uint64_t f = x * recip[i] + mul_hi64(x, recip[kp + i]);  // x·R_i / 2^64 < 2^64
                v_lo += f;                                           // carry = [v_lo < f]
                v_hi += v_lo < f ? 1u : 0u;                          // v_hi in [0, kp]
                mac_128(hi, lo, x, h[i]);                            // += x·hmod[t, i] < 2^122
            }
            mac_128(hi, lo, v_hi, neg);                    // += v·(-P mod q), below 2^67
            return barrett_reduce_128(hi, lo, q, rh, rl);  // c_t in [0, q)
        },
        [&](int k, uint64_t v) { dst[k] = v; });  // v in [0, 4q)
}

// ModDown, second kernel, in place on out: chunk stages, then
// out_t = (a_t - ntt(c)_t) · P^-1 mod q_t. a: (R, a_limbs, n), limbs [0, gridDim.y) over Q;
// p_inv = [P^-1 mod q_t, its Shoup constant], shape (2, gridDim.y).
extern "C" __global__ void mod_down_chunk(const uint64_t* a, uint64_t* out, long long a_limbs,
                                          const long long* q_idx, const uint64_t* q_all,
                                          const uint64_t* psi, const uint64_t* psi_s,
                                          const uint64_t* p_inv, long long log_n,
                                          long long log_subs) {
    Geometry g = block_geometry(log_n, log_subs, false);
    long long t = blockIdx.y, lq = gridDim.y, u = q_idx[t];
    uint64_t q = q_all[u], w = p_inv[t], w_s = p_inv[lq + t];
    const uint64_t* at = a + (g.row * a_limbs + t) * g.n;
    uint64_t* dst = out + (g.row * lq + t) * g.n;
    ntt_block<false, false>(
        g, psi + u * g.n, psi_s + u * g.n, q, [&](int k) { return dst[k]; },
        [&](int k, uint64_t v) {
            uint64_t x = at[k] + 4 * q - v;            // x ≡ a - v; a < q, v < 4q: x in (0, 5q)
            dst[k] = shoup_mul_reduced(x, w, w_s, q);  // x·P^-1 mod q, in [0, q)
        });
}
