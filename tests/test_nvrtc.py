"""Every kernel compiles through NVRTC exactly as CupyRuntime compiles it on a GPU.

CupyRuntime hands ``module_source()`` (kernels/*.cu concatenated) and ``module_options()``
to ``cupy.RawModule``, which compiles with NVRTC: unlike nvcc (tests/test_nvcc.py), NVRTC
has no host headers (<cstdint>, ...). NVRTC 12.9 comes from the nvidia-cuda-nvrtc-cu12 wheel
and is called through ``cupy_backends.cuda.libs.nvrtc``, which needs no GPU and no driver.
The options CuPy adds on a device (cupy/cuda/compiler.py: the architecture as -arch=sm_XX,
-ftz=true, --device-as-default-execution-space; cupy/_core/core.pyx: its include folders)
are added here too. Skipped only when the wheel or cupy_backends is not installed.
"""
from __future__ import annotations

import ctypes
import importlib
import importlib.util
import re
import threading
from pathlib import Path

import pytest

from fhe_gpu.ring import _cuda_loader
from fhe_gpu.ring._cuda_loader import kernel_files, module_options, module_source

#: architectures compiled: A100 (sm_80) and H100 / H200 (sm_90)
ARCHS = ["80", "90"]


def _wheel_library() -> Path | None:
    """libnvrtc.so.12 of the nvidia-cuda-nvrtc-cu12 wheel, or None when it is absent."""
    try:
        spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    except ModuleNotFoundError:
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        lib = Path(folder) / "lib" / "libnvrtc.so.12"
        if lib.is_file():
            return lib
    return None


@pytest.fixture(scope="module")
def nvrtc():
    """cupy_backends' NVRTC bindings with the wheel's libnvrtc loaded first (by path, so
    that the soname resolves to it whatever cupy's own search finds)."""
    lib = _wheel_library()
    if lib is None:
        pytest.skip("the nvidia-cuda-nvrtc-cu12 wheel is not installed (pip install "
                    "'.[test]')")
    if importlib.util.find_spec("cupy_backends") is None:
        pytest.skip("cupy_backends (the cupy-cuda12x wheel) is not installed (pip install "
                    "'.[test]')")
    ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    module = importlib.import_module("cupy_backends.cuda.libs.nvrtc")
    assert module.getVersion()[0] == 12, module.getVersion()
    return module


def cupy_options(arch: str) -> tuple[str, ...]:
    """What cupy.RawModule adds to the caller's options on a device of compute capability
    ``arch`` (CuPy 14, NVRTC 12.9: cubin for sm_XX up to 12.1)."""
    opts = ["-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space"]
    try:
        from cupy._core import core
        opts += [f"-I{core._get_header_dir_path()}", *core._get_cccl_include_options()]
    except (ImportError, AttributeError):  # private helpers of another CuPy: not needed here
        pass
    return tuple(opts)


def compile_module(nvrtc, arch: str) -> bytes:
    """The module's cubin, or a failure showing NVRTC's log."""
    prog = nvrtc.createProgram(module_source(), "fhe_gpu_kernels.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, module_options() + cupy_options(arch))
        except nvrtc.NVRTCError as exc:
            pytest.fail(f"NVRTC rejects the kernels for sm_{arch}: {exc}\n"
                        f"{nvrtc.getProgramLog(prog)}")
        log = nvrtc.getProgramLog(prog).strip("\x00 \n")
        assert "warning" not in log.lower(), log
        return nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_kernel_compiles_with_nvrtc(nvrtc, arch):
    cubin = compile_module(nvrtc, arch)
    names = {m for f in kernel_files()
             for m in re.findall(r'extern\s+"C"\s+__global__\s+void\s+(\w+)', f.read_text())}
    assert "key_switch_inner" in names
    for name in names:
        assert name.encode() + b"\x00" in cubin, f"{name} missing from the sm_{arch} cubin"


def test_cupy_runtime_compiles_the_same_source_and_options():
    """CupyRuntime passes exactly module_source() and module_options() to cupy.RawModule."""
    seen = {}

    class FakeCupy:
        @staticmethod
        def RawModule(code, options):  # noqa: N802 (CuPy's name)
            seen.update(code=code, options=options)
            return object()

    rt = _cuda_loader.CupyRuntime.__new__(_cuda_loader.CupyRuntime)
    rt._cupy, rt._modules, rt._lock = FakeCupy, {}, threading.Lock()
    rt._module(0)
    assert seen == {"code": module_source(), "options": module_options()}
