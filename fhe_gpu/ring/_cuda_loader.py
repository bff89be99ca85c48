"""Where the CUDA kernels come from: CuPy RawModule on a GPU, or the CPU emulator.

Both runtimes expose the same small surface to :mod:`fhe_gpu.ring.cuda`:

* ``xp``: the array module (cupy, or numpy in emulation);
* ``launch(name, grid, block, args, shared_mem)``: run kernel ``name`` of ``kernels/*.cu``
  (``args``: arrays of ``xp`` and NumPy integer scalars matching the kernel signature);
* ``asarray(host_array)``: a table uploaded once (the caller caches it);
* ``data_ptr(array)`` and ``synchronize()``.

Kernel sources are found in the installed package (``fhe_gpu/_cuda_src/{kernels,csrc}``,
see setup.py) or, in an editable install, in the repository root beside ``fhe_gpu/``.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError

_PACKAGE = Path(__file__).resolve().parent.parent


def cuda_source_root() -> Path:
    """The folder holding ``kernels/*.cu`` and ``csrc/modarith.h``."""
    for root in (_PACKAGE / "_cuda_src", _PACKAGE.parent):
        if (root / "csrc" / "modarith.h").is_file() and any((root / "kernels").glob("*.cu")):
            return root
    raise BackendUnavailableError(
        f"backend 'cuda': kernel sources not found under {_PACKAGE / '_cuda_src'} "
        f"or {_PACKAGE.parent} (expected kernels/*.cu and csrc/modarith.h)")


def kernel_files() -> list[Path]:
    """Every kernels/*.cu file, sorted."""
    return sorted((cuda_source_root() / "kernels").glob("*.cu"))


def module_source() -> str:
    """The source of the one RawModule holding every kernel: kernels/*.cu concatenated."""
    return "\n".join(f.read_text() for f in kernel_files())


def module_options() -> tuple[str, ...]:
    """The options CupyRuntime compiles :func:`module_source` with (NVRTC, through
    ``cupy.RawModule``): csrc/ on the include path, C++17. CuPy adds the device's
    architecture and its own defaults (tests/test_nvrtc.py compiles with both)."""
    return (f"-I{cuda_source_root() / 'csrc'}", "--std=c++17")


class EmulatorRuntime:
    """Kernels run on the CPU by ``fhe_gpu.ring._cuda_emu``; arrays are NumPy arrays."""

    xp = np
    device_name = "CUDA emulator (CPU)"

    def __init__(self):
        try:
            from . import _cuda_emu
        except ImportError as exc:
            raise BackendUnavailableError(
                "backend 'cuda' in emulation (FHE_GPU_CUDA_EMULATE=1) needs the compiled module "
                f"fhe_gpu.ring._cuda_emu, which failed to import: {exc}") from None
        self._emu = _cuda_emu
        self._functions: dict = {}

    def launch(self, name, grid, block, args, shared_mem=0):
        fn = self._functions.get(name)
        if fn is None:
            fn = self._functions[name] = self._emu.get_function(name)
        fn(grid, block, args, shared_mem=shared_mem)

    @staticmethod
    def asarray(host):
        return np.ascontiguousarray(host)

    @staticmethod
    def data_ptr(a) -> int:
        return a.ctypes.data

    def synchronize(self):
        """Launches are synchronous in emulation."""


class CupyRuntime:
    """Kernels compiled by NVRTC through ``cupy.RawModule``, lazily, once per device."""

    def __init__(self):
        try:
            import cupy
        except ImportError as exc:
            raise BackendUnavailableError(
                "backend 'cuda' needs CuPy (pip install cupy-cuda12x) and a CUDA GPU; "
                f"cupy is not importable: {exc}. Set FHE_GPU_CUDA_EMULATE=1 to run the same "
                "kernels on the CPU emulator.") from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError without a driver
            raise BackendUnavailableError(
                f"backend 'cuda': no usable CUDA driver or GPU ({exc})") from None
        if count < 1:
            raise BackendUnavailableError("backend 'cuda': CuPy sees no CUDA GPU")
        self.xp = self._cupy = cupy
        self._modules: dict[int, object] = {}
        self._functions: dict[tuple[int, str], object] = {}
        self._lock = threading.Lock()
        self._use_async_pool()
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        self.device_name = props["name"].decode() if isinstance(props["name"], bytes) \
            else str(props["name"])

    def _use_async_pool(self):
        """Allocate from the stream-ordered pool where the device supports it.

        This sets CuPy's process-wide allocator (the backend is created once per process).
        """
        cp = self._cupy
        try:
            cp.cuda.set_allocator(cp.cuda.MemoryAsyncPool().malloc)
        except Exception:  # old driver/runtime: keep CuPy's default MemoryPool
            cp.cuda.set_allocator(cp.get_default_memory_pool().malloc)

    def _module(self, device: int):
        with self._lock:
            mod = self._modules.get(device)
            if mod is None:
                mod = self._cupy.RawModule(code=module_source(), options=module_options())
                self._modules[device] = mod
            return mod

    def launch(self, name, grid, block, args, shared_mem=0):
        device = self._cupy.cuda.Device().id
        fn = self._functions.get((device, name))
        if fn is None:
            fn = self._functions[(device, name)] = self._module(device).get_function(name)
        fn(grid, block, args, shared_mem=shared_mem)

    def asarray(self, host):
        return self._cupy.asarray(np.ascontiguousarray(host))

    @staticmethod
    def data_ptr(a) -> int:
        return a.data.ptr

    def synchronize(self):
        self._cupy.cuda.Device().synchronize()
