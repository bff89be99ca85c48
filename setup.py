"""Build script for fhe_gpu: the compiled extensions and the shipped CUDA sources.

Project metadata lives in pyproject.toml; this file only declares what setuptools cannot
read from there: the extension modules and the build_py hook below.

CUDA sources in an installed package
------------------------------------
``kernels/*.cu`` and ``csrc/*.h`` are copied into the package at build time, keeping the
repository layout under ``fhe_gpu/_cuda_src/``:

    <site-packages>/fhe_gpu/_cuda_src/kernels/<name>.cu
    <site-packages>/fhe_gpu/_cuda_src/csrc/<name>.h

so a kernel's ``#include "modarith.h"`` resolves with ``-I <root>/csrc`` exactly as in the
repository. An editable install (``pip install -e .``) and ``setup.py build_ext --inplace``
do NOT copy anything: there the package is the source tree, ``fhe_gpu/_cuda_src`` does not
exist and run-time loaders must fall back to the repository root (the parent directory of
the ``fhe_gpu`` package), which has the same ``kernels/`` and ``csrc/`` layout.
"""
import sys
from pathlib import Path

from Cython.Build import cythonize
from pybind11.setup_helpers import Pybind11Extension
from setuptools import Extension
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
CUDA_SRC_PACKAGE_DIR = Path("fhe_gpu", "_cuda_src")
CUDA_SRC_PATTERNS = [("kernels", "*.cu"), ("csrc", "*.h")]
# Non-Python sources an sdist must carry so that a wheel built from it is complete.
SDIST_EXTRA_PATTERNS = ["kernels/*.cu", "csrc/*.h", "csrc/*.cpp", "fhe_gpu/**/*.pyx", "fhe_gpu/**/*.pxd"]

UNIX_ARGS = [] if sys.platform == "win32" else ["-pthread"]

# ---------------------------------------------------------------------------------------
# EXTENSIONS: every compiled module of the package. Append new extensions here (the Cython
# wire codec and the C++ CUDA emulator module are added by their owners).
# ---------------------------------------------------------------------------------------
EXTENSIONS = [
    Pybind11Extension(
        "fhe_gpu.ring._core",
        ["csrc/core.cpp"],
        include_dirs=["csrc"],
        depends=["csrc/modarith.h"],
        cxx_std=17,
        extra_compile_args=["-O3"] + UNIX_ARGS,
        extra_link_args=UNIX_ARGS,
    ),
    # The CUDA emulator: kernels/*.cu compiled as host C++ through csrc/cuda_emu.h.
    Pybind11Extension(
        "fhe_gpu.ring._cuda_emu",
        ["csrc/emu_module.cpp"],
        include_dirs=["csrc", "kernels"],
        depends=["csrc/cuda_emu.h", "csrc/modarith.h"] + sorted(
            str(p.relative_to(ROOT)) for p in (ROOT / "kernels").glob("*.cu")),
        cxx_std=17,
        extra_compile_args=["-O2", "-Wno-unknown-pragmas"] + UNIX_ARGS,  # #pragma unroll
        extra_link_args=UNIX_ARGS,
    ),
]


# The Cython wire codec (fhe_gpu/serialize/_codec.pyx), compiled as C++.
EXTENSIONS += cythonize(
    [Extension("fhe_gpu.serialize._codec", ["fhe_gpu/serialize/_codec.pyx"], language="c++",
               extra_compile_args=["-O3"])],
    compiler_directives={"language_level": "3"},
)


def cuda_sources():
    """(source path, path relative to the package build dir) of every shipped CUDA source."""
    out = []
    for folder, pattern in CUDA_SRC_PATTERNS:
        for src in sorted((ROOT / folder).glob(pattern)):
            out.append((src, CUDA_SRC_PACKAGE_DIR / folder / src.name))
    return out


class BuildPyWithCudaSources(build_py):
    """build_py that also copies kernels/*.cu and csrc/*.h into fhe_gpu/_cuda_src/."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for src, rel in cuda_sources():
            target = Path(self.build_lib, rel)
            self.mkpath(str(target.parent))
            self.copy_file(str(src), str(target), preserve_mode=False)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [str(Path(self.build_lib, rel)) for _, rel in cuda_sources()]


class SdistWithSources(sdist):
    """sdist that also ships SDIST_EXTRA_PATTERNS (so no MANIFEST.in is needed for them)."""

    def make_distribution(self):
        for pattern in SDIST_EXTRA_PATTERNS:
            for path in sorted(ROOT.glob(pattern)):
                self.filelist.append(path.relative_to(ROOT).as_posix())
        self.filelist.remove_duplicates()
        super().make_distribution()


setup(
    packages=find_packages(include=["fhe_gpu", "fhe_gpu.*"]),
    ext_modules=EXTENSIONS,
    cmdclass={"build_py": BuildPyWithCudaSources, "sdist": SdistWithSources},
    zip_safe=False,
)
