"""``fhe-gpu serve``: the Engine behind the HTTP API, in this process or on Ray replicas.

    fhe-gpu serve --params N15 --model clf=model.npz --host 127.0.0.1 --port 8000
    fhe-gpu serve --params N15 --model clf=model.npz --ray --replicas 2

``--params``: a preset name (``fg.Parameters.presets()``) or a file holding
``Parameters.to_bytes()``. ``--model NAME=PATH``: a model file (``Model.save``), repeated
for several models. The server prints ``listening on http://HOST:PORT`` once its socket is
bound (``--port 0`` picks a free port), answers ``/readyz`` with 200 once it serves, and
on SIGINT/SIGTERM stops accepting, finishes the requests in flight and drains the Engine.
"""
from __future__ import annotations

import argparse
import importlib
import os
import socket
import sys

from ..ckks import Parameters
from ..engine import DirectoryKeyStore, Engine, Model
from ..errors import ParameterError

#: the environment variable that may hold the admin token
ADMIN_TOKEN_ENV = "FHE_GPU_ADMIN_TOKEN"


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand on an argparse subparsers object."""
    p = sub.add_parser("serve", help="serve models over HTTP (one Engine, or Ray replicas)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", required=True, help="preset name or Parameters.to_bytes file")
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                   help="a model file to serve under NAME (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: any free port")
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-queue", type=int, default=1024)
    p.add_argument("--workers", type=int, default=1, help="Engine evaluation threads")
    p.add_argument("--max-latency-ms", type=float, default=None,
                   help="429 for a request whose predicted latency exceeds this")
    p.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS")
    p.add_argument("--key-cache-bytes", type=int, default=None)
    p.add_argument("--key-dir", default=None, help="keep tenants' keys in this directory")
    p.add_argument("--admin-token", default=os.environ.get(ADMIN_TOKEN_ENV),
                   help=f"only this token creates tenants (default: ${ADMIN_TOKEN_ENV}; "
                        f"unset: the first key upload of a tenant issues its token)")
    p.add_argument("--max-key-bytes", type=int, default=None)
    p.add_argument("--max-request-bytes", type=int, default=None)
    p.add_argument("--max-inflight", type=int, default=256,
                   help="inference requests in the server at once before 429")
    p.add_argument("--max-uploads", type=int, default=2,
                   help="key uploads at once before 429")
    p.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="longest wait for the next chunk of a request body (then 408)")
    p.add_argument("--drain-timeout", type=float, default=None, metavar="SECONDS",
                   help="longest wait for requests in flight at shutdown (default: all)")
    p.add_argument("--ray", action="store_true", help="Engine replicas on Ray Serve")
    p.add_argument("--replicas", type=int, default=2, help="with --ray")
    p.add_argument("--ray-address", default=None, help="with --ray: a cluster (default: "
                   "start a local one)")
    p.add_argument("--cpus-per-replica", type=float, default=1.0)
    p.add_argument("--gpus-per-replica", type=float, default=0.0,
                   help="1 with --backend cuda: one replica per GPU")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=serve)
    return p


def load_params(spec: str) -> Parameters:
    """Parameters from a preset name or a file of ``Parameters.to_bytes()``."""
    if spec in Parameters.presets():
        return Parameters.preset(spec)
    if not os.path.isfile(spec):
        raise ParameterError(f"--params {spec!r} is neither a preset "
                             f"({sorted(Parameters.presets())}) nor a file")
    with open(spec, "rb") as f:
        return Parameters.from_bytes(f.read(), max_bytes=1 << 20)


def load_models(specs: list[str]) -> dict:
    """{name: Model} from NAME=PATH specs."""
    models = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ParameterError(f"--model takes NAME=PATH, got {spec!r}")
        if name in models:
            raise ParameterError(f"--model {name!r} given twice")
        models[name] = Model.load(path)
    return models


def _engine_options(args) -> dict:
    opts = {"backend": args.backend, "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms, "max_queue": args.max_queue,
            "workers": args.workers, "request_timeout_s": args.request_timeout,
            "key_cache_bytes": args.key_cache_bytes, "max_latency_ms": args.max_latency_ms}
    if args.key_dir:
        opts["key_store"] = DirectoryKeyStore(args.key_dir)
    return opts


def _backend(args, params, models):
    if not args.ray:
        from .backend import EngineBackend
        return EngineBackend(Engine(params, models, **_engine_options(args)))
    import ray

    from . import ray as serving_ray
    if args.ray_address:
        ray.init(address=args.ray_address)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)
    opts = _engine_options(args)
    opts.pop("key_store", None)       # each replica's keys come from the tenant directory
    return serving_ray.deploy(params, models, replicas=args.replicas, engine_options=opts,
                              cpus_per_replica=args.cpus_per_replica,
                              gpus_per_replica=args.gpus_per_replica,
                              max_ongoing_requests=max(args.max_queue, args.max_inflight))


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(args) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit status."""
    try:
        import uvicorn

        from .http import Limits, create_app
        if args.ray:
            importlib.import_module("ray.serve")
    except ImportError as exc:
        extra = "ray" if args.ray else "serve"
        print(f"error: fhe-gpu serve{' --ray' if args.ray else ''} needs {exc.name}: pip "
              f"install 'fhe-gpu[{extra}]'", file=sys.stderr)
        return 2

    params = load_params(args.params)
    models = load_models(args.model)
    backend = _backend(args, params, models)
    app = create_app(backend, admin_token=args.admin_token, limits=Limits(
        max_key_bytes=args.max_key_bytes, max_request_bytes=args.max_request_bytes,
        max_inflight=args.max_inflight, max_uploads=args.max_uploads,
        body_timeout_s=args.body_timeout))
    state = app.state.serving
    sock = _socket(args.host, args.port)
    config = uvicorn.Config(app, log_level=args.log_level, lifespan="on",
                            timeout_graceful_shutdown=args.drain_timeout)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            state.drain()
            super().handle_exit(sig, frame)
            # a drained shutdown exits 0 instead of re-raising the signal at the end
            getattr(self, "_captured_signals", []).clear()

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"fhe-gpu serve: {len(models)} model(s) {sorted(models)}, "
          f"{'Ray, %d replicas' % args.replicas if args.ray else 'one Engine'}; "
          f"listening on http://{shown}:{port}", flush=True)
    Server(config).run(sockets=[sock])
    if args.ray:
        import ray
        ray.shutdown()
    return 0


def main(argv=None) -> int:
    """``python -m fhe_gpu.serving.command ...``: the same as ``fhe-gpu serve ...``."""
    parser = argparse.ArgumentParser(prog="fhe-gpu")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve"] + list(sys.argv[1:] if argv is None else argv))
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
