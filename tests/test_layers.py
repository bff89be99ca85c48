"""The layers import only downward: engine -> circuits -> ckks -> rlwe -> ring (DESIGN §1);
circuits reach nothing below ckks.

Only fhe_gpu.ring imports numba, cupy, llvmlite or the compiled csrc/ modules.

Below that check: the engine's layer building blocks (fhe_gpu.engine.layers: matvec,
polyval) refuse inputs they would evaluate wrongly, before any homomorphic work.
"""
import ast
import pathlib
from unittest import mock

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu import engine
from conftest import make_world, small_params

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


# ---------------------------------------------------------------- engine.layers: refusals
EV_OPS = ("mul", "mul_to_scale", "add", "rotate", "rotate_many", "rescale", "drop_level")


@pytest.fixture(scope="module")
def cpu_world():
    return make_world(small_params("cpu"), "cpu")


def spy_ops(monkeypatch, ev):
    """Wrap the Evaluator's ciphertext operations; returns a function counting their calls."""
    spies = []
    for name in EV_OPS:
        spy = mock.Mock(wraps=getattr(ev, name))
        monkeypatch.setattr(ev, name, spy)
        spies.append(spy)
    return lambda: sum(s.call_count for s in spies)


def test_matvec_refuses_d_not_dividing_slots(cpu_world, monkeypatch):
    w = cpu_world
    assert w.params.slots == 512
    calls = spy_ops(monkeypatch, w.ev)
    encoder = mock.Mock(wraps=w.encoder)
    ct = w.encrypt(w.uniform())
    with pytest.raises(fg.ParameterError, match=r"d = 24 .*512 slots"):
        engine.matvec(w.ev, encoder, ct, np.eye(24))
    with pytest.raises(fg.ParameterError, match="24.*512"):
        engine.replicate(np.ones(24), 512)
    assert calls() == 0 and encoder.encode.call_count == 0


def test_matvec_refuses_d384_at_8192_slots_before_work(monkeypatch):
    params = fg.Parameters(log_n=14, q_bits=[50, 30], p_bits=[60], scale_bits=30,
                           security=None)
    ctx = fg.Context(params, backend="cpu")
    ct = fg.Ciphertext(np.zeros((1, 2, 2, params.n), np.uint64), 1, 2.0 ** 30, ctx)
    ev = fg.Evaluator(ctx)
    calls = spy_ops(monkeypatch, ev)
    encoder = mock.Mock()
    with pytest.raises(fg.ParameterError, match=r"d = 384 .*8192 slots.*d = 512"):
        engine.matvec(ev, encoder, ct, np.zeros((384, 384)))
    assert calls() == 0 and not encoder.method_calls


def test_matvec_is_right_in_every_slot(cpu_world):
    w, d = cpu_world, 16
    ev = fg.Evaluator(w.ctx, w.kg.evaluation_keys(rotations=engine.matvec_rotations(d)))
    x = w.rng.uniform(-1, 1, (2, d))
    m = w.rng.uniform(-1, 1, (d, d)) / np.sqrt(d)
    ct = w.encrypt(engine.replicate(x, w.params.slots))
    y = engine.matvec(ev, w.encoder, ct, m)
    want = engine.replicate(x @ m.T, w.params.slots)
    assert np.abs(w.decrypt(y).real - want).max() < 1e-4
    assert (y.level, y.scale, y.key_id) == (ct.level - 1, ct.scale, ct.key_id)
    assert y.value_bound == pytest.approx(np.abs(m).sum(axis=1).max() * ct.value_bound)


@pytest.mark.parametrize("matrix,match", [
    (np.full((4, 4), np.nan), "finite"),
    (np.ones((4, 8)), "square"),
    (np.ones(4), "square"),
    (np.ones((2, 4, 4)), "square"),
    (np.zeros((0, 0)), "square"),
    (np.eye(4) * 1j, "real"),
    ([[1, 2], [3]], "real"),
])
def test_matvec_refuses_bad_matrices(cpu_world, matrix, match):
    w = cpu_world
    with pytest.raises(fg.ParameterError, match=match):
        engine.matvec(w.ev, w.encoder, w.encrypt(w.uniform()), matrix)


def test_matvec_refuses_bad_ciphertexts_and_missing_keys(cpu_world, monkeypatch):
    w = cpu_world
    calls = spy_ops(monkeypatch, w.ev)
    with pytest.raises(fg.ParameterError, match="Ciphertext, got Plaintext"):
        engine.matvec(w.ev, w.encoder, w.encoder.encode(w.uniform()), np.eye(4))
    with pytest.raises(fg.LevelError, match="level 0"):
        engine.matvec(w.ev, w.encoder, w.encrypt(w.uniform(), level=0), np.eye(4))
    with pytest.raises(fg.KeyMissingError, match="rotation 4"):
        engine.matvec(w.ev, w.encoder, w.encrypt(w.uniform()), np.eye(16))
    with pytest.raises(fg.KeyMissingError, match="evk=None"):
        engine.matvec(fg.Evaluator(w.ctx), w.encoder, w.encrypt(w.uniform()), np.eye(4))
    assert calls() == 0


# ---------------------------------------------------------------- engine.layers: polyval
COEFFS = [0.5, 0.25, -0.05, 0.01]


def test_polyval_at_bound_4_evaluates(cpu_world):
    w = cpu_world
    x = w.rng.uniform(-4, 4, w.params.slots)
    ct = w.encrypt(x)
    y = engine.polyval(w.ev, ct, COEFFS, bound=4)
    assert np.abs(w.decrypt(y).real - np.polyval(COEFFS[::-1], x)).max() < 1e-4
    assert y.level == ct.level - engine.polyval_depth(3) == 0
    assert y.scale == ct.scale
    assert y.value_bound <= (0.5 + 0.25 * 4 + 0.05 * 16 + 0.01 * 64) * (1 + 1e-12)


def test_polyval_at_bound_4_overflow_refused_before_work(monkeypatch):
    params = fg.Parameters(log_n=10, q_bits=[33, 30, 30, 30], p_bits=[60], scale_bits=30,
                           security=None)
    ctx = fg.Context(params, backend="cpu")
    kg = fg.KeyGenerator(ctx, seed=b"\x02" * 32)
    x = np.random.default_rng(3).uniform(-4, 4, params.slots)
    ct = fg.Encryptor(ctx, kg.secret_key).encrypt(fg.Encoder(ctx).encode(x))
    ev = fg.Evaluator(ctx)
    calls = spy_ops(monkeypatch, ev)
    with pytest.raises(fg.ModulusOverflowError, match="polyval's result.*bound = 4"):
        engine.polyval(ev, ct, COEFFS, bound=4)
    with pytest.raises(fg.ParameterError, match="value_bound"):
        engine.polyval(ev, ct, COEFFS)
    assert calls() == 0


def test_polyval_too_deep_refused_before_work(cpu_world, monkeypatch):
    w = cpu_world
    calls = spy_ops(monkeypatch, w.ev)
    ct = w.encrypt(w.uniform())
    with pytest.raises(fg.LevelError, match="degree 5 needs 4 levels.*at level 3"):
        engine.polyval(w.ev, ct, [0, 1, 0, 0, 0, 0.1])
    with pytest.raises(fg.LevelError, match="degree 2 needs 2 levels.*at level 1"):
        engine.polyval(w.ev, w.encrypt(w.uniform(), level=1), [0, 1, 0.5])
    assert calls() == 0
    assert [engine.polyval_depth(d) for d in range(10)] == [1, 1, 2, 3, 3, 4, 4, 4, 4, 5]


def test_polyval_small_high_order_coefficients_refused(cpu_world, monkeypatch):
    w = cpu_world
    coeffs = [0.5, 1.0, 0.0, 0.0, 1e-9]
    x = w.uniform()
    ct = w.encrypt(x)
    calls = spy_ops(monkeypatch, w.ev)
    with pytest.raises(fg.ParameterError, match="lose precision at bound 64"):
        engine.polyval(w.ev, ct, coeffs, bound=64)
    assert calls() == 0
    y = engine.polyval(w.ev, ct, coeffs)
    assert np.abs(w.decrypt(y).real - np.polyval(coeffs[::-1], x)).max() < 1e-5


def test_polyval_drops_trailing_zeros(cpu_world):
    w = cpu_world
    x = w.uniform()
    ct = w.encrypt(x)
    y = engine.polyval(w.ev, ct, [0.5, 1.0] + [0.0] * 7)
    assert y.level == ct.level - 1
    assert np.abs(w.decrypt(y).real - (0.5 + x)).max() < 1e-5
    z = engine.polyval(w.ev, ct, [0.25, 0.0])
    assert z.level == ct.level - 1 and np.abs(w.decrypt(z).real - 0.25).max() < 1e-5


@pytest.mark.parametrize("coeffs,bound,match", [
    ([0.5, np.nan], 1.0, r"finite, got coeffs\[1\] = nan"),
    ([0.5, 1.0, np.inf], 1.0, "finite"),
    ([0.5, 1j], 1.0, "real"),
    ([], 1.0, "non-empty"),
    ([[1.0, 2.0]], 1.0, "1-D"),
    ("abc", 1.0, "1-D"),
    ([0.5, 1.0], 0.0, "bound must be"),
    ([0.5, 1.0], -1.0, "bound must be"),
    ([0.5, 1.0], float("nan"), "bound must be"),
    ([0.5, 1.0], float("inf"), "bound must be"),
    ([0.5, 1.0], True, "bound must be"),
    ([0.5, 1.0], "4", "bound must be"),
    ([0.5, 1.0], 0.5, r"values reach .*value_bound"),
])
def test_polyval_refuses_bad_inputs(cpu_world, monkeypatch, coeffs, bound, match):
    w = cpu_world
    ct = w.encrypt(np.linspace(-1, 1, w.params.slots))
    calls = spy_ops(monkeypatch, w.ev)
    with pytest.raises(fg.ParameterError, match=match):
        engine.polyval(w.ev, ct, coeffs, bound=bound)
    with pytest.raises(fg.ParameterError, match="Ciphertext, got Plaintext"):
        engine.polyval(w.ev, w.encoder.encode(w.uniform()), [0.5, 1.0])
    assert calls() == 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_matvec_rotations_and_replicate_refuse_bad_dimensions(bad):
    with pytest.raises(fg.ParameterError, match="integer >= 1"):
        engine.matvec_rotations(bad)
    with pytest.raises(fg.ParameterError, match="d >= 1"):
        engine.replicate(np.zeros((2, 0)), 512)
