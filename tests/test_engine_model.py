"""fhe_gpu.engine Model, layers, Plan and Client.

Client encrypts, a server (its own Context, the client's evaluation keys read from bytes)
evaluates the compiled model, the client decrypts: the result matches the cleartext twin
``model.forward_plain`` within PRECISION_BITS bits (Lattigo's precision: -log2 of the
largest error), at N = 2^10 with 30-bit primes and scale (insecure on purpose), cpu backend.
"""
from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu import engine
from fhe_gpu.circuits import Chebyshev

#: the bits of precision an encrypted run keeps against the twin (measured: 17 to 21)
PRECISION_BITS = 14
BACKEND = "cpu"


def params_with(levels: int) -> fg.Parameters:
    return fg.Parameters(log_n=10, q_bits=[50] + [30] * levels, p_bits=[60], scale_bits=30,
                         security=None)


PARAMS = params_with(6)


def two_layer(vectors=4, seed=1) -> engine.Model:
    rng = np.random.default_rng(seed)
    return engine.Model([
        engine.Linear(rng.uniform(-1, 1, (40, 24)) / np.sqrt(24), rng.uniform(-0.5, 0.5, 40)),
        engine.Activation("gelu", interval=(-8, 8), degree=15),
        engine.Linear(rng.uniform(-1, 1, (8, 40)) / np.sqrt(40), rng.uniform(-0.5, 0.5, 8)),
    ], vectors=vectors)


def elementwise_first() -> engine.Model:
    rng = np.random.default_rng(2)
    return engine.Model([engine.Scale(0.5), engine.Bias(rng.uniform(-1, 1, 24)),
                         engine.Activation("tanh", interval=(-4, 4), degree=7),
                         engine.Linear(rng.uniform(-1, 1, (8, 24)) / 5), engine.Square()],
                        vectors=2)


def square_between() -> engine.Model:
    rng = np.random.default_rng(3)
    return engine.Model([engine.Linear(rng.uniform(-1, 1, (30, 20)) / 5,
                                       rng.uniform(-1, 1, 30)),
                         engine.Square(), engine.Bias(rng.uniform(-1, 1, 30)),
                         engine.Linear(rng.uniform(-1, 1, (10, 30)) / 5),
                         engine.Activation(Chebyshev.fit(np.sin, (-2, 2), 7))])


def no_linear() -> engine.Model:
    return engine.Model([engine.Square(), engine.Bias(0.25), engine.Scale(-3.0)], input_dim=20,
                        vectors=8, name="poly")


class Server:
    """What an Engine holds: a Context and a tenant's evaluation keys read from bytes."""

    def __init__(self, client: engine.Client, params=PARAMS):
        self.ctx = fg.Context(params, backend=BACKEND)
        self.evk = fg.EvaluationKeys.from_bytes(client.evaluation_key_bytes(), self.ctx)
        self.ev = fg.Evaluator(self.ctx, self.evk)

    def run(self, model: engine.Model, data: bytes) -> fg.Ciphertext:
        return model.compile(self.ctx).apply(self.ev, fg.Ciphertext.from_bytes(data, self.ctx))


@pytest.fixture(scope="module")
def keyed():
    model = two_layer()
    client = engine.Client(PARAMS, model, seed=b"\x05" * 32, backend=BACKEND)
    return model, client, Server(client)


def test_client_engine_round_trip_matches_twin(keyed):
    model, client, server = keyed
    x = np.random.default_rng(7).uniform(-1, 1, (3, 24))
    data = client.encrypt(x)
    ct = fg.Ciphertext.from_bytes(data, server.ctx)
    out = server.run(model, data)
    got = client.decrypt(out.to_bytes(), count=3)
    assert got.shape == (3, 8)
    assert fg.precision_bits(model.forward_plain(x), got) >= PRECISION_BITS
    assert model.depths == [1, 4, 1] and model.depth == 6
    assert ct.batch_size == 1 and ct.level == client.plan.input_level == model.depth
    assert ct.level - out.level == model.depth and out.level == client.plan.output_level == 0


@pytest.mark.parametrize("build", [elementwise_first, square_between, no_linear])
def test_element_wise_layers_levels_and_precision(build):
    model = build()
    client = engine.Client(PARAMS, model, seed=b"\x06" * 32, backend=BACKEND)
    server = Server(client)
    count = min(2, client.plan.vectors)
    x = np.random.default_rng(8).uniform(-1, 1, (count, model.input_dim))
    data = client.encrypt(x)
    out = server.run(model, data)
    assert fg.Ciphertext.from_bytes(data, server.ctx).level - out.level == model.depth
    assert out.level == 0
    assert fg.precision_bits(model.forward_plain(x), client.decrypt(out, count)) \
        >= PRECISION_BITS


@pytest.mark.parametrize("q_bits,scale_bits", [([55] + [40] * 6, 30), ([60] + [36] * 6, 40)])
def test_levels_do_not_depend_on_the_primes(q_bits, scale_bits):
    """Primes far from the scale: the folded activation still costs ceil(log2(d + 1))."""
    params = fg.Parameters(log_n=10, q_bits=q_bits, p_bits=[60], scale_bits=scale_bits,
                           security=None)
    model = two_layer()
    client = engine.Client(params, model, seed=b"\x07" * 32, backend=BACKEND)
    x = np.random.default_rng(12).uniform(-1, 1, (4, 24))
    out = Server(client, params).run(model, client.encrypt(x))
    assert out.level == 0 and out.scale == pytest.approx(params.default_scale, rel=1e-9)
    assert fg.precision_bits(model.forward_plain(x), client.decrypt(out)) >= PRECISION_BITS


def test_depths_fold_activation_only_after_linear():
    assert elementwise_first().depths == [0, 0, 4, 1, 1]   # tanh on (-4, 4): 3 + 1
    assert square_between().depths == [1, 1, 0, 1, 3]       # sin folded into the Linear
    assert no_linear().depth == 1
    gelu = engine.Activation("gelu", interval=(-8, 8), degree=31)
    assert engine.Model([gelu], input_dim=4).depth == 6
    assert engine.Model([engine.Linear(np.eye(4)), gelu]).depth == 6


def test_rotations_are_exactly_what_apply_needs(keyed):
    model, client, server = keyed
    plan = model.compile(server.ctx)
    assert model.rotations(PARAMS) == plan.rotations == client.plan.rotations
    assert plan.rotations == sorted({k for lt in plan.transforms for k in lt.rotations})
    assert set(server.evk.galois) == {server.ctx.galois_element(k) for k in plan.rotations}
    assert server.evk.relin is not None and not plan.conjugation
    plan.check_keys(server.evk)
    drop = plan.rotations[len(plan.rotations) // 2]
    fewer = fg.EvaluationKeys(server.ctx, server.evk.relin,
                              {g: k for g, k in server.evk.galois.items()
                               if g != server.ctx.galois_element(drop)}, server.evk.key_id)
    with pytest.raises(fg.KeyMissingError, match=f"\\[{drop}\\]"):
        plan.check_keys(fewer)
    ct = fg.Ciphertext.from_bytes(client.encrypt(np.zeros(24)), server.ctx)
    with pytest.raises(fg.KeyMissingError, match=str(drop)):
        plan.apply(fg.Evaluator(server.ctx, fewer), ct)
    with pytest.raises(fg.KeyMissingError, match="relinearization"):
        plan.check_keys(fg.EvaluationKeys(server.ctx, None, server.evk.galois,
                                          server.evk.key_id))


def test_batch_of_three_rows_equals_one_at_a_time(keyed):
    model, client, server = keyed
    rng = np.random.default_rng(9)
    xs = [rng.uniform(-1, 1, (n, 24)) for n in (1, 4, 2)]
    cts = [fg.Ciphertext.from_bytes(client.encrypt(x), server.ctx) for x in xs]
    plan = model.compile(server.ctx)
    batched = plan.apply(server.ev, fg.Ciphertext.stack(cts))
    assert batched.batch_size == 3
    for i, (x, ct) in enumerate(zip(xs, cts)):
        alone = plan.apply(server.ev, ct)
        assert np.array_equal(np.asarray(batched[i].data), np.asarray(alone.data))
        got = client.decrypt(batched[i].to_bytes(), count=len(x))
        assert fg.precision_bits(model.forward_plain(x), got) >= PRECISION_BITS


def test_unused_lanes_repeat_the_request(keyed):
    model, client, server = keyed
    x = np.random.default_rng(10).uniform(-1, 1, 24)
    got = client.decrypt(server.run(model, client.encrypt(x)))
    assert got.shape == (client.plan.vectors, 8)
    assert fg.precision_bits(np.tile(model.forward_plain(x), (4, 1)), got) >= PRECISION_BITS


def test_compile_is_cached_and_warm(keyed):
    model, _, server = keyed
    plan = model.compile(server.ctx)
    assert model.compile(fg.Context(PARAMS, backend=BACKEND)) is plan
    assert plan.warm() == plan.cache_nbytes > 0
    assert (plan.vectors, plan.input_dim, plan.output_dim, plan.depth) == (4, 24, 8, 6)
    assert [lt.input_mode for lt in plan.transforms] == ["periodic", "padded"]


def test_compile_refuses_too_deep_a_model():
    with pytest.raises(fg.LevelError, match="needs 6 levels, parameters have 4"):
        two_layer().compile(fg.Context(params_with(4), backend=BACKEND))
    with pytest.raises(fg.LevelError, match="needs 6 levels, parameters have 4"):
        engine.Client(params_with(4), two_layer(), backend=BACKEND)
    wide = engine.Model([engine.Linear(np.ones((600, 8)))])
    with pytest.raises(fg.ParameterError, match="length 600, a lane holds 512"):
        wide.rotations(PARAMS)


def test_request_errors(keyed):
    model, client, server = keyed
    with pytest.raises(fg.ParameterError, match="at most 4 vectors.*got 5"):
        client.encrypt(np.zeros((5, 24)))
    with pytest.raises(fg.ParameterError, match=r"\(count, 24\).*\(3, 23\)"):
        client.encrypt(np.zeros((3, 23)))
    with pytest.raises(fg.ParameterError, match="finite"):
        client.encrypt(np.full(24, np.nan))
    out = server.run(model, client.encrypt(np.zeros(24)))
    with pytest.raises(fg.ParameterError, match=r"count must be an integer in \[1, 4\]"):
        client.decrypt(out, count=5)
    with pytest.raises(fg.SerializationError):
        client.decrypt(b"not a ciphertext")
    low = fg.Ciphertext.from_bytes(client.encrypt(np.zeros(24)), server.ctx)
    plan = model.compile(server.ctx)
    assert plan.input_scale == server.ctx.default_scale
    with pytest.raises(fg.ScaleMismatchError, match="default scale"):
        plan.apply(server.ev, server.ev.mul_by_scale(low, 2.0))
    with pytest.raises(fg.LevelError, match="level >= 6.*got level 5"):
        model.compile(server.ctx).apply(server.ev, server.ev.drop_level(low, 5))


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (5, 24))
    for model in (two_layer(), elementwise_first(), square_between(), no_linear()):
        path = tmp_path / "m.npz"
        model.save(path)
        loaded = engine.Model.load(path)
        x_in = x[:, : model.input_dim] if model.input_dim <= 24 else x
        assert np.array_equal(loaded.forward_plain(x_in), model.forward_plain(x_in))
        assert loaded.fingerprint == model.fingerprint and loaded == model
        assert (loaded.name, loaded.depths, loaded.vectors) == \
            (model.name, model.depths, model.vectors)
        assert loaded.rotations(PARAMS) == model.rotations(PARAMS)
    buf = io.BytesIO()
    two_layer().save(buf)
    assert engine.Model.load(io.BytesIO(buf.getvalue())).fingerprint == two_layer().fingerprint


def test_fingerprint_is_content():
    a, b = two_layer(), two_layer()
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 32
    assert engine.Model(a.layers, vectors=4, name="other").fingerprint == a.fingerprint
    assert two_layer(seed=2).fingerprint != a.fingerprint
    assert two_layer(vectors=8).fingerprint != a.fingerprint
    a.rotations(PARAMS)                      # a compiled plan stays behind when pickled
    b = pickle.loads(pickle.dumps(a))
    assert b.fingerprint == a.fingerprint and b.rotations(PARAMS) == a.rotations(PARAMS)


def _arrays(model: engine.Model) -> dict:
    buf = io.BytesIO()
    model.save(buf)
    with np.load(io.BytesIO(buf.getvalue())) as z:
        return {k: z[k] for k in z.files}


def _saved(tmp_path, arrays: dict):
    path = tmp_path / "bad.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@pytest.mark.parametrize("edit,match", [
    (lambda a: a.pop("layer0.W"), "lacks the array 'layer0.W'"),
    (lambda a: a.update(version=np.array(7)), "version 7 is not supported.*version 1"),
    (lambda a: a.update(format=np.array("other")), "format 'other'"),
    (lambda a: a.update({"layer0.W": a["layer0.W"].astype(np.float32)}),
     "'layer0.W' must be float64.*float32"),
    (lambda a: a.update({"layer0.W": a["layer0.W"][0]}), "'layer0.W'.*2 dimension"),
    (lambda a: a.update({"layer1.kind": np.array("conv")}), "unknown kind 'conv'"),
    (lambda a: a.update(extra=np.zeros(2)), "unexpected arrays \\['extra'\\]"),
    (lambda a: a.update(layers=np.array(0)), "1 to 4096 layers, got 0"),
    (lambda a: a.update({"layer2.W": np.zeros((8, 30))}), "40.*30|30.*40"),
    (lambda a: a.update({"layer1.coeffs": np.array([np.nan, 1.0])}), "layer 1.*finite"),
])
def test_bad_model_files(tmp_path, edit, match):
    arrays = _arrays(two_layer())
    edit(arrays)
    with pytest.raises(fg.SerializationError, match=match):
        engine.Model.load(_saved(tmp_path, arrays))


def test_unreadable_model_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(fg.SerializationError, match="cannot read a model"):
        engine.Model.load(garbage)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(fg.SerializationError, match="not an .npz"):
        engine.Model.load(single)
    pickled = _arrays(two_layer())
    pickled["name"] = np.array([{"evil": 1}], dtype=object)
    with pytest.raises(fg.SerializationError, match="pickle|Object arrays"):
        engine.Model.load(_saved(tmp_path, pickled))
    with pytest.raises(fg.SerializationError, match="cannot read"):
        engine.Model.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("build,match", [
    (lambda: engine.Model([engine.Linear(np.ones((40, 24))), engine.Linear(np.ones((8, 30)))]),
     "layer 1.*8x30 takes vectors of length 30, but its input has length 40"),
    (lambda: engine.Model([engine.Linear(np.ones((4, 3))), engine.Bias(np.ones(5))]),
     "Bias of length 5 cannot follow an output of length 4"),
    (lambda: engine.Model([engine.Square()]), "input_dim"),
    (lambda: engine.Model([engine.Linear(np.ones((4, 3)))], input_dim=2),
     "length 3, but its input has length 2"),
    (lambda: engine.Model([]), "at least one layer"),
    (lambda: engine.Model([np.eye(3)]), "ndarray"),
    (lambda: engine.Model([engine.Square()], input_dim=3, vectors=0), "vectors"),
    (lambda: engine.Linear(np.ones(3)), "W must be.*2 dimension"),
    (lambda: engine.Linear(np.ones((2, 3)), np.ones(3)), r"shape \(2,\), got \(3,\)"),
    (lambda: engine.Linear([[1.0, np.inf]]), "finite"),
    (lambda: engine.Activation("swish"), "unknown activation 'swish'"),
    (lambda: engine.Activation(Chebyshev.fit(np.tanh, (-1, 1), 5), degree=7),
     "takes its interval and degree from it"),
    (lambda: engine.Activation(Chebyshev.from_coefficients([2.0])), "degree 0"),
    (lambda: engine.Scale(0), "nonzero"),
    (lambda: engine.Bias(np.ones((2, 2))), "0 or 1 dimension"),
    (lambda: engine.Model([engine.Activation(Chebyshev.fit(np.log, (1, 5), 7))], input_dim=3),
     "would see 0 in the slots that hold no vector element.*\\[1, 5\\]"),
])
def test_model_construction_errors(build, match):
    with pytest.raises(fg.ParameterError, match=match):
        build()


def test_client_and_compile_argument_errors():
    with pytest.raises(fg.ParameterError, match="Parameters"):
        engine.Client("N14", two_layer())
    with pytest.raises(fg.ParameterError, match="engine Model"):
        engine.Client(PARAMS, [engine.Square()])
    with pytest.raises(fg.ParameterError, match="Context"):
        two_layer().compile(PARAMS)
    with pytest.raises(fg.ParameterError, match="Parameters"):
        two_layer().rotations("N14")
