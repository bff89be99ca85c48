// elementwise.cu — pointwise verbs (add, sub, neg, mul, mul_add, mul_scalar) and the
// automorphism (a permutation of NTT slots), batched over rows × limbs in one launch.
//
// Grid: grid.x = blocks_per_row × rows, grid.y = limbs; the threads of the blocks of one
// (row, limb) stride over its n coefficients. Binary verbs broadcast over the leading axes:
// the output rows form an (o0, o1) grid, and operand x reads row (i0, i1) at limb-row offset
// i0·s0 + i1·s1 (strides in units of `limbs` limbs, 0 along an axis the operand broadcasts).
// Inputs hold canonical residues in [0, q); every output is in [0, q).
#include "modarith.h"

// Coefficients [0, n) of the current (row, limb) handled by this thread: k0, k0 + step, ...
struct Stride {
    long long row, k0, step;
};

__device__ __forceinline__ Stride row_stride(long long blocks_per_row) {
    Stride s;
    s.row = blockIdx.x / blocks_per_row;
    s.k0 = (blockIdx.x % blocks_per_row) * blockDim.x + threadIdx.x;
    s.step = blocks_per_row * blockDim.x;
    return s;
}

// Pointer to limb blockIdx.y of the broadcast row (i0, i1) of an operand.
__device__ __forceinline__ const uint64_t* operand_row(const uint64_t* x, long long i0,
                                                       long long i1, long long s0, long long s1,
                                                       long long n) {
    return x + ((i0 * s0 + i1 * s1) * gridDim.y + blockIdx.y) * n;
}

// out = op(a, b) over the broadcast (o0, o1) row grid.
template <class Op>
__device__ __forceinline__ void binary_rows(const uint64_t* a, const uint64_t* b, uint64_t* out,
                                            long long sa0, long long sa1, long long sb0,
                                            long long sb1, long long o1,
                                            long long blocks_per_row, long long log_n, Op op) {
    long long n = 1LL << log_n;
    Stride s = row_stride(blocks_per_row);
    long long i0 = s.row / o1, i1 = s.row % o1;
    const uint64_t* x = operand_row(a, i0, i1, sa0, sa1, n);
    const uint64_t* y = operand_row(b, i0, i1, sb0, sb1, n);
    uint64_t* z = out + (s.row * gridDim.y + blockIdx.y) * n;
    for (long long k = s.k0; k < n; k += s.step) z[k] = op(x[k], y[k]);
}

// out = a + b mod q.
extern "C" __global__ void ew_add(const uint64_t* a, const uint64_t* b, uint64_t* out,
                                  long long sa0, long long sa1, long long sb0, long long sb1,
                                  long long o1, long long blocks_per_row, long long log_n,
                                  const long long* idx, const uint64_t* q_all) {
    uint64_t q = q_all[idx[blockIdx.y]];
    binary_rows(a, b, out, sa0, sa1, sb0, sb1, o1, blocks_per_row, log_n,
                [&](uint64_t x, uint64_t y) { return add_mod(x, y, q); });  // [0, q)
}

// out = a - b mod q.
extern "C" __global__ void ew_sub(const uint64_t* a, const uint64_t* b, uint64_t* out,
                                  long long sa0, long long sa1, long long sb0, long long sb1,
                                  long long o1, long long blocks_per_row, long long log_n,
                                  const long long* idx, const uint64_t* q_all) {
    uint64_t q = q_all[idx[blockIdx.y]];
    binary_rows(a, b, out, sa0, sa1, sb0, sb1, o1, blocks_per_row, log_n,
                [&](uint64_t x, uint64_t y) { return sub_mod(x, y, q); });  // [0, q)
}

// out = a·b mod q (Barrett on the 128-bit product; ratio = floor(2^128 / q) per prime).
extern "C" __global__ void ew_mul(const uint64_t* a, const uint64_t* b, uint64_t* out,
                                  long long sa0, long long sa1, long long sb0, long long sb1,
                                  long long o1, long long blocks_per_row, long long log_n,
                                  const long long* idx, const uint64_t* q_all,
                                  const uint64_t* ratio_hi, const uint64_t* ratio_lo) {
    long long u = idx[blockIdx.y];
    uint64_t q = q_all[u], rh = ratio_hi[u], rl = ratio_lo[u];
    binary_rows(a, b, out, sa0, sa1, sb0, sb1, o1, blocks_per_row, log_n,
                [&](uint64_t x, uint64_t y) {
                    uint64_t hi = mul_hi64(x, y);                   // x·y < q^2 < 2^122
                    return barrett_reduce_128(hi, x * y, q, rh, rl);  // x·y mod q, in [0, q)
                });
}

// out = a·b + c mod q, all three operands broadcast.
extern "C" __global__ void ew_mul_add(const uint64_t* a, const uint64_t* b, const uint64_t* c,
                                      uint64_t* out, long long sa0, long long sa1, long long sb0,
                                      long long sb1, long long sc0, long long sc1, long long o1,
                                      long long blocks_per_row, long long log_n,
                                      const long long* idx, const uint64_t* q_all,
                                      const uint64_t* ratio_hi, const uint64_t* ratio_lo) {
    long long n = 1LL << log_n, u = idx[blockIdx.y];
    uint64_t q = q_all[u], rh = ratio_hi[u], rl = ratio_lo[u];
    Stride s = row_stride(blocks_per_row);
    long long i0 = s.row / o1, i1 = s.row % o1;
    const uint64_t* x = operand_row(a, i0, i1, sa0, sa1, n);
    const uint64_t* y = operand_row(b, i0, i1, sb0, sb1, n);
    const uint64_t* v = operand_row(c, i0, i1, sc0, sc1, n);
    uint64_t* z = out + (s.row * gridDim.y + blockIdx.y) * n;
    for (long long k = s.k0; k < n; k += s.step) {
        uint64_t hi = 0, lo = v[k];                            // acc = c, in [0, q)
        mac_128(hi, lo, x[k], y[k]);                           // acc = x·y + c < 2^123
        z[k] = barrett_reduce_128(hi, lo, q, rh, rl);          // acc mod q, in [0, q)
    }
}

// out = -a mod q; a, out: (rows, gridDim.y, n).
extern "C" __global__ void ew_neg(const uint64_t* a, uint64_t* out, long long blocks_per_row,
                                  long long log_n, const long long* idx, const uint64_t* q_all) {
    long long n = 1LL << log_n;
    uint64_t q = q_all[idx[blockIdx.y]];
    Stride s = row_stride(blocks_per_row);
    long long off = (s.row * gridDim.y + blockIdx.y) * n;
    for (long long k = s.k0; k < n; k += s.step)
        out[off + k] = sub_mod(0, a[off + k], q);  // -a mod q, in [0, q)
}

// out = a·w_l mod q per limb l (Shoup); consts = [w, w_shoup], shape (2, gridDim.y), w < q.
extern "C" __global__ void ew_mul_scalar(const uint64_t* a, uint64_t* out, const uint64_t* consts,
                                         long long blocks_per_row, long long log_n,
                                         const long long* idx, const uint64_t* q_all) {
    long long n = 1LL << log_n, limb = blockIdx.y;
    uint64_t q = q_all[idx[limb]], w = consts[limb], w_s = consts[gridDim.y + limb];
    Stride s = row_stride(blocks_per_row);
    long long off = (s.row * gridDim.y + limb) * n;
    for (long long k = s.k0; k < n; k += s.step)
        out[off + k] = shoup_mul_reduced(a[off + k], w, w_s, q);  // a·w mod q, in [0, q)
}

// out[j] = a[perm[j]] in every (row, limb); a, out: (rows, gridDim.y, n), distinct arrays.
extern "C" __global__ void ew_automorphism(const uint64_t* a, uint64_t* out, const long long* perm,
                                           long long blocks_per_row, long long log_n) {
    long long n = 1LL << log_n;
    Stride s = row_stride(blocks_per_row);
    long long off = (s.row * gridDim.y + blockIdx.y) * n;
    for (long long k = s.k0; k < n; k += s.step) out[off + k] = a[off + perm[k]];
}
