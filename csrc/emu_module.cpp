// emu_module.cpp — fhe_gpu.ring._cuda_emu: the CUDA kernels of kernels/*.cu run on the CPU.
//
// The kernel files are compiled here as host C++ through cuda_emu.h (see there for the
// execution model). Python gets a CuPy-RawModule-like surface:
//
//     f = _cuda_emu.get_function("ntt_fwd_col")
//     f(grid, block, args, shared_mem=0)
//
// grid and block are an int or a tuple of up to three ints; args is a tuple matched against
// the kernel's C++ signature, which the registry below captures by template deduction:
// a pointer parameter takes a C-contiguous NumPy array whose item size is the pointee's
// (and which is writeable unless the pointee is const); an integer parameter takes a Python
// or NumPy integer. Arguments are converted with the GIL held, then the GIL is released for
// the launch, which blocks until every block has run.
#include "cuda_emu.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "elementwise.cu"
#include "keyswitch.cu"
#include "ntt.cu"

namespace py = pybind11;

// Emulator self-test (not a kernels/*.cu kernel): thread t of block b writes t + 1 to dynamic
// and to static shared memory, waits at the barrier and reads its neighbours' values, so
// out[b·T + t] = ((t + 1) % T + 1) + 1000·((t + 2) % T + 1) exactly when __syncthreads() is
// a barrier. Thread `exits` (-1: none) returns before the barrier: barrier divergence.
extern "C" __global__ void emu_selftest_barrier(long long* out, long long exits) {
    __shared__ long long tile[1024];
    unsigned t = threadIdx.x, threads = blockDim.x;
    smem[t] = t + 1;
    tile[t] = t + 1;
    if ((long long)t == exits) return;
    __syncthreads();
    long long right = (long long)smem[(t + 1) % threads], next = tile[(t + 2) % threads];
    out[blockIdx.x * threads + t] = right + 1000 * next;
}

namespace cuda_emu {
namespace {

// ----------------------------------------------------------------------------- fibers

// A fiber stack with a guard page below it (an overflow faults instead of corrupting).
class Stack {
public:
    Stack() {
        page_ = (std::size_t)sysconf(_SC_PAGESIZE);
        bytes_ = kFiberStackBytes + page_;
        base_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base_ == MAP_FAILED) throw std::bad_alloc();
        mprotect(base_, page_, PROT_NONE);
    }
    ~Stack() { munmap(base_, bytes_); }
    Stack(const Stack&) = delete;
    Stack& operator=(const Stack&) = delete;
    void* top_region() const { return (char*)base_ + page_; }

private:
    void* base_;
    std::size_t bytes_, page_;
};

struct Fiber {
    ucontext_t ctx;
    Stack stack;
    bool done = false;
};

// Runs the blocks handed to one OS thread; the threads of a block are fibers.
class BlockRunner {
public:
    // Runs block `bid` of `launch`; returns an error message, empty on success.
    std::string run_block(const Launch& launch, uint3 bid);
    void barrier();

private:
    static void fiber_main();
    void start(unsigned t);
    bool resume(unsigned t);  // true when thread t has returned
    void set_thread(unsigned t);
    std::string run_as_fibers(unsigned threads);

    ucontext_t scheduler_;
    std::vector<std::unique_ptr<Fiber>> fibers_;  // never moved while suspended
    const Launch* launch_ = nullptr;
    unsigned current_ = 0;
    bool direct_ = false;    // threads run as plain calls: no barrier allowed
    bool diverged_ = false;  // a thread reached a barrier in direct mode
};

thread_local BlockRunner* t_runner = nullptr;

void BlockRunner::fiber_main() {
    BlockRunner* self = t_runner;
    self->launch_->body();
    self->fibers_[self->current_]->done = true;
}  // returns through uc_link to the scheduler

void BlockRunner::set_thread(unsigned t) {
    unsigned bx = launch_->block.x, by = launch_->block.y;
    threadIdx = uint3{t % bx, (t / bx) % by, t / (bx * by)};
}

void BlockRunner::start(unsigned t) {
    Fiber& f = *fibers_[t];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.top_region();
    f.ctx.uc_stack.ss_size = kFiberStackBytes;
    f.ctx.uc_link = &scheduler_;
    makecontext(&f.ctx, fiber_main, 0);
    f.done = false;
}

bool BlockRunner::resume(unsigned t) {
    current_ = t;
    set_thread(t);
    swapcontext(&scheduler_, &fibers_[t]->ctx);
    return fibers_[t]->done;
}

void BlockRunner::barrier() {
    if (direct_) {
        diverged_ = true;
        return;
    }
    swapcontext(&fibers_[current_]->ctx, &scheduler_);
}

std::string BlockRunner::run_block(const Launch& launch, uint3 bid) {
    unsigned threads = launch.block.x * launch.block.y * launch.block.z;
    while (fibers_.size() < threads) fibers_.push_back(std::make_unique<Fiber>());
    launch_ = &launch;
    blockIdx = bid;
    blockDim = launch.block;
    gridDim = launch.grid;
    std::memset(smem, 0xA5, launch.shared_bytes);  // poison: shared memory starts undefined
    start(0);
    if (!resume(0)) return run_as_fibers(threads);
    direct_ = true;  // thread 0 returned without a barrier: so must every other thread
    diverged_ = false;
    for (unsigned t = 1; t < threads && !diverged_; ++t) {
        set_thread(t);
        launch.body();
    }
    direct_ = false;
    return diverged_ ? "__syncthreads() reached by some threads of a block whose thread 0 "
                       "exited without it (barrier divergence)"
                     : "";
}

std::string BlockRunner::run_as_fibers(unsigned threads) {
    for (unsigned t = 1; t < threads; ++t) {
        start(t);
        resume(t);
    }
    for (;;) {
        unsigned done = 0;
        for (unsigned t = 0; t < threads; ++t) done += fibers_[t]->done ? 1u : 0u;
        if (done == threads) return "";
        if (done != 0)
            return "barrier divergence: " + std::to_string(threads - done) + " of " +
                   std::to_string(threads) + " threads wait at __syncthreads() while the others "
                   "have exited";
        for (unsigned t = 0; t < threads; ++t) resume(t);
    }
}

// ----------------------------------------------------------------------------- the pool

struct Job {
    const Launch* launch;
    unsigned long long blocks;
    std::atomic<unsigned long long> next{0};
    std::mutex error_mu;
    std::string error;
};

void work_on(Job& job) {
    thread_local BlockRunner runner;
    t_runner = &runner;
    const dim3 grid = job.launch->grid;
    for (;;) {
        unsigned long long b = job.next.fetch_add(1);
        if (b >= job.blocks) return;
        uint3 bid{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                  (unsigned)(b / grid.x / grid.y)};
        std::string err = runner.run_block(*job.launch, bid);
        if (!err.empty()) {
            std::lock_guard<std::mutex> lock(job.error_mu);
            if (job.error.empty()) job.error = err;
            job.next = job.blocks;  // stop handing out blocks
        }
    }
}

// OS threads that run blocks; the launching thread works too. One launch at a time.
// Never destroyed (worker threads block on it until the process exits).
class Pool {
public:
    explicit Pool(unsigned workers) {
        for (unsigned i = 0; i < workers; ++i) std::thread([this] { loop(); }).detach();
        workers_ = workers;
    }

    void run(Job& job) {
        std::lock_guard<std::mutex> one_launch(launch_mu_);
        {
            std::lock_guard<std::mutex> lock(mu_);
            job_ = &job;
            busy_ = workers_;
            ++generation_;
        }
        wake_.notify_all();
        work_on(job);
        std::unique_lock<std::mutex> lock(mu_);
        idle_.wait(lock, [this] { return busy_ == 0; });
        job_ = nullptr;
    }

private:
    void loop() {
        unsigned long long seen = 0;
        for (;;) {
            Job* job;
            {
                std::unique_lock<std::mutex> lock(mu_);
                wake_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                job = job_;
            }
            work_on(*job);
            std::lock_guard<std::mutex> lock(mu_);
            if (--busy_ == 0) idle_.notify_one();
        }
    }

    std::mutex launch_mu_, mu_;
    std::condition_variable wake_, idle_;
    Job* job_ = nullptr;
    unsigned workers_ = 0, busy_ = 0;
    unsigned long long generation_ = 0;
};

unsigned pool_threads() {
    const char* env = std::getenv("FHE_GPU_EMU_THREADS");
    long v = env ? std::strtol(env, nullptr, 10) : 0;
    unsigned hw = std::thread::hardware_concurrency();
    return v > 0 ? (unsigned)v : (hw ? hw : 1u);
}

// The pool of this process (a forked child makes its own: threads do not survive fork).
Pool& pool() {
    static std::mutex mu;
    static Pool* instance = nullptr;
    static pid_t owner = 0;
    std::lock_guard<std::mutex> lock(mu);
    if (!instance || owner != getpid()) {
        instance = new Pool(pool_threads() - 1);
        owner = getpid();
    }
    return *instance;
}

void check_shape(const Launch& launch) {
    const dim3 g = launch.grid, b = launch.block;
    if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z)
        throw std::invalid_argument("grid and block dimensions must be positive");
    if (g.x > 2147483647u || g.y > 65535u || g.z > 65535u)
        throw std::invalid_argument("grid exceeds (2^31 - 1, 65535, 65535)");
    if ((unsigned long long)b.x * b.y * b.z > kMaxBlockThreads || b.z > 64)
        throw std::invalid_argument("block exceeds 1024 threads (or z > 64)");
    if (launch.shared_bytes > kMaxSharedBytes)
        throw std::invalid_argument("dynamic shared memory " + std::to_string(launch.shared_bytes) +
                                    " exceeds " + std::to_string(kMaxSharedBytes) + " bytes");
}

}  // namespace

void block_barrier() { t_runner->barrier(); }

void run(const Launch& launch) {
    check_shape(launch);
    Job job;
    job.launch = &launch;
    job.blocks = (unsigned long long)launch.grid.x * launch.grid.y * launch.grid.z;
    if (job.blocks == 1) work_on(job);
    else pool().run(job);
    if (!job.error.empty()) throw std::runtime_error(job.error);
}

}  // namespace cuda_emu

// ----------------------------------------------------------------------------- marshalling

namespace {

using Body = std::function<void()>;

struct Kernel {
    std::string name;
    std::size_t arity;
    std::function<Body(const py::tuple&)> bind;  // converts the args (GIL held)
};

template <class T>
T convert_arg(py::handle h, std::size_t i, const std::string& kernel) {
    auto where = [&] { return kernel + " argument " + std::to_string(i) + ": "; };
    if constexpr (std::is_pointer_v<T>) {
        using Pointee = std::remove_pointer_t<T>;
        if (!py::isinstance<py::array>(h)) throw py::type_error(where() + "expected a NumPy array");
        auto arr = py::reinterpret_borrow<py::array>(h);
        if ((std::size_t)arr.itemsize() != sizeof(Pointee))
            throw py::type_error(where() + "item size " + std::to_string(arr.itemsize()) +
                                 " != " + std::to_string(sizeof(Pointee)));
        if (!(arr.flags() & py::array::c_style))
            throw py::value_error(where() + "array is not C-contiguous");
        if constexpr (std::is_const_v<Pointee>) {
            return static_cast<T>(arr.data());
        } else {
            if (!arr.writeable()) throw py::value_error(where() + "array is read-only");
            return static_cast<T>(arr.mutable_data());
        }
    } else {
        static_assert(std::is_integral_v<T>, "kernel parameters are pointers or integers");
        try {
            return py::cast<T>(h);
        } catch (const py::cast_error&) {
            throw py::type_error(where() + "expected an integer");
        }
    }
}

template <class... A, std::size_t... I>
Body bind_args(void (*fn)(A...), const std::string& name, const py::tuple& args,
               std::index_sequence<I...>) {
    std::tuple<A...> values{convert_arg<A>(args[I], I, name)...};
    return [fn, values] { std::apply(fn, values); };
}

template <class... A>
Kernel make_kernel(const char* name, void (*fn)(A...)) {
    std::string n = name;
    return Kernel{n, sizeof...(A), [fn, n](const py::tuple& args) {
                      if (args.size() != sizeof...(A))
                          throw py::value_error(n + " takes " + std::to_string(sizeof...(A)) +
                                                " arguments, got " + std::to_string(args.size()));
                      return bind_args(fn, n, args, std::index_sequence_for<A...>{});
                  }};
}

#define FHE_EMU_KERNEL(fn) make_kernel(#fn, &fn)

// Every extern "C" __global__ function of kernels/*.cu (tests check the list is complete),
// and the emulator's self-test.
const std::vector<Kernel>& registry() {
    static const std::vector<Kernel> all = {
        FHE_EMU_KERNEL(ntt_fwd_col),     FHE_EMU_KERNEL(ntt_fwd_chunk),
        FHE_EMU_KERNEL(intt_chunk),      FHE_EMU_KERNEL(intt_col),
        FHE_EMU_KERNEL(mod_up_col),      FHE_EMU_KERNEL(mod_up_chunk),
        FHE_EMU_KERNEL(mod_down_col),    FHE_EMU_KERNEL(mod_down_chunk),
        FHE_EMU_KERNEL(ew_add),          FHE_EMU_KERNEL(ew_sub),
        FHE_EMU_KERNEL(ew_mul),          FHE_EMU_KERNEL(ew_mul_add),
        FHE_EMU_KERNEL(ew_neg),          FHE_EMU_KERNEL(ew_mul_scalar),
        FHE_EMU_KERNEL(ew_automorphism), FHE_EMU_KERNEL(key_switch_inner),
        FHE_EMU_KERNEL(emu_selftest_barrier),
    };
    return all;
}

// An int or a sequence of 1 to 3 ints, each in [1, 2^31 - 1] (check_shape applies CUDA's limits).
dim3 to_dim3(py::handle h, const std::string& what) {
    std::vector<long long> v;
    if (py::isinstance<py::int_>(h)) v.push_back(h.cast<long long>());
    else v = h.cast<std::vector<long long>>();
    if (v.empty() || v.size() > 3) throw py::value_error(what + " needs 1 to 3 dimensions");
    for (long long x : v)
        if (x < 1 || x > 2147483647LL) throw py::value_error(what + " dimension out of range");
    v.resize(3, 1);
    return dim3((unsigned)v[0], (unsigned)v[1], (unsigned)v[2]);
}

void call(const Kernel& k, py::handle grid, py::handle block, const py::tuple& args,
          std::size_t shared_mem) {
    cuda_emu::Launch launch{k.bind(args), to_dim3(grid, "grid"), to_dim3(block, "block"),
                            shared_mem};
    py::gil_scoped_release nogil;
    cuda_emu::run(launch);
}

}  // namespace

PYBIND11_MODULE(_cuda_emu, m) {
    m.doc() = "kernels/*.cu compiled for the CPU CUDA emulator (csrc/cuda_emu.h)";
    py::class_<Kernel>(m, "Function")
        .def_readonly("name", &Kernel::name)
        .def_readonly("num_args", &Kernel::arity)
        .def("__call__", &call, py::arg("grid"), py::arg("block"), py::arg("args"),
             py::arg("shared_mem") = 0)
        .def("__repr__", [](const Kernel& k) { return "<_cuda_emu.Function " + k.name + ">"; });
    m.def(
        "get_function",
        [](const std::string& name) -> const Kernel& {
            for (const Kernel& k : registry())
                if (k.name == name) return k;
            throw py::key_error("no kernel named " + name);
        },
        py::return_value_policy::reference, py::arg("name"));
    m.def("kernel_names", [] {
        std::vector<std::string> names;
        for (const Kernel& k : registry()) names.push_back(k.name);
        return names;
    });
    m.attr("MAX_SHARED_BYTES") = cuda_emu::kMaxSharedBytes;
}
