"""Every kernels/*.cu compiles for sm_90 with nvcc, warnings as errors (skipped without nvcc)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from fhe_gpu.ring._cuda_loader import cuda_source_root, kernel_files, module_source

NVCC = shutil.which("nvcc")

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH")


def nvcc_ptx(source, out_dir):
    """Runs nvcc -ptx for sm_90 with warnings as errors; returns the PTX path."""
    ptx = out_dir / (source.stem + ".ptx")
    cmd = [NVCC, "-ptx", "-arch=sm_90", "--std=c++17", "-I", str(cuda_source_root() / "csrc"),
           "--Werror", "all-warnings", "-o", str(ptx), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stderr
    assert ptx.stat().st_size > 0
    return ptx


@pytest.mark.parametrize("source", kernel_files(), ids=lambda p: p.name)
def test_kernel_compiles_to_ptx_without_warnings(source, tmp_path):
    nvcc_ptx(source, tmp_path)


def test_all_kernels_compile_as_one_module(tmp_path):
    """The CuPy backend compiles every file as one RawModule source: no clashing names."""
    source = tmp_path / "all_kernels.cu"
    source.write_text(module_source())
    ptx = nvcc_ptx(source, tmp_path).read_text()
    for f in kernel_files():
        for name in re.findall(r'extern\s+"C"\s+__global__\s+void\s+(\w+)', f.read_text()):
            assert f".entry {name}(" in ptx, name
