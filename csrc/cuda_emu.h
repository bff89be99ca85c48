// cuda_emu.h — run CUDA kernels (kernels/*.cu) on the CPU, as host C++17.
//
// Include this header before a .cu file and compile it with g++/clang++. It provides:
//   * __global__, __device__, __host__, __forceinline__, __launch_bounds__ as host no-ops;
//   * threadIdx / blockIdx / blockDim / gridDim, one value per emulated thread;
//   * __shared__ memory per block: a static `__shared__ T x[N];` becomes a block-scope
//     thread_local array, and the dynamic `extern __shared__ uint64_t smem[];` refers to the
//     thread_local buffer ::smem below (the one name and type dynamic shared memory may use
//     here), sized kMaxSharedBytes like CUDA's default per-block limit;
//   * __syncthreads() as a real barrier across the threads of one block;
//   * __umul64hi through unsigned __int128, atomicAdd through the compiler's atomics.
//
// Execution model. The blocks of a launch are spread over a pool of OS threads; each OS
// thread runs one block at a time and the threads of that block as cooperatively scheduled
// fibers (ucontext) on it, so thread_local state is per block. Every fiber runs until it
// reaches __syncthreads() or returns; when each fiber has done so, the next round resumes
// them in threadIdx order. Thread 0 therefore always runs ahead of the others up to the
// barrier: a missing __syncthreads() makes it read shared memory the others have not yet
// written (dynamic shared memory is poisoned at every block start), so the bug shows.
// A round in which some threads wait at a barrier while others have exited is reported as
// barrier divergence, and so is a thread that calls __syncthreads() in a block whose
// thread 0 exited without one (such blocks run threads 1.. as plain calls, no fibers).
// The pool has FHE_GPU_EMU_THREADS OS threads (default: the hardware threads), the launching
// thread included. Races that this fixed schedule does not expose go unnoticed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#define FHE_CUDA_EMULATOR 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ thread_local

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};

namespace cuda_emu {

constexpr std::size_t kMaxSharedBytes = 48 * 1024;     // dynamic shared memory per block
constexpr unsigned int kMaxBlockThreads = 1024;        // threads per block, as on the GPU
constexpr std::size_t kFiberStackBytes = 64 * 1024;    // stack of one emulated thread

// One kernel launch: the kernel with its arguments bound, and the launch shape.
struct Launch {
    std::function<void()> body;
    dim3 grid, block;
    std::size_t shared_bytes;
};

// Runs every block of `launch` (blocking); throws std::runtime_error on a launch that CUDA
// would reject or on barrier divergence. Safe to call without the Python GIL.
void run(const Launch& launch);

// Barrier of the current block (the implementation behind __syncthreads()).
void block_barrier();

}  // namespace cuda_emu

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
alignas(16) inline thread_local uint64_t smem[cuda_emu::kMaxSharedBytes / sizeof(uint64_t)];

inline void __syncthreads() { cuda_emu::block_barrier(); }

inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);  // floor(a·b / 2^64)
}

template <class T>
inline T atomicAdd(T* address, T value) {
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);  // old *address
}
