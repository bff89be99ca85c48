"""The layers import only downward: engine -> circuits -> ckks -> rlwe -> ring (DESIGN §1);
circuits reach nothing below ckks.

Only fhe_gpu.ring imports numba, cupy, llvmlite or the compiled csrc/ modules.
"""
import ast
import pathlib

import pytest


PKG = pathlib.Path(__file__).resolve().parents[1] / "fhe_gpu"
RANK = {"ring": 0, "rlwe": 1, "ckks": 2, "serialize": 2, "circuits": 3, "engine": 4,
        "serving": 5}
#: layers a circuit may not reach past ckks into: circuits use Evaluator calls only
BELOW_CKKS = ("ring", "rlwe", "serialize")
ACCEL = ("numba", "cupy", "llvmlite")


def _imports(rel: tuple, source: str):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                module = ".".join(["fhe_gpu"] + base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _layer(name: str):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "fhe_gpu" and parts[1] in RANK else None


def violations(rel: tuple, source: str) -> list[str]:
    """Import-order violations of the module at PKG/rel with this source."""
    own = _layer("fhe_gpu." + ".".join(rel))
    out = []
    for name in _imports(rel, source):
        target = _layer(name)
        if own and target and (RANK[target] > RANK[own] or {own, target} == {"ckks", "serialize"}
                               and own != target):
            out.append(f"layer {own} imports {name} (layer {target})")
        if own == "circuits" and target in BELOW_CKKS:
            out.append(f"layer circuits imports {name}: circuits use ckks.Evaluator only")
        if own != "ring" and name.split(".")[0] in ACCEL:
            out.append(f"layer {own} imports {name}: only fhe_gpu.ring may")
        compiled = name.rsplit(".", 1)[-1] in ("_core", "_cuda_emu")
        if own != "ring" and compiled:
            out.append(f"layer {own} imports the compiled module {name}: only ring may")
    return out


FILES = sorted(PKG.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    rel = path.relative_to(PKG).parts
    assert violations(rel, path.read_text()) == []


@pytest.mark.parametrize("rel,source", [
    (("ring", "x.py"), "from ..rlwe import keys"),
    (("rlwe", "x.py"), "import fhe_gpu.ckks.evaluator"),
    (("ckks", "x.py"), "from .. import engine"),
    (("ckks", "x.py"), "import numba"),
    (("rlwe", "x.py"), "from ..ring import _core"),
    (("ckks", "x.py"), "from ..serialize import codec"),
    (("circuits", "x.py"), "from ..rlwe import keyswitch"),
    (("circuits", "x.py"), "from ..ring import get_backend"),
    (("circuits", "x.py"), "from .. import engine"),
])
def test_checker_flags_upward_imports(rel, source):
    assert violations(rel, source)


def test_checker_allows_downward_imports():
    assert violations(("ckks", "x.py"), "from ..rlwe import keys\nfrom ..ring import basis") == []
    assert violations(("ring", "cpu.py"), "import numba\nfrom . import _core") == []
