// fhe_gpu.ring._core — number theory and table building for the ring layer.
//
// Every function here has an exact Python twin in fhe_gpu/ring/reference.py and must give
// the same answer. Modular arithmetic comes from modarith.h (shared with the CUDA kernels).
// Errors on user input are raised as ValueError, never as crashes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <vector>

#include "modarith.h"

namespace py = pybind11;

namespace {

using u64 = uint64_t;
using u128 = unsigned __int128;
using i128 = __int128;

constexpr u64 kSmallPrimes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41};

std::string str(u64 v) { return std::to_string(v); }

// Deterministic Miller-Rabin: the first 13 primes as bases are exact for q < 3.3e24.
bool is_prime(u64 q) {
    if (q < 2) return false;
    for (u64 p : kSmallPrimes)
        if (q % p == 0) return q == p;
    u64 d = q - 1;  // q - 1 = d·2^r with d odd
    int r = 0;
    while ((d & 1u) == 0) {
        d >>= 1;
        ++r;
    }
    for (u64 a : kSmallPrimes) {
        u64 x = pow_mod(a, d, q);  // x = a^d mod q
        if (x == 1 || x == q - 1) continue;
        bool witness = true;
        for (int i = 0; i < r - 1 && witness; ++i) {
            x = mul_mod(x, x, q);  // x = x^2 mod q
            witness = x != q - 1;
        }
        if (witness) return false;
    }
    return true;
}

// a^-1 mod q by the extended Euclidean algorithm (any modulus q >= 1).
u64 inv_mod(u64 a, u64 q) {
    if (q == 0) throw py::value_error("inv_mod: modulus must be >= 1");
    i128 t = 0, new_t = 1;  // Bezout coefficients of a, |t| <= q
    u64 r = q, new_r = a % q;
    while (new_r != 0) {
        u64 quot = r / new_r;
        i128 tmp_t = t - (i128)quot * new_t;
        t = new_t;
        new_t = tmp_t;
        u64 tmp_r = r - quot * new_r;
        r = new_r;
        new_r = tmp_r;
    }
    if (r != 1) throw py::value_error("inv_mod: " + str(a) + " is not invertible mod " + str(q));
    if (t < 0) t += q;  // t in [0, q)
    return (u64)t;
}

// floor(w·2^64 / q) for w < q: the Shoup constant of w.
u64 shoup(u64 w, u64 q) {
    if (q == 0 || w >= q) throw py::value_error("shoup: need w < q, got w=" + str(w) + ", q=" + str(q));
    return (u64)(((u128)w << 64) / q);  // < 2^64 because w < q
}

u64 checked_pow_mod(u64 a, u64 e, u64 q) {
    if (q == 0) throw py::value_error("pow_mod: modulus must be >= 1");
    return pow_mod(a, e, q);
}

std::vector<u64> generate_primes(u64 n, int bits, long long count, const std::vector<u64>& exclude) {
    if (n < 1) throw py::value_error("generate_primes: n must be >= 1");
    if (bits < 2 || bits > 61) throw py::value_error("generate_primes: bits must be in [2, 61], got " + std::to_string(bits));
    const std::unordered_set<u64> excluded(exclude.begin(), exclude.end());
    const i128 step = (i128)2 * n, c = ((i128)1 << bits) + 1, limit = (i128)1 << 61;
    std::vector<u64> out;
    for (i128 k = 0; (long long)out.size() < count;) {
        const i128 cands[2] = {c - k * step, c + k * step};  // k = 0: c only
        for (int j = 0; j < (k == 0 ? 1 : 2); ++j) {
            const i128 q = cands[j];
            if (step < q && q < limit && !excluded.count((u64)q) && is_prime((u64)q)) {
                out.push_back((u64)q);
                if ((long long)out.size() == count) break;
            }
        }
        ++k;
        if (c - k * step <= step && c + k * step >= limit)
            throw py::value_error("not enough " + std::to_string(bits) + "-bit NTT primes for n=" + str(n) +
                                  ": need " + std::to_string(count));
    }
    return out;
}

// psi = c^((q-1)/2n) for the smallest c >= 2 with psi^n = -1 (q prime, q = 1 mod 2n).
u64 find_psi(u64 q, u64 n) {
    if (n < 1) throw py::value_error("find_psi: n must be >= 1");
    if (q < 2 || (q - 1) % ((u128)2 * n) != 0)
        throw py::value_error("q=" + str(q) + " is not 1 mod 2n=" + std::to_string((unsigned long long)(2 * n)));
    if (!is_prime(q)) throw py::value_error("find_psi: q=" + str(q) + " is not prime");
    const u64 e = (u64)((q - 1) / ((u128)2 * n));
    for (u64 c = 2;; ++c) {
        const u64 psi = pow_mod(c, e, q);  // psi^(2n) = c^(q-1) = 1
        if (pow_mod(psi, n, q) == q - 1) return psi;
    }
}

u64 bit_reverse(u64 i, int log_n) {
    u64 out = 0;
    for (int b = 0; b < log_n; ++b) out |= ((i >> b) & 1u) << (log_n - 1 - b);
    return out;
}

py::array_t<u64> new_array(py::ssize_t n) { return py::array_t<u64>(std::vector<py::ssize_t>{n}); }

// Fill table[i] = root^brv(i) and shoup_table[i] = its Shoup constant.
void fill_rev_powers(u64 root, u64 q, int log_n, py::array_t<u64>& table, py::array_t<u64>& shoup_table) {
    const u64 n = (u64)1 << log_n;
    std::vector<u64> powers(n);
    powers[0] = 1 % q;
    for (u64 j = 1; j < n; ++j) powers[j] = mul_mod(powers[j - 1], root, q);  // root^j mod q
    u64* t = table.mutable_data();
    u64* s = shoup_table.mutable_data();
    for (u64 i = 0; i < n; ++i) {
        t[i] = powers[bit_reverse(i, log_n)];
        s[i] = shoup(t[i], q);
    }
}

py::tuple ntt_tables(u64 q, u64 n) {
    if (n < 1 || (n & (n - 1)) != 0 || n > ((u64)1 << 30))
        throw py::value_error("ntt_tables: n must be a power of two <= 2^30, got " + str(n));
    const u64 psi = find_psi(q, n);
    const u64 ipsi = inv_mod(psi, q);
    int log_n = 0;
    while (((u64)1 << log_n) < n) ++log_n;
    auto psi_rev = new_array((py::ssize_t)n), psi_rev_shoup = new_array((py::ssize_t)n);
    auto ipsi_rev = new_array((py::ssize_t)n), ipsi_rev_shoup = new_array((py::ssize_t)n);
    fill_rev_powers(psi, q, log_n, psi_rev, psi_rev_shoup);
    fill_rev_powers(ipsi, q, log_n, ipsi_rev, ipsi_rev_shoup);
    const u64 n_inv = inv_mod(n % q, q);
    return py::make_tuple(psi_rev, psi_rev_shoup, ipsi_rev, ipsi_rev_shoup, py::int_(n_inv),
                          py::int_(shoup(n_inv, q)));
}

// out[i] = prod_{j != i} primes[j] mod m, by prefix and suffix products.
std::vector<u64> other_products_mod(const std::vector<u64>& primes, u64 m) {
    const size_t L = primes.size();
    std::vector<u64> prefix(L + 1, 1 % m), out(L);
    for (size_t i = 0; i < L; ++i) prefix[i + 1] = mul_mod(prefix[i], primes[i], m);  // prod_{j<=i}
    u64 suffix = 1 % m;                                                                 // prod_{j>i}
    for (size_t i = L; i-- > 0;) {
        out[i] = mul_mod(prefix[i], suffix, m);
        suffix = mul_mod(suffix, primes[i], m);
    }
    return out;
}

void check_moduli(const std::vector<u64>& moduli, const char* what) {
    for (u64 m : moduli)
        if (m < 2 || m >= ((u64)1 << 63))
            throw py::value_error(std::string(what) + ": every modulus must be in [2, 2^63), got " + str(m));
}

// hat_inv[i] = (S/s_i)^-1 mod s_i (ValueError when the src primes are not coprime).
std::vector<u64> hat_inverses(const std::vector<u64>& src) {
    std::vector<u64> out(src.size());
    for (size_t i = 0; i < src.size(); ++i) out[i] = inv_mod(other_products_mod(src, src[i])[i], src[i]);
    return out;
}

py::tuple base_conv_tables(const std::vector<u64>& src, const std::vector<u64>& dst) {
    check_moduli(src, "base_conv_tables");
    check_moduli(dst, "base_conv_tables");
    const py::ssize_t L = (py::ssize_t)src.size(), D = (py::ssize_t)dst.size();
    const std::vector<u64> inv = hat_inverses(src);
    auto hat_inv = new_array(L), hat_inv_shoup = new_array(L);
    py::array_t<u64> hat_mod(std::vector<py::ssize_t>{D, L});
    for (py::ssize_t i = 0; i < L; ++i) {
        hat_inv.mutable_data()[i] = inv[i];
        hat_inv_shoup.mutable_data()[i] = shoup(inv[i], src[i]);
    }
    for (py::ssize_t t = 0; t < D; ++t) {
        const std::vector<u64> row = other_products_mod(src, dst[t]);
        std::copy(row.begin(), row.end(), hat_mod.mutable_data() + t * L);
    }
    return py::make_tuple(hat_inv, hat_inv_shoup, hat_mod);
}

// ------------------------------------------------------------------ fixed-width bignum
// A number is W little-endian 64-bit words; callers guarantee no overflow past W words.

struct Big {
    static void mul_word(u64* out, const u64* a, u64 w, size_t W) {  // out = a·w
        u64 carry = 0;
        for (size_t j = 0; j < W; ++j) {
            const u128 t = (u128)a[j] * w + carry;  // < 2^128
            out[j] = (u64)t;
            carry = (u64)(t >> 64);
        }
    }
    static void sub_mul_word(u64* acc, const u64* a, u64 w, size_t W) {  // acc -= a·w (acc >= a·w)
        u64 borrow = 0;
        for (size_t j = 0; j < W; ++j) {
            const u128 p = (u128)a[j] * w + borrow;  // word j of a·w plus the borrow
            const u64 lo = (u64)p;
            borrow = (u64)(p >> 64) + (acc[j] < lo);
            acc[j] -= lo;
        }
    }
    static int cmp(const u64* a, const u64* b, size_t W) {
        for (size_t j = W; j-- > 0;)
            if (a[j] != b[j]) return a[j] < b[j] ? -1 : 1;
        return 0;
    }
    static void sub(u64* out, const u64* a, const u64* b, size_t W) {  // out = a - b (a >= b)
        u64 borrow = 0;
        for (size_t j = 0; j < W; ++j) {
            const u64 d = a[j] - b[j];
            const u64 next = (a[j] < b[j]) | (d < borrow);
            out[j] = d - borrow;
            borrow = next;
        }
    }
    static double to_double(const u64* a, size_t W, double scale) {  // a / scale
        size_t t = W;
        while (t > 0 && a[t - 1] == 0) --t;
        if (t == 0) return 0.0;
        if (t == 1) return (double)((long double)a[0] / scale);
        const long double m = std::ldexp((long double)a[t - 1], 64) + (long double)a[t - 2];
        return (double)std::ldexp(m / (long double)scale, 64 * (int)(t - 2));
    }
};

constexpr size_t kCrtBlock = 64;  // coefficients processed together by crt_compose

// Per-thread work space of crt_compose for one block of coefficients.
struct CrtScratch {
    std::vector<u64> y, ycol, acc;      // y[i·kCrtBlock + b]; one coefficient's y; L-word number
    std::vector<double> frac;           // sum_i y_i / q_i per coefficient
    std::vector<u128> v;                // 128-bit candidate, then its magnitude
    std::vector<unsigned char> neg, ok;  // candidate sign, candidate verified
    explicit CrtScratch(size_t L)
        : y(L * kCrtBlock), ycol(L), acc(L), frac(kCrtBlock), v(kCrtBlock), neg(kCrtBlock), ok(kCrtBlock) {}
};

// Everything crt_compose needs per prime set, precomputed once.
//
// x = sum_i y_i·hat_i with y_i = r_i·hat_inv_i mod q_i satisfies x ≡ r_i (mod q_i) and
// x/Q = sum_i y_i/q_i, so the nearest integer m to that (double) sum makes v = x - m·Q the
// centered value in the common case. Fast path: v is assumed to fit in 128 bits; the
// candidate computed mod 2^128 is accepted only if it matches every residue, which makes it
// exact (two integers below Q/2 in magnitude with the same residues are equal). Otherwise the
// full L-word computation runs.
struct CrtPlan {
    size_t L;
    bool fast_ok;                                           // Q > 2^128: the fast path applies
    bool tiny;                                              // L·Q < 2^127: everything in 128 bits
    u128 q128;                                              // Q mod 2^128
    std::vector<u64> q, hat_inv, hat_inv_shoup, big_q, half_q;
    std::vector<u64> hats_t;                                // hats_t[j·L + i] = word j of hat_i
    std::vector<u64> one_shoup, two64, two64_shoup;         // shoup(1), 2^64 mod q_i, its Shoup
    std::vector<u128> hat128;                               // hat_i mod 2^128
    std::vector<double> inv_q;

    explicit CrtPlan(const std::vector<u64>& primes) : L(primes.size()), q(primes), hat_inv(hat_inverses(primes)) {
        std::vector<u64> hats(L * L, 0), tmp(L);
        big_q.assign(L, 0);
        big_q[0] = 1;
        for (size_t i = 0; i < L; ++i) {
            u64* hat = &hats[i * L];
            hat[0] = 1;
            for (size_t j = 0; j < L; ++j) {
                if (j == i) continue;
                Big::mul_word(tmp.data(), hat, q[j], L);  // hat_i = prod_{j != i} q_j < Q
                std::copy(tmp.begin(), tmp.end(), hat);
            }
            Big::mul_word(tmp.data(), big_q.data(), q[i], L);  // Q = prod q_j < 2^(63L)
            big_q = tmp;
            hat128.push_back(hat[0] | (L > 1 ? (u128)hat[1] << 64 : 0));
            hat_inv_shoup.push_back(shoup(hat_inv[i], q[i]));
            one_shoup.push_back(shoup(1 % q[i], q[i]));
            two64.push_back((u64)(((u128)1 << 64) % q[i]));
            two64_shoup.push_back(shoup(two64.back(), q[i]));
            inv_q.push_back(1.0 / (double)q[i]);
        }
        hats_t.resize(L * L);
        for (size_t i = 0; i < L; ++i)
            for (size_t j = 0; j < L; ++j) hats_t[j * L + i] = hats[i * L + j];
        half_q.assign(L, 0);
        for (size_t j = 0; j < L; ++j)  // half_q = floor(Q / 2)
            half_q[j] = (big_q[j] >> 1) | (j + 1 < L ? big_q[j + 1] << 63 : 0);
        fast_ok = L > 2 && std::any_of(big_q.begin() + 2, big_q.end(), [](u64 w) { return w != 0; });
        q128 = big_q[0] | (L > 1 ? (u128)big_q[1] << 64 : 0);
        tiny = !fast_ok && (L == 1 || q128 < ((u128)1 << 127) / L);  // L·Q < 2^127
    }

    // |v| mod q_i for |v| = hi·2^64 + lo; out in [0, q_i).
    u64 mod_q(u128 v, size_t i) const {
        const u64 hi = shoup_mul(v >> 64, two64[i], two64_shoup[i], q[i]);  // ≡ hi·2^64, in [0, 2q)
        const u64 lo = shoup_mul((u64)v, 1 % q[i], one_shoup[i], q[i]);      // ≡ lo, in [0, 2q)
        return add_mod(reduce_2q(hi, q[i]), reduce_2q(lo, q[i]), q[i]);      // in [0, q)
    }

    // Pass 1 over a block: y_i = r_i·hat_inv_i mod q_i, frac = sum y_i/q_i, v = sum y_i·hat_i mod 2^128.
    void first_pass(const u64* r, size_t N, size_t count, CrtScratch& s) const {
        std::fill(s.frac.begin(), s.frac.end(), 0.0);
        std::fill(s.v.begin(), s.v.end(), 0);
        for (size_t i = 0; i < L; ++i) {
            const u64* ri = r + i * N;
            u64* yi = &s.y[i * kCrtBlock];
            for (size_t b = 0; b < count; ++b) {
                yi[b] = shoup_mul_reduced(ri[b], hat_inv[i], hat_inv_shoup[i], q[i]);  // [0, q_i)
                s.frac[b] += (double)yi[b] * inv_q[i];
                s.v[b] += (u128)yi[b] * hat128[i];  // wraps mod 2^128
            }
        }
    }

    // The fast path: v = x - m·Q with m = round(frac), assumed |v| <= 2^127, kept only where it
    // matches every residue (then it is exact: two values of magnitude < Q/2 agreeing mod Q).
    void verify_small(const u64* r, size_t N, size_t count, CrtScratch& s) const {
        for (size_t b = 0; b < count; ++b) {
            const u128 v = s.v[b] - (u128)(u64)std::llround(s.frac[b]) * q128;  // two's complement
            s.neg[b] = (unsigned char)(v >> 127);
            s.v[b] = s.neg[b] ? (u128)0 - v : v;  // |v| <= 2^127 < Q/2
            s.ok[b] = 1;
        }
        for (size_t i = 0; i < L; ++i) {
            const u64* ri = r + i * N;
            for (size_t b = 0; b < count; ++b) {
                const u64 m = mod_q(s.v[b], i);
                s.ok[b] &= (unsigned char)((s.neg[b] ? sub_mod(0, m, q[i]) : m) == ri[b]);
            }
        }
    }

    // The exact L-word computation of x = sum_i y_i·hat_i (product scanning, two interleaved
    // column accumulators), reduced mod Q, centered, divided by scale.
    double compose_full(const u64* y, double frac, double scale, u64* acc) const {
        u128 lo = 0;           // column sum, low 128 bits (carry from the previous column)
        u64 top = 0;           // column sum, bits 128..191
        for (size_t j = 0; j < L; ++j) {
            const u64* col = &hats_t[j * L];
            u128 a = 0, b = 0;  // two partial column sums, each with its own carry word
            u64 ta = 0, tb = 0;
            size_t i = 0;
            for (; i + 1 < L; i += 2) {
                const u128 pa = (u128)y[i] * col[i], pb = (u128)y[i + 1] * col[i + 1];  // < 2^128
                a += pa;
                ta += a < pa;
                b += pb;
                tb += b < pb;
            }
            if (i < L) {
                const u128 pa = (u128)y[i] * col[i];
                a += pa;
                ta += a < pa;
            }
            a += b;
            ta += tb + (a < b);
            lo += a;
            top += ta + (lo < a);
            acc[j] = (u64)lo;  // word j of x < L·Q < 2^(64L)
            lo = (lo >> 64) | ((u128)top << 64);
            top = 0;
        }
        return reduce_center(acc, frac, scale);
    }

    // acc = x in [0, L·Q) -> (x mod Q, centered) / scale.
    double reduce_center(u64* acc, double frac, double scale) const {
        const double k = std::floor(frac - 1e-6);  // k <= floor(x / Q), off by at most one
        if (k > 0) Big::sub_mul_word(acc, big_q.data(), (u64)k, L);
        while (Big::cmp(acc, big_q.data(), L) >= 0) Big::sub(acc, acc, big_q.data(), L);  // acc in [0, Q)
        if (Big::cmp(acc, half_q.data(), L) <= 0) return Big::to_double(acc, L, scale);
        Big::sub(acc, big_q.data(), acc, L);  // acc = Q - x, the magnitude of x - Q
        return -Big::to_double(acc, L, scale);
    }

    // (sign · mag) / scale for a 128-bit magnitude.
    static double u128_to_double(u128 mag, bool negative, double scale) {
        const long double m = (long double)(u64)(mag >> 64) * 18446744073709551616.0L + (long double)(u64)mag;
        const double d = (double)(m / (long double)scale);  // relative error <= 2^-63 before rounding
        return negative ? -d : d;
    }

    // Centered CRT values / scale of `count` <= kCrtBlock coefficients; residue i of
    // coefficient b is r[i·N + b].
    void compose_block(const u64* r, size_t N, size_t count, double scale, double* out, CrtScratch& s) const {
        first_pass(r, N, count, s);
        if (tiny) {  // L·Q < 2^128: v = x exactly
            for (size_t b = 0; b < count; ++b) {
                const u128 x = s.v[b] % q128;  // x mod Q
                out[b] = x > q128 / 2 ? u128_to_double(q128 - x, true, scale) : u128_to_double(x, false, scale);
            }
            return;
        }
        if (fast_ok) verify_small(r, N, count, s);
        for (size_t b = 0; b < count; ++b) {
            if (fast_ok && s.ok[b]) {
                out[b] = u128_to_double(s.v[b], s.neg[b] != 0, scale);
                continue;
            }
            for (size_t i = 0; i < L; ++i) s.ycol[i] = s.y[i * kCrtBlock + b];
            out[b] = compose_full(s.ycol.data(), s.frac[b], scale, s.acc.data());
        }
    }
};

void compose_range(const CrtPlan& plan, const u64* in, double* out, size_t N, size_t begin, size_t end,
                   double scale) {
    CrtScratch s(plan.L);
    for (size_t c = begin; c < end;) {
        const size_t r = c / N, n = c % N, count = std::min({kCrtBlock, end - c, N - n});
        plan.compose_block(in + r * plan.L * N + n, N, count, scale, out + c, s);
        c += count;
    }
}

// Split [0, total) over threads when the work is large; falls back to fewer threads (down to
// the calling one) when the system refuses to start more.
void compose_parallel(const CrtPlan& plan, const u64* src, double* dst, size_t N, size_t total, double scale) {
    const size_t work = total * plan.L * plan.L, min_work = (size_t)1 << 21;
    const size_t hw = std::max(1u, std::thread::hardware_concurrency());
    const size_t threads = std::max<size_t>(1, std::min(hw, work / min_work));
    const size_t chunk = (total + threads - 1) / threads;
    std::vector<std::thread> pool;
    size_t started = 1;  // chunk 0 runs on the calling thread
    for (; started < threads; ++started) {
        const size_t begin = std::min(total, started * chunk), end = std::min(total, (started + 1) * chunk);
        try {
            pool.emplace_back(compose_range, std::cref(plan), src, dst, N, begin, end, scale);
        } catch (const std::system_error&) {
            break;
        }
    }
    compose_range(plan, src, dst, N, 0, std::min(total, chunk), scale);
    compose_range(plan, src, dst, N, std::min(total, started * chunk), total, scale);
    for (auto& th : pool) th.join();
}

py::array_t<u64, py::array::c_style> checked_residues(const py::array& residues, size_t L) {
    if (!py::isinstance<py::array_t<u64>>(residues))
        throw py::value_error("crt_compose: residues must have dtype uint64, got " +
                              std::string(py::str(residues.dtype())));
    if (residues.ndim() != 3 || (size_t)residues.shape(1) != L)
        throw py::value_error("crt_compose: residues must have shape (R, " + std::to_string(L) + ", N), got " +
                              std::string(py::str(py::tuple(residues.attr("shape")))));
    return py::array_t<u64, py::array::c_style | py::array::forcecast>::ensure(residues);
}

py::array_t<double> crt_compose(const py::array& residues, const std::vector<u64>& primes, double scale) {
    if (primes.empty()) throw py::value_error("crt_compose: primes must not be empty");
    check_moduli(primes, "crt_compose");
    if (!std::isfinite(scale) || scale == 0.0)
        throw py::value_error("crt_compose: scale must be finite and nonzero, got " + std::to_string(scale));
    const auto in = checked_residues(residues, primes.size());
    const CrtPlan plan(primes);
    const size_t R = (size_t)in.shape(0), N = (size_t)in.shape(2), total = R * N;
    py::array_t<double> out(std::vector<py::ssize_t>{(py::ssize_t)R, (py::ssize_t)N});
    const u64* src = in.data();
    double* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        compose_parallel(plan, src, dst, N, total, scale);
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fhe_gpu ring core: primes, NTT / base-conversion tables, CRT composition (C++).";
    m.def("is_prime", &is_prime, py::arg("q"), "Deterministic Miller-Rabin primality test for 64-bit q.");
    m.def("generate_primes", &generate_primes, py::arg("n"), py::arg("bits"), py::arg("count"),
          py::arg("exclude") = std::vector<u64>{},
          "The first `count` primes q = 1 (mod 2n), 2n < q < 2^61, nearest to 2^bits (see reference).");
    m.def("find_psi", &find_psi, py::arg("q"), py::arg("n"),
          "Smallest-generator primitive 2n-th root of unity mod the prime q (see reference).");
    m.def("shoup", &shoup, py::arg("w"), py::arg("q"), "floor(w * 2^64 / q) for w < q.");
    m.def("pow_mod", &checked_pow_mod, py::arg("a"), py::arg("e"), py::arg("q"), "a^e mod q.");
    m.def("inv_mod", &inv_mod, py::arg("a"), py::arg("q"), "a^-1 mod q (ValueError if not invertible).");
    m.def("ntt_tables", &ntt_tables, py::arg("q"), py::arg("n"),
          "(psi_rev, psi_rev_shoup, ipsi_rev, ipsi_rev_shoup, n_inv, n_inv_shoup), bit-reversed twiddles.");
    m.def("base_conv_tables", &base_conv_tables, py::arg("src"), py::arg("dst"),
          "(hat_inv, hat_inv_shoup, hat_mod[len(dst), len(src)]) of the fast base conversion src -> dst.");
    m.def("crt_compose", &crt_compose, py::arg("residues"), py::arg("primes"), py::arg("scale"),
          "Centered CRT values of uint64 residues (R, L, N), divided by scale: float64 (R, N).");
}
