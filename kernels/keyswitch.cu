// keyswitch.cu — the inner product of ModUp digits with a key-switching key, with lazy
// reduction: the digit sum is accumulated exactly in 128 bits and reduced once (Barrett).
//
// ext: (R, D, M, n) digits over the basis idx (M = gridDim.y limbs); key: a slab of T keys
// (T, D_key >= D, 2, key_limbs, n), slot_words = D_key·2·key_limbs·n words apart, whose limb
// key_pos[i] holds the prime of limb i; row r uses slot slots[r / rows_per_slot] (the
// per-row key index of cross-tenant batches; one key is the slab T = 1, slots = {0}).
// out: (R, 2, M, n) with out[r, c, i] = sum_j ext[r, j, i, src(x)] · key[slot, j, c,
// key_pos[i], x] mod q_i, in [0, q), where src(x) = perm[x] when `permuted` (an
// automorphism of ext fused into its reads), else x.
// Grid: grid.x = blocks_per_row × (R·2) (row = r·2 + c), grid.y = M. D <= 64, so the sum
// of D products below 2^122 stays below 2^128.
#include "modarith.h"

extern "C" __global__ void key_switch_inner(const uint64_t* ext, const uint64_t* key,
                                            uint64_t* out, long long digits,
                                            long long key_limbs, const long long* key_pos,
                                            const long long* slots, long long rows_per_slot,
                                            long long slot_words, const long long* perm,
                                            long long permuted, const long long* idx,
                                            const uint64_t* q_all, const uint64_t* ratio_hi,
                                            const uint64_t* ratio_lo, long long blocks_per_row,
                                            long long log_n) {
    long long n = 1LL << log_n, m = gridDim.y, i = blockIdx.y, u = idx[i];
    uint64_t q = q_all[u], rh = ratio_hi[u], rl = ratio_lo[u];
    long long row = blockIdx.x / blocks_per_row, r = row / 2, c = row % 2;
    long long slot = slots[r / rows_per_slot];  // in [0, T): checked on the host
    long long step = blocks_per_row * blockDim.x;
    const uint64_t* e = ext + (r * digits * m + i) * n;  // digit j at e + j·m·n
    const uint64_t* k = key + slot * slot_words + (c * key_limbs + key_pos[i]) * n;  // digit j:
                                                                                     // + j·2·key_limbs·n
    uint64_t* z = out + (row * m + i) * n;
    for (long long x = (blockIdx.x % blocks_per_row) * blockDim.x + threadIdx.x; x < n; x += step) {
        long long src = permuted ? perm[x] : x;  // slot of ext read for output slot x, in [0, n)
        uint64_t hi = 0, lo = 0;  // exact sum, below 64·2^122 = 2^128
        for (long long j = 0; j < digits; ++j)
            mac_128(hi, lo, e[j * m * n + src], k[j * 2 * key_limbs * n + x]);  // += product < 2^122
        z[x] = barrett_reduce_128(hi, lo, q, rh, rl);  // sum mod q, in [0, q)
    }
}
